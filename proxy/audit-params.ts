/**
 * Bind parameters for the audit record, stored only as configured: they may carry personal data,
 * so the default keeps a SHA-256 of each value's bytes (enough to prove which value ran, not to read
 * it). Reads the Bind body with offsets; nothing is copied unless the mode is 'clear'.
 */
import { hash } from 'node:crypto';
import { bindFormat, bindLayout, needBindBytes } from './wire/bind-layout.ts';

export type AuditParamsMode = 'off' | 'hashed' | 'clear';

export interface CapturedParams {
  mode: 'hashed' | 'clear';
  values: Array<string | null>;
  /** set only when some parameter is in binary format */
  formats?: Array<'text' | 'binary'>;
}

/** The parameters of a Bind body, or undefined when there are none or the mode is 'off'. */
export function captureBindParams(body: Buffer, mode: AuditParamsMode): CapturedParams | undefined {
  if (mode === 'off') return undefined;
  const layout = bindLayout(body);
  const count = layout.count;
  if (count === 0) return undefined;
  let at = layout.valuesAt;
  const binaryAt = (i: number): boolean => bindFormat(body, layout, i) === 1;
  const values: Array<string | null> = new Array(count);
  let formats: Array<'text' | 'binary'> | undefined;
  for (let i = 0; i < count; i++) {
    needBindBytes(body, at, 4);
    const length = body.readInt32BE(at);
    at += 4;
    const binary = binaryAt(i);
    if (binary && formats === undefined) formats = new Array(count).fill('text');
    if (formats) formats[i] = binary ? 'binary' : 'text';
    if (length < 0) {
      values[i] = null;
      continue;
    }
    needBindBytes(body, at, length);
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
