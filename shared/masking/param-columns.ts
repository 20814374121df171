/**
 * Which columns a statement's parameters ($1, $2, …) may end up in or be compared with, from
 * PostgreSQL's own parse tree: so a reviewer is not shown, in an approval request, a value that a
 * mask rule hides in results (`UPDATE customers SET ssn = $1`, `… WHERE card_number = $2`).
 *
 * Conservative by construction; a parameter gets every column it may meet:
 * - a value of INSERT … VALUES / INSERT … SELECT gets its target column; without a column list,
 *   any column of the table (`*`);
 * - a value of UPDATE … SET (and ON CONFLICT DO UPDATE SET) gets the column it is assigned to; in
 *   `SET (a, b) = (…)` every column of the list;
 * - MERGE: any column of the target table;
 * - inside an expression (comparison, function call, CASE, subquery, …): every column referenced
 *   anywhere in the outermost expression around it, whatever table qualifies it (a qualifier is an
 *   alias the text alone cannot always resolve, so the column may belong to any table);
 * - an output of a subquery, CTE or VALUES list in FROM (`… SET ssn = v.x FROM (VALUES ($1)) v(x)`):
 *   any column at all, since the text alone cannot follow where a derived column goes.
 * A parameter used nowhere near a column (`SELECT pg_terminate_backend($1)`, `LIMIT $1`) gets none.
 * undefined: the parser rejected the text, so nothing is known.
 */
import type { Body } from '../sql/classify.ts';
import type { RelationName } from '../sql/facts.ts';
import { parseSql } from '../sql/parser.ts';
import { list, relationOf, stringValue, unwrap } from '../sql/tree.ts';

/** A column as a mask pattern can match it (policy/names.ts columnMatches). */
export interface ParamColumn {
  /** '*' = any column (of `relation`, or of any table) */
  name: string;
  relation?: RelationName;
  /** may belong to any table */
  opaque?: true;
}

/** Nodes whose whole subtree is one expression: a parameter inside meets every column in it. */
const EXPRESSIONS = new Set([
  'A_Expr',
  'A_ArrayExpr',
  'A_Indirection',
  'BooleanTest',
  'CaseExpr',
  'CoalesceExpr',
  'CollateClause',
  'FuncCall',
  'GroupingFunc',
  'MinMaxExpr',
  'NullTest',
  'RowExpr',
  'SubLink',
  'TypeCast',
  'XmlExpr',
]);

export function paramColumns(text: string): Map<number, ParamColumn[]> | undefined {
  const parsed = parseSql(text);
  if (!parsed.ok) return undefined;
  const walker = new ParamWalker();
  for (const raw of list(parsed.tree.stmts)) {
    const [kind, body] = unwrap((raw as Body).stmt) ?? ['', {}];
    // a statement's own select list goes to the client; a nested one's may go anywhere
    walker.visit(kind === 'SelectStmt' ? body : (raw as Body).stmt, []);
  }
  return walker.byParam;
}

class ParamWalker {
  readonly byParam = new Map<number, ParamColumn[]>();

  visit(node: unknown, near: readonly ParamColumn[]): void {
    if (Array.isArray(node)) {
      for (const item of node) this.visit(item, near);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === 'ParamRef') this.note((value as Body).number, near);
      else if (key === 'InsertStmt') this.insert(value as Body, near);
      else if (key === 'UpdateStmt') this.update(value as Body, near);
      else if (key === 'MergeStmt') this.visit(value, [...near, anyColumnOf((value as Body).relation)]);
      else if (key === 'SelectStmt') this.derived(value as Body, near);
      else if (EXPRESSIONS.has(key)) this.visit(value, [...near, ...columnsIn(value)]);
      else this.visit(value, near);
    }
  }

  /** A nested SELECT or VALUES: its outputs may be stored in, or compared with, any column. */
  private derived(select: Body, near: readonly ParamColumn[]): void {
    const { targetList, valuesLists, ...rest } = select;
    this.visit(rest, near);
    this.visit(targetList, [...near, ANY_COLUMN]);
    this.visit(valuesLists, [...near, ANY_COLUMN]);
  }

  private note(number: unknown, near: readonly ParamColumn[]): void {
    if (typeof number !== 'number') return;
    const seen = this.byParam.get(number);
    if (seen) seen.push(...near);
    else this.byParam.set(number, [...near]);
  }

  private insert(stmt: Body, near: readonly ParamColumn[]): void {
    const relation = relationOf(stmt.relation);
    const names = list(stmt.cols).map((c) => unwrap(c)?.[1].name);
    const target = (i: number): ParamColumn => {
      const name = names[i];
      return typeof name === 'string' ? { name, ...(relation && { relation }) } : anyColumnOf(stmt.relation);
    };
    const { selectStmt, onConflictClause, ...rest } = stmt;
    this.visit(rest, near);
    // ON CONFLICT DO UPDATE SET: assignments like UPDATE's (the clause is not wrapped in its type)
    const onConflict = onConflictClause as Body | undefined;
    if (onConflict && typeof onConflict === 'object') {
      const { targetList, ...conflictRest } = onConflict;
      this.visit(conflictRest, near);
      this.assignments(targetList, relation, near);
    }
    const select = unwrap(selectStmt)?.[1];
    if (!select || (select.op !== undefined && select.op !== 'SETOP_NONE')) {
      // a set operation feeds the columns from several arms: any value may land in any column
      const all = names.length > 0 ? names.map((_, i) => target(i)) : [anyColumnOf(stmt.relation)];
      this.visit(selectStmt, [...near, ...all]);
      return;
    }
    const { valuesLists, targetList, ...others } = select;
    this.visit(others, near);
    for (const row of list(valuesLists)) this.positional(unwrap(row)?.[1].items, near, target);
    this.positional(targetList, near, target);
  }

  /** The i-th value of a VALUES row or select list lands in the i-th target column. */
  private positional(items: unknown, near: readonly ParamColumn[], target: (i: number) => ParamColumn): void {
    let i = 0;
    for (const item of list(items)) this.visit(item, [...near, target(i++)]);
  }

  private update(stmt: Body, near: readonly ParamColumn[]): void {
    const relation = relationOf(stmt.relation);
    const { targetList, ...rest } = stmt;
    this.visit(rest, near);
    this.assignments(targetList, relation, near);
  }

  /** SET col = value: the value lands in col; SET (a, b) = (…) shares one source over the list. */
  assignments(targets: unknown, relation: RelationName | undefined, near: readonly ParamColumn[]): void {
    const items = list(targets).map((t) => unwrap(t)?.[1] ?? {});
    const multi = items
      .filter((t) => unwrap(t.val)?.[0] === 'MultiAssignRef')
      .map((t) => column(t.name, relation));
    for (const t of items) {
      const own = unwrap(t.val)?.[0] === 'MultiAssignRef' ? multi : [column(t.name, relation)];
      this.visit(t.val, [...near, ...own]);
    }
  }
}

const ANY_COLUMN: ParamColumn = { name: '*', opaque: true };

function column(name: unknown, relation: RelationName | undefined): ParamColumn {
  return typeof name === 'string' ? { name, ...(relation && { relation }) } : { name: '*', opaque: true };
}

function anyColumnOf(rangeVar: unknown): ParamColumn {
  const relation = relationOf(rangeVar);
  return relation ? { name: '*', relation } : { name: '*', opaque: true };
}

/** Every column referenced in a subtree, each possibly of any table. */
function columnsIn(node: unknown): ParamColumn[] {
  const found: ParamColumn[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const item of n) walk(item);
      return;
    }
    if (n === null || typeof n !== 'object') return;
    for (const [key, value] of Object.entries(n as Record<string, unknown>)) {
      if (key === 'ColumnRef') {
        const fields = list((value as Body).fields);
        const last = fields[fields.length - 1];
        found.push({ name: stringValue(last) ?? '*', opaque: true });
      } else walk(value);
    }
  };
  walk(node);
  return found;
}
