/**
 * Bind parameters for the audit record, stored only as configured: they may carry personal data,
 * so the default keeps a SHA-256 of each value's bytes (enough to prove which value ran, not to read
 * it). Reads the Bind body with offsets; nothing is copied unless the mode is 'clear'.
 */
import { hash } from 'node:crypto';
import { ProtocolViolation } from './wire/protocol-violation.ts';

export type AuditParamsMode = 'off' | 'hashed' | 'clear';

export interface CapturedParams {
  mode: 'hashed' | 'clear';
  values: Array<string | null>;
  /** set only when some parameter is in binary format */
  formats?: Array<'text' | 'binary'>;
}

function skipCString(body: Buffer, offset: number): number {
  const end = body.indexOf(0, offset);
  if (end < 0) throw new ProtocolViolation('Bind name is not terminated');
  return end + 1;
}

function need(body: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > body.length) throw new ProtocolViolation('Bind is too short');
}

/** The parameters of a Bind body, or undefined when there are none or the mode is 'off'. */
export function captureBindParams(body: Buffer, mode: AuditParamsMode): CapturedParams | undefined {
  if (mode === 'off') return undefined;
  let at = skipCString(body, skipCString(body, 0));
  need(body, at, 2);
  // counts are unsigned 16-bit, as PostgreSQL reads them
  const formatCount = body.readUInt16BE(at);
  at += 2;
  need(body, at, formatCount * 2);
  const formatsAt = at;
  at += formatCount * 2;
  need(body, at, 2);
  const count = body.readUInt16BE(at);
  at += 2;
  if (count <= 0) return undefined;
  // One format code applies to all parameters; none means all text (PostgreSQL's rule).
  const binaryAt = (i: number): boolean =>
    formatCount === 0 ? false : body.readInt16BE(formatsAt + 2 * (formatCount === 1 ? 0 : i)) === 1;
  const values: Array<string | null> = new Array(count);
  let formats: Array<'text' | 'binary'> | undefined;
  for (let i = 0; i < count; i++) {
    need(body, at, 4);
    const length = body.readInt32BE(at);
    at += 4;
    const binary = binaryAt(i);
    if (binary && formats === undefined) formats = new Array(count).fill('text');
    if (formats) formats[i] = binary ? 'binary' : 'text';
    if (length < 0) {
      values[i] = null;
      continue;
    }
    need(body, at, length);
    const bytes = body.subarray(at, at + length);
    at += length;
    // one-shot hash: no Hash object per value (about a third of createHash's cost per value)
    if (mode === 'hashed') values[i] = hash('sha256', bytes, 'hex');
    else values[i] = binary ? bytes.toString('base64') : bytes.toString('utf8');
  }
  return formats ? { mode, values, formats } : { mode, values };
}

/** The hash a 'hashed' record holds for a text value: lets an auditor check a suspected value. */
export function hashParam(value: string | Buffer): string {
  return hash('sha256', value, 'hex');
}
