/**
 * Session integrity on a real PostgreSQL: the settings pgwarden pins (client_encoding UTF8,
 * standard_conforming_strings on) and the session's identity hold whatever the client or the
 * server's own code does; client text is valid UTF-8 and bounded; masked rows are bounded. Each
 * check reads the server itself (its settings, its backends, a canary table).
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StatementDecider } from '../../shared/decide.ts';
import { parsePolicy } from '../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { allowAll } from '../fakes/proxy-control-plane.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { errorMessage, RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { bind, closeStatement, execute, frame, parse, query, sync } from '../fixtures/raw-frames.ts';

let h: ProxyHarness;
let admin: pg.Client;

/** Allows everything it is asked: only the gateway's own refusals stand in the way. */
const allowEverything = new StatementDecider(
  parsePolicy('version: allow-everything\ndefault: { action: allow }\nrules: []\n'),
);

beforeAll(async () => {
  await loadSqlParser();
  h = await startProxyHarness();
  admin = new pg.Client({
    host: h.postgres.host,
    port: h.postgres.port,
    database: 'app',
    ...h.postgres.superuser,
  });
  await admin.connect();
  // Server code written directly on the server, never seen by the proxy.
  await admin.query(`
    create table pins_canary (note text);
    grant all on pins_canary to app_rw;
    create function pgw_flip(name text, value text) returns text language sql
      as $$ select set_config(name, value, false) $$;
    create function pgw_flip_definer(value text) returns text language plpgsql security definer
      as $$ begin perform set_config('standard_conforming_strings', value, false); return value; end $$;
    create function pgw_touch(note text) returns text language sql
      as $$ insert into pins_canary values (note) returning note $$;
    create role pgw_super superuser nologin;
    grant pgw_super to app_rw;
    grant execute on function pgw_flip(text, text), pgw_flip_definer(text), pgw_touch(text) to app_rw;
  `);
});
afterAll(async () => {
  await admin?.end();
  await h?.stop();
});
beforeEach(async () => {
  h.controlPlane.decider = (r) => allowEverything.decide(r);
  await admin.query('truncate pins_canary');
});

function connect(parameters: Record<string, string> = {}) {
  return RawClient.connect({
    host: '127.0.0.1',
    port: h.proxy.port,
    user: 'alice@example.com',
    database: 'app',
    password: 'good-token',
    parameters,
  });
}

async function canary(): Promise<string[]> {
  return (await admin.query<{ note: string }>('select note from pins_canary order by note')).rows.map(
    (r) => r.note,
  );
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await check()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function backendGone(pid: number): Promise<void> {
  await until(
    async () => (await admin.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0,
    'the upstream backend to end',
  );
}

async function backendPid(client: RawClient): Promise<number> {
  client.send(query('select pg_backend_pid()'));
  const replies = await client.untilReady();
  const row = replies.find((m) => m.type === 'D')!;
  return Number(row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2)));
}

function fatal(messages: RawMessage[]): RawMessage | undefined {
  return messages.find((m) => m.type === 'E' && m.body.includes('SFATAL\0'));
}

describe('the ParameterStatus watch ends the session when server code breaks a pin', () => {
  it.each([
    ["select pgw_flip('client_encoding', 'SJIS')", /client_encoding=SJIS/],
    ["select pgw_flip('client_encoding', 'LATIN1')", /client_encoding=LATIN1/],
    ["select pgw_flip('standard_conforming_strings', 'off')", /standard_conforming_strings=off/],
    ["select pgw_flip_definer('off')", /standard_conforming_strings=off/],
    // a role switch to a superuser role inside a function: is_superuser is reported
    ["select pgw_flip('role', 'pgw_super')", /is_superuser=on/],
  ])('%s', async (text, why) => {
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(query(text));
    const replies = await client.untilClosed();
    // the statement's own result, then the FATAL: the ParameterStatus and the ReadyForQuery
    // after it never reach the client
    expect(summarize(replies)).toEqual(['T', 'D', 'C:SELECT 1', 'E:42501']);
    expect(errorMessage(replies.at(-1)!)).toMatch(why);
    expect(errorMessage(replies.at(-1)!)).toMatch(/^pgwarden ended the session/);
    await backendGone(pid);
    await until(
      () =>
        h.controlPlane.events.some(
          (e) => e.type === 'session_closed' && e.reason === 'pinned_setting_changed',
        ),
      'the session_closed record',
    );
  });

  it('through node-postgres (extended protocol): the query fails with the reason', async () => {
    const client = await h.viaProxy();
    client.on('error', () => {});
    const { pid } = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!;
    await expect(client.query('select pgw_flip($1, $2)', ['client_encoding', 'SJIS'])).rejects.toThrow(
      /client_encoding=SJIS; pgwarden pins client_encoding=UTF8/,
    );
    await backendGone(pid);
  });

  it('a setting that is not pinned changes without ending the session', async () => {
    const { client } = await connect();
    client.send(query("select pgw_flip('search_path', 'pg_catalog')"), query('show search_path'));
    const replies = await client.untilReady(2);
    // search_path's ParameterStatus passes, as every unpinned one does
    expect(summarize(replies)).toEqual(['T', 'D', 'C:SELECT 1', 'S', 'Z:I', 'T', 'D', 'C:SHOW', 'Z:I']);
    client.close();
  });
});

describe('pipelined statements behind server code that breaks a pin (proxy/pipeline-guard.ts)', () => {
  // Valid UTF-8 that SJIS reads as one character swallowing the backslash: under SJIS the string
  // ends early and the payload runs; under UTF8 it is all one string.
  const hidden = (payload: string) => `SELECT E'\u00c1\\'${payload} --'`;

  it("simple protocol: the next Query waits for the first one's ReadyForQuery, so the watch ends the session first", async () => {
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(
      query("select pgw_flip('client_encoding', 'SJIS')"),
      query(hidden("; insert into pins_canary values ('ran under SJIS')")),
    );
    const replies = await client.untilClosed();
    expect(summarize(replies)).toEqual(['T', 'D', 'C:SELECT 1', 'E:42501']);
    await backendGone(pid);
    expect(await canary()).toEqual([]);
  });

  it('extended protocol in one cycle: a check before the next Parse fails, the server skips to Sync', async () => {
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(
      parse('', "select pgw_flip('client_encoding', 'SJIS')"),
      bind('', ''),
      execute(),
      parse('', hidden(", pgw_touch('ran under SJIS')")),
      bind('', ''),
      execute(),
      sync(),
    );
    const replies = await client.untilClosed();
    expect(summarize(replies)).toEqual(['1', '2', 'D', 'C:SELECT 1', 'E:42501']);
    expect(errorMessage(replies.at(-1)!)).toMatch(/changed on the server in the middle of a pipeline/);
    await backendGone(pid);
    expect(await canary()).toEqual([]);
  });

  it('a role switch by server code is caught by the check too (not reported by the server)', async () => {
    await admin.query('grant app_ro to app_rw');
    try {
      const { client } = await connect();
      client.send(
        parse('', "select pgw_flip('role', 'app_ro')"),
        bind('', ''),
        execute(),
        parse('', "select pgw_touch('ünder app_ro')"),
        bind('', ''),
        execute(),
        sync(),
      );
      const replies = await client.untilClosed();
      expect(summarize(replies).at(-1)).toBe('E:42501');
      expect(await canary()).toEqual([]);
    } finally {
      await admin.query('revoke app_ro from app_rw');
    }
  });

  it("a check that cannot run (the transaction is already aborted) is the client's error, not a breach", async () => {
    const { client } = await connect();
    client.send(
      query('begin'),
      query('select 1/0'),
      closeStatement('nothing'), // opens an extended cycle without running code
      parse('', "insert into pins_canary values ('é')"),
      bind('', ''),
      execute(),
      sync(),
      query('rollback'),
      query("select 'still here'"),
    );
    const replies = await client.untilReady(5);
    expect(summarize(replies)).toEqual([
      'C:BEGIN',
      'Z:T',
      'E:22012',
      'Z:E',
      '3',
      'E:25P02',
      'Z:E',
      'C:ROLLBACK',
      'Z:I',
      'T',
      'D',
      'C:SELECT 1',
      'Z:I',
    ]);
    expect(await canary()).toEqual([]);
    client.close();
  });

  it('non-ASCII pipelines without such code run as sent, the check invisible to the client', async () => {
    const { client } = await connect();
    client.send(
      parse('', "insert into pins_canary values ('é')"),
      bind('', ''),
      execute(),
      parse('', "insert into pins_canary values ('ü\\')"),
      bind('', ''),
      execute(),
      sync(),
      query("insert into pins_canary values ('ß')"),
      query("insert into pins_canary values ('ñ')"),
    );
    const replies = await client.untilReady(3);
    expect(summarize(replies)).toEqual([
      '1',
      '2',
      'C:INSERT 0 1',
      '1',
      '2',
      'C:INSERT 0 1',
      'Z:I',
      'C:INSERT 0 1',
      'Z:I',
      'C:INSERT 0 1',
      'Z:I',
    ]);
    expect(await canary()).toEqual(['é', 'ñ', 'ß', 'ü\\'].sort());
    client.close();
  });
});

describe('a statement the guard holds while the server waits in COPY FROM STDIN', () => {
  const copyData = (text: string) => frame('d', Buffer.from(text));
  const copyDone = () => frame('c');

  // Found by the frontend fuzzer (seed 1592598566, case 81): the held Query waited for the COPY's
  // reply, the server for the CopyDone queued behind that Query. PostgreSQL ends a session that
  // sends anything but copy data there (08P01); the proxy does the same instead of waiting forever.
  it('a Query before CopyDone: 08P01 and the session ends; nothing is copied, the Query never runs', async () => {
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(
      query('copy pins_canary (note) from stdin'),
      copyData('copied\n'),
      query("insert into pins_canary values ('é')"),
      copyDone(),
    );
    const replies = await client.untilClosed();
    expect(summarize(replies)).toEqual(['G', 'E:08P01']);
    expect(errorMessage(replies.at(-1)!)).toMatch(/during COPY FROM STDIN/);
    await backendGone(pid);
    expect(await canary()).toEqual([]);
  });

  it('a Query after CopyDone waits for the COPY and then runs', async () => {
    const { client } = await connect();
    client.send(
      query('copy pins_canary (note) from stdin'),
      copyData('copied\n'),
      copyDone(),
      query("insert into pins_canary values ('é')"),
    );
    expect(summarize(await client.untilReady(2))).toEqual(['G', 'C:COPY 1', 'Z:I', 'C:INSERT 0 1', 'Z:I']);
    expect(await canary()).toEqual(['copied', 'é']);
    client.close();
  });

  // PostgreSQL ignores a Sync in COPY FROM STDIN: a ReadyForQuery awaited for it would never come,
  // and the guard's next wait with it.
  it('a Sync sent with the COPY gets no reply; the Query after the COPY waits and runs', async () => {
    const { client } = await connect();
    client.send(
      query('copy pins_canary (note) from stdin'),
      sync(),
      copyData('copied\n'),
      copyDone(),
      query("insert into pins_canary values ('é')"),
      query("select 'still here'"),
    );
    expect(summarize(await client.untilReady(3))).toEqual([
      'G',
      'C:COPY 1',
      'Z:I',
      'C:INSERT 0 1',
      'Z:I',
      'T',
      'D',
      'C:SELECT 1',
      'Z:I',
    ]);
    expect(await canary()).toEqual(['copied', 'é']);
    client.close();
  });

  it('a Sync sent after CopyInResponse gets no reply; the Query after the COPY waits and runs', async () => {
    const { client } = await connect();
    client.send(query('copy pins_canary (note) from stdin'));
    expect(summarize([await client.next()])).toEqual(['G']);
    client.send(sync(), copyData('copied\n'), copyDone(), query("insert into pins_canary values ('é')"));
    expect(summarize(await client.untilReady(2))).toEqual(['C:COPY 1', 'Z:I', 'C:INSERT 0 1', 'Z:I']);
    expect(await canary()).toEqual(['copied', 'é']);
    client.close();
  });

  it('two COPYs in one Query: a Query after the first CopyDone only is held, then ends the session', async () => {
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(
      query('copy pins_canary (note) from stdin; copy pins_canary (note) from stdin'),
      copyData('first\n'),
      copyDone(),
      query("insert into pins_canary values ('é')"),
    );
    const replies = await client.untilClosed();
    expect(summarize(replies)).toEqual(['G', 'C:COPY 1', 'G', 'E:08P01']);
    await backendGone(pid);
    expect(await canary()).toEqual([]);
  });
});

describe('refused as SQL, measured on the server', () => {
  it.each([
    "set client_encoding = 'SJIS'",
    "SET NAMES 'GBK'",
    'set standard_conforming_strings = off',
    "select set_config('client_encoding', 'BIG5', false)",
    "update pg_settings set setting = 'SJIS' where name = 'client_encoding'",
    'set role pgw_super',
    "select set_config('role', 'pgw_super', false)",
  ])('%s', async (text) => {
    const { client } = await connect();
    client.send(
      query(text),
      query(
        "select current_setting('client_encoding'), current_setting('standard_conforming_strings'), current_user",
      ),
    );
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:42501', 'Z:I', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    const row = replies[3]!.body.toString('utf8');
    expect(row).toContain('UTF8');
    expect(row).toContain('on');
    expect(row).toContain('app_rw');
    client.close();
  });

  it('SET client_encoding to UTF8 (PQsetClientEncoding) is allowed and changes nothing', async () => {
    const client = await h.viaProxy();
    await client.query("set client_encoding = 'UTF8'");
    await client.query('set standard_conforming_strings = on');
    expect((await client.query('show client_encoding')).rows[0].client_encoding).toBe('UTF8');
    await client.end();
  });

  it('DISCARD ALL and RESET ALL restore the startup values, not the role defaults', async () => {
    // a role default that differs from the pins: the startup parameter (node-postgres sends
    // client_encoding=UTF8) overrides it, and is what RESET restores
    await admin.query("alter role app_rw set client_encoding = 'LATIN1'");
    try {
      const client = await h.viaProxy();
      for (const reset of ['discard all', 'reset all']) {
        await client.query(reset);
        const { rows } = await client.query(
          "select current_setting('client_encoding') as enc, current_setting('standard_conforming_strings') as scs, current_user as who, session_user as login",
        );
        expect(rows[0]).toEqual({ enc: 'UTF8', scs: 'on', who: 'app_rw', login: 'app_rw' });
      }
      await client.end();
    } finally {
      await admin.query('alter role app_rw reset client_encoding');
    }
  });
});

describe('a session that would start off its pins', () => {
  // Either the connection is refused, or the session starts on the pins (the startup parameters
  // are pinned upstream): never a session that reads text another way.
  async function refusedOrPinned(parameters: Record<string, string>, why: RegExp): Promise<void> {
    const { client, startupReplies } = await connect(parameters);
    const last = startupReplies.at(-1)!;
    if (last.type === 'E') {
      expect(summarize([last])).toEqual(['E:42501']);
      expect(errorMessage(last)).toMatch(why);
      return;
    }
    client.send(
      query(
        "select current_setting('client_encoding') || ',' || current_setting('standard_conforming_strings')",
      ),
    );
    const replies = await client.untilReady();
    expect(replies.find((m) => m.type === 'D')!.body.toString('utf8')).toContain('UTF8,on');
    client.close();
  }

  it('a role default client_encoding, with no client_encoding from the client', async () => {
    await admin.query("alter role app_rw set client_encoding = 'SJIS'");
    try {
      await refusedOrPinned({}, /client_encoding=SJIS/);
    } finally {
      await admin.query('alter role app_rw reset client_encoding');
    }
  });

  it('a role default standard_conforming_strings=off', async () => {
    await admin.query('alter role app_rw set standard_conforming_strings = off');
    try {
      await refusedOrPinned({ client_encoding: 'UTF8' }, /standard_conforming_strings=off/);
    } finally {
      await admin.query('alter role app_rw reset standard_conforming_strings');
    }
  });

  it.each([
    [{ client_encoding: 'SJIS' }, /client_encoding|SJIS/],
    [{ options: '-c client_encoding=GBK' }, /client_encoding|options/],
    [{ options: '-c standard_conforming_strings=off' }, /standard_conforming_strings|options/],
    [{ standard_conforming_strings: 'off' }, /standard_conforming_strings/],
  ])('startup %j', async (parameters, why) => {
    const { client, startupReplies } = await connect(parameters);
    const last = startupReplies.at(-1)!;
    if (last.type === 'E') {
      expect(errorMessage(last)).toMatch(why);
      return;
    }
    client.send(
      query(
        "select current_setting('client_encoding') || ',' || current_setting('standard_conforming_strings')",
      ),
    );
    const replies = await client.untilReady();
    expect(replies.find((m) => m.type === 'D')!.body.toString('utf8')).toContain('UTF8,on');
    client.close();
  });
});

describe('client text that is not valid UTF-8 never reaches the parser or the server', () => {
  const invalid: Array<[string, Buffer]> = [
    ['a lone continuation byte', Buffer.from([0x80])],
    ['0xff', Buffer.from([0xff])],
    ['an overlong quote (C0 A7)', Buffer.from([0xc0, 0xa7])],
    ['an overlong slash (E0 80 AF)', Buffer.from([0xe0, 0x80, 0xaf])],
    ['a surrogate (ED A0 80)', Buffer.from([0xed, 0xa0, 0x80])],
    ['a truncated sequence (E3 81)', Buffer.from([0xe3, 0x81])],
    ['beyond U+10FFFF (F4 90 80 80)', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
    ['SJIS ソ (83 5C)', Buffer.from([0x83, 0x5c])],
  ];
  const statement = (bytes: Buffer) =>
    Buffer.concat([Buffer.from("insert into pins_canary values ('"), bytes, Buffer.from("')")]);

  it.each(invalid)('a Query with %s: 22021, nothing runs, the session goes on', async (_what, bytes) => {
    const { client } = await connect();
    const decisions = h.controlPlane.decisions.length;
    client.send(query(statement(bytes)), query("insert into pins_canary values ('after')"));
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:22021', 'Z:I', 'C:INSERT 0 1', 'Z:I']);
    expect(errorMessage(replies[0]!)).toMatch(/invalid byte sequence for encoding "UTF8"/);
    // never decided (so never parsed), never run
    expect(h.controlPlane.decisions.slice(decisions).map((d) => d.statement.text)).toEqual([
      "insert into pins_canary values ('after')",
    ]);
    expect(await canary()).toEqual(['after']);
    client.close();
  });

  it.each(invalid)('a Parse with %s: 22021, the pipeline is skipped to Sync', async (_what, bytes) => {
    const { client } = await connect();
    client.send(parse('', statement(bytes)), bind('', ''), execute(), sync(), query('select 1'));
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:22021', 'Z:I', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    expect(await canary()).toEqual([]);
    client.close();
  });

  it('a Query with a NUL inside its text: 22021, nothing after the NUL runs', async () => {
    const { client } = await connect();
    const text = Buffer.concat([
      Buffer.from('select 1'),
      Buffer.from([0]),
      Buffer.from("; insert into pins_canary values ('hidden')"),
    ]);
    client.send(query(text), query('select 2'));
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:22021', 'Z:I', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    expect(await canary()).toEqual([]);
    client.close();
  });

  it.each([
    ['a Parse statement name', () => Buffer.concat([parse(Buffer.from([0xff]), 'select 1'), sync()])],
    [
      'a Bind portal name',
      () => Buffer.concat([parse('', 'select 1'), bind(Buffer.from([0xc0, 0xa7]), ''), sync()]),
    ],
    [
      'an Execute portal name',
      () =>
        Buffer.concat([
          parse('', 'select 1'),
          bind('', ''),
          execute(Buffer.from([0xed, 0xa0, 0x80])),
          sync(),
        ]),
    ],
  ])('%s that is not valid UTF-8 ends the session (FATAL 22021)', async (_what, messages) => {
    const { client } = await connect();
    client.send(messages());
    const replies = await client.untilClosed();
    expect(fatal(replies)).toBeDefined();
    expect(summarize([fatal(replies)!])).toEqual(['E:22021']);
    expect(await canary()).toEqual([]);
  });

  it('Bind text values are left to the server, which refuses invalid UTF-8 itself (22021)', async () => {
    const { client } = await connect();
    client.send(
      parse('', 'insert into pins_canary values ($1)'),
      bind('', '', [Buffer.from([0x61, 0xc0, 0xa7])]),
      execute(),
      sync(),
    );
    const replies = await client.untilReady();
    expect(summarize(replies)).toEqual(['1', 'E:22021', 'Z:I']);
    expect(await canary()).toEqual([]);
    client.close();
  });
});

describe('statement size is bounded before the parser', () => {
  const limit = 1024 * 1024;
  const padded = (bytes: number) => {
    const head = "insert into pins_canary values ('big') /*";
    return `${head}${'x'.repeat(bytes - head.length - 2)}*/`;
  };

  it('a Query one byte over the limit: 54000, nothing runs, the session goes on', async () => {
    const { client } = await connect();
    client.send(query(padded(limit + 1)), query("insert into pins_canary values ('after')"));
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:54000', 'Z:I', 'C:INSERT 0 1', 'Z:I']);
    expect(errorMessage(replies[0]!)).toMatch(/1048577 bytes long, more than the 1048576 bytes/);
    expect(await canary()).toEqual(['after']);
    client.close();
  });

  it('a Parse over the limit: 54000; at the limit it runs', async () => {
    const { client } = await connect();
    client.send(parse('', padded(limit + 100)), bind('', ''), execute(), sync());
    client.send(parse('', padded(limit)), bind('', ''), execute(), sync());
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:54000', 'Z:I', '1', '2', 'C:INSERT 0 1', 'Z:I']);
    expect(await canary()).toEqual(['big']);
    client.close();
  });
});

describe('rows held whole to mask are bounded', () => {
  const detectorsOn = new StatementDecider(
    parsePolicy(`
version: detect
default: { action: allow }
detectors: { enabled: [card], method: redact }
rules: []
`),
  );
  const big = 17 * 1024 * 1024;

  it('a row larger than the bound that would be scanned ends the session with 54000', async () => {
    h.controlPlane.decider = (r) => detectorsOn.decide(r);
    const { client } = await connect();
    const pid = await backendPid(client);
    client.send(query(`select repeat('x', ${big}) as payload`));
    const replies = await client.untilClosed(60_000);
    expect(summarize(replies)).toEqual(['T', 'E:54000']);
    expect(errorMessage(replies.at(-1)!)).toMatch(/a row of \d+ bytes, more than the 16777216 bytes/);
    await backendGone(pid);
  });

  it('a row that needs no masking streams, whatever its size', async () => {
    const { client } = await connect();
    h.controlPlane.decider = allowAll; // no masks, no detectors
    client.send(query(`select repeat('x', ${big}) as payload`), query('select 1'));
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['T', 'D', 'C:SELECT 1', 'Z:I', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    expect(replies[1]!.body.length).toBe(big + 6);
    client.close();
  });
});
