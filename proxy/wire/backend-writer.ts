/**
 * Serializes the backend (server → client) messages the proxy itself originates. One small
 * function per message; pg-protocol only serializes frontend messages.
 */

function frame(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

function int32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(value, 0);
  return b;
}

function cstring(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

export const authenticationOk = (): Buffer => frame('R', int32(0));
export const authenticationCleartextPassword = (): Buffer => frame('R', int32(3));

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.allocUnsafe(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return frame('K', body);
}

export function parameterStatus(name: string, value: string): Buffer {
  return frame('S', Buffer.concat([cstring(name), cstring(value)]));
}

export type TransactionStatus = 'I' | 'T' | 'E';

export function readyForQuery(status: TransactionStatus): Buffer {
  return frame('Z', Buffer.from(status, 'latin1'));
}

export interface NoticeFields {
  severity: 'ERROR' | 'FATAL' | 'WARNING' | 'NOTICE' | 'INFO';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function fieldsBody(fields: NoticeFields): Buffer {
  const parts: Buffer[] = [
    cstring(`S${fields.severity}`),
    cstring(`V${fields.severity}`),
    cstring(`C${fields.code}`),
    cstring(`M${fields.message}`),
  ];
  if (fields.detail) parts.push(cstring(`D${fields.detail}`));
  if (fields.hint) parts.push(cstring(`H${fields.hint}`));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export const errorResponse = (fields: NoticeFields): Buffer => frame('E', fieldsBody(fields));
export const noticeResponse = (fields: NoticeFields): Buffer => frame('N', fieldsBody(fields));

/** Tells a client asking for protocol 3.x (x > 0) or `_pq_` options what this proxy speaks. */
export function negotiateProtocolVersion(newestMinor: number, unsupportedOptions: string[]): Buffer {
  return frame(
    'v',
    Buffer.concat([int32(newestMinor), int32(unsupportedOptions.length), ...unsupportedOptions.map(cstring)]),
  );
}
