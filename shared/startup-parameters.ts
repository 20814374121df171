/**
 * The startup packet's parameters, read as PostgreSQL reads them and checked against the
 * allow-list before anything goes upstream.
 *
 * The server treats four keys itself (`user`, `database`, `options`, `replication`, compared
 * case-sensitively) and `_pq_.*` as protocol extensions; every other key is a setting (a GUC, its
 * name case-insensitive). `options` holds command-line switches: `-c name=value` and
 * `--name=value` set settings, other switches (`-D`, `-P`, `-e`, `-o`, …) do other things. The
 * gateway never forwards the client's `options`: it forwards each allowed setting as its own
 * startup key (the server applies both at the same priority, PGC_S_CLIENT, `options` first), so the
 * server reads only what was checked here. Pure: no I/O.
 */
import {
  GATEWAY_OWNED_SETTINGS,
  matchesPin,
  PINNED_SETTINGS,
  STARTUP_ALLOWED_SETTINGS,
} from './session-settings.ts';

/** Why a startup packet is refused: an ErrorResponse's SQLSTATE, message and hint. */
export interface StartupRefusal {
  code: string;
  message: string;
  hint?: string;
}

export interface CheckedStartup {
  /** the startup `user`: who the client says it is (checked against the token by the control plane) */
  user: string;
  database: string;
  /**
   * The settings to send upstream, names lower-case, one value each as the server would have kept
   * it (later wins; top-level keys after `options`). Pinned settings are never here: the gateway
   * sets those itself.
   */
  settings: Map<string, string>;
  /** `_pq_.*` protocol extensions the client asked for: none is supported, none is forwarded */
  protocolExtensions: string[];
}

export type StartupCheck = { ok: true; startup: CheckedStartup } | { ok: false; refusal: StartupRefusal };

/** PostgreSQL's NAMEDATALEN - 1: longer database names are cut by the server, silently. */
const MAX_DATABASE_NAME_BYTES = 63;

class Refused extends Error {
  constructor(readonly refusal: StartupRefusal) {
    super(refusal.message);
  }
}

const malformed = (message: string): Refused =>
  new Refused({ code: '08P01', message: `pgwarden: invalid startup options: ${message}` });

/** Checks a decoded startup packet (names and values as sent, in order, no duplicate names). */
export function checkStartupParameters(parameters: ReadonlyMap<string, string>): StartupCheck {
  try {
    return { ok: true, startup: check(parameters) };
  } catch (error) {
    if (error instanceof Refused) return { ok: false, refusal: error.refusal };
    throw error;
  }
}

function check(parameters: ReadonlyMap<string, string>): CheckedStartup {
  const user = parameters.get('user');
  if (!user)
    throw new Refused({ code: '28000', message: 'no PostgreSQL user name specified in startup packet' });
  const database = parameters.get('database') || user;
  if (new TextEncoder().encode(database).length > MAX_DATABASE_NAME_BYTES) {
    throw new Refused({
      code: '42501',
      message: `pgwarden refuses database names longer than ${MAX_DATABASE_NAME_BYTES} bytes: PostgreSQL would cut the name, so the database checked would not be the one used`,
    });
  }
  refuseReplication(parameters.get('replication'));

  const fromOptions = parseStartupOptions(parameters.get('options') ?? '');
  const topLevel: Array<[string, string]> = [];
  const protocolExtensions: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of parameters) {
    if (key === 'user' || key === 'database' || key === 'options' || key === 'replication') continue;
    if (key.startsWith('_pq_.')) {
      protocolExtensions.push(key);
      continue;
    }
    const name = asciiLowerCase(key);
    // The server would apply both and keep the last; a client that sends one setting twice under
    // two spellings is not an ordinary client, and one value per name is simpler to reason about.
    if (seen.has(name)) throw malformed(`the setting "${name}" is given twice`);
    seen.add(name);
    topLevel.push([name, value]);
  }

  const settings = new Map<string, string>();
  // The server applies `options` first, then the other keys in order: the last value wins.
  for (const [name, value] of [...fromOptions, ...topLevel]) {
    refuseUnlessAllowed(name, value);
    if (Object.hasOwn(PINNED_SETTINGS, name)) continue;
    settings.delete(name);
    settings.set(name, value);
  }
  return { user, database, settings, protocolExtensions };
}

function refuseReplication(value: string | undefined): void {
  if (value === undefined || ['false', 'off', 'no', '0'].includes(value.toLowerCase())) return;
  throw new Refused({ code: '0A000', message: 'pgwarden does not allow replication connections' });
}

/**
 * The settings in a startup `options` string, names as the server would read them (lower-case,
 * `-` → `_`). Anything but `-c name=value`, `-cname=value` and `--name=value` is refused: other
 * switches with 42501, text that is not a switch or a setting without a value with 08P01.
 */
export function parseStartupOptions(options: string): Array<[string, string]> {
  const args = splitOptions(options);
  const settings: Array<[string, string]> = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-c') {
      const next = args[++i];
      if (next === undefined) throw malformed('-c at the end of options needs name=value');
      settings.push(longOption(next, '-c '));
    } else if (arg.startsWith('-c')) settings.push(longOption(arg.slice(2), '-c'));
    else if (arg.startsWith('--') && arg.length > 2) settings.push(longOption(arg.slice(2), '--'));
    else if (arg.startsWith('-')) {
      throw new Refused({
        code: '42501',
        message: `pgwarden refuses the server switch "${arg}" in options: only settings (-c name=value, --name=value) are passed`,
      });
    } else throw malformed(`"${arg}" is not a -c name=value setting`);
  }
  return settings;
}

/**
 * libpq's `options` format as the server splits it (pg_split_opts): arguments separated by
 * whitespace; a backslash makes the next character literal (so `\ ` is a space, `\\` a backslash).
 */
export function splitOptions(options: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < options.length) {
    while (i < options.length && isCSpace(options[i]!)) i++;
    if (i >= options.length) break;
    let arg = '';
    let escaped = false;
    for (; i < options.length; i++) {
      const ch = options[i]!;
      if (isCSpace(ch) && !escaped) break;
      if (!escaped && ch === '\\') escaped = true;
      else {
        escaped = false;
        arg += ch;
      }
    }
    args.push(arg);
  }
  return args;
}

/** isspace() in the C locale */
function isCSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

/** `name=value` after -c or --, as the server's ParseLongOption reads it. */
function longOption(text: string, switchName: string): [string, string] {
  const equals = text.indexOf('=');
  if (equals < 0) throw malformed(`${switchName}${text} requires a value (name=value)`);
  return [asciiLowerCase(text.slice(0, equals).replaceAll('-', '_')), text.slice(equals + 1)];
}

/** GUC names compare case-insensitively in ASCII only (guc_name_compare). */
function asciiLowerCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function refuseUnlessAllowed(name: string, value: string): void {
  if (name === 'client_encoding') {
    refuseClientEncoding(value);
    return;
  }
  if (Object.hasOwn(PINNED_SETTINGS, name) && matchesPin(name, value)) return;
  if (STARTUP_ALLOWED_SETTINGS.has(name)) return;
  const why = Object.hasOwn(GATEWAY_OWNED_SETTINGS, name)
    ? GATEWAY_OWNED_SETTINGS[name]
    : 'only settings that change neither privileges nor how statements are read may be given at connect';
  throw new Refused({
    code: '42501',
    message: `pgwarden refuses the startup setting "${name}": ${why}`,
    hint: `settings allowed at connect: ${[...STARTUP_ALLOWED_SETTINGS].join(', ')}`,
  });
}

/**
 * psql asks for client_encoding=auto when it runs in a terminal, which libpq resolves from the
 * locale: SQL_ASCII under LANG=C. SQL_ASCII means "no conversion": on the valid UTF-8 text the
 * proxy lets through, UTF8 reads the same bytes the same way, so it is accepted and the session
 * gets UTF8 like every other (the server's ParameterStatus tells the client so). Any other
 * encoding would turn text into something the proxy did not parse: refused, saying how to fix it.
 */
function refuseClientEncoding(value: string): void {
  if (matchesPin('client_encoding', value) || isSqlAsciiName(value)) return;
  throw new Refused({
    code: '42501',
    message: `pgwarden sessions use UTF8: set PGCLIENTENCODING=UTF8 (or client_encoding=UTF8) instead of ${value}`,
    hint: 'pgwarden reads every statement as UTF-8, so the server must read it as UTF-8 too',
  });
}

/** The server's spelling rule for encoding names drops all but letters and digits. */
function isSqlAsciiName(value: string): boolean {
  return value.replace(/[^A-Za-z0-9]/g, '').toLowerCase() === 'sqlascii';
}
