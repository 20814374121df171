/**
 * Maps errors to the ErrorResponse a client sees, once. Authentication failures use 28P01
 * (bad credential) or 28000 (authorization), as PostgreSQL itself does.
 */
import { type ErrorCode, isPgWardenError } from '../shared/errors.ts';
import type { NoticeFields } from './wire/backend-writer.ts';
import { ProtocolViolation } from './wire/protocol-violation.ts';

const SQLSTATE: Partial<Record<ErrorCode, string>> = {
  AUTH_TOKEN_MISSING: '28P01',
  AUTH_TOKEN_INVALID: '28P01',
  AUTH_TOKEN_EXPIRED: '28P01',
  AUTH_TOKEN_NOT_YET_VALID: '28P01',
  AUTH_WRONG_ISSUER: '28P01',
  AUTH_WRONG_AUDIENCE: '28P01',
  AUTH_ALGORITHM_NOT_ALLOWED: '28P01',
  AUTH_USER_MISMATCH: '28000',
  AUTH_NO_ROLE: '28000',
  AUTH_DISABLED: '28000',
  AUTH_ISSUER_UNAVAILABLE: '08004',
  CONTROL_PLANE_UNAVAILABLE: '08004',
  UPSTREAM_UNAVAILABLE: '08006',
  UPSTREAM_AUTH_FAILED: '08006',
  FORBIDDEN: '42501',
};

/** The FATAL error that ends a connection which could not be set up. */
export function fatalFor(error: unknown): NoticeFields {
  if (error instanceof ProtocolViolation) {
    // a malformed startup or password message is the client's fault, not an internal error
    return { severity: 'FATAL', code: '08P01', message: `pgwarden: invalid startup: ${error.message}` };
  }
  if (!isPgWardenError(error)) {
    return {
      severity: 'FATAL',
      code: 'XX000',
      message: 'pgwarden could not set up the session (internal error)',
    };
  }
  const code = SQLSTATE[error.code] ?? 'XX000';
  switch (error.code) {
    case 'UPSTREAM_UNAVAILABLE':
    case 'UPSTREAM_AUTH_FAILED':
      // Do not tell the client how the gateway logs in upstream.
      return {
        severity: 'FATAL',
        code,
        message: 'pgwarden could not connect to the database; try again or ask an admin',
      };
    case 'CONTROL_PLANE_UNAVAILABLE':
    case 'AUTH_ISSUER_UNAVAILABLE':
      return {
        severity: 'FATAL',
        code,
        message: `pgwarden cannot verify identities right now: ${error.message}`,
      };
    default:
      return {
        severity: 'FATAL',
        code,
        message: `pgwarden: ${error.message}`,
        hint:
          code === '28P01' ? 'use a fresh OIDC token as the password (npm run -s token -- EMAIL)' : undefined,
      };
  }
}
