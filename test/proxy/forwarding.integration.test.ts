/**
 * The proxy forwards the PostgreSQL protocol faithfully: real node-postgres and raw-protocol
 * clients through the proxy get what they get from a direct connection.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { RawClient, summarize } from '../fixtures/raw-client.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let h: ProxyHarness;

beforeAll(async () => {
  h = await startProxyHarness();
});
afterAll(async () => {
  await h?.stop();
});

async function both<T>(run: (client: import('pg').Client) => Promise<T>): Promise<{ direct: T; proxied: T }> {
  const direct = await h.direct();
  const proxied = await h.viaProxy();
  try {
    return { direct: await run(direct), proxied: await run(proxied) };
  } finally {
    await direct.end();
    await proxied.end();
  }
}

async function raw() {
  const { client } = await RawClient.connect({
    host: '127.0.0.1',
    port: h.proxy.port,
    user: 'alice@example.com',
    database: 'app',
    password: 'good-token',
  });
  return client;
}

describe('simple query protocol', () => {
  it('returns the same rows as a direct connection', async () => {
    const { direct, proxied } = await both((c) => c.query('select * from customers order by id limit 200'));
    expect(proxied.rows).toHaveLength(200);
    expect(proxied.rows).toEqual(direct.rows);
    expect(proxied.fields.map((f) => f.name)).toEqual(direct.fields.map((f) => f.name));
  });

  it('runs several statements in one Query message', async () => {
    const client = await raw();
    client.send(serialize.query('select 1; select 2, 3; select count(*) from orders'));
    const replies = summarize(await client.untilReady());
    expect(replies).toEqual(['T', 'D', 'C:SELECT 1', 'T', 'D', 'C:SELECT 1', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    client.close();
  });

  it('passes startup parameters through (application_name, options)', async () => {
    const c = await h.viaProxy({
      application_name: 'cursor-agent',
      options: '-c statement_timeout=1234',
    } as never);
    const r = await c.query('select current_setting($1) as app, current_setting($2) as timeout', [
      'application_name',
      'statement_timeout',
    ]);
    expect(r.rows[0]).toEqual({ app: 'cursor-agent', timeout: '1234ms' });
    await c.end();
  });
});

describe('extended query protocol', () => {
  it('binds parameters and reuses named prepared statements', async () => {
    const { direct, proxied } = await both(async (c) => {
      const out = [];
      for (const id of [1, 2, 3]) {
        out.push(
          (
            await c.query({
              name: 'by-id',
              text: 'select id, email from customers where id = $1',
              values: [id],
            })
          ).rows,
        );
      }
      return out;
    });
    expect(proxied).toEqual(direct);
    expect(proxied[2]).toHaveLength(1);
  });

  it('returns binary-format results byte for byte', async () => {
    // binary is a pg option its typings do not list
    const query = {
      text: 'select id, created_at, 1.5::float8 as f from customers order by id limit 20',
      binary: true,
    };
    const { direct, proxied } = await both(async (c) => (await c.query(query)).rows);
    expect(proxied).toEqual(direct);
    expect(proxied).toHaveLength(20);
    expect(proxied[0].f).toBe(1.5);
  });

  it('handles a pipeline with an error in the middle like PostgreSQL', async () => {
    const client = await raw();
    const step = (text: string) => [serialize.parse({ text }), serialize.bind({}), serialize.execute({})];
    client.send(
      ...step('select 1'),
      ...step('select 1/0'),
      ...step('select 3'),
      serialize.sync(),
      ...step('select 4'),
      serialize.sync(),
    );
    const replies = summarize(await client.untilReady(2));
    // 1/0 of constants fails while planning, i.e. at Bind: no BindComplete for it.
    expect(replies).toEqual([
      '1',
      '2',
      'D',
      'C:SELECT 1',
      '1',
      'E:22012',
      'Z:I',
      '1',
      '2',
      'D',
      'C:SELECT 1',
      'Z:I',
    ]);
    client.close();
    await waitFor(() => h.controlPlane.statements().some((e) => e.text === 'select 4'));
    const events = h.controlPlane.statements();
    const byText = (t: string) => events.find((e) => e.text === t)!;
    expect(byText('select 1').commandTag).toBe('SELECT 1');
    expect(byText('select 1/0').sqlstate).toBe('22012');
    expect(byText('select 3').errorMessage).toMatch(/not executed/);
    expect(byText('select 4').rows).toBe(1);
  });

  it('suspends and resumes portals (Execute with a row limit)', async () => {
    const client = await raw();
    client.send(
      serialize.parse({ text: 'select g from generate_series(1,5) g' }),
      serialize.bind({}),
      serialize.execute({ rows: 2 }),
      serialize.execute({ rows: 2 }),
      serialize.execute({ rows: 2 }),
      serialize.sync(),
    );
    expect(summarize(await client.untilReady())).toEqual([
      '1',
      '2',
      'D',
      'D',
      's',
      'D',
      'D',
      's',
      'D',
      'C:SELECT 1',
      'Z:I',
    ]);
    client.close();
  });

  it('answers Describe and Close, and Flush without Sync', async () => {
    const client = await raw();
    client.send(
      serialize.parse({ name: 's1', text: 'select $1::int as n' }),
      serialize.describe({ type: 'S', name: 's1' }),
      serialize.flush(),
    );
    const first = [await client.next(), await client.next(), await client.next()];
    expect(summarize(first)).toEqual(['1', 't', 'T']);
    client.send(serialize.close({ type: 'S', name: 's1' }), serialize.sync());
    expect(summarize(await client.untilReady())).toEqual(['3', 'Z:I']);
    client.close();
  });
});

describe('streams, notifications and cancel', () => {
  it('streams a 64 MB value through', async () => {
    const c = await h.viaProxy();
    const r = await c.query(
      "select length(repeat('x', 64 * 1024 * 1024)) as n, repeat('y', 64 * 1024 * 1024) as v",
    );
    expect(r.rows[0].v.length).toBe(64 * 1024 * 1024);
    await c.end();
  });

  it('delivers LISTEN/NOTIFY between sessions', async () => {
    const listener = await h.viaProxy();
    const notifier = await h.viaProxy();
    await listener.query('listen pgwarden_test');
    const got = new Promise<string>((resolve) =>
      listener.on('notification', (n) => resolve(n.payload ?? '')),
    );
    await notifier.query("select pg_notify('pgwarden_test', 'hello')");
    expect(await got).toBe('hello');
    await listener.end();
    await notifier.end();
  });

  it('maps a CancelRequest with the proxy key to the upstream backend', async () => {
    const c = await h.viaProxy();
    const key = c as unknown as { processID: number; secretKey: number };
    const sleeping = c.query('select pg_sleep(30)').then(
      () => 'finished',
      (error: { code?: string }) => error.code,
    );
    await new Promise((r) => setTimeout(r, 300));
    const cancel = net.connect({ host: '127.0.0.1', port: h.proxy.port });
    await new Promise((r) => cancel.once('connect', r));
    cancel.end(serialize.cancel(key.processID, key.secretKey));
    expect(await sleeping).toBe('57014');
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    await c.end();
  });

  it('ignores a CancelRequest with a wrong secret', async () => {
    const c = await h.viaProxy();
    const key = c as unknown as { processID: number; secretKey: number };
    const sleeping = c.query('select pg_sleep(1.5)').then(
      () => 'finished',
      (error: { code?: string }) => error.code,
    );
    await new Promise((r) => setTimeout(r, 200));
    const cancel = net.connect({ host: '127.0.0.1', port: h.proxy.port });
    await new Promise((r) => cancel.once('connect', r));
    cancel.end(serialize.cancel(key.processID, key.secretKey ^ 1));
    expect(await sleeping).toBe('finished');
    await c.end();
  });
});

describe('audit events', () => {
  it('records each statement with its outcome and the session lifecycle', async () => {
    const c = await h.viaProxy();
    await c.query('select id from customers order by id limit 7');
    await c.query('select * from no_such_table').catch(() => undefined);
    await c.end();
    await waitFor(() => h.controlPlane.statements().some((e) => e.text === 'select * from no_such_table'));
    const events = h.controlPlane.statements();
    const ok = events.find((e) => e.text === 'select id from customers order by id limit 7')!;
    expect(ok).toMatchObject({
      principal: 'alice@example.com',
      decision: 'allow',
      commandTag: 'SELECT 7',
      rows: 7,
    });
    expect(ok.durationMs).toBeGreaterThanOrEqual(0);
    const failed = events.find((e) => e.text === 'select * from no_such_table')!;
    expect(failed.sqlstate).toBe('42P01');
    await waitFor(() =>
      h.controlPlane.events.some((e) => e.type === 'session_closed' && e.sessionId === ok.sessionId),
    );
    const closed = h.controlPlane.events.find(
      (e) => e.type === 'session_closed' && e.sessionId === ok.sessionId,
    );
    expect(closed).toMatchObject({ reason: 'client_terminate', statements: 2 });
  });
});
