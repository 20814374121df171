/**
 * The watch on the server's ParameterStatus messages (shared/session-settings.ts says what breaks a
 * pin). At connect, proxy/upstream.ts refuses a login whose reported values depart from the pins;
 * after connect, the relay ends the session on any report that departs from them (proxy/relay.ts).
 */
import { parameterStatusBreach } from '../shared/session-settings.ts';
import { parseParameterStatus } from './wire/backend-fields.ts';

/** Why a ParameterStatus body received mid-session ends the session, or undefined. */
export function pinBreach(body: Buffer, loginUser: string | undefined): string | undefined {
  const { name, value } = parseParameterStatus(body);
  return parameterStatusBreach(name, value, loginUser);
}
