/**
 * Ports of the control plane's use cases. Adapters live in functions/adapters.
 */

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
