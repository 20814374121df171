/**
 * Ports of the control plane's use cases. Adapters live in functions/adapters.
 */

import type { AuditEventPage, AuditEventQuery, AuditSessionRecord } from './audit-query.ts';
import type { AuditEvent } from './events.ts';
import type { VerifiedClaims } from './identity.ts';

/** Verifies an OIDC token; throws PgWardenError with an AUTH_* code when it is not acceptable. */
export interface TokenVerifier {
  verify(token: string): Promise<VerifiedClaims>;
}

/** Durable audit storage. `put` is idempotent by eventId and resolves only once all are stored. */
export interface AuditStore {
  put(events: readonly AuditEvent[]): Promise<void>;
}

/**
 * Reads the audit trail (the API's audit routes). Every returned record passes
 * shared/audit-query.ts's matchesAuditQuery; `next` says where to continue.
 */
export interface AuditQuery {
  statements(query: AuditEventQuery): Promise<AuditEventPage>;
  /** the merged session record (opened + closed), or undefined when none was stored */
  session(sessionId: string): Promise<AuditSessionRecord | undefined>;
  /** every statement record of a session, intents included (for the hash chain's verification) */
  sessionStatements(sessionId: string): Promise<Array<Record<string, unknown>>>;
  /** sessions with a statement started in [since, until], at most `max` */
  sessionsBetween(since: string, until: string, max: number): Promise<{ ids: string[]; more: boolean }>;
}
