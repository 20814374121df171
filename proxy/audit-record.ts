/**
 * An audit record as the spool keeps it: serialized once, with the key under which the store keeps
 * it. A statement's record of intent and its completed record share a key (sessionId + seq), so
 * the completed one replaces the intent; every other event is keyed by its id.
 */
import type { ControlPlane } from '../shared/control-plane.ts';
import type { AuditEvent, SerializedAuditEvent } from '../shared/events.ts';

export interface SpoolRecord extends SerializedAuditEvent {
  key: string;
  /**
   * A statement record fresh from its StatementRun (absent once read back from disk): what the
   * audit sink needs to chain it. `tail` (the canonical tail JSON) only on a completed record,
   * whose line still lacks its link; afterIntent: a record of intent was produced before it.
   */
  chain?: { sessionId: string; headHash: string; tail?: string; afterIntent?: boolean };
}

export function statementKey(sessionId: string, seq: number): string {
  return `s\u0000${sessionId}\u0000${seq}`;
}

/** The store's key of an event: later copies replace earlier ones. */
export function auditKey(event: AuditEvent): string {
  if (event.type === 'statement') return statementKey(event.sessionId, event.seq);
  return `e\u0000${event.eventId}`;
}

export function spoolRecord(event: AuditEvent): SpoolRecord {
  return { type: event.type, line: JSON.stringify(event), key: auditKey(event) };
}

/** Keeps the latest copy of each key, in the order of the latest copies. */
export function latestPerKey<T extends { key: string }>(records: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const record of records) {
    byKey.delete(record.key);
    byKey.set(record.key, record);
  }
  return byKey.size === records.length ? [...records] : [...byKey.values()];
}

/** Stores records as written when the control plane takes JSON as it is (HTTP); parsed otherwise. */
export function ingestRecords(
  controlPlane: Pick<ControlPlane, 'ingest' | 'ingestSerialized'>,
  records: readonly SpoolRecord[],
): Promise<void> {
  if (controlPlane.ingestSerialized) return controlPlane.ingestSerialized(records);
  return controlPlane.ingest(records.map((r) => JSON.parse(r.line) as AuditEvent));
}
