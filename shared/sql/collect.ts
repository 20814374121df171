/**
 * A generic walk over one statement's parse tree that collects every relation (RangeVar), column
 * (ColumnRef) and function call (FuncCall) wherever it sits: subqueries, CTEs, set operations,
 * LATERAL, FROM functions, VALUES, ORDER BY, DEFAULT and index expressions, rule actions, PREPARE
 * bodies… Only a few node types get special handling, for name scopes (which table an alias or an
 * unqualified column means), read/write access and the structural facts; everything else is walked
 * field by field, so nothing can hide in a position nobody thought of. Literal values (A_Const) are
 * never read.
 */
import { type Body, classify, objectTypeName } from './classify.ts';
import type {
  ColumnClause,
  ColumnFact,
  CopyFacts,
  DdlObject,
  RelationFact,
  RelationName,
  SettingChange,
  StatementFacts,
  StatementKind,
} from './facts.ts';
import { TYPED_FIELDS } from './node-fields.ts';
import { Scope, type ScopeEntry } from './scope.ts';
import {
  aliasOf,
  commonTableExpressions,
  list,
  relationKey,
  relationOf,
  renamesColumns,
  stringValue,
  unwrap,
} from './tree.ts';

type Access = 'read' | 'write';

interface Ctx {
  scope: Scope | undefined;
  clause: ColumnClause;
  /** access of a RangeVar met here */
  access: Access;
  /** false inside a plain EXPLAIN: the statement is planned, not run */
  executing: boolean;
}

/**
 * Functions that run SQL (or read a table or cursor) named in a string argument the gateway never
 * sees parsed: a statement calling one is not confident. ts_rewrite(query, select) runs its second
 * argument; cursor_to_xml reads an open cursor by name, so its rows reach the client as one XML
 * value without the masks the cursor's own FETCH would get.
 */
const DYNAMIC_SQL_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'cursor_to_xml',
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_send_query',
]);

/**
 * Built-in functions PostgreSQL calls on a whole row written in field-selection notation:
 * `t.row_to_json` is `row_to_json(t)` when t has no column of that name (measured on PostgreSQL 18:
 * every function one argument of a table's row type reaches).
 */
export const WHOLE_ROW_FUNCTIONS: ReadonlySet<string> = new Set([
  'concat',
  'hash_record',
  'json_build_array',
  'jsonb_build_array',
  'num_nonnulls',
  'num_nulls',
  'pg_column_compression',
  'pg_column_size',
  'pg_column_toast_chunk_id',
  'pg_typeof',
  'quote_literal',
  'quote_nullable',
  'record_out',
  'record_send',
  'row_to_json',
  'to_json',
  'to_jsonb',
]);

/** DROP of these object types removes a relation. */
const RELATION_OBJECTS = new Set<DdlObject>([
  'table',
  'view',
  'matview',
  'index',
  'sequence',
  'foreign_table',
]);

const SELECT_CLAUSES: Record<string, ColumnClause> = {
  targetList: 'select',
  fromClause: 'from',
  whereClause: 'where',
  groupClause: 'group',
  havingClause: 'having',
  windowClause: 'window',
  sortClause: 'order',
  distinctClause: 'distinct',
  valuesLists: 'values',
  limitCount: 'limit',
  limitOffset: 'limit',
};

const DML_CLAUSES: Record<string, ColumnClause> = {
  whereClause: 'where',
  returningClause: 'returning',
  fromClause: 'from',
  usingClause: 'from',
  sourceRelation: 'from',
  joinCondition: 'join',
};

const DML_KINDS: Record<string, StatementKind> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
};

const SET_CONFIG = 'set_config';

/** Whether a name list anywhere below `value` names set_config (a String node, not a literal). */
function mentionsSetConfig(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(mentionsSetConfig);
  if (value === null || typeof value !== 'object') return false;
  const entry = unwrap(value);
  if (entry?.[0] === 'A_Const') return false;
  if (entry?.[0] === 'String') return String(entry[1].sval).toLowerCase() === SET_CONFIG;
  return Object.values(value as Body).some(mentionsSetConfig);
}

export type PreparedLookup = (name: string) => StatementFacts | undefined;

export class StatementCollector {
  readonly kinds = new Set<StatementKind>();
  readonly ddlObjects = new Set<DdlObject>();
  private readonly relations = new Map<string, RelationFact>();
  private readonly columns = new Map<string, ColumnFact>();
  private readonly functions = new Set<string>();
  private readonly uncertainties: string[] = [];
  private readonly settingChanges: SettingChange[] = [];
  /** the top-level statement: a SET there is the session's own, one below it is a stored clause */
  private root: Body | undefined;
  noWhere = false;
  dataModifyingCte = false;
  copy?: CopyFacts;
  prepared?: { name: string };
  execute?: { name: string; resolved: boolean };
  explain?: { analyze: boolean };

  constructor(private readonly lookupPrepared: PreparedLookup) {}

  /** Walks a top-level statement. */
  walk(type: string, body: Body): void {
    this.root = body;
    this.node(type, body, { scope: undefined, clause: 'other', access: 'write', executing: true });
  }

  uncertain(reason: string): void {
    if (!this.uncertainties.includes(reason)) this.uncertainties.push(reason);
  }

  /** The statement could not be walked whole: it may change any setting. */
  unseenSettings(): void {
    this.settingChanges.push({ via: 'unknown' });
  }

  /** The facts gathered so far (kind and location are the caller's). */
  result(): Omit<StatementFacts, 'kind' | 'ddlObject' | 'setting' | 'location' | 'hasWhere'> {
    return {
      kinds: [...this.kinds],
      ddlObjects: [...this.ddlObjects],
      relations: [...this.relations.values()],
      columns: [...this.columns.values()],
      functions: [...this.functions],
      settingChanges: [...this.settingChanges],
      noWhere: this.noWhere,
      dataModifyingCte: this.dataModifyingCte,
      ...(this.copy && { copy: this.copy }),
      ...(this.prepared && { prepared: this.prepared }),
      ...(this.execute && { execute: this.execute }),
      ...(this.explain && { explain: this.explain }),
      confident: this.uncertainties.length === 0,
      uncertainties: [...this.uncertainties],
    };
  }

  // ── the generic walk ────────────────────────────────────────────────────────────────────────────

  private visit(value: unknown, type: string | undefined, ctx: Ctx): void {
    if (Array.isArray(value)) {
      for (const item of value) this.visit(item, type, ctx);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    if (type !== undefined) {
      this.node(type, value as Body, ctx);
      return;
    }
    const entry = unwrap(value);
    if (!entry) return;
    const [key, body] = entry;
    // A wrapper's key is a node type (capitalised); anything else is a bare object of unknown type.
    if (key[0] === key[0]?.toUpperCase()) this.node(key, body, ctx);
    else this.children('', value as Body, ctx);
  }

  private children(type: string, body: Body, ctx: Ctx, skip?: string): void {
    const typed = TYPED_FIELDS[type];
    for (const field in body) {
      if (field === skip) continue;
      const child = body[field];
      if (child !== null && typeof child === 'object') this.visit(child, typed?.[field], ctx);
    }
  }

  /** A few node types get their own handling; every other node is walked field by field. */
  private node(type: string, body: Body, ctx: Ctx): void {
    switch (type) {
      case 'A_Const': // literal values are never read
      case 'String':
      case 'Integer':
      case 'Float':
      case 'Boolean':
      case 'BitString':
      case 'LockingClause': // FOR UPDATE OF names FROM items, which are already collected
        break;
      case 'RangeVar':
        this.rangeVar(body, ctx);
        break;
      case 'ColumnRef':
        this.columnRef(body, ctx, false);
        break;
      case 'ResTarget':
        this.resTarget(body, ctx);
        break;
      case 'FuncCall':
        this.funcCall(body);
        this.children(type, body, ctx);
        break;
      case 'A_Indirection':
        // `(expr).name` calls name(expr) when expr has no field of that name: `(pid).pg_terminate_backend`
        for (const field of list(body.indirection)) {
          const name = stringValue(field);
          if (name !== undefined) this.calledFunction([name]);
        }
        this.children(type, body, ctx);
        break;
      case 'IndexElem':
        if (typeof body.name === 'string')
          this.addColumn(body.name, ctx.clause, this.entriesHere(ctx), false);
        this.children(type, body, ctx);
        break;
      case 'JoinExpr':
        this.join(body, ctx);
        break;
      case 'RangeSubselect': // without LATERAL it cannot see the FROM items beside it
        this.children(type, body, body.lateral ? ctx : { ...ctx, scope: ctx.scope?.withoutEntries() });
        break;
      case 'SelectStmt':
        this.select(body, ctx);
        break;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.dml(type, body, ctx);
        break;
      case 'CopyStmt':
        this.copyStmt(body, ctx);
        break;
      case 'ExplainStmt':
        this.explainStmt(body, ctx);
        break;
      case 'PrepareStmt':
        this.prepareStmt(body, ctx);
        break;
      case 'ExecuteStmt':
        this.executeStmt(body);
        this.otherStatement(type, body, ctx);
        break;
      case 'DropStmt':
        this.dropStmt(body, ctx);
        this.otherStatement(type, body, ctx);
        break;
      case 'DoStmt':
        this.uncertain('a DO block runs procedural code that cannot be analysed');
        this.otherStatement(type, body, ctx);
        break;
      case 'VariableSetStmt':
        this.variableSet(body);
        this.otherStatement(type, body, ctx);
        break;
      case 'DefineStmt':
        // CREATE AGGREGATE … (sfunc = set_config, initcond = 'role'): calls set_config by name
        if (mentionsSetConfig(body.definition)) this.settingChanges.push({ via: 'aggregate' });
        this.otherStatement(type, body, ctx);
        break;
      default:
        if (type.endsWith('Stmt')) this.otherStatement(type, body, ctx);
        else this.children(type, body, ctx);
    }
  }

  // ── names ───────────────────────────────────────────────────────────────────────────────────────

  private addRelation(relation: RelationName, access: Access): void {
    const key = `${access}:${relationKey(relation)}`;
    if (!this.relations.has(key)) this.relations.set(key, { ...relation, access });
  }

  private rangeVar(body: Body, ctx: Ctx): void {
    const relation = relationOf(body);
    if (!relation) return;
    // An unqualified name in a read position may be a WITH item, not a table.
    if (ctx.access === 'read' && relation.schema === undefined && ctx.scope?.hasCte(relation.name)) return;
    this.addRelation(relation, ctx.executing ? ctx.access : 'read');
  }

  private entriesHere(ctx: Ctx): ScopeEntry[] {
    return ctx.scope?.all() ?? [];
  }

  private addColumn(
    name: string,
    clause: ColumnClause,
    sources: ScopeEntry[],
    opaque: boolean,
    direct = false,
  ): void {
    const relations = new Map<string, RelationName>();
    let unknownSource = opaque || sources.length === 0;
    for (const s of sources) {
      if (s.relation) relations.set(relationKey(s.relation), s.relation);
      else unknownSource = true;
    }
    const found = [...relations.values()];
    const fact: ColumnFact = { name, clause };
    if (found.length === 1 && !unknownSource) fact.relation = found[0];
    else {
      if (found.length > 0) fact.candidates = found;
      if (unknownSource) fact.opaque = true;
    }
    if (direct) fact.direct = true;
    this.addColumnFact(fact);
    // a renamed column of `FROM t AS x(a, b)` may be any column of t
    const renamed = sources.filter((s) => s.renamed);
    if (renamed.length > 0 && name !== '*') this.addColumn('*', clause, renamed, false);
  }

  private addColumnFact(fact: ColumnFact): void {
    const sources = fact.relation
      ? relationKey(fact.relation)
      : (fact.candidates?.map(relationKey).join('\u0001') ?? '');
    const key = `${fact.name}\u0000${fact.clause}\u0000${sources}\u0000${fact.opaque ?? ''}\u0000${fact.direct ?? ''}`;
    if (!this.columns.has(key)) this.columns.set(key, fact);
  }

  /** The FROM item a qualifier (`t`, `s.t`, `db.s.t`) names, innermost query first. */
  private findEntry(scope: Scope | undefined, qualifier: string[]): ScopeEntry | undefined {
    if (!scope) return undefined;
    const entries = scope.all();
    if (qualifier.length === 1) return entries.find((e) => e.name === qualifier[0]);
    const [schema, name] = qualifier.slice(-2);
    return entries.find(
      (e) =>
        e.relation?.name === name &&
        e.name === name &&
        (e.relation.schema === undefined || e.relation.schema === schema),
    );
  }

  private columnRef(body: Body, ctx: Ctx, direct: boolean): void {
    const parts = list(body.fields).map((f) => stringValue(f) ?? '*');
    const name = parts[parts.length - 1];
    if (name === undefined) return;
    if (parts.length === 1) {
      if (name === '*') {
        this.addColumn('*', ctx.clause, ctx.scope?.entries ?? [], false, direct);
        return;
      }
      const visible = this.entriesHere(ctx);
      this.addColumn(name, ctx.clause, visible, false, direct);
      // `select c from customers c` is the whole row of c
      const whole = visible.filter((e) => e.name === name);
      if (whole.length > 0) this.addColumn('*', ctx.clause, whole, false, direct);
      return;
    }
    // `t.col`, `s.t.col`, `db.s.t.col`; failing that `t.compositecol.field` and so on
    for (let k = parts.length - 1; k >= 1; k--) {
      const entry = this.findEntry(ctx.scope, parts.slice(0, k));
      if (entry) {
        this.addColumn(parts[k] ?? name, ctx.clause, [entry], false, direct && k === parts.length - 1);
        // `t.name` may call name(t): any function when t is not a table (a scalar function in FROM
        // is its value), one of the whole-row functions when it is
        if (
          k === parts.length - 1 &&
          (entry.relation === undefined || WHOLE_ROW_FUNCTIONS.has(name.toLowerCase()))
        )
          this.calledFunction([name]);
        return;
      }
    }
    // No FROM item of that name: a composite column's field, or a reference we cannot place.
    const visible = this.entriesHere(ctx);
    this.addColumn(parts[0] ?? name, ctx.clause, visible, true);
    this.addColumn(name, ctx.clause, visible, true);
  }

  private resTarget(body: Body, ctx: Ctx): void {
    const value = unwrap(body.val);
    if (ctx.clause === 'select' && value?.[0] === 'ColumnRef') {
      this.columnRef(value[1], ctx, true);
      this.children('ResTarget', body, ctx, 'val');
      return;
    }
    this.children('ResTarget', body, ctx);
  }

  private funcCall(body: Body): void {
    const parts = list(body.funcname)
      .map(stringValue)
      .filter((p): p is string => p !== undefined)
      .map((p) => p.toLowerCase());
    if (parts.length === 0) return;
    this.calledFunction(parts);
    if (parts[parts.length - 1] === SET_CONFIG) this.setConfig(body);
  }

  /** A function the statement may call, by its name parts (lower-case), however it is written. */
  private calledFunction(parts: string[]): void {
    this.functions.add(parts.join('.').toLowerCase());
    const last = parts[parts.length - 1]?.toLowerCase() ?? '';
    if (DYNAMIC_SQL_FUNCTIONS.has(last)) {
      this.uncertain(`${last} runs SQL (or reads a table) named in a string that cannot be analysed`);
    }
  }

  // ── queries ─────────────────────────────────────────────────────────────────────────────────────

  private withClause(withClause: unknown, scope: Scope, ctx: Ctx): void {
    const body = withClause as Body | undefined;
    if (!body) return;
    const ctes = commonTableExpressions(body);
    // WITH RECURSIVE: every item sees every item; otherwise an item sees only the ones before it.
    if (body.recursive)
      for (const cte of ctes) if (typeof cte.ctename === 'string') scope.ctes.add(cte.ctename);
    for (const cte of ctes) {
      const query = unwrap(cte.ctequery);
      if (query && query[0] in DML_KINDS && ctx.executing) this.dataModifyingCte = true;
      this.visit(cte.ctequery, undefined, { ...ctx, scope, clause: 'other' });
      if (typeof cte.ctename === 'string') scope.ctes.add(cte.ctename);
    }
  }

  /** Names the FROM items of a query before its expressions are walked. */
  private fromEntries(items: unknown, scope: Scope): void {
    for (const item of list(items)) this.fromEntry(item, scope);
  }

  private fromEntry(item: unknown, scope: Scope): void {
    const entry = unwrap(item);
    if (!entry) return;
    const [type, body] = entry;
    switch (type) {
      case 'RangeVar': {
        const relation = relationOf(body);
        if (!relation) return;
        const isCte = relation.schema === undefined && scope.hasCte(relation.name);
        scope.entries.push({
          name: aliasOf(body) ?? relation.name,
          relation: isCte ? undefined : relation,
          ...(renamesColumns(body) && { renamed: true as const }),
        });
        return;
      }
      case 'JoinExpr':
        this.fromEntry(body.larg, scope);
        this.fromEntry(body.rarg, scope);
        if (aliasOf(body)) scope.entries.push({ name: aliasOf(body) });
        return;
      case 'RangeTableSample':
        this.fromEntry(body.relation, scope);
        return;
      case 'RangeFunction': {
        const first = unwrap(list(unwrap(list(body.functions)[0])?.[1].items)[0]);
        const fname = first?.[0] === 'FuncCall' ? list(first[1].funcname).map(stringValue).pop() : undefined;
        scope.entries.push({ name: aliasOf(body) ?? fname });
        return;
      }
      default: // RangeSubselect, RangeTableFunc, JsonTable: derived tables
        scope.entries.push({ name: aliasOf(body) });
    }
  }

  private select(body: Body, ctx: Ctx): void {
    const scope = new Scope(ctx.scope);
    const inner: Ctx = { scope, clause: 'other', access: 'read', executing: ctx.executing };
    this.withClause(body.withClause, scope, inner);
    this.fromEntries(body.fromClause, scope);
    for (const field in body) {
      const value = body[field];
      if (value === null || typeof value !== 'object') continue;
      switch (field) {
        case 'withClause':
        case 'lockingClause':
          continue;
        case 'intoClause': // SELECT … INTO creates a table
          this.visit(value, 'IntoClause', { ...inner, access: 'write' });
          continue;
        case 'larg':
        case 'rarg': // set-operation arms: each is its own query and sees this WITH
          this.visit(value, 'SelectStmt', inner);
          continue;
        default:
          this.visit(value, TYPED_FIELDS.SelectStmt?.[field], {
            ...inner,
            clause: SELECT_CLAUSES[field] ?? 'other',
          });
      }
    }
  }

  private join(body: Body, ctx: Ctx): void {
    for (const field in body) {
      const value = body[field];
      if (value === null || typeof value !== 'object') continue;
      if (field === 'usingClause') {
        for (const column of list(value)) {
          const name = stringValue(column);
          if (name !== undefined) this.addColumn(name, 'join', ctx.scope?.entries ?? [], false);
        }
      } else if (field === 'quals') this.visit(value, undefined, { ...ctx, clause: 'join' });
      else this.visit(value, TYPED_FIELDS.JoinExpr?.[field], ctx);
    }
  }

  private dml(type: string, body: Body, ctx: Ctx): void {
    const kind = DML_KINDS[type];
    if (kind && ctx.executing) this.kinds.add(kind);
    const scope = new Scope(ctx.scope);
    const read: Ctx = { scope, clause: 'other', access: 'read', executing: ctx.executing };
    this.withClause(body.withClause, scope, read);
    const target = relationOf(body.relation);
    const targetEntries: ScopeEntry[] = [];
    if (target) {
      this.addRelation(target, ctx.executing ? 'write' : 'read');
      // pg_settings' update rule calls set_config with the row's name: any setting at all
      if (ctx.executing && target.name.toLowerCase() === 'pg_settings')
        this.settingChanges.push({ via: 'pg_settings' });
      targetEntries.push({ name: aliasOf(body.relation as Body) ?? target.name, relation: target });
      // ON CONFLICT's `excluded`, RETURNING's `old` / `new`: the target's rows
      for (const pseudo of ['excluded', 'old', 'new']) targetEntries.push({ name: pseudo, relation: target });
      scope.entries.push(...targetEntries);
    }
    this.fromEntries(body.fromClause ?? body.usingClause, scope);
    if (body.sourceRelation) this.fromEntry(body.sourceRelation, scope);
    for (const field in body) {
      const value = body[field];
      if (value === null || typeof value !== 'object') continue;
      switch (field) {
        case 'relation':
        case 'withClause':
          continue;
        case 'targetList': // UPDATE … SET col = expr
          this.targets(value, 'set', targetEntries, { ...read, clause: 'set' });
          continue;
        case 'cols': // INSERT INTO t (col, …)
          this.targets(value, 'values', targetEntries, { ...read, clause: 'values' });
          continue;
        case 'onConflictClause':
          this.onConflict(value as Body, targetEntries, read);
          continue;
        case 'selectStmt': // INSERT's source cannot see the target's columns
          this.visit(value, undefined, { ...read, scope: scope.withoutEntries(), clause: 'values' });
          continue;
        case 'mergeWhenClauses':
          for (const clause of list(value)) this.mergeWhen(unwrap(clause)?.[1] ?? {}, targetEntries, read);
          continue;
        default:
          this.visit(value, TYPED_FIELDS[type]?.[field], { ...read, clause: DML_CLAUSES[field] ?? 'other' });
      }
    }
    if ((type === 'UpdateStmt' || type === 'DeleteStmt') && !body.whereClause && ctx.executing)
      this.noWhere = true;
  }

  /** ResTargets naming target columns (SET, INSERT column lists): the name, then the value. */
  private targets(items: unknown, clause: ColumnClause, target: ScopeEntry[], ctx: Ctx): void {
    for (const item of list(items)) {
      const body = unwrap(item)?.[1];
      if (!body) continue;
      if (typeof body.name === 'string') this.addColumn(body.name, clause, target.slice(0, 1), false);
      this.children('ResTarget', body, ctx);
    }
  }

  private onConflict(body: Body, target: ScopeEntry[], ctx: Ctx): void {
    const conflict: Ctx = { ...ctx, clause: 'on_conflict' };
    if (body.infer) this.visit(body.infer, 'InferClause', conflict);
    if (body.targetList) this.targets(body.targetList, 'set', target, { ...ctx, clause: 'set' });
    if (body.whereClause) this.visit(body.whereClause, undefined, { ...ctx, clause: 'where' });
  }

  private mergeWhen(body: Body, target: ScopeEntry[], ctx: Ctx): void {
    const clause: ColumnClause = body.commandType === 'CMD_INSERT' ? 'values' : 'set';
    if (body.condition) this.visit(body.condition, undefined, { ...ctx, clause: 'where' });
    if (body.targetList) this.targets(body.targetList, clause, target, { ...ctx, clause });
    if (body.values) this.visit(body.values, undefined, { ...ctx, clause: 'values' });
  }

  // ── statements that wrap or name other statements ───────────────────────────────────────────────

  private copyStmt(body: Body, ctx: Ctx): void {
    const from = body.is_from === true;
    const filename = typeof body.filename === 'string' ? body.filename : undefined;
    this.copy ??= {
      direction: from ? 'from' : 'to',
      program: body.is_program === true,
      filename,
      stdio: !filename,
    };
    const scope = new Scope(ctx.scope);
    const relation = relationOf(body.relation);
    if (relation) {
      this.addRelation(relation, from && ctx.executing ? 'write' : 'read');
      scope.entries.push({ name: relation.name, relation });
      for (const column of list(body.attlist)) {
        const name = stringValue(column);
        if (name !== undefined) this.addColumn(name, from ? 'values' : 'select', scope.entries, false);
      }
    }
    const inner: Ctx = { scope, clause: 'other', access: 'read', executing: ctx.executing };
    if (body.query) this.visit(body.query, undefined, inner);
    if (body.whereClause) this.visit(body.whereClause, undefined, { ...inner, clause: 'where' });
    if (body.options) this.visit(body.options, undefined, inner);
  }

  private explainStmt(body: Body, ctx: Ctx): void {
    // Any ANALYZE option counts, whatever its value: literal values are never read.
    const analyze = list(body.options).some((o) => unwrap(o)?.[1].defname === 'analyze');
    this.explain ??= { analyze };
    const executing = ctx.executing && analyze;
    const query = unwrap(body.query);
    if (query && executing) this.kinds.add(classify(query[0], query[1]).kind);
    this.visit(body.query, undefined, { ...ctx, executing });
  }

  private prepareStmt(body: Body, ctx: Ctx): void {
    if (typeof body.name === 'string') this.prepared ??= { name: body.name };
    const query = unwrap(body.query);
    // the body runs at EXECUTE, which names only the prepared statement: decide it here
    if (query) this.kinds.add(classify(query[0], query[1]).kind);
    this.visit(body.query, undefined, ctx);
  }

  private executeStmt(body: Body): void {
    const name = typeof body.name === 'string' ? body.name : '';
    const prepared = this.lookupPrepared(name);
    this.execute ??= { name, resolved: prepared !== undefined };
    if (prepared) this.merge(prepared);
  }

  private merge(facts: StatementFacts): void {
    for (const kind of facts.kinds) if (kind !== 'prepare') this.kinds.add(kind);
    for (const object of facts.ddlObjects) this.ddlObjects.add(object);
    for (const r of facts.relations) this.addRelation(r, r.access);
    for (const c of facts.columns) this.addColumnFact(c);
    for (const f of facts.functions) this.functions.add(f);
    this.settingChanges.push(...facts.settingChanges);
    for (const u of facts.uncertainties) this.uncertain(u);
    this.noWhere ||= facts.noWhere;
    this.dataModifyingCte ||= facts.dataModifyingCte;
  }

  // ── settings ────────────────────────────────────────────────────────────────────────────────────

  /** SET, RESET, SET NAMES, SET ROLE, …, at the top or as a function's, role's, database's or system's clause */
  private variableSet(body: Body): void {
    if (body.kind === 'VAR_SET_MULTI') {
      // SET TRANSACTION … / SET SESSION CHARACTERISTICS AS TRANSACTION …: transaction_* settings
      for (const item of list(body.args)) {
        const name = unwrap(item)?.[1].defname;
        if (typeof name === 'string') this.settingChanges.push({ name: name.toLowerCase(), via: 'set' });
      }
      return;
    }
    const name =
      body.kind === 'VAR_RESET_ALL'
        ? 'all'
        : typeof body.name === 'string'
          ? body.name.toLowerCase()
          : undefined;
    const sessionValue =
      body === this.root &&
      body.kind === 'VAR_SET_VALUE' &&
      list(body.args).every((arg) => unwrap(arg)?.[0] === 'A_Const');
    this.settingChanges.push({
      ...(name !== undefined && { name }),
      via: 'set',
      ...(sessionValue && { sessionValue: true as const }),
    });
  }

  /** set_config(name, value, is_local): the name counts only when it is a plain string constant */
  private setConfig(body: Body): void {
    const args = list(body.args);
    const first = unwrap(args[0]);
    const named = args.some((arg) => unwrap(arg)?.[0] === 'NamedArgExpr');
    const sval = !named && first?.[0] === 'A_Const' ? (first[1].sval as Body | undefined)?.sval : undefined;
    const constant = typeof sval === 'string' ? sval : undefined;
    this.settingChanges.push({
      ...(constant !== undefined && { name: constant.trim().toLowerCase() }),
      via: 'set_config',
    });
  }

  private dropStmt(body: Body, ctx: Ctx): void {
    const object = objectTypeName(body.removeType);
    if (!object || !RELATION_OBJECTS.has(object) || !ctx.executing) return;
    for (const item of list(body.objects)) {
      const names = list(unwrap(item)?.[1].items)
        .map(stringValue)
        .filter((n): n is string => n !== undefined);
      const name = names.pop();
      if (name !== undefined)
        this.addRelation({ ...(names.length > 0 && { schema: names.pop() }), name }, 'write');
    }
  }

  /** DDL and utility statements, at the top or nested (CREATE SCHEMA's elements, rule actions…). */
  private otherStatement(type: string, body: Body, ctx: Ctx): void {
    const { kind, ddlObject } = classify(type, body);
    if (ctx.executing) this.kinds.add(kind);
    if (ddlObject) this.ddlObjects.add(ddlObject);
    if (kind === 'unknown') this.uncertain(`statement type ${type} is not recognised`);
    // Expressions in the statement (CHECK, DEFAULT, index expressions, policy quals, rule and trigger
    // conditions) name the columns of the relation it is about.
    const scope = new Scope(ctx.scope);
    const relation = relationOf(body.relation) ?? relationOf(body.table);
    if (relation) {
      scope.entries.push({ name: relation.name, relation });
      for (const pseudo of ['new', 'old']) scope.entries.push({ name: pseudo, relation });
    }
    this.children(type, body, { scope, clause: 'other', access: 'write', executing: ctx.executing });
  }
}
