/**
 * The adversarial suite: what pgwarden parses is what the server runs, measured on the server.
 *
 * Every statement of the lexer bypass corpus (test/fixtures/lexer-bypass-corpus.txt) is sent, as raw
 * wire bytes, under every session state a client can ask for: each encoding PostgreSQL knows as a
 * client_encoding (and a few of its aliases) through SET, SET NAMES, set_config, an extended-protocol
 * Parse, a startup parameter and startup `options`; both settings of standard_conforming_strings;
 * every backslash_quote value; and server functions that change them behind the proxy's back. The
 * state attempt and the whole corpus go in one TCP write, so every statement is pipelined right
 * behind the state change.
 *
 * For each state, either pgwarden refuses it (the SET, the startup, or the session is ended) or the
 * statements run under the pins. Measured on the server: the canary table stays empty and the
 * victim table whole; the session's settings and role are still the pinned ones at the end; and every
 * statement the server logged (log_statement=all, read from its stderr) is a text pgwarden decided
 * to allow.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIN_CHECK_MARK } from '../../proxy/pipeline-guard.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { type LocalPostgres, startLocalPostgres } from '../../scripts/local/postgres.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import type { DecisionRequest } from '../../shared/control-plane.ts';
import { StatementDecider } from '../../shared/decide.ts';
import { parsePolicy } from '../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { errorMessage, RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { bind, execute, fromEscaped, parse, query, sync } from '../fixtures/raw-frames.ts';

// ── the corpus ────────────────────────────────────────────────────────────────────────────────────

interface CorpusLine {
  id: string;
  /** the statement with {payload} still in it */
  template: string;
}

const corpus: CorpusLine[] = readFileSync(
  new URL('../fixtures/lexer-bypass-corpus.txt', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.startsWith('#'))
  .map((line) => {
    const tab = line.indexOf('\t');
    if (tab < 0) throw new Error(`corpus line without a tab: ${line}`);
    return { id: line.slice(0, tab), template: line.slice(tab + 1) };
  });

const VICTIM_ROWS = 5;

/** Several statements after the string the server would close early (simple Query). */
const simplePayload = (n: number) =>
  `; INSERT INTO lex_canary VALUES (${n}); DELETE FROM lex_victim; SET ROLE lex_other; SELECT 1`;
/** One select-list item (a Parse holds one statement): lex_touch writes the canary. */
const extendedPayload = (n: number) => `, lex_touch(${n})`;

const simpleStatements = corpus.map((line, i) =>
  fromEscaped(line.template.replaceAll('{payload}', simplePayload(i + 1))),
);
const extendedStatements = corpus.map((line, i) =>
  fromEscaped(line.template.replaceAll('{payload}', extendedPayload(1000 + i + 1))),
);

// ── the session states ────────────────────────────────────────────────────────────────────────────

type Expect =
  /** the state's SQL is refused with 42501 and the corpus runs under the pins */
  | 'refused'
  /** the state's SQL succeeds: it asks for the pinned value itself */
  | 'accepted'
  /** the connection is refused at startup */
  | 'startup-refused'
  /** the server function changes a pin: the session ends with a FATAL */
  | 'ended'
  /** either refused at startup or the session runs on the pins (a startup parameter pgwarden may pin) */
  | 'refused-or-pinned';

interface SessionState {
  name: string;
  startup?: Record<string, string>;
  /** messages sent before the corpus, in the same write */
  messages?: Buffer[];
  /** ReadyForQuery messages the state's own messages produce */
  cycles?: number;
  expect: Expect;
}

const isUtf8Name = (name: string) => ['utf8', 'unicode'].includes(name.toLowerCase().replace(/[-_]/g, ''));

/** Every encoding the server knows (filled in beforeAll), plus aliases PostgreSQL accepts. */
const ALIASES = [
  'Unicode',
  'utf-8',
  'UTF_8',
  'ShiftJIS',
  'mskanji',
  'win',
  'ALT',
  'ISO88591',
  'Latin1',
  'TCVN',
  'KOI8',
];

function encodingStates(encodings: string[]): SessionState[] {
  const states: SessionState[] = [];
  for (const enc of encodings) {
    const utf8 = isUtf8Name(enc);
    const sqlAscii = enc.replace(/[^A-Za-z0-9]/g, '').toLowerCase() === 'sqlascii';
    const sqlExpect: Expect = utf8 ? 'accepted' : 'refused';
    states.push(
      {
        name: `SET client_encoding = '${enc}'`,
        messages: [query(`SET client_encoding = '${enc}'`)],
        cycles: 1,
        expect: sqlExpect,
      },
      { name: `SET NAMES '${enc}'`, messages: [query(`SET NAMES '${enc}'`)], cycles: 1, expect: sqlExpect },
      {
        name: `SET LOCAL client_encoding = '${enc}' in a transaction that rolls back`,
        messages: [query(`BEGIN; SET LOCAL client_encoding = '${enc}'`), query('ROLLBACK')],
        cycles: 2,
        expect: sqlExpect,
      },
      {
        name: `set_config('client_encoding', '${enc}')`,
        messages: [query(`SELECT set_config('client_encoding', '${enc}', false)`)],
        cycles: 1,
        expect: 'refused',
      },
      {
        name: `Parse of SET client_encoding = '${enc}'`,
        messages: [parse('', `SET client_encoding = '${enc}'`), bind('', ''), execute(), sync()],
        cycles: 1,
        expect: sqlExpect,
      },
      {
        name: `startup client_encoding=${enc}`,
        startup: { client_encoding: enc },
        // SQL_ASCII is what psql asks for under LANG=C: accepted, and the session is UTF8 anyway
        expect: utf8 || sqlAscii ? 'refused-or-pinned' : 'startup-refused',
      },
      {
        name: `startup options -c client_encoding=${enc}`,
        startup: { options: `-c client_encoding=${enc}` },
        expect: utf8 || sqlAscii ? 'refused-or-pinned' : 'startup-refused',
      },
    );
  }
  return states;
}

const SCS_STATES: SessionState[] = [
  ...['off', 'false', '0', 'on', '1'].map(
    (value): SessionState => ({
      name: `SET standard_conforming_strings = ${value}`,
      messages: [query(`SET standard_conforming_strings = ${value}`)],
      cycles: 1,
      expect: ['on', '1'].includes(value) ? 'accepted' : 'refused',
    }),
  ),
  {
    name: 'RESET standard_conforming_strings',
    messages: [query('RESET standard_conforming_strings')],
    cycles: 1,
    expect: 'refused',
  },
  {
    name: "set_config('standard_conforming_strings', 'off')",
    messages: [query("SELECT set_config('standard_conforming_strings', 'off', false)")],
    cycles: 1,
    expect: 'refused',
  },
  {
    name: "UPDATE pg_settings SET setting = 'off' (standard_conforming_strings)",
    messages: [query("UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'")],
    cycles: 1,
    expect: 'refused',
  },
  {
    name: 'PREPARE of a set_config, then EXECUTE',
    messages: [
      query("PREPARE flip AS SELECT set_config('standard_conforming_strings', 'off', false)"),
      query('EXECUTE flip'),
    ],
    cycles: 2,
    expect: 'refused',
  },
  {
    name: 'startup standard_conforming_strings=off',
    startup: { standard_conforming_strings: 'off' },
    expect: 'startup-refused',
  },
  {
    name: 'startup options -c standard_conforming_strings=off',
    startup: { options: '-c standard_conforming_strings=off' },
    expect: 'startup-refused',
  },
  {
    name: 'startup options --standard_conforming_strings=off',
    startup: { options: '--standard_conforming_strings=off' },
    expect: 'startup-refused',
  },
  {
    name: 'startup standard_conforming_strings=on',
    startup: { standard_conforming_strings: 'on' },
    expect: 'refused-or-pinned',
  },
];

const BACKSLASH_QUOTE_STATES: SessionState[] = ['on', 'off', 'safe_encoding'].flatMap(
  (value): SessionState[] => [
    {
      name: `SET backslash_quote = ${value}`,
      messages: [query(`SET backslash_quote = ${value}`)],
      cycles: 1,
      expect: 'refused',
    },
    {
      name: `set_config('backslash_quote', '${value}')`,
      messages: [query(`SELECT set_config('backslash_quote', '${value}', false)`)],
      cycles: 1,
      expect: 'refused',
    },
    // not reported by the server: either refused at startup or lexing stays equal under it
    {
      name: `startup options -c backslash_quote=${value}`,
      startup: { options: `-c backslash_quote=${value}` },
      expect: 'refused-or-pinned',
    },
  ],
);

/** Settings reviewed and left to clients (shared/session-settings.ts): the corpus reads the same under each. */
const CLIENT_SETTING_STATES: SessionState[] = [
  'SET escape_string_warning = off',
  'SET array_nulls = off',
  "SET DateStyle = 'SQL, DMY'",
  "SET IntervalStyle = 'sql_standard'",
  "SET default_text_search_config = 'simple'",
  'SET search_path = pg_temp, public',
  'SET row_security = off',
  'SET xmloption = document',
  'SET transform_null_equals = on',
].map((text): SessionState => ({ name: text, messages: [query(text)], cycles: 1, expect: 'accepted' }));

/** Superuser-only: the server itself refuses it to the gateway's login. */
const SUPERUSER_SETTING_STATES: SessionState[] = [
  {
    name: 'SET session_replication_role = replica',
    messages: [query('SET session_replication_role = replica')],
    cycles: 1,
    expect: 'refused',
  },
];

/** Server functions created directly on the server (the proxy never sees their bodies). */
const SERVER_CODE_STATES: SessionState[] = [
  ...['SJIS', 'GBK', 'BIG5', 'GB18030', 'LATIN1', 'SQL_ASCII'].map(
    (enc): SessionState => ({
      name: `server function sets client_encoding=${enc}`,
      messages: [query(`SELECT lex_flip('client_encoding', '${enc}')`)],
      cycles: 1,
      expect: 'ended',
    }),
  ),
  {
    name: 'server function sets standard_conforming_strings=off',
    messages: [query("SELECT lex_flip('standard_conforming_strings', 'off')")],
    cycles: 1,
    expect: 'ended',
  },
  {
    name: 'SECURITY DEFINER server function sets client_encoding=SJIS',
    messages: [query("SELECT lex_flip_definer('SJIS')")],
    cycles: 1,
    expect: 'ended',
  },
  {
    name: 'a trigger sets client_encoding=SJIS on INSERT',
    messages: [query('INSERT INTO lex_trigger VALUES (1)')],
    cycles: 1,
    expect: 'ended',
  },
  {
    name: 'an IMMUTABLE function folded at plan time (Bind) sets client_encoding=SJIS',
    messages: [parse('', 'SELECT lex_fold(1)'), bind('', ''), execute()],
    cycles: 0,
    expect: 'ended',
  },
  {
    name: 'server function sets backslash_quote=on (not reported; lexing stays equal under UTF8)',
    messages: [query("SELECT lex_flip('backslash_quote', 'on')")],
    cycles: 1,
    expect: 'accepted',
  },
];

// ── the servers ───────────────────────────────────────────────────────────────────────────────────

let dir: string;
let postgres: LocalPostgres;
let proxy: RunningProxy;
let admin: pg.Client;
/** everything the server wrote to stderr */
let serverLog = '';
/** log_line_prefix: where each entry starts, with the session's application_name and pid */
const LOG_PREFIX = '<<lexlog|%a|%p>> ';
const LOG_ENTRY = /<<lexlog\|([^|\n]*)\|(\d+)>> ([A-Z]+): {2}([\s\S]*?)(?=<<lexlog\||$)/g;
const controlPlane = new InMemoryControlPlane();
/** per application_name: each text the proxy decided, and whether it allowed it */
const decided = new Map<string, Array<{ text: string; allowed: boolean }>>();

const POLICY = parsePolicy(`
version: lexer-suite
default: { action: allow }
detectors: { enabled: [] }
rules:
  - id: protect-canaries
    match: { relations: [lex_victim, lex_canary] }
    action: deny
    reason: the suite's canary tables are off limits
  - id: protect-touch
    match: { functions: [lex_touch] }
    action: deny
    reason: lex_touch writes the canary
`);

/** Every statement the server receives goes to its stderr, each entry marked with its session. */
async function logEveryStatement(): Promise<void> {
  await admin.query(`ALTER SYSTEM SET log_line_prefix = '${LOG_PREFIX}'`);
  await admin.query("ALTER SYSTEM SET log_statement = 'all'");
  await admin.query('SELECT pg_reload_conf()');
  // the reload is asynchronous: wait until a new session logs with the prefix
  for (const deadline = Date.now() + 10_000; ; ) {
    const probe = new pg.Client({
      host: postgres.host,
      port: postgres.port,
      database: 'app',
      ...postgres.superuser,
      application_name: 'lex-probe',
    });
    await probe.connect();
    await probe.query('SELECT 1');
    await probe.end();
    if (serverLog.includes('<<lexlog|lex-probe|')) return;
    if (Date.now() > deadline) throw new Error('the server never logged with the suite prefix');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  await loadSqlParser();
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-lexer-'));
  postgres = await startLocalPostgres({
    dataDir: dir,
    maxConnections: 100,
    onServerOutput: (text) => {
      serverLog += text;
    },
  });
  admin = new pg.Client({ host: postgres.host, port: postgres.port, database: 'app', ...postgres.superuser });
  await admin.connect();
  await logEveryStatement();
  await admin.query(`
    CREATE TABLE lex_victim (id int);
    INSERT INTO lex_victim SELECT generate_series(1, ${VICTIM_ROWS});
    CREATE TABLE lex_canary (n int);
    GRANT ALL ON lex_victim, lex_canary TO app_rw;
    CREATE ROLE lex_other NOLOGIN;
    GRANT lex_other TO app_rw;
    GRANT ALL ON lex_victim, lex_canary TO lex_other;
    CREATE FUNCTION lex_touch(n int) RETURNS int LANGUAGE sql AS $$ INSERT INTO lex_canary VALUES (n) RETURNING n $$;
    CREATE FUNCTION lex_flip(name text, value text) RETURNS text LANGUAGE sql AS $$ SELECT set_config(name, value, false) $$;
    CREATE FUNCTION lex_flip_definer(value text) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
      AS $$ BEGIN PERFORM set_config('client_encoding', value, false); RETURN value; END $$;
    CREATE FUNCTION lex_trigger_flip() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN PERFORM set_config('client_encoding', 'SJIS', false); RETURN NEW; END $$;
    CREATE TABLE lex_trigger (n int);
    CREATE TRIGGER lex_trigger_flip BEFORE INSERT ON lex_trigger FOR EACH ROW EXECUTE FUNCTION lex_trigger_flip();
    GRANT ALL ON lex_trigger TO app_rw;
    CREATE FUNCTION lex_fold(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE
      AS $$ BEGIN PERFORM set_config('client_encoding', 'SJIS', false); RETURN n; END $$;
    GRANT EXECUTE ON FUNCTION lex_touch(int), lex_flip(text, text), lex_flip_definer(text), lex_fold(int) TO app_rw;
  `);
  const decider = new StatementDecider(POLICY);
  controlPlane.decider = (request: DecisionRequest) => {
    const decision = decider.decide(request);
    const app = request.session.applicationName;
    if (!decided.has(app)) decided.set(app, []);
    decided.get(app)!.push({ text: request.statement.text, allowed: decision.action === 'allow' });
    return decision;
  };
  const cert = await ensureLocalCertificate(dir);
  proxy = await startProxy({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key },
    allowPlaintext: false,
    upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
    credentials: () => postgres.roles.app_rw,
    controlPlane,
    proxyId: 'lexer-suite',
  });
  encodings.push(
    ...(
      await admin.query<{ e: string }>(
        "SELECT pg_encoding_to_char(i) AS e FROM generate_series(0, 63) i WHERE pg_encoding_to_char(i) <> ''",
      )
    ).rows.map((r) => r.e),
    ...ALIASES,
  );
});

afterAll(async () => {
  await proxy?.close();
  await admin?.end();
  await postgres?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const encodings: string[] = [];

// ── running one state ─────────────────────────────────────────────────────────────────────────────

const FINAL_CHECK =
  "SELECT current_setting('client_encoding') || ',' || current_setting('standard_conforming_strings') || ',' || current_user";

interface Outcome {
  startup: RawMessage;
  replies: RawMessage[];
  closed: boolean;
}

let sessions = 0;

async function runState(state: SessionState): Promise<Outcome & { app: string }> {
  const app = `lex-${++sessions}`;
  const { client, startupReplies } = await RawClient.connect({
    host: '127.0.0.1',
    port: proxy.port,
    user: 'alice@example.com',
    database: 'app',
    password: 'good-token',
    parameters: { application_name: app, ...state.startup },
  });
  const startup = startupReplies.at(-1)!;
  if (startup.type === 'E') return { app, startup, replies: [], closed: true };
  const messages: Buffer[] = [...(state.messages ?? [])];
  for (const text of simpleStatements) messages.push(query(text));
  for (const text of extendedStatements) messages.push(parse('', text), bind('', ''), execute(), sync());
  messages.push(query(FINAL_CHECK));
  client.send(...messages);
  const expected = (state.cycles ?? 0) + simpleStatements.length + extendedStatements.length + 1;
  const replies: RawMessage[] = [];
  let ready = 0;
  let closed = false;
  while (ready < expected) {
    let m: RawMessage;
    try {
      m = await client.next(30_000);
    } catch {
      closed = true;
      break;
    }
    replies.push(m);
    if (m.type === 'Z') ready++;
  }
  client.close();
  return { app, startup, replies, closed };
}

/** The replies up to and including the n-th ReadyForQuery. */
function firstCycles(replies: RawMessage[], n: number): RawMessage[] {
  let seen = 0;
  const out: RawMessage[] = [];
  for (const m of replies) {
    if (seen >= n) break;
    out.push(m);
    if (m.type === 'Z') seen++;
  }
  return out;
}

async function canaries(): Promise<{ canary: number[]; victims: number }> {
  const canary = (await admin.query<{ n: number }>('SELECT n FROM lex_canary ORDER BY n')).rows.map(
    (r) => r.n,
  );
  const victims = Number(
    (await admin.query<{ c: string }>('SELECT count(*) AS c FROM lex_victim')).rows[0]!.c,
  );
  return { canary, victims };
}

function checkOutcome(state: SessionState, o: Outcome): void {
  const own = firstCycles(o.replies, state.cycles ?? 0);
  const codes = summarize(own).filter((s) => s.startsWith('E:'));
  switch (state.expect) {
    case 'startup-refused':
      expect(o.startup.type, errorMessage(o.startup)).toBe('E');
      return;
    case 'refused-or-pinned':
      if (o.startup.type === 'E') return;
      break;
    case 'refused':
      expect(o.startup.type).toBe('Z');
      expect(codes[0], JSON.stringify(summarize(own))).toBe('E:42501');
      break;
    case 'accepted':
      expect(o.startup.type).toBe('Z');
      expect(codes, JSON.stringify(summarize(own))).toEqual([]);
      break;
    case 'ended': {
      expect(o.closed).toBe(true);
      const last = o.replies.at(-1)!;
      expect(summarize([last])).toEqual(['E:42501']);
      expect(errorMessage(last)).toMatch(/^pgwarden ended the session/);
      return;
    }
  }
  // the session ran the whole corpus on the pins, as the same login
  expect(o.closed, 'the session ended unexpectedly').toBe(false);
  const last = o.replies.filter((m) => m.type === 'D').at(-1)!;
  expect(last.body.toString('utf8', 6)).toBe('UTF8,on,app_rw');
}

// ── the suite ─────────────────────────────────────────────────────────────────────────────────────

describe('lexer bypass corpus under every session state', () => {
  it('the corpus is well formed', () => {
    expect(corpus.length).toBeGreaterThan(40);
    expect(new Set(corpus.map((l) => l.id)).size).toBe(corpus.length);
    for (const line of corpus) expect(line.template, line.id).toContain('{payload}');
  });

  const groups: Array<[string, () => SessionState[]]> = [
    ['client_encoding', () => encodingStates(encodings)],
    ['standard_conforming_strings', () => SCS_STATES],
    ['backslash_quote', () => BACKSLASH_QUOTE_STATES],
    ['settings left to clients', () => [...CLIENT_SETTING_STATES, ...SUPERUSER_SETTING_STATES]],
    ['server code', () => SERVER_CODE_STATES],
  ];
  for (const [group, states] of groups) {
    it(`${group}: every state is refused, or the corpus runs on the pins; no payload ever runs`, async () => {
      const all = states();
      expect(all.length).toBeGreaterThan(0);
      for (const state of all) {
        const outcome = await runState(state);
        try {
          checkOutcome(state, outcome);
        } catch (error) {
          throw new Error(`state "${state.name}": ${(error as Error).message}`);
        }
        const { canary, victims } = await canaries();
        expect({ state: state.name, canary, victims }).toEqual({
          state: state.name,
          canary: [],
          victims: VICTIM_ROWS,
        });
      }
    }, 600_000);
  }

  it('every statement the server ran is a text pgwarden decided and allowed', async () => {
    // a marker the server must have written before the log is read
    const marker = `lexer-suite-end-${Date.now()}`;
    await admin.query(`SELECT '${marker}'`);
    for (const deadline = Date.now() + 20_000; !serverLog.includes(marker); ) {
      if (Date.now() > deadline) throw new Error('the server log never showed the marker');
      await new Promise((r) => setTimeout(r, 100));
    }
    const ran: Array<{ app: string; text: string }> = [];
    for (const [, app, , level, rest] of serverLog.matchAll(LOG_ENTRY)) {
      if (level !== 'LOG' || !app!.startsWith('lex-') || app === 'lex-probe') continue;
      // each entry ends with the newline the logger adds, which also puts a tab after every newline
      const message = (rest!.endsWith('\n') ? rest!.slice(0, -1) : rest!).replaceAll('\n\t', '\n');
      const text =
        /^statement: ([\s\S]*)$/.exec(message)?.[1] ?? /^execute [^:]*: ([\s\S]*)$/.exec(message)?.[1];
      if (text !== undefined) ran.push({ app: app!, text });
    }
    expect(ran.length).toBeGreaterThan(sessions);
    const sent = [...decided.values()].reduce((n, texts) => n + texts.length, 0);
    console.info(
      `lexer suite: ${sessions} sessions, ${corpus.length} corpus lines, ${sent} statements decided by pgwarden, ${ran.length} run by the server`,
    );
    // the proxy's own check of the pins inside pipelines (proxy/pipeline-guard.ts) is the only other text
    const strays = ran.filter(
      ({ app, text }) =>
        !text.startsWith(PIN_CHECK_MARK) && !decided.get(app)?.some((d) => d.allowed && d.text === text),
    );
    expect(strays).toEqual([]);
    // and the corpus lines that hide a payload never reached the server in a form pgwarden refused
    const refusedTexts = new Set(
      [...decided.values()]
        .flat()
        .filter((d) => !d.allowed)
        .map((d) => d.text),
    );
    expect(ran.filter((e) => refusedTexts.has(e.text))).toEqual([]);
  });
});
