/**
 * A statement's kind (and for DDL the object it is about) from its parse-tree node type. A node type
 * missing here is 'unknown' and makes the analysis not confident.
 */
import type { DdlObject, StatementKind } from './facts.ts';

export type Body = Record<string, unknown>;

export interface Classification {
  kind: StatementKind;
  ddlObject?: DdlObject;
  /** SET / RESET / SHOW / ALTER SYSTEM */
  setting?: string;
}

/** PostgreSQL ObjectType ('OBJECT_TABLE') → 'table'. */
export function objectTypeName(value: unknown): DdlObject | undefined {
  return typeof value === 'string' && value.startsWith('OBJECT_')
    ? (value.slice('OBJECT_'.length).toLowerCase() as DdlObject)
    : undefined;
}

const DML: Record<string, StatementKind> = {
  SelectStmt: 'select',
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
};

/** Statements that are always the same kind with no object type. */
const FIXED: Record<string, StatementKind> = {
  ...DML,
  CopyStmt: 'copy',
  TransactionStmt: 'transaction',
  ConstraintsSetStmt: 'transaction',
  CallStmt: 'call',
  DoStmt: 'do',
  PrepareStmt: 'prepare',
  ExecuteStmt: 'execute',
  DeallocateStmt: 'deallocate',
  DeclareCursorStmt: 'declare',
  FetchStmt: 'fetch',
  ClosePortalStmt: 'close',
  ExplainStmt: 'explain',
  ListenStmt: 'listen',
  NotifyStmt: 'notify',
  UnlistenStmt: 'unlisten',
  LockStmt: 'lock',
  DiscardStmt: 'discard',
  LoadStmt: 'load',
  ClusterStmt: 'maintenance',
  ReindexStmt: 'maintenance',
  RefreshMatViewStmt: 'maintenance',
  CheckPointStmt: 'maintenance',
};

/** DDL statement types whose object is fixed by the type. */
const DDL_FIXED: Record<string, DdlObject> = {
  CreateStmt: 'table',
  ReplicaIdentityStmt: 'table', // inside ALTER TABLE … REPLICA IDENTITY
  CreateForeignTableStmt: 'foreign_table',
  ImportForeignSchemaStmt: 'foreign_table',
  ViewStmt: 'view',
  IndexStmt: 'index',
  RuleStmt: 'rule',
  CreateTrigStmt: 'trigger',
  CreateEventTrigStmt: 'event_trigger',
  AlterEventTrigStmt: 'event_trigger',
  CreateRoleStmt: 'role',
  AlterRoleStmt: 'role',
  AlterRoleSetStmt: 'role',
  CreateExtensionStmt: 'extension',
  AlterExtensionStmt: 'extension',
  AlterExtensionContentsStmt: 'extension',
  CreateSchemaStmt: 'schema',
  CreateSeqStmt: 'sequence',
  AlterSeqStmt: 'sequence',
  CreateDomainStmt: 'domain',
  AlterDomainStmt: 'domain',
  CompositeTypeStmt: 'type',
  CreateEnumStmt: 'type',
  CreateRangeStmt: 'type',
  AlterEnumStmt: 'type',
  AlterTypeStmt: 'type',
  CreatedbStmt: 'database',
  AlterDatabaseStmt: 'database',
  AlterDatabaseSetStmt: 'database',
  AlterDatabaseRefreshCollStmt: 'database',
  CreateTableSpaceStmt: 'tablespace',
  AlterTableSpaceOptionsStmt: 'tablespace',
  AlterTableMoveAllStmt: 'tablespace',
  CreateFdwStmt: 'fdw',
  AlterFdwStmt: 'fdw',
  CreateForeignServerStmt: 'foreign_server',
  AlterForeignServerStmt: 'foreign_server',
  CreateUserMappingStmt: 'user_mapping',
  AlterUserMappingStmt: 'user_mapping',
  CreatePolicyStmt: 'policy',
  AlterPolicyStmt: 'policy',
  CreateAmStmt: 'access_method',
  CreatePLangStmt: 'language',
  CreateOpClassStmt: 'opclass',
  CreateOpFamilyStmt: 'opfamily',
  AlterOpFamilyStmt: 'opfamily',
  AlterOperatorStmt: 'operator',
  CreateStatsStmt: 'statistic_ext',
  AlterStatsStmt: 'statistic_ext',
  CreateConversionStmt: 'conversion',
  CreateCastStmt: 'cast',
  CreateTransformStmt: 'transform',
  AlterTSDictionaryStmt: 'tsdictionary',
  AlterTSConfigurationStmt: 'tsconfiguration',
  CreatePublicationStmt: 'publication',
  AlterPublicationStmt: 'publication',
  CreateSubscriptionStmt: 'subscription',
  AlterSubscriptionStmt: 'subscription',
  AlterCollationStmt: 'collation',
  ReassignOwnedStmt: 'owned',
  CommentStmt: 'comment',
  SecLabelStmt: 'security_label',
  AlterDefaultPrivilegesStmt: 'default_privileges',
};

/** DDL statement types that name their object type in a field. */
const DDL_BY_FIELD: Record<string, string> = {
  AlterTableStmt: 'objtype',
  RenameStmt: 'renameType',
  AlterObjectSchemaStmt: 'objectType',
  AlterOwnerStmt: 'objectType',
  AlterObjectDependsStmt: 'objectType',
  CreateTableAsStmt: 'objtype',
  DefineStmt: 'kind',
};

const DROP_FIXED: Record<string, DdlObject> = {
  DropdbStmt: 'database',
  DropRoleStmt: 'role',
  DropTableSpaceStmt: 'tablespace',
  DropUserMappingStmt: 'user_mapping',
  DropSubscriptionStmt: 'subscription',
  DropOwnedStmt: 'owned',
};

export function isDmlType(type: string): boolean {
  return type in DML;
}

export function classify(type: string, body: Body): Classification {
  switch (type) {
    case 'SelectStmt':
      // SELECT … INTO creates a table
      return body.intoClause ? { kind: 'ddl', ddlObject: 'table' } : { kind: 'select' };
    case 'VariableSetStmt':
      return classifySet(body);
    case 'VariableShowStmt':
      return { kind: 'show', setting: lower(body.name) };
    case 'AlterSystemStmt': {
      const set = (body.setstmt ?? {}) as Body;
      return { kind: 'alter_system', setting: set.kind === 'VAR_RESET_ALL' ? 'all' : lower(set.name) };
    }
    case 'VacuumStmt':
      return { kind: body.is_vacuumcmd ? 'vacuum' : 'analyze' };
    case 'TruncateStmt':
      return { kind: 'truncate', ddlObject: 'table' };
    case 'DropStmt':
      return { kind: 'drop', ddlObject: objectTypeName(body.removeType) };
    case 'GrantStmt':
      return { kind: body.is_grant ? 'grant' : 'revoke', ddlObject: objectTypeName(body.objtype) };
    case 'GrantRoleStmt':
      return { kind: body.is_grant ? 'grant' : 'revoke', ddlObject: 'role' };
    case 'AlterDefaultPrivilegesStmt': {
      const action = (body.action ?? {}) as Body;
      return { kind: action.is_grant ? 'grant' : 'revoke', ddlObject: 'default_privileges' };
    }
    case 'CreateFunctionStmt':
    case 'AlterFunctionStmt':
      return { kind: 'ddl', ddlObject: functionObject(type, body) };
  }
  const fixed = FIXED[type];
  if (fixed) return { kind: fixed };
  const dropped = DROP_FIXED[type];
  if (dropped) return { kind: 'drop', ddlObject: dropped };
  const ddl = DDL_FIXED[type];
  if (ddl) return { kind: 'ddl', ddlObject: ddl };
  const field = DDL_BY_FIELD[type];
  if (field) return { kind: 'ddl', ddlObject: objectTypeName(body[field]) };
  return { kind: 'unknown' };
}

function functionObject(type: string, body: Body): DdlObject {
  if (type === 'CreateFunctionStmt') return body.is_procedure ? 'procedure' : 'function';
  return objectTypeName(body.objtype) ?? 'function';
}

function classifySet(body: Body): Classification {
  // GUC names are case-insensitive: SET "ROLE" = x sets the role.
  const setting = body.kind === 'VAR_RESET_ALL' ? 'all' : lower(body.name);
  if (setting === 'role') return { kind: 'set_role', setting };
  if (setting === 'session_authorization') return { kind: 'set_session_authorization', setting };
  const reset = body.kind === 'VAR_RESET' || body.kind === 'VAR_RESET_ALL';
  return { kind: reset ? 'reset' : 'set', setting };
}

function lower(value: unknown): string | undefined {
  return typeof value === 'string' ? value.toLowerCase() : undefined;
}
