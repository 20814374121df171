/** Reads the fields of the few backend messages the proxy must understand. */

export interface ErrorFields {
  severity?: string;
  code?: string;
  message?: string;
}

/** ErrorResponse / NoticeResponse body: (type byte, C string)* then a zero byte. */
export function parseErrorFields(body: Buffer): ErrorFields {
  const fields: ErrorFields = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const type = body[i]!;
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    const value = body.toString('utf8', i + 1, end);
    if (type === 0x56 /* V */ || (type === 0x53 /* S */ && fields.severity === undefined))
      fields.severity = value;
    else if (type === 0x43 /* C */) fields.code = value;
    else if (type === 0x4d /* M */) fields.message = value;
    i = end + 1;
  }
  return fields;
}

/** CommandComplete: the tag, and the row count it carries (SELECT n, INSERT 0 n, UPDATE n, …). */
export function parseCommandComplete(body: Buffer): { tag: string; rows: number | undefined } {
  const end = body.indexOf(0);
  const tag = body.toString('utf8', 0, end < 0 ? body.length : end);
  const lastSpace = tag.lastIndexOf(' ');
  if (lastSpace < 0) return { tag, rows: undefined };
  const n = Number(tag.slice(lastSpace + 1));
  return { tag, rows: Number.isInteger(n) ? n : undefined };
}

/** BackendKeyData: process id and secret (protocol 3.0: 4 bytes). */
export function parseBackendKeyData(body: Buffer): { processId: number; secret: Buffer } {
  return { processId: body.readInt32BE(0), secret: Buffer.from(body.subarray(4)) };
}

export function parseParameterStatus(body: Buffer): { name: string; value: string } {
  const nameEnd = body.indexOf(0);
  const valueEnd = body.indexOf(0, nameEnd + 1);
  return { name: body.toString('utf8', 0, nameEnd), value: body.toString('utf8', nameEnd + 1, valueEnd) };
}
