/** Small readers for libpg-query's JSON parse tree. */
import type { Body } from './classify.ts';
import type { RelationName } from './facts.ts';

/** The single `{ Type: body }` entry of a wrapped node. */
export function unwrap(node: unknown): [string, Body] | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  for (const key in node) return [key, (node as Record<string, Body>)[key] ?? {}];
  return undefined;
}

export function stringValue(node: unknown): string | undefined {
  const entry = unwrap(node);
  return entry?.[0] === 'String' && typeof entry[1].sval === 'string' ? entry[1].sval : undefined;
}

export function relationOf(rangeVar: unknown): RelationName | undefined {
  const body = rangeVar as Body | undefined;
  if (!body || typeof body.relname !== 'string') return undefined;
  return typeof body.schemaname === 'string'
    ? { schema: body.schemaname, name: body.relname }
    : { name: body.relname };
}

export function aliasOf(body: Body): string | undefined {
  const alias = body.alias as Body | undefined;
  return typeof alias?.aliasname === 'string' ? alias.aliasname : undefined;
}

export function renamesColumns(body: Body): boolean {
  return list((body.alias as Body | undefined)?.colnames).length > 0;
}

/** A dedupe key; NUL cannot occur in a name (quoted names may contain dots and commas). */
export function relationKey(r: RelationName): string {
  return r.schema === undefined ? r.name : `${r.schema}\u0000${r.name}`;
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The CommonTableExpr bodies of a WITH clause, in the order they are written. */
export function commonTableExpressions(withClause: Body): Body[] {
  return list(withClause.ctes)
    .map(unwrap)
    .filter((e): e is [string, Body] => e?.[0] === 'CommonTableExpr')
    .map(([, cte]) => cte);
}
