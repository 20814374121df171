/**
 * The watch on the server's ParameterStatus messages (shared/session-settings.ts says what breaks a
 * pin). At connect: the values the server reports after login must already be the pinned ones (a
 * role's or database's stored setting, a startup option, a server default) and the session must
 * be the gateway's own login, or the connection is refused. After connect: the relay ends the
 * session on any report that departs from them (proxy/relay.ts).
 */
import { PgWardenError } from '../shared/errors.ts';
import { parameterStatusBreach, pinBroken } from '../shared/session-settings.ts';
import { parseParameterStatus } from './wire/backend-fields.ts';

/** Why a ParameterStatus body received mid-session ends the session, or undefined. */
export function pinBreach(body: Buffer, loginUser: string | undefined): string | undefined {
  const { name, value } = parseParameterStatus(body);
  return parameterStatusBreach(name, value, loginUser);
}

/** Throws FORBIDDEN (42501) when the session the server set up departs from a pin. */
export function assertStartupPins(parameters: ReadonlyMap<string, string>, loginUser: string): void {
  for (const [name, value] of parameters) {
    const why = pinBroken(name, value);
    if (why === undefined) continue;
    const hint =
      name === 'client_encoding' ? '; connect with client_encoding UTF8 (psql: PGCLIENTENCODING=UTF8)' : '';
    throw new PgWardenError('FORBIDDEN', `the database session cannot be used: ${why}${hint}`);
  }
  for (const name of ['client_encoding', 'standard_conforming_strings']) {
    if (!parameters.has(name))
      throw new PgWardenError('FORBIDDEN', `the database did not report ${name}, which pgwarden must verify`);
  }
  const authorization = parameters.get('session_authorization');
  if (authorization !== undefined && authorization !== loginUser)
    throw new PgWardenError(
      'FORBIDDEN',
      `the database session runs as ${authorization}, not as the gateway's login ${loginUser}`,
    );
}
