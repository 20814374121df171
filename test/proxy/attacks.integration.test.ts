/**
 * Attacks on pgwarden's session-integrity promises by an ordinary `engineering` person, through the
 * whole local stack (dev issuer tokens, the default policy pack, the real API and proxy, a real
 * PostgreSQL). Each test checks what the SERVER did (rows, pg_stat_activity, what the client was
 * sent from the server), not what the proxy believes. Attacks that got through once are marked
 * "was a bypass" and stay here as regression tests; the others are defences that held.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  startTestPostgres,
  startTestStack,
  type TestPostgres,
  type TestStack,
} from '../fixtures/local-stack.ts';
import { errorMessage, RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import {
  bind,
  closeStatement,
  execute,
  frame,
  parse as parseFrame,
  query,
  sync,
} from '../fixtures/raw-frames.ts';

let postgres: TestPostgres;
let stack: TestStack;
let admin: pg.Client;
let token: string;
const USER = 'eve@example.com';
const SECRET = 'topsecret-key-123';

beforeAll(async () => {
  postgres = await startTestPostgres();
  admin = new pg.Client({ host: postgres.host, port: postgres.port, database: 'app', ...postgres.superuser });
  await admin.connect();
  await admin.query(`
    CREATE TABLE atk_victim (id int);
    CREATE TABLE atk_creds (id int, api_key text);
    INSERT INTO atk_creds VALUES (1, '${SECRET}');
    GRANT ALL ON atk_victim, atk_creds TO app_rw;
  `);
  stack = await startTestStack({ postgres });
  token = await stack.issuer.issueToken({ email: USER });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await admin?.end();
  await postgres?.stop();
});

beforeEach(async () => {
  await admin.query('TRUNCATE atk_victim; INSERT INTO atk_victim SELECT generate_series(1, 5)');
});

/** The victim table as the server holds it. */
async function victim(): Promise<{ n: number; sum: number }> {
  const { rows } = await admin.query<{ n: number; sum: number }>(
    'SELECT count(*)::int AS n, coalesce(sum(id), 0)::int AS sum FROM atk_victim',
  );
  return rows[0]!;
}

const UNTOUCHED = { n: 5, sum: 15 };

async function client(applicationName = 'atk'): Promise<pg.Client> {
  const c = new pg.Client({
    host: stack.proxy.host,
    port: stack.proxy.port,
    database: 'app',
    user: USER,
    password: token,
    application_name: applicationName,
    ssl: { rejectUnauthorized: false },
  });
  await c.connect();
  return c;
}

/** Runs one statement through the proxy; returns the rows or the error's SQLSTATE and message. */
async function attempt(
  sql: string,
  applicationName?: string,
): Promise<{ rows?: unknown[]; code?: string; message?: string }> {
  const c = await client(applicationName);
  try {
    const result = await c.query(sql);
    return { rows: result.rows };
  } catch (error) {
    const e = error as { code?: string; message: string };
    return { code: e.code, message: e.message };
  } finally {
    await c.end().catch(() => {});
  }
}

async function raw(): Promise<RawClient> {
  const { client: c, startupReplies } = await RawClient.connect({
    host: stack.proxy.host,
    port: stack.proxy.port,
    user: USER,
    database: 'app',
    password: token,
    parameters: { application_name: 'atk-raw' },
  });
  expect(summarize([startupReplies.at(-1)!])).toEqual(['Z:I']);
  return c;
}

/** Sends the messages in one write and reads up to the n-th ReadyForQuery. */
async function pipeline(messages: Buffer[], cycles: number): Promise<RawMessage[]> {
  const c = await raw();
  try {
    c.send(...messages);
    return await c.untilReady(cycles);
  } finally {
    c.close();
  }
}

const errors = (messages: RawMessage[]) => messages.filter((m) => m.type === 'E').map(errorMessage);
const dataText = (messages: RawMessage[]) =>
  messages
    .filter((m) => m.type === 'D')
    .map((m) => m.body.toString('utf8'))
    .join('\n');

// ── functions the policy never sees called ─────────────────────────────────────────────────────────

describe('functions called where the policy does not look', () => {
  it('was a bypass: (pid).pg_terminate_backend (field-selection notation) ends another session without approval', async () => {
    const other = await client('atk-bystander');
    other.on('error', () => {}); // when the attack works, the server ends this session
    try {
      const outcome = await attempt(
        "SELECT (pid).pg_terminate_backend FROM pg_stat_activity WHERE application_name = 'atk-bystander'",
      );
      expect(outcome.code).toBe('42501');
      // on the server: the bystander's backend is still there and still answers
      const alive = await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'atk-bystander'",
      );
      expect(alive.rows[0].n).toBe(1);
      expect((await other.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await other.end().catch(() => {});
    }
  });

  it('was a bypass: a.pg_cancel_backend over a function in FROM calls pg_cancel_backend without approval', async () => {
    const outcome = await attempt('SELECT a.pg_cancel_backend FROM pg_backend_pid() a');
    expect(outcome.code).toBe('42501');
    expect(outcome.rows).toBeUndefined();
  });

  it('was a bypass: ts_rewrite runs the SQL in its string (set_config, denied by the pack, ran)', async () => {
    const outcome = await attempt(
      "SELECT ts_rewrite('a'::tsquery, $$SELECT 'a'::tsquery, set_config('application_name', 'atk-pwned-1', false)::tsquery$$), pg_sleep(0.3)",
      'atk-ts-rewrite',
    );
    expect(outcome.code).toBe('42501');
    const pwned = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'atk-pwned-1'",
    );
    expect(pwned.rows[0].n).toBe(0);
  });

  it("was a bypass: ('…').ts_stat runs the SQL in its string through field-selection notation", async () => {
    const outcome = await attempt(
      "SELECT ($$SELECT to_tsvector(set_config('application_name', 'atk-pwned-2', false))$$).ts_stat, pg_sleep(0.3)",
    );
    expect(outcome.code).toBe('42501');
    const pwned = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'atk-pwned-2'",
    );
    expect(pwned.rows[0].n).toBe(0);
  });

  it('holds: set_config by any spelling (schema, quotes, in FROM, in a subquery) is denied', async () => {
    for (const sql of [
      "SELECT pg_catalog.set_config('application_name', 'atk-pwned-3', false)",
      `SELECT "set_config"('application_name', 'atk-pwned-3', false)`,
      "SELECT * FROM pg_catalog.set_config('application_name', 'atk-pwned-3', false)",
      "SELECT (SELECT set_config('application_name', 'atk-pwned-3', false))",
      "SELECT pg_catalog.query_to_xml($$SELECT set_config('application_name', 'atk-pwned-3', false)$$, true, false, '')",
    ]) {
      expect((await attempt(sql)).code, sql).toBe('42501');
    }
    const pwned = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'atk-pwned-3'",
    );
    expect(pwned.rows[0].n).toBe(0);
  });

  it('holds: a unicode-escaped function name (U&"\\0070g_cancel_backend") is still that function', async () => {
    const outcome = await attempt(`SELECT U&"!0070g_cancel_backend" UESCAPE '!' (pg_backend_pid())`);
    expect(outcome.code).toBe('42501');
  });
});

// ── masked values read through a channel the masks do not cover ───────────────────────────────────

describe('masked columns read another way', () => {
  it('holds: the masked column itself comes back redacted', async () => {
    const outcome = await attempt('SELECT api_key FROM atk_creds');
    expect(JSON.stringify(outcome.rows)).not.toContain(SECRET);
    expect(outcome.rows).toHaveLength(1);
  });

  it('was a bypass: c.row_to_json (a whole row through field-selection notation) showed the masked column', async () => {
    for (const sql of [
      'SELECT c.row_to_json FROM atk_creds c',
      'SELECT atk_creds.to_jsonb FROM public.atk_creds',
      'SELECT c.record_out FROM atk_creds c',
      'SELECT w.row_to_json FROM (SELECT api_key FROM atk_creds) w',
    ]) {
      const outcome = await attempt(sql);
      expect(JSON.stringify(outcome), sql).not.toContain(SECRET);
      expect(outcome.code, sql).toBe('42501');
    }
  });

  it('was a bypass: cursor_to_xml reads a cursor of the masked table without masks', async () => {
    const c = await client();
    try {
      await c.query('BEGIN');
      await c.query('DECLARE atk_cur CURSOR FOR SELECT * FROM atk_creds');
      const outcome = await c
        .query("SELECT cursor_to_xml('atk_cur', 10, false, false, '') AS x")
        .then((r) => ({ rows: r.rows, code: undefined }))
        .catch((e: { code?: string }) => ({ rows: undefined, code: e.code }));
      expect(JSON.stringify(outcome)).not.toContain(SECRET);
      expect(outcome.code).toBe('42501');
    } finally {
      await c.end().catch(() => {});
    }
  });

  it('holds: (c).to_json and (c.*)::text are whole rows and refused', async () => {
    for (const sql of ['SELECT (c).to_json FROM atk_creds c', 'SELECT (c.*)::text FROM atk_creds c']) {
      const outcome = await attempt(sql);
      expect(JSON.stringify(outcome), sql).not.toContain(SECRET);
      expect(outcome.code, sql).toBe('42501');
    }
  });

  it('holds: a protocol Execute of a SQL cursor (a portal pgwarden never bound) is refused, also WITH HOLD', async () => {
    const replies = await pipeline(
      [
        query('BEGIN; DECLARE atk_c CURSOR WITH HOLD FOR SELECT * FROM atk_creds; COMMIT'),
        execute('atk_c'),
        sync(),
      ],
      2,
    );
    expect(dataText(replies)).not.toContain(SECRET);
    expect(errors(replies).join()).toMatch(
      /portal "atk_c" does not exist in this session as far as pgwarden knows/,
    );
  });
});

// ── writes that need a reviewer ───────────────────────────────────────────────────────────────────

describe('writes without WHERE in other clothes', () => {
  it.each([
    ['a data-modifying CTE', 'WITH d AS (DELETE FROM atk_victim RETURNING 1) SELECT count(*) FROM d'],
    ['COPY of a DELETE', 'COPY (DELETE FROM atk_victim RETURNING id) TO STDOUT'],
    ['EXPLAIN ANALYZE', 'EXPLAIN ANALYZE DELETE FROM atk_victim'],
    ['PREPARE then EXECUTE in one message', 'PREPARE atk_p AS DELETE FROM atk_victim; EXECUTE atk_p'],
    [
      'a refused statement behind an allowed one in a transaction',
      'BEGIN; SELECT 1; DELETE FROM atk_victim; COMMIT',
    ],
  ])('holds: %s is held for a reviewer and the server deletes nothing', async (_what, sql) => {
    const outcome = await attempt(sql);
    expect(outcome.code).toBe('42501');
    expect(await victim()).toEqual(UNTOUCHED);
  });
});

// ── the extended protocol in unusual orders ───────────────────────────────────────────────────────

describe('extended protocol', () => {
  it('holds: an unnamed statement replaced by a refused one, then Bind: the refused one never runs', async () => {
    const replies = await pipeline(
      [
        parseFrame('', 'UPDATE atk_victim SET id = id + 1'),
        bind('', ''),
        execute(),
        sync(),
        parseFrame('', 'SELECT 1'),
        sync(),
        bind('', ''),
        execute(),
        sync(),
      ],
      3,
    );
    expect(errors(replies).join()).toMatch(/requires approval/);
    expect(await victim()).toEqual(UNTOUCHED);
  });

  it('holds: a Parse refused for a name, then SQL EXECUTE of that name, runs nothing', async () => {
    const replies = await pipeline(
      [parseFrame('atk_s', 'UPDATE atk_victim SET id = id + 1'), sync(), query('EXECUTE atk_s')],
      2,
    );
    expect(errors(replies).length).toBeGreaterThan(0);
    expect(await victim()).toEqual(UNTOUCHED);
  });

  it('holds: a statement closed and re-parsed as an update does not change the portal bound before', async () => {
    const replies = await pipeline(
      [
        parseFrame('atk_a', 'SELECT 1'),
        bind('atk_p', 'atk_a'),
        closeStatement('atk_a'),
        parseFrame('atk_a', 'UPDATE atk_victim SET id = id + 1'),
        execute('atk_p'),
        bind('', 'atk_a'),
        execute(),
        sync(),
      ],
      1,
    );
    expect(summarize(replies)).toContain('E:42501');
    expect(await victim()).toEqual(UNTOUCHED);
  });

  it('holds: Execute of the unnamed portal a simple Query left behind is refused', async () => {
    const replies = await pipeline([query('SELECT id FROM atk_victim'), execute(''), sync()], 2);
    expect(errors(replies).join()).toMatch(/unnamed portal does not exist/);
  });

  it('holds: the fastpath FunctionCall message (set_config by OID 2078) is refused', async () => {
    const int32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    const int16 = (n: number) => Buffer.from([(n >>> 8) & 255, n & 255]);
    const args = ['application_name', 'atk-pwned-4', 'false'];
    const call = frame(
      'F',
      int32(2078),
      int16(0),
      int16(args.length),
      ...args.flatMap((a) => [int32(Buffer.byteLength(a)), Buffer.from(a)]),
      int16(0),
    );
    const replies = await pipeline([call, query('SELECT pg_sleep(0.2)')], 2);
    expect(errors(replies).join()).toMatch(/fastpath function call/);
    const pwned = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'atk-pwned-4'",
    );
    expect(pwned.rows[0].n).toBe(0);
  });

  it('holds: CopyData carrying SQL outside a COPY is data, never a statement', async () => {
    const replies = await pipeline(
      [frame('d', Buffer.from('DELETE FROM atk_victim')), frame('c'), query('SELECT 1')],
      1,
    );
    expect(summarize(replies)).toContain('Z:I');
    expect(await victim()).toEqual(UNTOUCHED);
  });
});

// ── startup and identity ──────────────────────────────────────────────────────────────────────────

describe('startup and identity', () => {
  it.each([
    ['options -c role', { options: '-c role=app_admin' }],
    ['options without a space', { options: '-crole=app_admin' }],
    ['options --role', { options: '--role=app_admin' }],
    ['options with an escaped space', { options: '-c\\ role=app_admin' }],
    ['a top-level ROLE key', { ROLE: 'app_admin' }],
    ['session_authorization', { session_authorization: 'app_admin' }],
    ['client_encoding SJIS', { client_encoding: 'SJIS' }],
  ])('holds: %s at startup is refused before any session opens', async (_what, parameters) => {
    const { client: c, startupReplies } = await RawClient.connect({
      host: stack.proxy.host,
      port: stack.proxy.port,
      user: USER,
      database: 'app',
      password: token,
      parameters: { application_name: 'atk-startup', ...parameters },
    });
    c.close();
    expect(startupReplies.at(-1)!.type).toBe('E');
    const sessions = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app_admin'",
    );
    expect(sessions.rows[0].n).toBe(0);
  });

  it.each([
    [
      'a token for another audience',
      async () => stack.issuer.issueToken({ email: USER, audience: 'not-pgwarden' }),
    ],
    [
      'a token whose payload was swapped for another claim set',
      async () => {
        const [head, , signature] = token.split('.');
        const other = (await stack.issuer.issueToken({ email: USER, groups: ['admins'] })).split('.')[1];
        return `${head}.${other}.${signature}`;
      },
    ],
  ])('holds: %s opens no session', async (_what, mint) => {
    const { client: c, startupReplies } = await RawClient.connect({
      host: stack.proxy.host,
      port: stack.proxy.port,
      user: USER,
      database: 'app',
      password: await mint(),
    });
    c.close();
    expect(summarize([startupReplies.at(-1)!])[0]).toMatch(/^E:28/);
  });

  it("holds: a cancel request with a guessed key does not cancel another session's statement", async () => {
    const other = await raw();
    try {
      other.send(query('SELECT pg_sleep(1.5), 42 AS done'));
      // a cancel request for the session's pid with a wrong key
      const { connect } = await import('node:net');
      const socket = connect({ host: stack.proxy.host, port: stack.proxy.port });
      await new Promise((resolve) => socket.once('connect', resolve));
      const request = Buffer.alloc(16);
      request.writeInt32BE(16, 0);
      request.writeInt32BE(80877102, 4);
      request.writeInt32BE(other.processId ?? 0, 8);
      request.writeInt32BE((other.secretKey ?? 0) ^ 1, 12);
      socket.end(request);
      const replies = await other.untilReady(1);
      expect(summarize(replies)).toContain('C:SELECT 1');
    } finally {
      other.close();
    }
  });
});
