/**
 * The first packet of a connection has no type byte: int32 length, int32 code, payload.
 * The code says what it is: a protocol version, or one of the special requests.
 */
import { ProtocolViolation } from './protocol-violation.ts';

export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secret: Buffer }
  | { kind: 'startup'; major: number; minor: number; parameters: Map<string, string> };

/** PostgreSQL's bound on any message (PQ_LARGE_MESSAGE_LIMIT is 1 GiB - 1). */
const IMPOSSIBLE_LENGTH = 0x40000000;

/**
 * A first packet whose length no message of the protocol can have (under 8 bytes, or 1 GiB and
 * more, which is what a message type byte read as a length gives): the peer is not speaking the
 * protocol, or, like node-postgres ending a client before it connected, sent a Terminate where the
 * server expects its first packet. PostgreSQL answers nothing and closes (it only logs "invalid
 * length of startup packet"); an ErrorResponse would be read as the reply to an SSLRequest. A
 * plausible packet over the proxy's own limit is refused with a message instead.
 */
export class InvalidStartupLength extends ProtocolViolation {
  constructor(length: number) {
    super(`invalid startup packet length ${length}`);
  }
}

/** Returns the packet and its size, or null if more bytes are needed. */
export function readStartupPacket(
  data: Buffer,
  maxBytes: number,
): { packet: StartupPacket; size: number } | null {
  if (data.length < 8) return null;
  const length = data.readInt32BE(0);
  if (length < 8 || length >= IMPOSSIBLE_LENGTH) throw new InvalidStartupLength(length);
  if (length > maxBytes) throw new ProtocolViolation(`invalid startup packet length ${length}`);
  if (data.length < length) return null;
  const code = data.readInt32BE(4);
  const body = data.subarray(8, length);
  return { packet: decode(code, body), size: length };
}

function decode(code: number, body: Buffer): StartupPacket {
  if (code === SSL_REQUEST) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST) {
    if (body.length < 8) throw new ProtocolViolation('CancelRequest is too short');
    return { kind: 'cancel', processId: body.readInt32BE(0), secret: Buffer.from(body.subarray(4)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3)
    throw new ProtocolViolation(`unsupported frontend protocol ${major}.${minor}: pgwarden speaks 3.0`);
  return { kind: 'startup', major, minor, parameters: decodeParameters(body) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Name/value pairs up to the empty name that ends the list, which must be the packet's last byte
 * (as the server requires). A name given twice is refused: the server would keep the last, and a
 * client that sends two is either broken or probing which one a gateway checks.
 */
function decodeParameters(body: Buffer): Map<string, string> {
  const parameters = new Map<string, string>();
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const nameEnd = body.indexOf(0, i);
    if (nameEnd < 0) throw new ProtocolViolation('startup parameter name is not terminated');
    const valueEnd = body.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new ProtocolViolation('startup parameter value is not terminated');
    const name = text(body, i, nameEnd);
    if (parameters.has(name)) throw new ProtocolViolation(`startup parameter "${name}" is given twice`);
    parameters.set(name, text(body, nameEnd + 1, valueEnd));
    i = valueEnd + 1;
  }
  if (i !== body.length - 1) throw new ProtocolViolation('expected the terminator as the last byte');
  return parameters;
}

function text(body: Buffer, start: number, end: number): string {
  try {
    return utf8.decode(body.subarray(start, end));
  } catch {
    throw new ProtocolViolation('startup parameters must be UTF-8', '22021');
  }
}
