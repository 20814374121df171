/**
 * Which server settings (GUCs) a client may choose, and which the gateway pins.
 *
 * What the proxy parses must be what the server runs, for the person really asking. So settings
 * that change how statement text is lexed, or who the session is, are never the client's to
 * change: they are pinned at connect (startup parameters to the server), refused as SQL (SET, RESET,
 * set_config, SET clauses), refused as startup parameters, and watched in the server's
 * ParameterStatus. Startup parameters pass by allow-list: only settings ordinary clients send and
 * that change neither privileges nor lexing.
 *
 * Pure: used by the proxy (startup), the SQL analysis (statements) and the relay (ParameterStatus).
 */

/** Settings the gateway sets on every upstream session, with the value it sets. */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  // The proxy reads statement text as UTF-8; the server lexes it in client_encoding.
  client_encoding: 'UTF8',
  // The proxy's parser treats '…\' as ending at the quote; with off, the server would not.
  standard_conforming_strings: 'on',
};

/**
 * Settings no client may change, at startup or in SQL, whatever the value, and why. A value equal
 * to the pinned one is accepted at startup only (clients send client_encoding=UTF8 routinely).
 */
export const GATEWAY_OWNED_SETTINGS: Readonly<Record<string, string>> = {
  client_encoding: 'pgwarden sessions use client_encoding UTF8 so that it parses what the server runs',
  standard_conforming_strings:
    'pgwarden sessions use standard_conforming_strings=on so that it parses what the server runs',
  // Only errors or accepts \' inside E'' strings; pinned anyway so no lexing switch is left to clients.
  backslash_quote:
    'backslash_quote changes how string literals are read, so pgwarden does not allow changing it',
  role: 'changing the role is not allowed through pgwarden',
  session_authorization: 'changing the session authorization is not allowed through pgwarden',
};

/**
 * Startup parameters (top-level keys, or `-c name=value` inside `options`) a client may send. Each
 * is something ordinary drivers, psql or ORMs send and none changes privileges or lexing.
 * `search_path` changes how names resolve: policies match table names through the parser's view of
 * the statement and masking keys on column identity (table OID), so it is allowed, as SET is.
 */
export const STARTUP_ALLOWED_SETTINGS: ReadonlySet<string> = new Set([
  'application_name',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'search_path',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
  'client_min_messages',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'default_transaction_deferrable',
  'bytea_output',
  'lc_monetary',
  'lc_numeric',
  'lc_time',
  'geqo',
  'jit',
  'work_mem',
]);

/** GUC names are case-insensitive: `SET "ROLE"` sets the role. */
export function settingName(name: string): string {
  return name.trim().toLowerCase();
}

/** Why the gateway refuses any change of this setting by the client, or undefined. */
export function gatewayOwnedReason(name: string): string | undefined {
  const key = settingName(name);
  return Object.hasOwn(GATEWAY_OWNED_SETTINGS, key) ? GATEWAY_OWNED_SETTINGS[key] : undefined;
}

/** Spellings of UTF-8 the server accepts as a client_encoding (it ignores case, '-' and '_'). */
export function isUtf8EncodingName(value: string): boolean {
  const v = value.trim().toLowerCase().replace(/[-_]/g, '');
  return v === 'utf8' || v === 'unicode';
}

/**
 * Whether a startup value of a pinned setting says the same as the pin (a driver that sends
 * client_encoding=UTF8 or standard_conforming_strings=on asks for nothing the gateway refuses).
 */
export function matchesPin(name: string, value: string): boolean {
  const key = settingName(name);
  if (key === 'client_encoding') return isUtf8EncodingName(value);
  if (key === 'standard_conforming_strings')
    return ['on', 'true', 'yes', '1'].includes(value.trim().toLowerCase());
  return false;
}

/**
 * A server ParameterStatus that departs from a pin (an `ALTER ROLE … SET`, a function, anything
 * not foreseen): the session must end before another byte moves. Returns why, or undefined.
 */
export function pinBroken(name: string, value: string): string | undefined {
  const key = settingName(name);
  if (!Object.hasOwn(PINNED_SETTINGS, key)) return undefined;
  if (key === 'client_encoding' ? isUtf8EncodingName(value) : matchesPin(key, value)) return undefined;
  return `the server reported ${name}=${value}; pgwarden pins ${key}=${PINNED_SETTINGS[key]} so that it parses what the server runs`;
}
