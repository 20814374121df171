/**
 * Where a statement's column values can go, from PostgreSQL's own parse tree: the SQL side of masking.
 *
 * The wire side masks result columns by identity (RowDescription's table OID and attribute number).
 * PostgreSQL reports that identity for a column selected as itself, also through aliases, subqueries
 * in FROM, CTEs (data-modifying ones too), LATERAL, DISTINCT, GROUP BY, JOIN … USING, RETURNING and
 * cursors (checked against PostgreSQL 18). It reports none (0) for anything computed: an expression,
 * a function or aggregate call, a cast to another type, a whole-row reference, a scalar subquery, a
 * set operation (UNION / INTERSECT / EXCEPT), a function in FROM; and COPY … TO carries no column
 * identity at all. A masked column used in such a place cannot be masked, so the statement is refused.
 *
 * This module records every column reference with how its value is used (`ValueUse`); it does not
 * know the masks, so the result is the same for every session and can be cached by statement shape.
 * `unmaskableUse` (policy-masks.ts) then matches the uses against the masks that apply.
 *
 * Known limits, by construction of a text-only analysis (the wire side and the detectors cover them):
 * - a view is opaque here: `select upper(tax_id) from v` is seen as a use of `v.tax_id`. Pass-through
 *   view columns are masked by the wire side's catalog resolution; a computed use through a view whose
 *   column names differ from the masked ones can only be caught by the content detectors.
 * - a set-returning user function in FROM may read a masked column internally; `select *` from it is
 *   not refused (its columns are unknown here); a bare column of it whose name matches a mask is.
 */
import type { RawStmt } from 'libpg-query';
import type { Body } from '../sql/classify.ts';
import { WHOLE_ROW_FUNCTIONS } from '../sql/collect.ts';
import type { RelationName } from '../sql/facts.ts';
import { parseSql } from '../sql/parser.ts';
import { aliasOf, commonTableExpressions, list, relationOf, stringValue, unwrap } from '../sql/tree.ts';

/**
 * How a value is used:
 * - identity: selected as itself where its column identity reaches the client: the wire masks it;
 * - predicate: only filters, joins, groups or orders rows (WHERE, JOIN, GROUP BY, HAVING, ORDER BY,
 *   DISTINCT ON, window PARTITION / ORDER, count(…)): nothing is output, but it leaks through side
 *   channels (which rows come back, in which order);
 * - converted: cast or converted (`ssn::int`, `to_date(ssn, …)`) where only a predicate would be
 *   allowed: the conversion's error message prints the value, so it is refused like an output;
 * - expression: inside an expression, function, aggregate or cast whose result is output;
 * - whole_row: a whole-row reference (`select c from customers c`, `row_to_json(c)`) is output;
 * - no_identity: output as itself but without column identity (UNION arms, COPY … TO, a function's
 *   column, a scalar subquery);
 * - stored: copied into a table, view or another column (INSERT … SELECT, UPDATE … SET, CREATE TABLE AS,
 *   SELECT INTO), or sent elsewhere by a function (pg_notify, large objects, set_config…).
 */
export type ValueUseKind =
  | 'identity'
  | 'predicate'
  | 'converted'
  | 'expression'
  | 'whole_row'
  | 'no_identity'
  | 'stored';

/** Where a value may come from: a column (or `*`, any column) of a relation, or of anything (opaque). */
export interface ValueOrigin {
  name: string;
  relation?: RelationName;
  opaque?: true;
}

export interface ValueUse {
  kind: ValueUseKind;
  /** the reference as written, e.g. `c.ssn`, `c` (whole row), `*` */
  written: string;
  origins: ValueOrigin[];
}

export interface StatementUses {
  uses: ValueUse[];
  /** the analysis could not follow some construct: treat the statement as using everything */
  unsure?: string;
}

/** Value uses of every statement in the message; undefined when the parser rejects it. */
export function collectValueUses(text: string): StatementUses | undefined {
  const parsed = parseSql(text);
  if (!parsed.ok) return undefined;
  const walker = new UseWalker();
  for (const raw of (parsed.tree.stmts ?? []) as RawStmt[]) walker.statement(raw.stmt);
  return { uses: walker.uses, ...(walker.unsure && { unsure: walker.unsure }) };
}

// ── scopes ───────────────────────────────────────────────────────────────────────────────────────

/** One output column of a derived table (subquery, CTE, RETURNING): its name and where it comes from. */
interface OutputColumn {
  name?: string;
  origins: ValueOrigin[];
  /** the value passes through as itself (so its identity does too) */
  bare: boolean;
}

interface Derived {
  columns: OutputColumn[];
  /** `*` / `t.*` in its select list: any column of these sources */
  stars: Source[];
}

interface Source {
  name?: string;
  relation?: RelationName;
  derived?: Derived;
  /** a function, VALUES or something unknown: any column of anything */
  opaque?: true;
}

class Scope {
  readonly sources: Source[] = [];
  readonly ctes = new Map<string, Derived>();
  constructor(readonly parent?: Scope) {}

  cte(name: string): Derived | undefined {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const d = s.ctes.get(name);
      if (d) return d;
    }
    return undefined;
  }

  /** Innermost query first. */
  all(): Source[] {
    const out: Source[] = [];
    for (let s: Scope | undefined = this; s; s = s.parent) out.push(...s.sources);
    return out;
  }
}

/**
 * Where a query's rows go: to the client with column identity; to the client without (UNION arms,
 * COPY, scalar subqueries); only into filters; or into storage.
 */
type Sink = 'client' | 'anonymous' | 'filter' | 'store';

/** What a reference inside an expression position becomes. */
type Position = 'target' | 'expression' | 'predicate';

interface Ctx {
  scope: Scope;
  sink: Sink;
  position: Position;
  /** inside a cast or conversion: its error message prints the value it could not convert */
  converting?: true;
}

/** Functions that convert text and print the input in their error message (`invalid input syntax …`). */
const CONVERTING_FUNCTIONS = new Set([
  'int2',
  'int4',
  'int8',
  'float4',
  'float8',
  'numeric',
  'date',
  'time',
  'timetz',
  'timestamp',
  'timestamptz',
  'interval',
  'uuid',
  'json',
  'jsonb',
  'inet',
  'cidr',
  'macaddr',
  'bool',
  'money',
  'to_number',
  'to_date',
  'to_timestamp',
  'decode',
  'regclass',
  'regproc',
  'regtype',
  'format',
  'xpath',
  'xpath_exists',
]);

/** Type input functions called directly (`int4in(textout(ssn))`) print their input like casts do. */
const INPUT_FUNCTION =
  /^(?:[a-z0-9]+_in|(?:int[248]|float[48]|bool|cash|bytea|char|name|text|oid|reg[a-z]+)in)$/;

/**
 * Functions that send their arguments somewhere other than the result: a notification to every
 * listener, a large object, the WAL, a setting. A masked value passed to one is stored, wherever it
 * sits in the statement.
 */
const EXFILTRATING_FUNCTIONS = new Set([
  'pg_notify',
  'pg_logical_emit_message',
  'lo_from_bytea',
  'lo_put',
  'lowrite',
  'set_config',
  'pg_file_write',
]);

const PREDICATE_CLAUSES = new Set([
  'whereClause',
  'groupClause',
  'havingClause',
  'windowClause',
  'sortClause',
  'distinctClause',
  'limitCount',
  'limitOffset',
  'quals',
]);

/** Functions whose result cannot carry the argument's value (only a count of it). */
const VALUE_FREE_FUNCTIONS = new Set(['count']);

class UseWalker {
  readonly uses: ValueUse[] = [];
  unsure?: string;

  statement(node: unknown): void {
    const entry = unwrap(node);
    if (!entry) return;
    this.stmt(entry[0], entry[1], new Scope(), 'client');
  }

  private use(kind: ValueUseKind, written: string, origins: ValueOrigin[]): void {
    if (origins.length > 0) this.uses.push({ kind, written, origins });
  }

  /** A statement (top level or nested) whose rows go to `sink`; returns its output columns. */
  private stmt(type: string, body: Body, scope: Scope, sink: Sink): Derived {
    switch (type) {
      case 'SelectStmt':
        return this.select(body, scope, sink);
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.dml(type, body, scope, sink);
      case 'CopyStmt':
        this.copy(body, scope);
        return EMPTY;
      case 'ExplainStmt': {
        const analyze = list(body.options).some((o) => unwrap(o)?.[1].defname === 'analyze');
        // a plain EXPLAIN runs nothing; EXPLAIN ANALYZE runs it but returns only the plan
        if (analyze) this.nested(body.query, scope, 'filter');
        return EMPTY;
      }
      case 'PrepareStmt':
      case 'DeclareCursorStmt':
        this.nested(body.query, scope, 'client');
        return EMPTY;
      case 'ViewStmt':
        // a view's pass-through columns are resolved to their base columns by the wire side
        this.nested(body.query, scope, 'client');
        return EMPTY;
      case 'CreateTableAsStmt': // CREATE TABLE AS, CREATE MATERIALIZED VIEW: a stored copy
        this.nested(body.query, scope, 'store');
        return EMPTY;
      case 'ExecuteStmt':
        // CREATE TABLE … AS EXECUTE p stores whatever p returns, which is not known here
        if (sink === 'store')
          this.use('stored', `EXECUTE ${String(body.name)}`, [{ name: '*', opaque: true }]);
        return EMPTY;
      case 'RenameStmt': {
        // renaming a masked column (or a view's) unmasks it for name-based masks
        const relation = relationOf(body.relation);
        if (typeof body.subname === 'string' && body.renameType === 'OBJECT_COLUMN')
          this.use('stored', body.subname, [
            { name: body.subname, ...(relation ? { relation } : { opaque: true }) },
          ]);
        return EMPTY;
      }
      default:
        // DDL and utility statements: an expression in them may store the value where it is not masked
        // (a generated column, a default, a trigger's condition…), so every column they name counts as
        // stored; a query nested somewhere unusual (rule actions) is output without identity.
        this.generic(body, { scope: this.ddlScope(body, scope), sink: 'store', position: 'expression' });
        return EMPTY;
    }
  }

  private nested(node: unknown, scope: Scope, sink: Sink): Derived {
    const entry = unwrap(node);
    return entry ? this.stmt(entry[0], entry[1], scope, sink) : EMPTY;
  }

  private ddlScope(body: Body, parent: Scope): Scope {
    const scope = new Scope(parent);
    const relation = relationOf(body.relation) ?? relationOf(body.table);
    if (relation) scope.sources.push({ name: relation.name, relation });
    return scope;
  }

  // ── queries ─────────────────────────────────────────────────────────────────────────────────────

  private select(body: Body, parent: Scope, sink: Sink): Derived {
    const scope = new Scope(parent);
    this.withClause(body.withClause, scope, sink);
    if (body.op && body.op !== 'SETOP_NONE') {
      // set operations output no column identity
      const armSink: Sink = sink === 'client' ? 'anonymous' : sink;
      const left = this.nested({ SelectStmt: body.larg }, scope, armSink);
      const right = this.nested({ SelectStmt: body.rarg }, scope, armSink);
      this.clauses(body, scope, sink);
      return {
        columns: left.columns.map((c, i) => ({
          ...(c.name !== undefined && { name: c.name }),
          origins: [...c.origins, ...(right.columns[i]?.origins ?? [])],
          bare: false,
        })),
        stars: [...left.stars, ...right.stars],
      };
    }
    for (const item of list(body.fromClause)) this.fromItem(item, scope, sink);
    const own: Sink = body.intoClause ? 'store' : sink;
    const out: Derived = { columns: [], stars: [] };
    for (const target of list(body.targetList)) this.target(unwrap(target)?.[1] ?? {}, scope, own, out);
    if (body.valuesLists) {
      // VALUES rows: every expression is output (or stored), none keeps identity
      const rows = list(body.valuesLists).map((row) => list(unwrap(row)?.[1].items));
      const width = Math.max(0, ...rows.map((r) => r.length));
      for (let i = 0; i < width; i++) {
        const origins: ValueOrigin[] = [];
        for (const row of rows)
          origins.push(...this.expr(row[i], { scope, sink: own, position: 'expression' }));
        out.columns.push({ name: `column${i + 1}`, origins, bare: false });
      }
    }
    this.clauses(body, scope, sink);
    return out;
  }

  /** The predicate clauses of a SELECT. */
  private clauses(body: Body, scope: Scope, sink: Sink): void {
    for (const field in body) {
      if (!PREDICATE_CLAUSES.has(field)) continue;
      this.generic(body[field], { scope, sink, position: 'predicate' });
    }
  }

  private withClause(withClause: unknown, scope: Scope, sink: Sink): void {
    const body = withClause as Body | undefined;
    if (!body) return;
    const ctes = commonTableExpressions(body);
    // WITH RECURSIVE: a CTE's own name, read inside it, is seen as opaque (its rows are computed)
    if (body.recursive)
      for (const cte of ctes)
        if (typeof cte.ctename === 'string')
          scope.ctes.set(cte.ctename, { columns: [], stars: [{ opaque: true }] });
    for (const cte of ctes) {
      // a CTE's rows go wherever the query that reads them sends them
      const derived = renamed(this.nested(cte.ctequery, scope, sink), cte.aliascolnames);
      if (typeof cte.ctename === 'string') scope.ctes.set(cte.ctename, derived);
    }
  }

  private fromItem(item: unknown, scope: Scope, sink: Sink): void {
    const entry = unwrap(item);
    if (!entry) return;
    const [type, body] = entry;
    switch (type) {
      case 'RangeVar': {
        const relation = relationOf(body);
        if (!relation) return;
        const name = aliasOf(body) ?? relation.name;
        const cte = relation.schema === undefined ? scope.cte(relation.name) : undefined;
        const alias = body.alias as Body | undefined;
        if (cte) scope.sources.push({ name, derived: renamed(cte, alias?.colnames) });
        else if (list(alias?.colnames).length > 0)
          // FROM t AS x(a, b): a renamed column may be any column of t (and keeps its identity)
          scope.sources.push({
            name,
            derived: renamed({ columns: [], stars: [{ name, relation }] }, alias?.colnames),
          });
        else scope.sources.push({ name, relation });
        return;
      }
      case 'JoinExpr':
        this.fromItem(body.larg, scope, sink);
        this.fromItem(body.rarg, scope, sink);
        if (body.quals) this.generic(body.quals, { scope, sink, position: 'predicate' });
        for (const column of list(body.usingClause)) {
          const name = stringValue(column);
          if (name !== undefined) this.use('predicate', name, this.resolve([name], scope));
        }
        return;
      case 'RangeSubselect': {
        const derived = this.nested(body.subquery, scope, sink);
        const alias = body.alias as Body | undefined;
        scope.sources.push({ name: aliasOf(body), derived: renamed(derived, alias?.colnames) });
        return;
      }
      case 'RangeFunction':
      case 'RangeTableFunc':
      case 'JsonTable':
      case 'RangeTableSample': {
        // arguments flow into the function's output: computed, no identity
        const args = type === 'RangeTableSample' ? body.args : body;
        if (type === 'RangeTableSample') this.fromItem(body.relation, scope, sink);
        this.generic(args, { scope, sink, position: 'expression' }, 'alias');
        if (type !== 'RangeTableSample')
          scope.sources.push({ name: aliasOf(body) ?? functionName(body), opaque: true });
        return;
      }
      default:
        this.unsure ??= `FROM item ${type} is not understood`;
        scope.sources.push({ name: aliasOf(body), opaque: true });
    }
  }

  /** One select-list item. */
  private target(body: Body, scope: Scope, sink: Sink, out: Derived): void {
    const value = unwrap(body.val);
    const name = typeof body.name === 'string' ? body.name : undefined;
    if (value?.[0] === 'ColumnRef') {
      const fields = list(value[1].fields);
      const parts = fields.map((f) => stringValue(f) ?? '*');
      const last = parts[parts.length - 1] as string;
      if (last === '*') {
        // `*` / `t.*` expand into the columns themselves (identity kept) where rows reach the client
        const sources = parts.length === 1 ? scope.sources : this.findSources(parts.slice(0, -1), scope);
        out.stars.push(...sources);
        const origins = sources.flatMap((s) => wholeRowOrigins(s));
        if (sink === 'filter') this.use('predicate', parts.join('.'), origins);
        else if (sink === 'store') this.use('stored', parts.join('.'), origins);
        else if (sink === 'anonymous') this.use('no_identity', parts.join('.'), origins);
        return;
      }
      const origins = this.columnRef(parts, scope, sink, 'target');
      out.columns.push({ name: name ?? last, origins, bare: true });
      return;
    }
    const origins = this.expr(body.val, { scope, sink, position: 'expression' });
    const figured = name ?? figureName(value);
    out.columns.push({ ...(figured !== undefined && { name: figured }), origins, bare: false });
  }

  // ── expressions ─────────────────────────────────────────────────────────────────────────────────

  /** Records every reference in an expression; returns the origins of the values it may carry. */
  private expr(node: unknown, ctx: Ctx): ValueOrigin[] {
    const before = this.uses.length;
    this.generic(node, ctx);
    return this.uses.slice(before).flatMap((u) => u.origins);
  }

  /** The generic walk: every field of every node, with a few node types handled on the way. */
  private generic(value: unknown, ctx: Ctx, skip?: string): void {
    if (Array.isArray(value)) {
      for (const item of value) this.generic(item, ctx);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    const entry = unwrap(value);
    if (!entry) return;
    const [type, body] = entry;
    if (type[0] !== type[0]?.toUpperCase() || typeof body !== 'object' || body === null) {
      // a bare object of fields (no node wrapper)
      for (const field in value as Body) if (field !== skip) this.generic((value as Body)[field], ctx);
      return;
    }
    this.node(type, body, ctx, skip);
  }

  private node(type: string, body: Body, ctx: Ctx, skip?: string): void {
    switch (type) {
      case 'A_Const':
      case 'String':
      case 'Integer':
      case 'Float':
      case 'Boolean':
      case 'BitString':
      case 'TypeName':
        return;
      case 'ColumnRef': {
        const parts = list(body.fields).map((f) => stringValue(f) ?? '*');
        this.columnRef(parts, ctx.scope, ctx.sink, ctx.position, ctx.converting === true);
        return;
      }
      case 'FuncCall': {
        const name = list(body.funcname).map(stringValue).pop()?.toLowerCase() ?? '';
        for (const field in body) {
          if (field === skip) continue;
          if (field === 'args' && EXFILTRATING_FUNCTIONS.has(name)) {
            this.generic(body[field], { scope: ctx.scope, sink: 'store', position: 'expression' });
            continue;
          }
          // window and aggregate ordering / filtering only arrange rows
          const arranges = field === 'over' || field === 'agg_order' || field === 'agg_filter';
          const valueFree = field === 'args' && VALUE_FREE_FUNCTIONS.has(name);
          const converting =
            field === 'args' && (CONVERTING_FUNCTIONS.has(name) || INPUT_FUNCTION.test(name));
          this.generic(
            body[field],
            arranges || valueFree
              ? { ...ctx, position: 'predicate' }
              : converting
                ? { ...ctx, converting: true }
                : ctx,
          );
        }
        return;
      }
      case 'TypeCast':
      case 'XmlExpr':
        for (const field in body) if (field !== skip) this.generic(body[field], { ...ctx, converting: true });
        return;
      case 'SubLink': {
        const exists = body.subLinkType === 'EXISTS_SUBLINK';
        // a subquery inside an output expression outputs without identity; in a predicate it filters
        const sink: Sink =
          ctx.position === 'predicate' || exists || ctx.sink === 'filter'
            ? 'filter'
            : ctx.sink === 'store'
              ? 'store'
              : 'anonymous';
        if (body.testexpr) this.generic(body.testexpr, ctx);
        this.nested(body.subselect, ctx.scope, sink);
        return;
      }
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.stmt(type, body, ctx.scope, ctx.sink === 'filter' ? 'filter' : 'anonymous');
        return;
      default:
        if (type.endsWith('Stmt')) {
          this.stmt(type, body, ctx.scope, 'anonymous');
          return;
        }
        for (const field in body) if (field !== skip) this.generic(body[field], ctx);
    }
  }

  /**
   * A column reference at `position`; returns its origins. A bare select-list item (`target`) keeps
   * its identity only when rows reach the client with identity; anything else is an expression or a
   * predicate, as the position says.
   */
  private columnRef(
    parts: string[],
    scope: Scope,
    sink: Sink,
    position: Position,
    converting = false,
  ): ValueOrigin[] {
    const written = parts.join('.');
    const last = parts[parts.length - 1] as string;
    // `c` is the whole row when c has no column of that name; so is `c.row_to_json` (row_to_json(c))
    const whole =
      parts.length === 1
        ? this.findSources(parts, scope)
        : WHOLE_ROW_FUNCTIONS.has(last.toLowerCase())
          ? this.findSources(parts.slice(0, -1), scope)
          : [];
    const qualifierSources =
      last !== '*' ? [] : parts.length === 1 ? scope.all() : this.findSources(parts.slice(0, -1), scope);
    const columnOrigins = last === '*' ? [] : this.resolve(parts, scope);
    const wholeOrigins = [...whole, ...qualifierSources].flatMap((s) => wholeRowOrigins(s));
    if (position === 'predicate' || sink === 'filter') {
      // `where ssn::int = 1` fails with `invalid input syntax for type integer: "123-45-6789"`
      this.use(converting ? 'converted' : 'predicate', written, [...columnOrigins, ...wholeOrigins]);
      return [...columnOrigins, ...wholeOrigins];
    }
    if (sink === 'store') {
      this.use('stored', written, [...columnOrigins, ...wholeOrigins]);
      return [...columnOrigins, ...wholeOrigins];
    }
    if (position === 'expression') {
      this.use('expression', written, columnOrigins);
      this.use('whole_row', written, wholeOrigins);
      return [...columnOrigins, ...wholeOrigins];
    }
    // a bare select-list item: `c` may be a column or, if there is none of that name, the whole row
    this.use('whole_row', written, wholeOrigins);
    const withIdentity = columnOrigins.filter((o) => o.relation !== undefined && !o.opaque);
    const without = columnOrigins.filter((o) => o.relation === undefined || o.opaque);
    this.use(sink === 'client' ? 'identity' : 'no_identity', written, withIdentity);
    this.use('no_identity', written, without);
    return [...columnOrigins, ...wholeOrigins];
  }

  /** The FROM items a qualifier (`c`, `s.t`, `db.s.t`) names, innermost query first. */
  private findSources(qualifier: string[], scope: Scope): Source[] {
    const name = qualifier[qualifier.length - 1];
    const schema = qualifier.length >= 2 ? qualifier[qualifier.length - 2] : undefined;
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const found = s.sources.filter(
        (src) =>
          src.name === name &&
          (schema === undefined ||
            src.relation === undefined ||
            src.relation.schema === undefined ||
            src.relation.schema === schema),
      );
      if (found.length > 0) return found;
    }
    return [];
  }

  /** Where `parts` (a column reference without `*`) may come from. */
  private resolve(parts: string[], scope: Scope): ValueOrigin[] {
    const name = parts[parts.length - 1] as string;
    if (parts.length === 1) {
      const sources = scope.all();
      if (sources.length === 0) return [{ name, opaque: true }];
      return sources.flatMap((s) => columnOrigins(s, name));
    }
    // `t.col`, `s.t.col`; failing that `t.compositecol.field`: the composite column, opaquely
    for (let k = parts.length - 1; k >= 1; k--) {
      const sources = this.findSources(parts.slice(0, k), scope);
      if (sources.length > 0) return sources.flatMap((s) => columnOrigins(s, parts[k] as string));
    }
    return [
      { name, opaque: true },
      { name: parts[0] as string, opaque: true },
    ];
  }

  // ── data-modifying and other statements ─────────────────────────────────────────────────────────

  private dml(type: string, body: Body, parent: Scope, sink: Sink): Derived {
    const scope = new Scope(parent);
    this.withClause(body.withClause, scope, sink);
    const target = relationOf(body.relation);
    if (target) {
      const name = aliasOf(body.relation as Body) ?? target.name;
      for (const n of [name, 'excluded', 'old', 'new']) scope.sources.push({ name: n, relation: target });
    }
    for (const item of list(body.fromClause ?? body.usingClause)) this.fromItem(item, scope, sink);
    if (body.sourceRelation) this.fromItem(body.sourceRelation, scope, sink);
    const store: Ctx = { scope, sink: 'store', position: 'expression' };
    const predicate: Ctx = { scope, sink, position: 'predicate' };
    if (type === 'InsertStmt' && body.selectStmt) {
      // INSERT's source sees the WITH items, not the target
      const source = new Scope(parent);
      for (const [name, cte] of scope.ctes) source.ctes.set(name, cte);
      this.nested(body.selectStmt, source, 'store');
    }
    for (const item of list(body.targetList)) this.generic(unwrap(item)?.[1].val, store); // SET col = value
    const conflict = body.onConflictClause as Body | undefined;
    if (conflict) {
      for (const item of list(conflict.targetList)) this.generic(unwrap(item)?.[1].val, store);
      this.generic(conflict.whereClause, predicate);
      this.generic(conflict.infer, predicate);
    }
    for (const clause of list(body.mergeWhenClauses)) {
      const when = unwrap(clause)?.[1] ?? {};
      this.generic(when.condition, predicate);
      for (const item of list(when.targetList)) this.generic(unwrap(item)?.[1].val, store);
      this.generic(when.values, store);
    }
    this.generic(body.whereClause, predicate);
    this.generic(body.joinCondition, predicate);
    // RETURNING is a select list over the target (its columns keep identity)
    const returning = (body.returningClause as Body | undefined)?.exprs ?? body.returningList;
    const out: Derived = { columns: [], stars: [] };
    for (const item of list(returning)) this.target(unwrap(item)?.[1] ?? {}, scope, sink, out);
    return out;
  }

  private copy(body: Body, parent: Scope): void {
    if (body.is_from) return; // COPY FROM writes what the client sends
    const relation = relationOf(body.relation);
    if (relation) {
      const scope = new Scope(parent);
      const source: Source = { name: relation.name, relation };
      scope.sources.push(source);
      const columns = list(body.attlist)
        .map(stringValue)
        .filter((n): n is string => n !== undefined);
      // COPY … TO carries no column identity: every column it sends is output without one
      if (columns.length === 0) this.use('no_identity', relation.name, wholeRowOrigins(source));
      for (const c of columns) this.use('no_identity', c, [{ name: c, relation }]);
      return;
    }
    this.nested(body.query, parent, 'anonymous');
  }
}

const EMPTY: Derived = { columns: [], stars: [] };

/** Applies a column alias list (`AS x(a, b)`, `WITH w(a, b)`) positionally. */
function renamed(derived: Derived, colnames: unknown): Derived {
  const names = list(colnames).map(stringValue);
  if (names.length === 0) return derived;
  if (derived.stars.length > 0) {
    // positions behind a `*` are unknown: any new name may be any of the columns (computed ones
    // already marked opaque, star columns passing through as themselves)
    const everything: ValueOrigin[] = [
      ...derived.columns.flatMap((c) => bareOrOpaque(c)),
      ...derived.stars.flatMap((s) => wholeRowOrigins(s)),
    ];
    return {
      columns: names.map((n) => ({ ...(n !== undefined && { name: n }), origins: everything, bare: true })),
      stars: [],
    };
  }
  return {
    columns: derived.columns.map((c, i) => {
      const n = names[i] ?? c.name;
      return { ...c, ...(n !== undefined && { name: n }) };
    }),
    stars: [],
  };
}

/** The origins of column `name` of a FROM item. */
function columnOrigins(source: Source, name: string): ValueOrigin[] {
  if (source.derived) {
    const out: ValueOrigin[] = [];
    for (const c of source.derived.columns) if (c.name === name) out.push(...bareOrOpaque(c));
    for (const s of source.derived.stars) out.push(...columnOrigins(s, name));
    return out;
  }
  if (source.relation) return [{ name, relation: source.relation }];
  return [{ name, opaque: true }];
}

/** A derived column keeps its origin's identity only when it passed through as itself. */
function bareOrOpaque(column: OutputColumn): ValueOrigin[] {
  return column.bare ? column.origins : column.origins.map((o) => ({ ...o, opaque: true as const }));
}

/** The origins of a whole row of a FROM item: any of its columns. */
function wholeRowOrigins(source: Source): ValueOrigin[] {
  if (source.derived)
    return [
      ...source.derived.columns.flatMap((c) => bareOrOpaque(c)),
      ...source.derived.stars.flatMap((s) => wholeRowOrigins(s)),
    ];
  if (source.relation) return [{ name: '*', relation: source.relation }];
  return [{ name: '*', opaque: true }];
}

function functionName(body: Body): string | undefined {
  const first = unwrap(list(unwrap(list(body.functions)[0])?.[1].items)[0]);
  return first?.[0] === 'FuncCall' ? list(first[1].funcname).map(stringValue).pop() : undefined;
}

function figureName(value: [string, Body] | undefined): string | undefined {
  if (value?.[0] === 'FuncCall') return list(value[1].funcname).map(stringValue).pop();
  return undefined;
}
