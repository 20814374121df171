/**
 * The result format codes of a Bind message. Read only for statements whose results may need
 * masking, so ordinary Binds stay allocation-free.
 */
import { ProtocolViolation } from '../wire/protocol-violation.ts';

export function parseBindResultFormats(body: Buffer): number[] {
  let i = body.indexOf(0);
  if (i < 0) throw new ProtocolViolation('Bind portal name is not terminated');
  i = body.indexOf(0, i + 1);
  if (i < 0) throw new ProtocolViolation('Bind statement name is not terminated');
  i++;
  const need = (n: number) => {
    if (i + n > body.length) throw new ProtocolViolation('Bind is truncated');
  };
  need(2);
  // counts are unsigned 16-bit, as PostgreSQL reads them (a signed read made a negative array length)
  const paramFormats = body.readUInt16BE(i);
  i += 2 + 2 * paramFormats;
  need(2);
  const params = body.readUInt16BE(i);
  i += 2;
  for (let p = 0; p < params; p++) {
    need(4);
    const length = body.readInt32BE(i);
    i += 4 + Math.max(length, 0);
  }
  need(2);
  const count = body.readUInt16BE(i);
  i += 2;
  need(2 * count);
  const formats: number[] = new Array(count);
  for (let f = 0; f < count; f++) formats[f] = body.readInt16BE(i + 2 * f);
  return formats;
}
