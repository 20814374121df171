/**
 * The one place PgWardenError codes become HTTP statuses and JSON error bodies. Unknown failures
 * get a generic 500: their messages and stacks may carry internals that callers must not see.
 */
import { type ErrorCode, isAuthenticationCode, isPgWardenError } from '../../shared/errors.ts';

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 429 | 500 | 503;

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

const unavailable = new Set<ErrorCode>([
  'STORE_UNAVAILABLE',
  'CONTROL_PLANE_UNAVAILABLE',
  'AUTH_ISSUER_UNAVAILABLE',
]);

export function httpStatusFor(code: ErrorCode): ErrorStatus {
  // Checked before the AUTH_ prefix: an unreachable issuer is our outage, not the caller's fault.
  if (unavailable.has(code)) return 503;
  if (isAuthenticationCode(code)) return 401;
  if (code === 'FORBIDDEN') return 403;
  if (code === 'BAD_REQUEST') return 400;
  if (code === 'NOT_FOUND') return 404;
  if (code === 'AUDIT_CONFLICT') return 409;
  if (code === 'RATE_LIMITED') return 429;
  return 500;
}

export function errorResponse(error: unknown): { status: ErrorStatus; body: ErrorBody } {
  if (isPgWardenError(error)) {
    const status = httpStatusFor(error.code);
    if (status !== 500) return { status, body: { error: { code: error.code, message: error.message } } };
  }
  return {
    status: 500,
    body: { error: { code: 'INTERNAL', message: 'internal error; it has been logged' } },
  };
}
