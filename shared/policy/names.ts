/**
 * Name patterns for relations, columns and functions: dot-separated parts, case-insensitive, `*` a
 * wildcard inside a part.
 *
 * A statement may name a relation or function without a schema; which schema PostgreSQL picks then
 * depends on the session's search_path, which the client can change (`SET search_path`). So:
 * - for deny, require_approval and mask rules a name "may match": `customers` in a statement matches
 *   the pattern `public.customers` (and `secret.customers`), because it may resolve there;
 * - for allow rules a name must "surely match": `customers` in a statement does not surely match
 *   `public.customers`; write allow patterns without a schema (any schema) or qualify the query.
 * A pattern without a schema matches the name in every schema.
 */
import type { ColumnFact, RelationName } from '../sql/facts.ts';

export type Certainty = 'may' | 'surely';

type Part = string | RegExp;

export interface QualifiedPattern {
  schema?: Part;
  name: Part;
  text: string;
}

export interface ColumnPattern {
  relation?: QualifiedPattern;
  column: Part;
  text: string;
}

function compilePart(part: string): Part {
  const lower = part.toLowerCase();
  if (!lower.includes('*')) return lower;
  const source = lower
    .split('*')
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`);
}

function partMatches(part: Part, value: string): boolean {
  const lower = value.toLowerCase();
  return typeof part === 'string' ? part === lower : part.test(lower);
}

/** `name` or `schema.name`; undefined when the text has another shape. */
export function compileQualified(text: string): QualifiedPattern | undefined {
  const parts = splitName(text);
  if (!parts || parts.length > 2) return undefined;
  const name = parts[parts.length - 1] as string;
  return parts.length === 2
    ? { schema: compilePart(parts[0] as string), name: compilePart(name), text }
    : { name: compilePart(name), text };
}

/** `column`, `table.column` or `schema.table.column`. */
export function compileColumn(text: string): ColumnPattern | undefined {
  const parts = splitName(text);
  if (!parts || parts.length > 3) return undefined;
  const column = compilePart(parts[parts.length - 1] as string);
  if (parts.length === 1) return { column, text };
  const relation = compileQualified(parts.slice(0, -1).join('.'));
  return relation && { relation, column, text };
}

function splitName(text: string): string[] | undefined {
  const parts = text.split('.');
  return parts.every((p) => p.length > 0 && !/\s/.test(p)) ? parts : undefined;
}

export function relationMatches(
  pattern: QualifiedPattern,
  relation: RelationName,
  certainty: Certainty,
): boolean {
  if (!partMatches(pattern.name, relation.name)) return false;
  if (pattern.schema === undefined) return true;
  if (relation.schema === undefined) return certainty === 'may';
  return partMatches(pattern.schema, relation.schema);
}

/** A function as the analysis reports it: 'name' or 'schema.name', lower-cased. */
export function functionMatches(pattern: QualifiedPattern, fn: string, certainty: Certainty): boolean {
  const dot = fn.lastIndexOf('.');
  const relation = dot < 0 ? { name: fn } : { schema: fn.slice(0, dot), name: fn.slice(dot + 1) };
  return relationMatches(pattern, relation, certainty);
}

/**
 * A column reference against a column pattern. `*` (a star or whole-row reference) may be any column;
 * a column whose table is not pinned down may belong to any of its candidates (or, when opaque, to
 * any table at all).
 */
export function columnMatches(
  pattern: ColumnPattern,
  column: Pick<ColumnFact, 'name' | 'relation' | 'candidates' | 'opaque'>,
  certainty: Certainty,
): boolean {
  const nameOk = partMatches(pattern.column, column.name) || (certainty === 'may' && column.name === '*');
  if (!nameOk) return false;
  if (pattern.relation === undefined) return true;
  const sources = column.relation ? [column.relation] : (column.candidates ?? []);
  const relation = pattern.relation;
  if (certainty === 'may')
    return column.opaque === true || sources.some((r) => relationMatches(relation, r, 'may'));
  return (
    column.opaque !== true &&
    sources.length > 0 &&
    sources.every((r) => relationMatches(relation, r, 'surely'))
  );
}
