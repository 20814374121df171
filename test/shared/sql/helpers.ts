/** Shorthands for the SQL analysis tests: one statement's facts, and compact views of them. */
import { analyzeSql } from '../../../shared/sql/analyze.ts';
import type { ColumnFact, StatementFacts } from '../../../shared/sql/facts.ts';

/** The facts of a message that must hold exactly one statement. */
export function one(text: string): StatementFacts {
  const analysis = analyzeSql(text);
  if (!analysis.parsed) throw new Error(`did not parse: ${analysis.error?.message}`);
  const [statement, ...rest] = analysis.statements;
  if (!statement || rest.length > 0)
    throw new Error(`expected one statement, got ${analysis.statements.length}`);
  return statement;
}

/** Relations as `schema.name:access`. */
export function relations(s: StatementFacts): string[] {
  return s.relations.map((r) => `${r.schema ? `${r.schema}.` : ''}${r.name}:${r.access}`).sort();
}

/**
 * Columns as `name@clause` followed by `=table` (pinned down), `?a|b` (candidates) and `~` (opaque).
 */
export function columns(s: StatementFacts, clause?: ColumnFact['clause']): string[] {
  return s.columns
    .filter((c) => clause === undefined || c.clause === clause)
    .map((c) => {
      const table = (r: { schema?: string; name: string }) => `${r.schema ? `${r.schema}.` : ''}${r.name}`;
      let text = `${c.name}@${c.clause}`;
      if (c.relation) text += `=${table(c.relation)}`;
      if (c.candidates) text += `?${c.candidates.map(table).join('|')}`;
      if (c.opaque) text += '~';
      return text;
    })
    .sort();
}
