/**
 * Policies changed at run time, end to end: the default pack enforced for psql and node-postgres
 * (simple and extended protocol), then an admin applies a new policy with the CLI and the same
 * open session gets the new rule's 42501 without any restart, with the version in the audit trail.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import { DEFAULT_POLICY_VERSION } from '../../shared/decide.ts';
import { startTestStack, type TestStack } from '../fixtures/local-stack.ts';
import { RawClient, summarize } from '../fixtures/raw-client.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let stack: TestStack;
let dynamo: DynamoDBClient;
let dir = '';

beforeAll(async () => {
  stack = await startTestStack();
  dir = await mkdtemp(join(tmpdir(), 'pgwarden-policy-e2e-'));
  dynamo = new DynamoDBClient({
    endpoint: stack.dynamo.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}, 120_000);

afterAll(async () => {
  dynamo?.destroy();
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

const client = (user: string, password: string) =>
  new pg.Client({
    host: '127.0.0.1',
    port: stack.proxy.port,
    database: 'app',
    user,
    password,
    ssl: { rejectUnauthorized: false },
  });

const cli = (token: string, ...args: string[]) =>
  runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'policy', ...args], {
    env: { PGWARDEN_API_URL: stack.api.url, PGWARDEN_TOKEN: token },
    timeoutMs: 60_000,
  });

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('the statement was not refused');
    },
    (error: { code?: string; message: string; detail?: string }) => error,
  );

const NO_ORDERS = `# developers lose access to orders; everything else as before
version: no-orders-1
default: { action: allow }
rules:
  - id: no-orders-for-developers
    match:
      roles: [developer]
      relations: [orders]
    action: deny
    reason: developers may no longer read orders
`;

describe('the default pack, end to end', () => {
  it('is enforced for psql (simple protocol)', async () => {
    const token = await stack.issuer.issueToken({ email: 'psql@example.com' });
    const url = `host=127.0.0.1 port=${stack.proxy.port} dbname=app user=psql@example.com sslmode=require`;
    const psql = (sql: string) =>
      runCommand('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', url, '-c', sql], {
        env: { PGPASSWORD: token, PGCONNECT_TIMEOUT: '10' },
      });
    const ok = await psql('select count(*) > 0 from orders');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe('t');
    const denied = await psql("select pg_read_file('/etc/passwd')");
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/pgwarden: functions that touch the database server's files/);
  });

  it('is enforced for node-postgres with parameters (extended protocol), and the session stays usable', async () => {
    const token = await stack.issuer.issueToken({ email: 'ext@example.com' });
    const c = client('ext@example.com', token);
    await c.connect();
    try {
      const rows = await c.query('select count(*)::int as n from orders where id > $1', [0]);
      expect(rows.rows[0].n).toBeGreaterThan(0);
      for (const [text, values] of [
        ['select pg_read_file($1)', ['/etc/passwd']],
        ['select pg_ls_dir($1)', ['.']],
        ['select set_config($1, $2, false)', ['role', 'postgres']],
      ] as const) {
        const error = await refusal(c.query(text, [...values]));
        expect(error.code, text).toBe('42501');
        // set_config with a name only known at Bind: the gateway refuses it before any policy rule
        expect(error.detail, text).toMatch(/^rule: (deny-|gateway-pinned-setting$)/);
      }
      // a named prepared statement refused at Parse: a later use of the name fails cleanly
      const named = await refusal(
        c.query({ name: 'readfile', text: 'select pg_read_file($1)', values: ['/x'] }),
      );
      expect(named.code).toBe('42501');
      expect((await c.query('select $1::int + 1 as n', [41])).rows[0].n).toBe(42);
    } finally {
      await c.end();
    }
  });
});

describe('a policy applied at run time', () => {
  it('reaches an open session without a restart, for simple, extended and SQL-prepared statements', {
    timeout: 90_000,
  }, async () => {
    const devToken = await stack.issuer.issueToken({ email: 'dev@example.com' });
    const adminToken = await stack.issuer.issueToken({ email: 'boss@example.com', groups: ['admins'] });
    const dev = client('dev@example.com', devToken);
    await dev.connect();
    try {
      const simple = 'select count(*)::int as n from orders';
      const extended = 'select count(*)::int as n from orders where id > $1';
      expect((await dev.query(simple)).rows[0].n).toBeGreaterThan(0);
      expect((await dev.query(extended, [0])).rows[0].n).toBeGreaterThan(0);
      // prepared under the default pack, in SQL, in an earlier message
      await dev.query('PREPARE count_orders AS SELECT count(*) FROM orders');
      await dev.query('PREPARE launder AS SELECT count(*) FROM orders');
      // a named extended-protocol statement: node-postgres Parses it once, then only Binds it
      const named = { name: 'orders_named', text: extended, values: [0] };
      expect((await dev.query(named)).rows[0].n).toBeGreaterThan(0);
      const { client: raw } = await RawClient.connect({
        host: '127.0.0.1',
        port: stack.proxy.port,
        user: 'dev@example.com',
        database: 'app',
        password: devToken,
      });
      raw.send(serialize.query('PREPARE raw_orders AS SELECT count(*) FROM orders'));
      expect(summarize(await raw.untilReady())).toEqual(['C:PREPARE', 'Z:I']);
      expect((await dev.query('EXECUTE count_orders')).rows).toHaveLength(1);

      const shown = await cli(adminToken, 'show');
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stderr).toContain(`version ${DEFAULT_POLICY_VERSION} (the built-in default)`);

      // a non-admin cannot apply; an invalid file is refused locally with its line
      const file = join(dir, 'no-orders.yaml');
      await writeFile(file, NO_ORDERS);
      const forbidden = await cli(devToken, 'apply', file);
      expect(forbidden.code).toBe(1);
      expect(forbidden.stderr).toMatch(/403 FORBIDDEN/);
      const badFile = join(dir, 'bad.yaml');
      await writeFile(badFile, NO_ORDERS.replace('action: deny', 'action: dney'));
      const bad = await cli(adminToken, 'apply', badFile);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/line 9, column \d+: rules\[0\]\.action: unknown action "dney"/);

      const applied = await cli(adminToken, 'apply', file);
      expect(applied.code, applied.stderr).toBe(0);
      const version = applied.stdout.trim().split('\n').pop() ?? '';
      expect(version).toMatch(/^v\d+$/);

      // same session, no reconnect: within the refresh interval the new rule applies
      let error: { code?: string; message: string; detail?: string } | undefined;
      const deadline = Date.now() + 10_000;
      while (error === undefined && Date.now() < deadline) {
        error = await dev.query(simple).then(
          () => undefined,
          (e) => e,
        );
        if (error === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      expect(error?.code).toBe('42501');
      expect(error?.message).toBe('pgwarden: developers may no longer read orders');
      expect(error?.detail).toBe('rule: no-orders-for-developers');
      const ext = await refusal(dev.query(extended, [0]));
      expect(ext.code).toBe('42501');
      expect(ext.detail).toBe('rule: no-orders-for-developers');
      // a named statement Parsed under the old policy is decided again at Bind
      const rebound = await refusal(dev.query(named));
      expect(rebound.code).toBe('42501');
      expect(rebound.detail).toBe('rule: no-orders-for-developers');
      // EXECUTE of a statement prepared under the old policy is decided under the new one
      const executed = await refusal(dev.query('EXECUTE count_orders'));
      expect(executed.code).toBe('42501');
      expect(executed.detail).toBe('rule: no-orders-for-developers');
      // re-PREPAREing the name with a harmless body fails upstream (the name is taken), so the
      // server still holds the orders query: EXECUTE must still be refused
      const taken = await refusal(dev.query('PREPARE launder AS SELECT 1'));
      expect(taken.code).toBe('42P05');
      const laundered = await refusal(dev.query('EXECUTE launder'));
      expect(laundered.detail).toBe('rule: no-orders-for-developers');
      // and an EXECUTE of a name pgwarden never saw prepared is refused
      const unknown = await refusal(dev.query('EXECUTE never_prepared'));
      expect(unknown.detail).toBe('rule: unknown-prepared-statement');
      // the extended protocol cannot run the SQL-prepared statement either: Bind without Parse
      // the extended protocol cannot run an SQL-prepared statement either (Bind without Parse)
      try {
        raw.send(serialize.query('PREPARE via_bind AS SELECT 1'));
        expect(summarize(await raw.untilReady())).toEqual(['C:PREPARE', 'Z:I']);
        raw.send(
          // prepared in this session before the change, denied now
          serialize.bind({ statement: 'raw_orders' }),
          serialize.execute({}),
          serialize.sync(),
          // prepared in another session: pgwarden never saw it here (fail closed)
          serialize.bind({ statement: 'count_orders' }),
          serialize.execute({}),
          serialize.sync(),
          // prepared here under the current policy: runs, and the session is still usable
          serialize.bind({ statement: 'via_bind' }),
          serialize.execute({}),
          serialize.sync(),
        );
        const replies = await raw.untilReady(3);
        expect(summarize(replies)).toEqual([
          'E:42501',
          'Z:I',
          'E:26000', // pgwarden has no record of that statement in this session
          'Z:I',
          '2',
          'D',
          'C:SELECT 1',
          'Z:I',
        ]);
        expect(replies[0]?.body.toString()).toContain('rule: no-orders-for-developers');
        expect(replies[2]?.body.toString()).toContain(
          '"count_orders" does not exist in this session as far as pgwarden knows',
        );
      } finally {
        raw.close();
      }
      // other tables are untouched
      expect((await dev.query('select count(*)::int as n from customers')).rows[0].n).toBeGreaterThan(0);

      const history = await cli(adminToken, 'history');
      expect(history.code, history.stderr).toBe(0);
      expect(history.stdout).toMatch(
        new RegExp(`^${version}\\t.*\\tboss@example.com\\tno-orders-1\\t1 rules$`, 'm'),
      );

      // the audit trail names the rule and the version that refused the statement
      await waitFor(() => stack.proxy.running.pendingAuditEvents === 0, 60_000);
      const found = await dynamo.send(
        new QueryCommand({
          TableName: tableNames(stack.dynamo.tablePrefix).events,
          IndexName: 'by_principal',
          KeyConditionExpression: 'principal = :p',
          ExpressionAttributeValues: { ':p': { S: 'dev@example.com' } },
        }),
      );
      const records = (found.Items ?? []).filter((i) => i.text?.S === simple);
      expect(records.map((r) => [r.decision?.S, r.policyVersion?.S, r.ruleId?.S])).toEqual(
        expect.arrayContaining([
          ['allow', DEFAULT_POLICY_VERSION, expect.any(String)],
          ['deny', version, 'no-orders-for-developers'],
        ]),
      );
      const denied = records.find((r) => r.decision?.S === 'deny');
      expect(denied?.fingerprint?.S).toMatch(/^[0-9a-f]{16}$/);
      expect(denied?.kinds?.L?.map((k) => k.S)).toEqual(['select']);
    } finally {
      await dev.end();
    }
  });
});
