/**
 * The session edge through real clients (psql, pgbench, node-postgres, raw bytes) against a real
 * PostgreSQL: every upstream session runs with the pinned settings, startup parameters pass by
 * allow-list, and what is refused is refused before the token is even asked for. Each check reads
 * what the SERVER has (SHOW, current_setting, pg_stat_activity), not what the proxy believes.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { errorMessage, RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { runCommand } from '../fixtures/run-command.ts';

let h: ProxyHarness;

beforeAll(async () => {
  h = await startProxyHarness();
});
afterAll(async () => {
  await h?.stop();
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

/** Runs a query on the server directly (as the gateway's own login), not through the proxy. */
async function onServer<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = await h.direct();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

async function asSuperuser(sql: string): Promise<void> {
  const c = new pg.Client({
    host: h.postgres.host,
    port: h.postgres.port,
    database: 'app',
    ...h.postgres.superuser,
  });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** psql/pgbench environment pointing at the proxy; `extra` adds or overrides variables. */
function libpqEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PGHOST: '127.0.0.1',
    PGPORT: String(h.proxy.port),
    PGUSER: 'alice@example.com',
    PGDATABASE: 'app',
    PGPASSWORD: 'good-token',
    PGSSLMODE: 'require',
    PGCONNECT_TIMEOUT: '10',
    LANG: 'C.UTF-8',
    ...extra,
  };
}

function psql(sql: string[], extra: Record<string, string> = {}) {
  return runCommand('psql', ['-X', '-A', '-t', ...sql.flatMap((s) => ['-c', s])], { env: libpqEnv(extra) });
}

describe('pinned at connect', () => {
  it('every upstream session runs with client_encoding=UTF8 and standard_conforming_strings=on', async () => {
    const c = await h.viaProxy();
    const r = await c.query(
      "select current_setting('client_encoding') as enc, current_setting('standard_conforming_strings') as scs, current_user, session_user",
    );
    expect(r.rows[0]).toEqual({ enc: 'UTF8', scs: 'on', current_user: 'app_rw', session_user: 'app_rw' });
    await c.end();
  });

  it("the pins override the role's own defaults (ALTER ROLE … SET)", async () => {
    await asSuperuser(
      "alter role app_rw set standard_conforming_strings = off; alter role app_rw set client_encoding = 'LATIN1'",
    );
    try {
      // the role's defaults are real: a direct login of the same role gets them
      const direct = await onServer<{ scs: string; enc: string }>(
        "select current_setting('standard_conforming_strings') as scs, current_setting('client_encoding') as enc",
      );
      // (node-postgres itself always asks for UTF8, so only the role's stored default shows LATIN1)
      expect(direct[0]!.scs).toBe('off');
      const [stored] = await onServer<{ setconfig: string[] }>(
        "select setconfig from pg_db_role_setting where setrole = 'app_rw'::regrole",
      );
      expect(stored!.setconfig).toContain('client_encoding=LATIN1');
      const c = await h.viaProxy();
      expect((await c.query('show standard_conforming_strings')).rows[0].standard_conforming_strings).toBe(
        'on',
      );
      expect((await c.query('show client_encoding')).rows[0].client_encoding).toBe('UTF8');
      await c.end();
    } finally {
      await asSuperuser(
        'alter role app_rw reset standard_conforming_strings; alter role app_rw reset client_encoding',
      );
    }
  });

  it('a role default (ALTER ROLE … SET role, which a role may set on itself) does not change who the session is', async () => {
    await asSuperuser('grant app_ro to app_rw');
    // an ordinary role may set its own defaults: this is what a session could leave behind
    const self = await h.direct();
    await self.query("alter role app_rw set role = 'app_ro'");
    await self.end();
    try {
      const [direct] = await onServer<{ current_user: string }>('select current_user');
      expect(direct!.current_user).toBe('app_ro');
      const c = await h.viaProxy();
      expect((await c.query('select current_user, session_user')).rows[0]).toEqual({
        current_user: 'app_rw',
        session_user: 'app_rw',
      });
      await c.end();
    } finally {
      await asSuperuser('alter role app_rw reset role; revoke app_ro from app_rw');
    }
  });

  it("tells the client the server's real ParameterStatus, also when it asked for SQL_ASCII", async () => {
    const { client, startupReplies } = await connect({ client_encoding: 'SQL_ASCII' });
    const statuses = Object.fromEntries(
      startupReplies
        .filter((m) => m.type === 'S')
        .map((m) => m.body.toString('utf8').split('\0').slice(0, 2) as [string, string]),
    );
    expect(statuses).toMatchObject({ client_encoding: 'UTF8', standard_conforming_strings: 'on' });
    client.send(serialize.query('show client_encoding'));
    const replies = await client.untilReady();
    expect(replies.find((m) => m.type === 'D')!.body.toString('utf8')).toContain('UTF8');
    client.close();
  });
});

describe('psql and pgbench keep working', () => {
  it('plain psql (not a terminal: it sends no client_encoding)', async () => {
    const run = await psql(['show client_encoding', 'show standard_conforming_strings']);
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual(['UTF8', 'on']);
  });

  it('psql in a terminal under LANG=C, which asks for SQL_ASCII, gets a UTF8 session', async () => {
    const { PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE } = libpqEnv();
    const conninfo = `host=${PGHOST} port=${PGPORT} user=${PGUSER} dbname=${PGDATABASE} sslmode=${PGSSLMODE}`;
    // script(1) gives psql a terminal, so it sends client_encoding=auto resolved from the C locale
    const run = await runCommand(
      'script',
      [
        '-qec',
        `psql -X -A -t -P pager=off '${conninfo}' -c 'show client_encoding' -c 'show standard_conforming_strings'`,
        '/dev/null',
      ],
      { env: { ...libpqEnv(), PGPASSWORD: PGPASSWORD!, LANG: 'C', LC_ALL: 'C', TERM: 'dumb' } },
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout.replace(/\r/g, '').trim().split('\n')).toEqual(['UTF8', 'on']);
  });

  it('psql with PGCLIENTENCODING=SQL_ASCII gets UTF8; with LATIN1 it is told how to fix it', async () => {
    const ascii = await psql(['show client_encoding'], { PGCLIENTENCODING: 'SQL_ASCII' });
    expect(ascii.stdout.trim()).toBe('UTF8');
    const opened = h.controlPlane.sessionsOpened;
    const latin1 = await psql(['select 1'], { PGCLIENTENCODING: 'LATIN1' });
    expect(latin1.code).not.toBe(0);
    expect(latin1.stderr).toContain('pgwarden sessions use UTF8: set PGCLIENTENCODING=UTF8');
    expect(h.controlPlane.sessionsOpened).toBe(opened);
  });

  it('PGOPTIONS settings on the allow-list reach the server', async () => {
    const run = await psql(['show search_path', 'show statement_timeout', 'show datestyle'], {
      PGOPTIONS: '-c search_path=public,pg_catalog --statement-timeout=4321 -c DateStyle=ISO,\\ DMY',
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual(['public,pg_catalog', '4321ms', 'ISO, DMY']);
  });

  it('PGOPTIONS with a role switch is refused before the token is sent', async () => {
    const requests = h.credentialRequests.length;
    const opened = h.controlPlane.sessionsOpened;
    const run = await psql(['select current_user'], { PGOPTIONS: '-c role=app_admin' });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('pgwarden refuses the startup setting "role"');
    expect(h.controlPlane.sessionsOpened).toBe(opened);
    expect(h.credentialRequests.length).toBe(requests);
  });

  it('pgbench runs its transactions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgwarden-pgbench-'));
    const script = join(dir, 'select.sql');
    writeFileSync(script, 'select 1;\n');
    const run = await runCommand('pgbench', ['-n', '-c', '2', '-t', '5', '-f', script], { env: libpqEnv() });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/number of transactions actually processed: 10\/10/);
  });
});

describe('node-postgres startup parameters (as its own test suite sends them)', () => {
  it('options=--search_path, application_name and statement_timeout reach the server', async () => {
    const c = await h.viaProxy({
      application_name: 'np-suite',
      statement_timeout: 1234,
      options: '--search_path=foo',
    } as never);
    const r = await c.query(
      "select current_setting('search_path') as sp, current_setting('statement_timeout') as st, pg_backend_pid() as pid",
    );
    expect(r.rows[0]).toMatchObject({ sp: 'foo', st: '1234ms' });
    const [seen] = await onServer<{ application_name: string }>(
      'select application_name from pg_stat_activity where pid = $1',
      [r.rows[0].pid],
    );
    expect(seen!.application_name).toBe('np-suite');
    await c.end();
  });

  it('an escaped space in options stays inside the value', async () => {
    const c = await h.viaProxy({ options: '-c application_name=a\\ b\\ -c\\ role=app_admin' } as never);
    const { pid, who } = (await c.query('select pg_backend_pid() as pid, current_user as who')).rows[0];
    expect(who).toBe('app_rw');
    const [seen] = await onServer<{ application_name: string }>(
      'select application_name from pg_stat_activity where pid = $1',
      [pid],
    );
    expect(seen!.application_name).toBe('a b -c role=app_admin');
    await c.end();
  });

  it('a value the server rejects, or a database that does not exist, is reported as the server said it', async () => {
    const badValue = await h.viaProxy({ options: '-c DateStyle=bogus' } as never).catch((e) => e);
    expect(badValue.code).toBe('22023');
    expect(badValue.message).toContain('DateStyle');
    const noDatabase = await h.viaProxy({ database: 'no_such_db' }).catch((e) => e);
    expect(noDatabase.code).toBe('3D000');
    expect(noDatabase.message).toContain('no_such_db');
  });

  it('a refused setting reaches node-postgres as a FATAL 42501 naming it', async () => {
    const error = await h.viaProxy({ options: '-c session_authorization=postgres' } as never).catch((e) => e);
    expect(error.code).toBe('42501');
    expect(error.message).toContain('"session_authorization"');
  });
});

describe('refused startup parameters, before the token is asked for', () => {
  it.each<[Record<string, string>, string, string]>([
    [{ role: 'app_admin' }, '42501', '"role"'],
    [{ ROLE: 'app_admin' }, '42501', '"role"'],
    [{ Role: 'app_admin' }, '42501', '"role"'],
    [{ session_authorization: 'postgres' }, '42501', '"session_authorization"'],
    [{ options: '-c role=app_admin' }, '42501', '"role"'],
    [{ options: '-crole=app_admin' }, '42501', '"role"'],
    [{ options: '--role=app_admin' }, '42501', '"role"'],
    [{ options: '-c r\\ole=app_admin' }, '42501', '"role"'],
    [{ options: '--session-authorization=postgres' }, '42501', '"session_authorization"'],
    [{ options: '-c search_path=x -c role=app_admin' }, '42501', '"role"'],
    [{ options: '-D /tmp' }, '42501', '"-D"'],
    [{ options: '-P' }, '42501', '"-P"'],
    [{ options: '-e' }, '42501', '"-e"'],
    [{ options: '-o -F' }, '42501', '"-o"'],
    [{ options: '-c' }, '08P01', '-c'],
    [{ options: 'role=app_admin' }, '08P01', 'role=app_admin'],
    [{ standard_conforming_strings: 'off' }, '42501', '"standard_conforming_strings"'],
    [{ options: '-c standard_conforming_strings=off' }, '42501', '"standard_conforming_strings"'],
    [{ client_encoding: 'SJIS' }, '42501', 'PGCLIENTENCODING=UTF8'],
    [{ options: '-c client_encoding=GBK' }, '42501', 'PGCLIENTENCODING=UTF8'],
    [{ backslash_quote: 'on' }, '42501', '"backslash_quote"'],
    [{ 'search-path': 'x' }, '42501', '"search-path"'],
    [{ is_superuser: 'on' }, '42501', '"is_superuser"'],
    [{ 'pgwarden.x': 'y' }, '42501', '"pgwarden.x"'],
    [{ USER: 'postgres' }, '42501', '"user"'],
    [{ Options: '-c role=app_admin' }, '42501', '"options"'],
    [{ '_PQ_.x': 'y' }, '42501', '"_pq_.x"'],
    [{ application_name: 'a', APPLICATION_NAME: 'b' }, '08P01', 'twice'],
    [{ replication: 'database' }, '0A000', 'replication'],
    [{ database: 'a'.repeat(64) }, '42501', '63 bytes'],
  ])('%j → %s', async (parameters, sqlstate, named) => {
    const requests = h.credentialRequests.length;
    const opened = h.controlPlane.sessionsOpened;
    const { startupReplies } = await connect(parameters);
    const last = startupReplies.at(-1)!;
    expect(summarize([last])).toEqual([`E:${sqlstate}`]);
    expect(errorMessage(last)).toContain(named);
    // the password (the token) was never asked for, so nothing was opened anywhere
    expect(startupReplies.some((m) => m.type === 'R')).toBe(false);
    expect(h.controlPlane.sessionsOpened).toBe(opened);
    expect(h.credentialRequests.length).toBe(requests);
  });

  it('a protocol extension (_pq_.*) is negotiated away, never forwarded', async () => {
    const { client, startupReplies } = await connect({ '_pq_.something': 'on', application_name: 'pq-test' });
    expect(summarize(startupReplies)).toContain('v');
    const v = startupReplies.find((m) => m.type === 'v')!;
    expect(v.body.toString('utf8')).toContain('_pq_.something');
    client.send(serialize.query('show application_name'));
    const replies = await client.untilReady();
    expect(replies.find((m) => m.type === 'D')!.body.toString('utf8')).toContain('pq-test');
    client.close();
  });
});

describe('the startup packet itself', () => {
  /** Opens TLS to the proxy and sends `bytes` as the startup packet; returns what came back. */
  async function rawStartup(bytes: Buffer): Promise<RawMessage[]> {
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: h.proxy.port }, () => resolve(s));
      s.once('error', reject);
    });
    plain.write(serialize.requestSsl());
    await new Promise((r) => plain.once('data', r));
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const out: RawMessage[] = [];
    let data = Buffer.alloc(0);
    socket.on('error', () => {});
    // up to the close, or to the password request (the test sends no password)
    const done = new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        while (data.length >= 5 && data.length >= 1 + data.readInt32BE(1)) {
          const end = 1 + data.readInt32BE(1);
          out.push({ type: String.fromCharCode(data[0]!), body: data.subarray(5, end) });
          data = data.subarray(end);
          if (out.at(-1)!.type === 'R') resolve();
        }
      });
    });
    socket.write(bytes);
    await done;
    socket.destroy();
    return out;
  }

  function startup(body: Buffer | string, version = 3 << 16): Buffer {
    const payload = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
    const out = Buffer.alloc(8 + payload.length);
    out.writeInt32BE(out.length, 0);
    out.writeInt32BE(version, 4);
    payload.copy(out, 8);
    return out;
  }

  it.each<{ what: string; bytes: Buffer; sqlstate: string }>(
    (
      [
        ['a key given twice', startup('user\0alice@example.com\0database\0app\0user\0bob\0\0'), '08P01'],
        [
          'a setting after the terminator',
          startup('user\0alice@example.com\0\0role\0app_admin\0\0'),
          '08P01',
        ],
        ['no terminator', startup('user\0alice@example.com\0'), '08P01'],
        [
          'bytes that are not UTF-8',
          startup(
            Buffer.concat([
              Buffer.from('user\0alice@example.com\0application_name\0'),
              Buffer.from([0xbf, 0x27, 0, 0]),
            ]),
          ),
          '22021',
        ],
        [
          'a packet over 10,000 bytes',
          startup(`user\0alice@example.com\0application_name\0${'x'.repeat(10_000)}\0\0`),
          '08P01',
        ],
        ['protocol 2.0', startup('user\0alice@example.com\0\0', 2 << 16), '08P01'],
        ['a repeated SSLRequest inside TLS', serialize.requestSsl(), '08P01'],
      ] as const
    ).map(([what, bytes, sqlstate]) => ({ what, bytes, sqlstate })),
  )('$what is refused ($sqlstate) before any password is asked for', async ({ bytes, sqlstate }) => {
    const replies = await rawStartup(bytes);
    expect(summarize(replies)).toEqual([`E:${sqlstate}`]);
  });

  it('a second GSSENCRequest is refused as the server refuses it', async () => {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: h.proxy.port }, () => resolve(s));
      s.once('error', reject);
    });
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    let data = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
    });
    const closed = new Promise((r) => socket.once('close', r));
    socket.write(gss);
    await new Promise((r) => socket.once('data', r));
    socket.write(gss);
    await closed;
    expect(data.toString('latin1', 0, 2)).toBe('NE');
    expect(data.toString('latin1')).toContain('08P01');
  });

  it('a request for protocol 3.2 is answered with NegotiateProtocolVersion 3.0 and works', async () => {
    const replies = await rawStartup(
      Buffer.concat([startup('user\0alice@example.com\0database\0app\0\0', (3 << 16) | 2)]),
    );
    // the connection closes after the password request (no password is sent here)
    expect(summarize(replies)).toEqual(['v', 'R']);
    // newest minor version supported: 0
    expect(replies[0]!.body.readInt32BE(0)).toBe(0);
  });
});
