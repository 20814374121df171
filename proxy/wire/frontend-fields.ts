/** Reads the frontend (client → server) messages the proxy must understand. */
import { ProtocolViolation } from './protocol-violation.ts';

function cstringAt(body: Buffer, offset: number, what: string): { value: string; next: number } {
  const end = body.indexOf(0, offset);
  if (end < 0) throw new ProtocolViolation(`${what} is not terminated`);
  return { value: body.toString('utf8', offset, end), next: end + 1 };
}

/** Query: the SQL text. */
export function parseQuery(body: Buffer): string {
  return cstringAt(body, 0, 'Query text').value;
}

/** Parse: statement name and SQL text (parameter types are forwarded untouched). */
export function parseParse(body: Buffer): { name: string; text: string } {
  const name = cstringAt(body, 0, 'Parse statement name');
  const text = cstringAt(body, name.next, 'Parse query text');
  return { name: name.value, text: text.value };
}

/** Bind: portal and statement names (parameters and formats are forwarded untouched). */
export function parseBind(body: Buffer): { portal: string; statement: string } {
  const portal = cstringAt(body, 0, 'Bind portal name');
  const statement = cstringAt(body, portal.next, 'Bind statement name');
  return { portal: portal.value, statement: statement.value };
}

/** Execute: portal name and row limit (0 = all). */
export function parseExecute(body: Buffer): { portal: string; maxRows: number } {
  const portal = cstringAt(body, 0, 'Execute portal name');
  if (portal.next + 4 > body.length) throw new ProtocolViolation('Execute is too short');
  return { portal: portal.value, maxRows: body.readInt32BE(portal.next) };
}

/** Describe / Close: 'S' (statement) or 'P' (portal) and the name. */
export function parseTarget(body: Buffer): { kind: 'S' | 'P'; name: string } {
  const kind = body[0];
  if (kind !== 0x53 && kind !== 0x50) throw new ProtocolViolation('Describe/Close target must be S or P');
  return { kind: kind === 0x53 ? 'S' : 'P', name: cstringAt(body, 1, 'Describe/Close name').value };
}

/** PasswordMessage: the password (here: the OIDC token). */
export function parsePassword(body: Buffer): string {
  return cstringAt(body, 0, 'password').value;
}

/** Parse: the parameter type OIDs it declares (0 = left to the server), after name and text. */
export function parseParamTypes(body: Buffer): number[] {
  const name = cstringAt(body, 0, 'Parse statement name');
  const text = cstringAt(body, name.next, 'Parse query text');
  let at = text.next;
  if (at + 2 > body.length) throw new ProtocolViolation('Parse is too short');
  const count = body.readInt16BE(at);
  at += 2;
  if (count < 0 || at + 4 * count > body.length) throw new ProtocolViolation('Parse is too short');
  const types: number[] = new Array(count);
  for (let i = 0; i < count; i++) types[i] = body.readUInt32BE(at + 4 * i);
  return types;
}
