/**
 * `new Date(ms).toISOString()` for audit timestamps, which are taken for every statement: the
 * text up to the seconds is kept for the current second, so most calls only append the
 * milliseconds instead of building a Date and formatting all of it.
 */

let cachedSecond = Number.NaN;
/** "YYYY-MM-DDTHH:MM:SS." of cachedSecond */
let cachedPrefix = '';

/** The same string as `new Date(epochMs).toISOString()` for any time in years 0000-9999. */
export function isoTime(epochMs: number): string {
  // A Date drops the fraction of a millisecond; times before 1970 take the slow path.
  const ms = Math.trunc(epochMs);
  const second = Math.floor(ms / 1000);
  if (second === cachedSecond && ms >= 0) {
    const millis = ms - second * 1000;
    return `${cachedPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
  }
  const iso = new Date(ms).toISOString();
  // the fixed-width form only: extended years (±YYYYYY) are not cached
  if (iso.length === 24 && ms >= 0) {
    cachedSecond = second;
    cachedPrefix = iso.slice(0, 20);
  }
  return iso;
}
