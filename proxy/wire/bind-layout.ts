/**
 * Where a Bind body's parameters are: the one reading of its header that the audit (audit-params.ts)
 * and the approvals (approval-params.ts) share. Counts are unsigned 16-bit, as PostgreSQL reads them.
 */
import { ProtocolViolation } from './protocol-violation.ts';

export interface BindLayout {
  /** parameter format codes given: 0 (all text), 1 (one for all) or one per parameter */
  formatCount: number;
  /** offset of the first format code */
  formatsAt: number;
  /** parameters */
  count: number;
  /** offset of the first parameter's length */
  valuesAt: number;
}

export function bindLayout(body: Buffer): BindLayout {
  let at = skipCString(body, skipCString(body, 0));
  needBindBytes(body, at, 2);
  const formatCount = body.readUInt16BE(at);
  at += 2;
  needBindBytes(body, at, formatCount * 2);
  const formatsAt = at;
  at += formatCount * 2;
  needBindBytes(body, at, 2);
  const count = body.readUInt16BE(at);
  return { formatCount, formatsAt, count, valuesAt: at + 2 };
}

/** The format code of parameter `i` (0 text, 1 binary): one code applies to all, none means text. */
export function bindFormat(body: Buffer, layout: BindLayout, i: number): number {
  if (layout.formatCount === 0) return 0;
  return body.readInt16BE(layout.formatsAt + 2 * (layout.formatCount === 1 ? 0 : i));
}

export function needBindBytes(body: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > body.length) throw new ProtocolViolation('Bind is too short');
}

function skipCString(body: Buffer, offset: number): number {
  const end = body.indexOf(0, offset);
  if (end < 0) throw new ProtocolViolation('Bind name is not terminated');
  return end + 1;
}
