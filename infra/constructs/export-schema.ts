/**
 * Glue column types for DynamoDB exports (DYNAMODB_JSON: one `{"Item": {"attr": {"S": "…"}}}` per
 * line). The attributes are the ones functions/adapters/dynamodb-audit-store.ts writes; an attribute
 * missing here is still in the export, just not visible to Athena until it is added
 * (test/infra/export-schema.test.ts writes every event kind with every field and compares).
 */
/** S, N, BOOL; L a list of strings; LM a list of maps with these attributes */
type DynamoType = 'S' | 'N' | 'BOOL' | 'L' | { LM: Record<string, 'S' | 'N'> };

const SESSION_ATTRIBUTES: Record<string, DynamoType> = {
  sessionId: 'S',
  principal: 'S',
  subject: 'S',
  issuer: 'S',
  tokenId: 'S',
  groups: 'L',
  roles: 'L',
  role: 'S',
  actor: 'S',
  database: 'S',
  upstreamUser: 'S',
  applicationName: 'S',
  clientAddress: 'S',
  proxyId: 'S',
  openedAt: 'S',
  openedEventId: 'S',
  closedAt: 'S',
  closedEventId: 'S',
  durationMs: 'N',
  statements: 'N',
  endReason: 'S',
  expiresAt: 'N',
  // the anchor of the session's hash chain (shared/audit-chain.ts)
  chainLength: 'N',
  chainHead: 'S',
};

/**
 * Statements (`STMT#<seq>`), approval steps (`APPROVAL#<at>#<id>`) and failed logins
 * (`AUTHFAIL#<day>`) share the events table.
 */
const EVENT_ATTRIBUTES: Record<string, DynamoType> = {
  sessionId: 'S',
  sk: 'S',
  timeKey: 'S',
  day: 'S',
  decisionDay: 'S',
  expiresAt: 'N',
  type: 'S',
  eventId: 'S',
  seq: 'N',
  principal: 'S',
  issuer: 'S',
  subject: 'S',
  database: 'S',
  applicationName: 'S',
  text: 'S',
  textTruncated: 'BOOL',
  textBytes: 'N',
  protocol: 'S',
  preparedName: 'S',
  decision: 'S',
  ruleId: 'S',
  startedAt: 'S',
  durationMs: 'N',
  commandTag: 'S',
  rows: 'N',
  sqlstate: 'S',
  errorMessage: 'S',
  errorMessageTruncated: 'BOOL',
  errorMessageBytes: 'N',
  at: 'S',
  user: 'S',
  clientAddress: 'S',
  proxyId: 'S',
  code: 'S',
  message: 'S',
  messageTruncated: 'BOOL',
  messageBytes: 'N',
  outcome: 'S',
  fingerprint: 'S',
  kinds: 'L',
  policyVersion: 'S',
  portalName: 'S',
  params: 'L',
  paramsMode: 'S',
  paramFormats: 'L',
  bytesToClient: 'N',
  cancelled: 'BOOL',
  upstreamUser: 'S',
  actor: 'S',
  masked: { LM: { column: 'S', ruleId: 'S', method: 'S', values: 'N', note: 'S' } },
  detected: { LM: { detector: 'S', where: 'S', values: 'N' } },
  approvalId: 'S',
  step: 'S',
  by: 'S',
  byIssuer: 'S',
  bySubject: 'S',
  via: 'S',
  textHash: 'S',
  reason: 'S',
  // the hash chain (shared/audit-chain.ts)
  headHash: 'S',
  chainIndex: 'N',
  prevHash: 'S',
  recordHash: 'S',
};

const HIVE_TYPE: Record<'S' | 'N' | 'BOOL' | 'L', string> = {
  S: 'struct<s:string>',
  N: 'struct<n:string>', // DynamoDB numbers are decimal strings; CAST(… AS bigint) in queries
  BOOL: 'struct<bool:boolean>',
  L: 'struct<l:array<struct<s:string>>>',
};

function hiveType(type: DynamoType): string {
  if (typeof type === 'string') return HIVE_TYPE[type];
  return `struct<l:array<struct<m:${itemType(type.LM)}>>>`;
}

/** The `item` column's type; the JSON SerDe matches `S`/`N`/… to `s`/`n`/… case-insensitively. */
function itemType(attributes: Record<string, DynamoType>): string {
  const fields = Object.entries(attributes).map(([name, type]) => `${name.toLowerCase()}:${hiveType(type)}`);
  return `struct<${fields.join(',')}>`;
}

export const SESSIONS_ITEM_TYPE = itemType(SESSION_ATTRIBUTES);
export const EVENTS_ITEM_TYPE = itemType(EVENT_ATTRIBUTES);
