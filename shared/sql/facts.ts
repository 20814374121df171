/**
 * What the SQL analysis reports about a message. Everything here comes from PostgreSQL's own parse
 * tree; nothing is read from literal values, so two statements that differ only in their constants
 * get the same facts (and so the same policy decision).
 */

export const STATEMENT_KINDS = [
  'select',
  'insert',
  'update',
  'delete',
  'merge',
  'copy',
  'ddl',
  'truncate',
  'drop',
  'grant',
  'revoke',
  'transaction',
  'set',
  'reset',
  'show',
  'set_role',
  'set_session_authorization',
  'call',
  'do',
  'prepare',
  'execute',
  'deallocate',
  'declare',
  'fetch',
  'close',
  'vacuum',
  'analyze',
  'explain',
  'listen',
  'notify',
  'unlisten',
  'lock',
  'alter_system',
  'discard',
  'load',
  'maintenance',
  'utility',
  'unknown',
] as const;
export type StatementKind = (typeof STATEMENT_KINDS)[number];

/**
 * The object a DDL, DROP, GRANT/REVOKE or TRUNCATE statement is about: PostgreSQL's ObjectType names
 * without the OBJECT_ prefix, lower-cased, plus a few statement-level ones.
 */
export const DDL_OBJECTS = [
  'access_method',
  'aggregate',
  'amop',
  'amproc',
  'attribute',
  'cast',
  'column',
  'collation',
  'conversion',
  'database',
  'default',
  'defacl',
  'domain',
  'domconstraint',
  'event_trigger',
  'extension',
  'fdw',
  'foreign_server',
  'foreign_table',
  'function',
  'index',
  'language',
  'largeobject',
  'matview',
  'opclass',
  'operator',
  'opfamily',
  'parameter_acl',
  'policy',
  'procedure',
  'publication',
  'publication_namespace',
  'publication_rel',
  'role',
  'routine',
  'rule',
  'schema',
  'sequence',
  'subscription',
  'statistic_ext',
  'tabconstraint',
  'table',
  'tablespace',
  'transform',
  'trigger',
  'tsconfiguration',
  'tsdictionary',
  'tsparser',
  'tstemplate',
  'type',
  'user_mapping',
  'view',
  // not PostgreSQL object types: statements about many objects at once
  'default_privileges',
  'owned',
  'comment',
  'security_label',
] as const;
export type DdlObject = (typeof DDL_OBJECTS)[number];

/** Where in a statement a column is referenced. */
export type ColumnClause =
  | 'select'
  | 'from'
  | 'join'
  | 'where'
  | 'group'
  | 'having'
  | 'window'
  | 'order'
  | 'distinct'
  | 'limit'
  | 'values'
  | 'set'
  | 'returning'
  | 'on_conflict'
  | 'other';

/** A table, view or other relation, as written (schema only when the statement names one). */
export interface RelationName {
  schema?: string;
  name: string;
}

export interface RelationFact extends RelationName {
  /** 'write' also covers DDL, TRUNCATE, LOCK, VACUUM, GRANT: anything that changes the relation or its definition */
  access: 'read' | 'write';
}

export interface ColumnFact {
  /** the column name; '*' for `*`, `t.*` and whole-row references such as `row_to_json(t)` */
  name: string;
  clause: ColumnClause;
  /** the table the column belongs to, when the FROM list pins it down */
  relation?: RelationName;
  /** when not pinned down: the tables in scope it may belong to */
  candidates?: RelationName[];
  /** true when it may also come from a subquery, CTE, function or an unknown qualifier: any table at all */
  opaque?: true;
  /** true when the column is a whole select-list item (`select ssn`), not part of an expression */
  direct?: true;
}

export interface CopyFacts {
  direction: 'from' | 'to';
  /** COPY … PROGRAM: a command line run on the database server */
  program: boolean;
  /** the server-side file (or, with PROGRAM, the command); absent for STDIN/STDOUT */
  filename?: string;
  /** COPY … FROM STDIN / TO STDOUT: data goes through the client connection */
  stdio: boolean;
}

/**
 * A server setting (GUC) the statement changes now or stores for later. Read from the parse tree's
 * structure only: the value is never part of the analysis (analyses are shared by statements that
 * differ only in their literals), so a check that needs it reads the exact text (gateway-refusals.ts).
 */
export interface SettingChange {
  /** the setting's name, lower-cased ('all' for RESET ALL); absent when no constant names it */
  name?: string;
  /**
   * set: SET / RESET / SET NAMES / SET ROLE … in this session, or a SET clause of a function, role,
   * database or ALTER SYSTEM; set_config: a call of set_config(); pg_settings: a write to pg_settings
   * (its rule calls set_config); aggregate: an aggregate whose support function is set_config;
   * unknown: part of the statement could not be analysed (nested too deeply), so it may change any
   */
  via: 'set' | 'set_config' | 'pg_settings' | 'aggregate' | 'unknown';
  /** a top-level `SET [SESSION | LOCAL] name = <constants>` of this session (not RESET, DEFAULT, a clause) */
  sessionValue?: true;
}

export interface StatementFacts {
  /** the statement's own kind (EXPLAIN ANALYZE DELETE is 'explain') */
  kind: StatementKind;
  /**
   * `kind` plus the kind of every statement it runs: a data-modifying CTE, the target of EXPLAIN
   * ANALYZE, the body of PREPARE, a prepared statement EXECUTEd in the same message, rule actions…
   */
  kinds: StatementKind[];
  ddlObject?: DdlObject;
  ddlObjects: DdlObject[];
  relations: RelationFact[];
  columns: ColumnFact[];
  /** functions called anywhere in the statement, lower-cased, schema-qualified when written so */
  functions: string[];
  /** UPDATE / DELETE only: whether the statement has a WHERE clause (any WHERE, even `WHERE true`) */
  hasWhere?: boolean;
  /** an UPDATE or DELETE anywhere in the statement (CTE, EXPLAIN ANALYZE, PREPARE…) runs without WHERE */
  noWhere: boolean;
  /** a WITH item runs INSERT, UPDATE, DELETE or MERGE */
  dataModifyingCte: boolean;
  copy?: CopyFacts;
  /** PREPARE: the name; the facts above already include the prepared body */
  prepared?: { name: string };
  /**
   * EXECUTE: the prepared statement's name. `resolved` when it was PREPAREd earlier in the same
   * message (its facts are merged in); otherwise the proxy decided it when it was prepared.
   */
  execute?: { name: string; resolved: boolean };
  explain?: { analyze: boolean };
  /** SET / RESET / SHOW / ALTER SYSTEM: the parameter's name, lower-cased ('all' for RESET ALL) */
  setting?: string;
  /** every setting the statement changes or stores, wherever in the statement (empty: none) */
  settingChanges: SettingChange[];
  /** false when the analysis could not fully classify the statement: treat it as the most dangerous kind */
  confident: boolean;
  /** why it is not confident */
  uncertainties: string[];
  /** where the statement sits in the message (UTF-16 offsets into the text) */
  location: { start: number; length: number };
}

export interface SqlAnalysis {
  /** false when PostgreSQL's parser rejects the message; then `statements` is empty */
  parsed: boolean;
  error?: {
    message: string;
    /** 1-based character position (code points), as PostgreSQL reports it in an ErrorResponse */
    position?: number;
  };
  /** a simple Query may hold several statements; an empty message holds none */
  statements: StatementFacts[];
  /** every statement was parsed and fully classified */
  confident: boolean;
  /**
   * The parser's fingerprint of the message (libpg-query): the same across literal values, comments,
   * whitespace and keyword case. Computed on first read (it costs another parse). Note that it also
   * ignores schema names, digits in table names and alias names, so it is NOT a safe cache key for
   * policy decisions: use decisionCacheKey (shared/policy/evaluate.ts).
   */
  readonly fingerprint: string;
}
