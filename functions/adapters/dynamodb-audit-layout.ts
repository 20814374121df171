/**
 * The audit trail's DynamoDB layout, shared by the writer (dynamodb-audit-store.ts) and the reader
 * (dynamodb-audit-query.ts): key attributes, index names and the generic item codec.
 *
 * Events table (PK sessionId, SK sk); a statement item also carries:
 * - timeKey  `<startedAt>#<sessionId>#<sk>`: unique and time-ordered, the sort key of the time
 *   indexes, so a page can resume "after this key" even across merged partitions;
 * - day      `<YYYY-MM-DD>#<shard>` (GSI by_day): everyone's statements of a day, spread over
 *   DAY_SHARDS partitions by session, because time-ordered writes all land on the newest end of a
 *   partition and one partition takes about 1,000 writes/s;
 * - decisionDay `<decision>#<YYYY-MM-DD>` only for statements not allowed (sparse GSI by_decision):
 *   refused and held statements without reading the allowed ones;
 * - expiresAt (epoch seconds, the table's TTL attribute) when a retention is configured.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

export const BY_PRINCIPAL_INDEX = 'by_principal';
export const BY_DAY_INDEX = 'by_day';
export const BY_DECISION_INDEX = 'by_decision';
export const TTL_ATTRIBUTE = 'expiresAt';

/** Part of the layout: changing it would hide the days already written under the old count. */
export const DAY_SHARDS = 8;

export const STATEMENT_SK_PREFIX = 'STMT#';

export function statementSk(seq: number): string {
  return `${STATEMENT_SK_PREFIX}${String(seq).padStart(12, '0')}`;
}

export function timeKey(startedAt: string, sessionId: string, sk: string): string {
  return `${startedAt}#${sessionId}#${sk}`;
}

export function dayPartition(day: string, shard: number): string {
  return `${day}#${shard}`;
}

export function decisionPartition(decision: string, day: string): string {
  return `${decision}#${day}`;
}

/** A stable shard per session (FNV-1a), so one session's statements stay in one partition a day. */
export function dayShard(sessionId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sessionId.length; i += 1) {
    hash ^= sessionId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % DAY_SHARDS;
}

/** The key attributes of a statement item, including the ones only the indexes use. */
export function statementKeyAttributes(event: {
  sessionId: string;
  seq: number;
  startedAt: string;
  decision: string;
}): Record<string, string> {
  const sk = statementSk(event.seq);
  const day = event.startedAt.slice(0, 10);
  return {
    sessionId: event.sessionId,
    sk,
    timeKey: timeKey(event.startedAt, event.sessionId, sk),
    day: dayPartition(day, dayShard(event.sessionId)),
    ...(event.decision === 'allow' ? {} : { decisionDay: decisionPartition(event.decision, day) }),
  };
}

/** Layout attributes that say nothing a reader of the record needs. */
const STORAGE_ATTRIBUTES = new Set(['sk', 'timeKey', 'day', 'decisionDay', TTL_ATTRIBUTE]);

/** The TTL value: `days` after `at`, in epoch seconds (derived from the record, so rewrites agree). */
export function expiresAt(at: string, days: number): number {
  return Math.floor(Date.parse(at) / 1000) + Math.round(days * 86_400);
}

/**
 * Any JSON-like value as an attribute, so fields the proxy adds later are stored without a change
 * here: strings, numbers, booleans, null, lists and objects. Undefined means "not set".
 */
export function toAttribute(value: unknown): AttributeValue | undefined {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') return Number.isFinite(value) ? { N: String(value) } : undefined;
  if (typeof value === 'boolean') return { BOOL: value };
  if (value === null) return { NULL: true };
  if (Array.isArray(value)) return { L: value.map((entry) => toAttribute(entry) ?? { NULL: true }) };
  if (typeof value === 'object') {
    const M: Record<string, AttributeValue> = {};
    for (const [name, entry] of Object.entries(value)) {
      const attribute = toAttribute(entry);
      if (attribute !== undefined) M[name] = attribute;
    }
    return { M };
  }
  return undefined;
}

export function fromAttribute(attribute: AttributeValue): unknown {
  if (attribute.S !== undefined) return attribute.S;
  if (attribute.N !== undefined) return Number(attribute.N);
  if (attribute.BOOL !== undefined) return attribute.BOOL;
  if (attribute.NULL !== undefined) return null;
  if (attribute.L !== undefined) return attribute.L.map(fromAttribute);
  if (attribute.M !== undefined) return fromItem(attribute.M);
  if (attribute.SS !== undefined) return attribute.SS;
  if (attribute.NS !== undefined) return attribute.NS.map(Number);
  return null;
}

export function toItem(fields: Record<string, unknown>): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(fields)) {
    const attribute = toAttribute(value);
    if (attribute !== undefined) item[name] = attribute;
  }
  return item;
}

export function fromItem(item: Record<string, AttributeValue>): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const [name, attribute] of Object.entries(item)) record[name] = fromAttribute(attribute);
  return record;
}

/** The record as a reader sees it: every stored field, minus the layout's own attributes. */
export function recordOf(item: Record<string, AttributeValue>): Record<string, unknown> {
  const record = fromItem(item);
  for (const name of STORAGE_ATTRIBUTES) delete record[name];
  return record;
}
