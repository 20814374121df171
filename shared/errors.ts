/**
 * One error base for the whole product. `code` is stable (tests, clients and logs key on it);
 * the message is for people. Adapters translate library errors into these; the HTTP layer and
 * the wire layer each map them exactly once (see functions/api/errors.ts, proxy/wire-errors.ts).
 */
export type ErrorCode =
  // authentication (SQLSTATE 28P01 / 28000, HTTP 401)
  | 'AUTH_TOKEN_MISSING'
  | 'AUTH_TOKEN_INVALID'
  | 'AUTH_TOKEN_EXPIRED'
  | 'AUTH_TOKEN_NOT_YET_VALID'
  | 'AUTH_WRONG_ISSUER'
  | 'AUTH_WRONG_AUDIENCE'
  | 'AUTH_ALGORITHM_NOT_ALLOWED'
  | 'AUTH_USER_MISMATCH'
  | 'AUTH_NO_ROLE'
  /** an administrator disabled the principal (principals directory) */
  | 'AUTH_DISABLED'
  | 'AUTH_ISSUER_UNAVAILABLE'
  | 'AUTH_SERVICE_CREDENTIAL'
  // authorisation (HTTP 403, SQLSTATE 42501)
  | 'FORBIDDEN'
  // requests (HTTP 400)
  | 'BAD_REQUEST'
  | 'NOT_FOUND'
  // the audit trail is append-only: a record under a taken key that is not the same (HTTP 409)
  | 'AUDIT_CONFLICT'
  // too many requests from one caller (HTTP 429)
  | 'RATE_LIMITED'
  // dependencies (HTTP 503, SQLSTATE 08006 / 58000)
  | 'STORE_UNAVAILABLE'
  | 'CONTROL_PLANE_UNAVAILABLE'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_AUTH_FAILED'
  // configuration (fail loudly at start)
  | 'CONFIG_INVALID'
  | 'INTERNAL';

export class PgWardenError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgWardenError';
    this.code = code;
  }
}

export function isPgWardenError(value: unknown): value is PgWardenError {
  return value instanceof PgWardenError;
}

/** True for every error that means "the caller did not prove who they are". */
export function isAuthenticationCode(code: ErrorCode): boolean {
  return code.startsWith('AUTH_');
}
