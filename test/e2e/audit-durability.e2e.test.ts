/**
 * Nothing lost: real processes (the proxy as a child process, the API over HTTP, dynalite, an
 * embedded PostgreSQL) under load while the API or the proxy is killed. Every statement that reached
 * PostgreSQL must be in the audit store, once.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyChild } from '../../scripts/bench/proxy-child.ts';
import {
  type AuditFaultStack,
  type StoredStatement,
  startAuditFaultStack,
} from '../fixtures/audit-fault-stack.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

let stack: AuditFaultStack;
let admin: pg.Client;

beforeAll(async () => {
  stack = await startAuditFaultStack();
  admin = await stack.direct();
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await stack?.stop();
});

async function createTable(name: string): Promise<void> {
  await admin.query(`CREATE TABLE ${name} (id bigserial PRIMARY KEY, v text NOT NULL UNIQUE)`);
  await admin.query(`GRANT SELECT, INSERT ON ${name} TO app_rw`);
  await admin.query(`GRANT USAGE ON SEQUENCE ${name}_id_seq TO app_rw`);
}

interface LoadResult {
  /** values whose INSERT the client saw succeed */
  acknowledged: string[];
  /** values sent whose outcome the client never learned (connection lost) */
  inFlight: string[];
  errors: string[];
}

/** `clients` connections each inserting unique values as prepared statements until stopped. */
function startLoad(port: () => number, table: string, clients: number, tag: string) {
  let stopping = false;
  let connected = 0;
  const result: LoadResult = { acknowledged: [], inFlight: [], errors: [] };
  const workers = Array.from({ length: clients }, async (_, c) => {
    let client: pg.Client | undefined;
    for (let i = 0; !stopping; i++) {
      if (!client) {
        try {
          client = await stack.connect(port());
          connected++;
        } catch {
          await sleep(50);
          continue;
        }
      }
      const value = `${tag}-${c}-${i}`;
      try {
        await client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: [value] });
        result.acknowledged.push(value);
      } catch (error) {
        // A SQLSTATE is the server's (or pgwarden's) answer; anything else is a lost connection.
        const code = (error as { code?: string }).code;
        if (code && /^[0-9A-Z]{5}$/.test(code)) result.errors.push(code);
        else result.inFlight.push(value);
        await client.end().catch(() => {});
        client = undefined;
      }
    }
    await client?.end().catch(() => {});
  });
  return {
    /** connections made so far (reconnections included) */
    connected: () => connected,
    /** statements acknowledged so far */
    acknowledged: () => result.acknowledged.length,
    async stop(): Promise<LoadResult> {
      stopping = true;
      await Promise.all(workers);
      return result;
    },
  };
}

async function drained(proxy: ProxyChild): Promise<void> {
  await waitFor(async () => (await proxy.stats()).pendingAuditEvents === 0, 60_000);
}

async function recordsFor(table: string): Promise<StoredStatement[]> {
  return (await stack.statements()).filter((s) => s.text.includes(table));
}

async function rowValues(table: string): Promise<string[]> {
  return (await admin.query<{ v: string }>(`SELECT v FROM ${table}`)).rows.map((r) => r.v);
}

describe('buffered audit (durable spool)', () => {
  it('the API killed mid-load and restarted: stored records == statements, all completed', async () => {
    const table = 'load_api_kill';
    await createTable(table);
    const proxy = await stack.startProxy();
    const load = startLoad(() => proxy.port, table, 4, 'a');
    await waitFor(async () => load.connected() === 4, 10_000);
    await sleep(500);
    await stack.api.stop();
    const atOutage = load.acknowledged();
    await sleep(1_500);
    const duringOutage = (await proxy.stats()).pendingAuditEvents;
    const ranDuringOutage = load.acknowledged() - atOutage;
    await stack.api.start();
    await sleep(800);
    const result = await load.stop();
    await drained(proxy);
    const stats = await proxy.stop();

    expect(result.errors).toEqual([]);
    // Statements kept running while the API was down, and their records waited in the spool.
    expect(ranDuringOutage).toBeGreaterThan(0);
    expect(duringOutage).toBeGreaterThan(0);
    expect(stats?.shipper?.failedAttempts).toBeGreaterThan(0);
    const records = await recordsFor(table);
    const rows = await rowValues(table);
    expect(rows.length).toBe(result.acknowledged.length);
    expect(records.length).toBe(result.acknowledged.length);
    // The completed record replaced each intent.
    expect(records.filter((r) => r.outcome !== 'ok')).toEqual([]);
    // Parameters are hashed by default, and each hash is a row's value.
    expect(new Set(records.map((r) => r.params?.[0]))).toEqual(new Set(rows.map(sha256)));
    // Every session's hash chain holds across the outage, retries included, and its close anchors it.
    const verdicts = await stack.verify(records.map((r) => r.sessionId));
    expect(verdicts.filter((v) => v.status !== 'intact')).toEqual([]);
    expect(verdicts.reduce((sum, v) => sum + v.links, 0)).toBe(records.length);
  }, 90_000);

  // 'write' forwards once the intent is in the kernel (write(2)): that survives SIGKILL too.
  it.each(['always', 'write'] as const)(
    'the proxy SIGKILLed mid-load (sync %s) and restarted on its spool: every statement that reached PostgreSQL is stored',
    async (sync) => {
      const table = `load_proxy_kill_${sync}`;
      await createTable(table);
      const audit = { sync, spoolDir: `${stack.spoolDir}-kill-${sync}` };
      let proxy = await stack.startProxy(audit);
      const load = startLoad(() => proxy.port, table, 4, 'b');
      await waitFor(async () => load.connected() === 4, 10_000);
      // Keep the API from draining the spool (sessions are open: opening one needs the API), so the
      // kill leaves unshipped records behind.
      await stack.api.stop();
      await sleep(1_000);
      const beforeKill = (await proxy.stats()).pendingAuditEvents;
      proxy.kill();
      await sleep(300);
      await stack.api.start();
      proxy = await stack.startProxy(audit);
      await sleep(800);
      const result = await load.stop();
      await drained(proxy);
      await proxy.stop();

      expect(beforeKill).toBeGreaterThan(0);
      expect(result.errors).toEqual([]);
      const records = await recordsFor(table);
      const rows = await rowValues(table);
      const recorded = new Set(records.map((r) => r.params?.[0]));
      // Every row in PostgreSQL has its record, and every acknowledged statement too.
      expect(rows.filter((v) => !recorded.has(sha256(v)))).toEqual([]);
      expect(result.acknowledged.filter((v) => !recorded.has(sha256(v)))).toEqual([]);
      // No phantom records: at most the statements the clients sent.
      expect(records.length).toBeGreaterThanOrEqual(result.acknowledged.length);
      expect(records.length).toBeLessThanOrEqual(result.acknowledged.length + result.inFlight.length);
      expect(recorded.size).toBe(records.length);
      // The chains survive the crash: a killed session's chain ends where its spool ends (no close,
      // so 'open'), never broken; the sessions after the restart are whole and anchored.
      const verdicts = await stack.verify(records.map((r) => r.sessionId));
      expect(verdicts.filter((v) => v.status === 'broken')).toEqual([]);
      expect(verdicts.some((v) => v.status === 'open')).toBe(true);
      expect(verdicts.some((v) => v.status === 'intact')).toBe(true);
    },
    120_000,
  );

  it('a graceful stop with the API down leaves the records in the spool, and the next start ships them', async () => {
    const table = 'load_graceful';
    await createTable(table);
    const audit = { spoolDir: `${stack.spoolDir}-graceful` };
    let proxy = await stack.startProxy(audit);
    const client = await stack.connect(proxy.port);
    await stack.api.stop();
    for (let i = 0; i < 20; i++)
      await client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: [`g-${i}`] });
    const stats = await proxy.stop();
    await client.end().catch(() => {});
    expect(stats?.pendingAuditEvents).toBeGreaterThan(0);
    expect(await recordsFor(table)).toEqual([]);
    await stack.api.start();
    proxy = await stack.startProxy(audit);
    await drained(proxy);
    await proxy.stop();
    const records = await recordsFor(table);
    expect(records).toHaveLength(20);
    expect(records.every((r) => r.outcome === 'ok')).toBe(true);
  }, 90_000);

  it('a batch the API stored but whose answer was lost is sent again without duplicating records', async () => {
    const table = 'load_retry';
    await createTable(table);
    const proxy = await stack.startProxy();
    const client = await stack.connect(proxy.port);
    stack.api.failResponsesAfterStoring(3);
    for (let i = 0; i < 50; i++)
      await client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: [`c-${i}`] });
    await client.end();
    await drained(proxy);
    const stats = await proxy.stop();

    expect(stats?.shipper?.failedAttempts).toBeGreaterThanOrEqual(3);
    const records = await recordsFor(table);
    expect(records.length).toBe(50);
    expect(new Set(records.map((r) => `${r.sessionId}/${r.seq}`)).size).toBe(50);
    expect(records.every((r) => r.outcome === 'ok')).toBe(true);
  }, 90_000);

  it('refuses statements with SQLSTATE 53100 when the spool is full, and runs them again once it drains', async () => {
    const table = 'load_spool_full';
    await createTable(table);
    const proxy = await stack.startProxy({ spoolDir: `${stack.spoolDir}-full`, maxSpoolBytes: 40_000 });
    const client = await stack.connect(proxy.port);
    await stack.api.stop();
    let accepted = 0;
    let refusal: { code?: string; message?: string } | undefined;
    for (let i = 0; i < 500 && !refusal; i++) {
      try {
        await client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: [`f-${i}`] });
        accepted++;
      } catch (error) {
        refusal = error as { code?: string };
      }
    }
    expect(refusal?.code).toBe('53100');
    expect(refusal?.message).toMatch(/audit spool is full/);
    expect((await rowValues(table)).length).toBe(accepted);
    await stack.api.start();
    await drained(proxy);
    await client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: ['after'] });
    await client.end();
    await drained(proxy);
    await proxy.stop();
    expect((await rowValues(table)).length).toBe(accepted + 1);
    // The refused statement is recorded as refused; every row has its record.
    const records = await recordsFor(table);
    expect(records.filter((r) => r.outcome === 'refused').map((r) => r.sqlstate)).toEqual(['53100']);
    expect(records.filter((r) => r.outcome === 'ok').length).toBe(accepted + 1);
  }, 90_000);
});

describe('strict audit', () => {
  it('API down: statements are refused with 58000 and nothing reaches PostgreSQL; the session stays usable', async () => {
    const table = 'load_strict';
    await createTable(table);
    const proxy = await stack.startProxy({ mode: 'strict', spoolDir: `${stack.spoolDir}-strict` });
    const client = await stack.connect(proxy.port);
    const insert = (v: string) =>
      client.query({ name: 'ins', text: `INSERT INTO ${table}(v) VALUES ($1)`, values: [v] });
    await insert('s-1');
    await stack.api.stop();
    const refused: Array<{ code?: string; message?: string }> = [];
    for (let i = 2; i <= 5; i++) await insert(`s-${i}`).catch((error) => refused.push(error));
    await client.query(`INSERT INTO ${table}(v) VALUES ('simple')`).catch((error) => refused.push(error));
    expect(refused.map((e) => e.code)).toEqual(['58000', '58000', '58000', '58000', '58000']);
    expect(refused[0]?.message).toMatch(/strict audit mode/);
    expect(await rowValues(table)).toEqual(['s-1']);
    await stack.api.start();
    await insert('s-6');
    await client.end();
    await drained(proxy);
    await proxy.stop();
    expect((await rowValues(table)).sort()).toEqual(['s-1', 's-6']);
    const records = await recordsFor(table);
    expect(records.filter((r) => r.outcome === 'ok')).toHaveLength(2);
    expect(records.filter((r) => r.outcome === 'refused')).toHaveLength(5);
  }, 90_000);
});
