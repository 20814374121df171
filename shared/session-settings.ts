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

/**
 * Settings that change how text is read or how names resolve, reviewed one by one and left to the
 * client, with why. None of them moves where a string, identifier or comment ends under the pins
 * above (UTF8, standard_conforming_strings=on), and none changes who the session is, so what
 * pgwarden parses is still what the server runs. test/shared/session-settings.test.ts checks each
 * is neither owned nor refused, and the server-side suite (test/proxy/session-pins*) that the
 * lexing ones change no quote boundary.
 */
export const CLIENT_SETTINGS_REVIEWED: Readonly<Record<string, string>> = {
  // Names resolve through it, but policies never trust it: a deny, approval or mask rule naming
  // `public.secrets` matches an unqualified `secrets` (it may resolve there), and an allow rule
  // matches an unqualified name only when the rule names no schema (policy/names.ts); masking keys
  // on the column's table OID from RowDescription, not on names.
  search_path: 'names resolve through it, but policy rules match unqualified names as may-resolve-anywhere',
  // Only adds a WARNING for backslashes in '…' strings; it never changes where they end.
  escape_string_warning: 'a warning only; does not change where strings end',
  // How the array input function reads an unquoted NULL element: a value, after lexing.
  array_nulls: 'changes how an array value is read, after lexing',
  // The configuration to_tsvector/to_tsquery use when none is named: values, not statement structure.
  default_text_search_config: 'changes values of text search functions, not statement structure',
  // How date/time literals are read and printed ('01/02/03'): values inside quotes that already ended.
  datestyle: 'changes how date literals are read, not where quotes end',
  intervalstyle: 'changes how intervals are printed, not where quotes end',
  timezone: 'changes time values, not statement structure',
  // Whether XML values are read as documents or content fragments: values.
  xmloption: 'changes how XML values are read, not statement structure',
  // `expr = NULL` read as `expr IS NULL`: an expression's meaning, not which objects it touches.
  transform_null_equals: 'changes the meaning of = NULL, not the tables or columns touched',
  // Replica mode skips ordinary triggers and rules; it is superuser-only (PGC_SUSET), so the
  // gateway's logins cannot set it, and it changes nothing the proxy parses.
  session_replication_role: 'superuser-only, and it changes no lexing or identity',
  // off makes a query that row security would filter fail instead (unless the role bypasses RLS):
  // it never shows more rows.
  row_security: 'off only turns row-security filtering into an error, never into more rows',
};

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

/**
 * A ParameterStatus the server sends after the session started: the reason the session must end,
 * or undefined. The server reports a setting only when its value changed since the last report, so
 * a report of session_authorization or is_superuser means the session's identity moved (SET ROLE
 * to another superuser status, SET SESSION AUTHORIZATION, a function that did either); a report of
 * a pinned setting must carry the pinned value (a RESET that restores it, say).
 */
export function parameterStatusBreach(
  name: string,
  value: string,
  loginUser: string | undefined,
): string | undefined {
  const key = settingName(name);
  if (key === 'session_authorization' && value !== loginUser)
    return `the server reported session_authorization=${value}; pgwarden sessions keep the gateway's own login, so that it decides for who is really asking`;
  if (key === 'is_superuser')
    return `the server reported is_superuser=${value}: the session's role changed, which pgwarden does not allow`;
  return pinBroken(name, value);
}
