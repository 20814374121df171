/**
 * Each statement's audit record is complete: real node-postgres clients through the proxy (with its
 * durable spool) against a real PostgreSQL; records are read as the control plane receives them.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { type LocalPostgres, startLocalPostgres } from '../../scripts/local/postgres.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import { verifySessionChain } from '../../shared/audit-chain.ts';
import type { SessionClosedEvent, StatementEvent } from '../../shared/events.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { RawClient } from '../fixtures/raw-client.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let postgres: LocalPostgres;
let controlPlane: InMemoryControlPlane;
const proxies: RunningProxy[] = [];

async function proxyWith(params: 'off' | 'hashed' | 'clear'): Promise<RunningProxy> {
  const cert = await ensureLocalCertificate(dir);
  const proxy = await startProxy({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key },
    allowPlaintext: false,
    upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
    credentials: () => postgres.roles.app_rw,
    controlPlane,
    proxyId: 'audit-records',
    audit: { spoolDir: join(dir, `spool-${params}`), params, shipIntervalMs: 10 },
  });
  proxies.push(proxy);
  return proxy;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-audit-records-'));
  postgres = await startLocalPostgres({ dataDir: join(dir, 'pg'), port: 0 });
  controlPlane = new InMemoryControlPlane();
}, 60_000);

afterAll(async () => {
  for (const proxy of proxies) await proxy.close();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(proxy: RunningProxy, applicationName = 'audit-test'): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    database: 'app',
    user: 'alice@example.com',
    password: 'good-token',
    application_name: applicationName,
    ssl: { rejectUnauthorized: false },
  });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function until<T>(find: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('record not received in time');
    await sleep(20);
  }
}

/** The latest record of each statement key of the session (the completed one replaces the intent). */
function recordsOf(applicationName: string): StatementEvent[] {
  const latest = new Map<string, StatementEvent>();
  for (const e of controlPlane.statements())
    if (e.applicationName === applicationName) latest.set(`${e.sessionId}/${e.seq}`, e);
  return [...latest.values()].sort((a, b) => a.seq - b.seq);
}

describe('statement records', () => {
  it('extended protocol: statement and portal names, hashed parameters (null stays null), bytes, identity', async () => {
    const proxy = await proxyWith('hashed');
    const client = await connect(proxy, 'ext-hashed');
    const result = await client.query({
      name: 'pair',
      text: 'select $1::text as a, $2::text as b, repeat($3::text, 100) as c',
      values: ['secret-value', null, 'x'],
    });
    expect(result.rows[0].a).toBe('secret-value');
    await client.end();
    const [record] = await until(() => {
      const r = recordsOf('ext-hashed').filter((e) => e.outcome === 'ok');
      return r.length > 0 ? r : undefined;
    });
    expect(record).toMatchObject({
      protocol: 'extended',
      preparedName: 'pair',
      portalName: '',
      paramsMode: 'hashed',
      params: [sha256('secret-value'), null, sha256('x')],
      upstreamUser: postgres.roles.app_rw.user,
      actor: 'person',
      outcome: 'ok',
      commandTag: 'SELECT 1',
      rows: 1,
      seq: 1,
    });
    // The reply carried 100 × 'x' plus the row framing: the byte count covers it.
    expect(record!.bytesToClient).toBeGreaterThan(100);
    expect(JSON.stringify(record)).not.toContain('secret-value');
    const closed = await until(() =>
      controlPlane.events.find(
        (e): e is SessionClosedEvent => e.type === 'session_closed' && e.sessionId === record!.sessionId,
      ),
    );
    expect(closed).toMatchObject({
      reason: 'client_terminate',
      statements: 1,
      upstreamUser: postgres.roles.app_rw.user,
    });
  });

  it("params 'clear' keeps the values and 'off' keeps none", async () => {
    const clear = await connect(await proxyWith('clear'), 'ext-clear');
    await clear.query('select $1::text', ['visible']);
    await clear.end();
    const off = await connect(await proxyWith('off'), 'ext-off');
    await off.query('select $1::text', ['hidden']);
    await off.end();
    const clearRecord = await until(() => recordsOf('ext-clear').find((e) => e.outcome === 'ok'));
    expect(clearRecord).toMatchObject({ paramsMode: 'clear', params: ['visible'] });
    const offRecord = await until(() => recordsOf('ext-off').find((e) => e.outcome === 'ok'));
    expect(offRecord.params).toBeUndefined();
    expect(JSON.stringify(offRecord)).not.toContain('hidden');
  });

  it('a statement the client cancels is recorded as cancelled, with the server error', async () => {
    const proxy = await proxyWith('hashed');
    const client = await connect(proxy, 'cancel-test');
    const key = client as unknown as { processID: number; secretKey: number };
    const sleeping = client.query('select pg_sleep(30)').catch((error: { code?: string }) => error.code);
    await sleep(300);
    const cancel = net.connect({ host: '127.0.0.1', port: proxy.port });
    await new Promise((resolve) => cancel.once('connect', resolve));
    cancel.end(serialize.cancel(key.processID, key.secretKey));
    expect(await sleeping).toBe('57014');
    await client.query('select 1');
    await client.end();
    const records = await until(() => {
      const r = recordsOf('cancel-test');
      return r.length === 2 && r.every((e) => e.outcome !== 'pending') ? r : undefined;
    });
    expect(records[0]).toMatchObject({
      text: 'select pg_sleep(30)',
      cancelled: true,
      sqlstate: '57014',
      outcome: 'error',
    });
    expect(records[1]!.cancelled).toBeUndefined();
  });

  it("a session the server terminates (pg_terminate_backend) ends as 'admin_kill'", async () => {
    const proxy = await proxyWith('hashed');
    const client = await connect(proxy, 'kill-test');
    const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    const admin = new pg.Client({
      host: postgres.host,
      port: postgres.port,
      database: 'app',
      ...postgres.superuser,
    });
    await admin.connect();
    await admin.query('select pg_terminate_backend($1)', [pid]);
    await admin.end();
    const sessionId = (await until(() => recordsOf('kill-test')[0])).sessionId;
    const closed = await until(() =>
      controlPlane.events.find(
        (e): e is SessionClosedEvent => e.type === 'session_closed' && e.sessionId === sessionId,
      ),
    );
    expect(closed.reason).toBe('admin_kill');
    await client.end().catch(() => {});
  });

  it('a client that closes its connection ends as network_loss, not admin_kill', async () => {
    const proxy = await proxyWith('hashed');
    const client = await connect(proxy, 'drop-test');
    await client.query('select 1');
    (client as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    const sessionId = (await until(() => recordsOf('drop-test')[0])).sessionId;
    const closed = await until(() =>
      controlPlane.events.find(
        (e): e is SessionClosedEvent => e.type === 'session_closed' && e.sessionId === sessionId,
      ),
    );
    expect(closed.reason).toBe('network_loss');
  });
});

describe('hash chain of a session the real relay ran', () => {
  it('chains a refusal completed before a pipelined statement still running, and anchors the close', async () => {
    const proxy = await proxyWith('hashed');
    const previous = controlPlane.decider;
    controlPlane.decider = (request) =>
      /drop/i.test(request.statement.text)
        ? { action: 'deny', ruleId: 'no-drop', reason: 'no drops', policyVersion: 'test' }
        : previous(request);
    try {
      const { client } = await RawClient.connect({
        host: '127.0.0.1',
        port: proxy.port,
        user: 'alice@example.com',
        database: 'app',
        password: 'good-token',
        parameters: { application_name: 'chain-pipeline' },
      });
      // One pipeline: a slow SELECT, then a Parse the policy refuses, then a quick SELECT. The
      // refusal completes (seq 2) while seq 1 still runs on the server.
      client.send(
        serialize.parse({ name: '', text: 'select pg_sleep(0.2)' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ name: 'd', text: 'drop table nothing' }),
        serialize.parse({ name: '', text: 'select 1' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      );
      await client.untilReady();
      client.send(serialize.query('select 2'), serialize.end());
      await client.untilClosed();
      const closed = await until(() =>
        controlPlane.events.find(
          (e): e is SessionClosedEvent =>
            e.type === 'session_closed' &&
            recordsOf('chain-pipeline').some((r) => r.sessionId === e.sessionId),
        ),
      );
      const records = recordsOf('chain-pipeline');
      const refused = records.find((r) => r.decision === 'deny')!;
      const slow = records.find((r) => r.text === 'select pg_sleep(0.2)')!;
      // the chain follows the order the proxy completed them: the refusal came first
      expect(refused.seq).toBeGreaterThan(slow.seq);
      expect(refused.chainIndex).toBeLessThan(slow.chainIndex!);
      expect(closed).toMatchObject({ chainLength: records.length });
      const verdict = verifySessionChain(
        closed.sessionId,
        { openedAt: 'x', closedAt: closed.at, chainLength: closed.chainLength, chainHead: closed.chainHead },
        records as unknown as Array<Record<string, unknown>>,
      );
      expect(verdict).toMatchObject({ status: 'intact', links: records.length });
    } finally {
      controlPlane.decider = previous;
    }
  });
});
