/**
 * Glue column types for DynamoDB exports (DYNAMODB_JSON: one `{"Item": {"attr": {"S": "…"}}}` per
 * line). The attributes are the ones functions/adapters/dynamodb-audit-store.ts writes; an attribute
 * missing here is still in the export, just not visible to Athena until it is added.
 */
type DynamoType = 'S' | 'N' | 'BOOL' | 'L';

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
};

/** Statements (`STMT#<seq>`) and failed logins (`AUTHFAIL#<day>`) share the events table. */
const EVENT_ATTRIBUTES: Record<string, DynamoType> = {
  sessionId: 'S',
  sk: 'S',
  type: 'S',
  eventId: 'S',
  seq: 'N',
  principal: 'S',
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
};

const HIVE_TYPE: Record<DynamoType, string> = {
  S: 'struct<s:string>',
  N: 'struct<n:string>', // DynamoDB numbers are decimal strings; CAST(… AS bigint) in queries
  BOOL: 'struct<bool:boolean>',
  L: 'struct<l:array<struct<s:string>>>',
};

/** The `item` column's type; the JSON SerDe matches `S`/`N`/… to `s`/`n`/… case-insensitively. */
function itemType(attributes: Record<string, DynamoType>): string {
  const fields = Object.entries(attributes).map(([name, type]) => `${name.toLowerCase()}:${HIVE_TYPE[type]}`);
  return `struct<${fields.join(',')}>`;
}

export const SESSIONS_ITEM_TYPE = itemType(SESSION_ATTRIBUTES);
export const EVENTS_ITEM_TYPE = itemType(EVENT_ATTRIBUTES);
