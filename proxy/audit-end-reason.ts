/**
 * Tells an administrator's kill from other upstream closes: before closing, PostgreSQL sends
 * FATAL 57P01 ("terminating connection due to administrator command": pg_terminate_backend, a
 * fast shutdown). The relay keeps a reference to its last write to the client (no copy); only when
 * the session ends is that write searched, from its end, for an ErrorResponse that ends it.
 */
const ADMIN_SHUTDOWN = '57P01';
/** an ErrorResponse with severity, code, message and a few more fields fits in far less */
const SEARCH_BYTES = 4096;

export function endsWithAdminTermination(lastWrite: Buffer): boolean {
  const length = lastWrite.length;
  for (let at = length - 6; at >= 0 && at >= length - SEARCH_BYTES; at--) {
    if (lastWrite[at] !== 0x45 /* E */ || at + 1 + lastWrite.readInt32BE(at + 1) !== length) continue;
    return errorCode(lastWrite.subarray(at + 5, length)) === ADMIN_SHUTDOWN;
  }
  return false;
}

/** The 'C' (SQLSTATE) field of an ErrorResponse body. */
function errorCode(body: Buffer): string | undefined {
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const end = body.indexOf(0, at + 1);
    if (end < 0) return undefined;
    if (body[at] === 0x43 /* C */) return body.toString('latin1', at + 1, end);
    at = end + 1;
  }
  return undefined;
}
