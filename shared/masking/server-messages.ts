/**
 * Values PostgreSQL prints in error details. A constraint violation shows the row or key that failed
 * (`Failing row contains (1, null, 123-45-6789, …)`, `Key (ssn)=(123-45-6789) already exists.`), so
 * `update customers set name = null where id = 1` against a NOT NULL column would print a clear ssn
 * with no SELECT at all. The wire side passes the DETAIL (and MESSAGE) fields of every ErrorResponse
 * and NoticeResponse of a session with masks through `maskServerDetail`; content detectors run over
 * them as well.
 */
import type { DecisionMask } from '../control-plane.ts';
import { type ColumnPattern, columnMatches, compileColumn } from '../policy/names.ts';

const HIDDEN = 'values hidden by pgwarden';

/**
 * The detail with the values of masked columns hidden. A failing row names no columns, so it is
 * hidden whole whenever masks apply; a key shows its values unless one of its columns may be masked.
 */
export function maskServerDetail(detail: string, masks: readonly DecisionMask[] | undefined): string {
  if (!masks || masks.length === 0) return detail;
  let out = detail.replace(/(Failing row contains )\(.*\)/s, `$1(${HIDDEN})`);
  out = out.replace(/(Partition key of the failing row contains ).*/s, `$1(${HIDDEN}).`);
  return hideKeys(out, masks);
}

const KEY_TAILS = [
  ') already exists',
  ') is not present',
  ') is still referenced',
  ') conflicts with existing key (',
];

/** `Key (cols)=(values) <tail>`, possibly twice (exclusion constraints); values may hold parentheses. */
function hideKeys(detail: string, masks: readonly DecisionMask[]): string {
  let out = '';
  let at = 0;
  for (;;) {
    const start = detail.toLowerCase().indexOf('key (', at);
    const sep = start < 0 ? -1 : detail.indexOf(')=(', start);
    if (sep < 0) return out + detail.slice(at);
    const columns = detail.slice(start + 5, sep);
    const tails = KEY_TAILS.map((t) => detail.indexOf(t, sep)).filter((i) => i >= 0);
    const end = tails.length > 0 ? Math.min(...tails) : detail.lastIndexOf(')');
    if (end < sep + 3) return out + detail.slice(at);
    out +=
      detail.slice(at, sep + 3) + (keyColumnsMasked(columns, masks) ? HIDDEN : detail.slice(sep + 3, end));
    at = end;
  }
}

const compiled = new WeakMap<readonly DecisionMask[], ColumnPattern[]>();

function keyColumnsMasked(columns: string, masks: readonly DecisionMask[]): boolean {
  let patterns = compiled.get(masks);
  if (!patterns) {
    patterns = masks.flatMap((m) =>
      m.columns.map((c) => compileColumn(c) ?? (compileColumn('*') as ColumnPattern)),
    );
    compiled.set(masks, patterns);
  }
  const list = patterns;
  // an expression index prints `lower(ssn)`: any name in it counts
  const names = columns.split(/[^A-Za-z0-9_$]+/).filter((n) => n.length > 0);
  return names.some((name) => list.some((p) => columnMatches(p, { name, opaque: true }, 'may')));
}
