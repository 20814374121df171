/**
 * Reads the frontend (client → server) messages the proxy must understand. Names (statements,
 * portals) must be valid UTF-8: the proxy keys its decisions by them, and two invalid names would
 * decode to the same string (a FATAL 22021). Statement text is checked by client-text.ts, whose
 * refusal leaves the session usable.
 */
import { isUtf8 } from 'node:buffer';
import { nulInsideText, statementText } from './client-text.ts';
import { InvalidClientText, ProtocolViolation } from './protocol-violation.ts';

function terminator(body: Buffer, offset: number, what: string): number {
  const end = body.indexOf(0, offset);
  if (end < 0) throw new ProtocolViolation(`${what} is not terminated`);
  return end;
}

/** A name: a C string that must be valid UTF-8. */
function nameAt(body: Buffer, offset: number, what: string): { value: string; next: number } {
  const end = terminator(body, offset, what);
  if (end === offset) return { value: '', next: end + 1 }; // the unnamed statement or portal
  if (!asciiAt(body, offset, end) && !isUtf8(body.subarray(offset, end)))
    throw new InvalidClientText(`${what} is not valid UTF-8`);
  return { value: body.toString('utf8', offset, end), next: end + 1 };
}

/** Short ASCII names (the usual ones) without a native call. */
function asciiAt(body: Buffer, start: number, end: number): boolean {
  if (end - start > 64) return false;
  for (let i = start; i < end; i++) if (body[i]! > 0x7f) return false;
  return true;
}

/** Query: the SQL text (StatementTextRefused when it must not go on). */
export function parseQuery(body: Buffer, maxStatementBytes: number): string {
  const end = terminator(body, 0, 'Query text');
  if (end !== body.length - 1) throw nulInsideText(body, end);
  return statementText(body, 0, end, maxStatementBytes);
}

/** Parse: statement name and SQL text (parameter types are forwarded untouched). */
export function parseParse(body: Buffer, maxStatementBytes: number): { name: string; text: string } {
  const name = nameAt(body, 0, 'Parse statement name');
  const end = terminator(body, name.next, 'Parse query text');
  return { name: name.value, text: statementText(body, name.next, end, maxStatementBytes, name.value) };
}

/** Bind: portal and statement names (parameters and formats are forwarded untouched). */
export function parseBind(body: Buffer): { portal: string; statement: string } {
  const portal = nameAt(body, 0, 'Bind portal name');
  const statement = nameAt(body, portal.next, 'Bind statement name');
  return { portal: portal.value, statement: statement.value };
}

/** Execute: portal name and row limit (0 = all). */
export function parseExecute(body: Buffer): { portal: string; maxRows: number } {
  const portal = nameAt(body, 0, 'Execute portal name');
  if (portal.next + 4 > body.length) throw new ProtocolViolation('Execute is too short');
  return { portal: portal.value, maxRows: body.readInt32BE(portal.next) };
}

/** Describe / Close: 'S' (statement) or 'P' (portal) and the name. */
export function parseTarget(body: Buffer): { kind: 'S' | 'P'; name: string } {
  const kind = body[0];
  if (kind !== 0x53 && kind !== 0x50) throw new ProtocolViolation('Describe/Close target must be S or P');
  return { kind: kind === 0x53 ? 'S' : 'P', name: nameAt(body, 1, 'Describe/Close name').value };
}

/** PasswordMessage: the password (here: the OIDC token, which is checked as a token anyway). */
export function parsePassword(body: Buffer): string {
  const end = terminator(body, 0, 'password');
  return body.toString('utf8', 0, end);
}

/** Parse: the parameter type OIDs it declares (0 = left to the server), after name and text. */
export function parseParamTypes(body: Buffer): number[] {
  const nameEnd = terminator(body, 0, 'Parse statement name');
  let at = terminator(body, nameEnd + 1, 'Parse query text') + 1;
  if (at + 2 > body.length) throw new ProtocolViolation('Parse is too short');
  // unsigned, as the server reads it (pq_getmsgint of 2 bytes)
  const count = body.readUInt16BE(at);
  at += 2;
  if (at + 4 * count > body.length) throw new ProtocolViolation('Parse is too short');
  const types: number[] = new Array(count);
  for (let i = 0; i < count; i++) types[i] = body.readUInt32BE(at + 4 * i);
  return types;
}
