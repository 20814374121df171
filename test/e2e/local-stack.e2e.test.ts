/**
 * The product as a user runs it: the dev OIDC issuer, the control-plane API with its DynamoDB
 * audit store, the proxy and a real PostgreSQL, driven by psql, node-postgres and pgbench.
 */
import { DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import { createHttpControlPlane } from '../../proxy/control-plane-http.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { readOrCreateIssuerKeys, signToken } from '../../scripts/local/oidc-issuer.ts';
import { type CountingRelay, startCountingRelay } from '../fixtures/counting-relay.ts';
import {
  startTestPostgres,
  startTestStack,
  type TestPostgres,
  type TestStack,
} from '../fixtures/local-stack.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let postgres: TestPostgres;
let relay: CountingRelay;
let stack: TestStack;
let dynamo: DynamoDBClient;

beforeAll(async () => {
  postgres = await startTestPostgres();
  // Every upstream connection goes through the counting relay.
  relay = await startCountingRelay(postgres);
  stack = await startTestStack({ postgres: { ...postgres, port: relay.port } });
  dynamo = new DynamoDBClient({
    endpoint: stack.dynamo.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
});
afterAll(async () => {
  dynamo?.destroy();
  await stack?.stop();
  await relay?.close();
  await postgres?.stop();
});

const psqlUrl = (user: string, port = stack.proxy.port) =>
  `host=127.0.0.1 port=${port} dbname=app user=${user} sslmode=require`;

function proxyClient(
  user: string,
  password: string,
  ssl: pg.ClientConfig['ssl'] = { rejectUnauthorized: false },
) {
  return new pg.Client({ host: '127.0.0.1', port: stack.proxy.port, database: 'app', user, password, ssl });
}

async function psql(token: string, user: string, args: string[], input?: string, port?: number) {
  return runCommand('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', psqlUrl(user, port), ...args], {
    env: { PGPASSWORD: token, PGCONNECT_TIMEOUT: '10' },
    input,
  });
}

describe('a developer with a token', () => {
  it('queries through the proxy with psql, as the role its group maps to', async () => {
    const token = await stack.issuer.issueToken({ email: 'alice@example.com', groups: ['engineering'] });
    const out = await psql(token, 'alice@example.com', [
      '-c',
      'select count(*) from customers',
      '-c',
      'select current_user',
    ]);
    expect(out.stderr).toBe('');
    expect(out.stdout.trim().split('\n')).toEqual(['5000', 'app_rw']);
  });

  it('gets the same rows as a direct connection', async () => {
    const token = await stack.issuer.issueToken({ email: 'alice@example.com' });
    // verify-full against the local certificate, as the Cursor instructions say
    const viaProxy = proxyClient('alice@example.com', token, { ca: stack.certPem, servername: 'localhost' });
    const direct = new pg.Client({
      host: postgres.host,
      port: postgres.port,
      database: 'app',
      ...postgres.roles.app_rw,
    });
    await viaProxy.connect();
    await direct.connect();
    const sql =
      'select c.id, c.name, c.email, count(o.id) as orders from customers c left join orders o on o.customer_id = c.id group by c.id order by c.id limit 100';
    expect((await viaProxy.query(sql)).rows).toEqual((await direct.query(sql)).rows);
    await viaProxy.end();
    await direct.end();
  });

  it('copies in and out with psql', async () => {
    // creating the table is DDL, which the default policy leaves to admins without approval
    const token = await stack.issuer.issueToken({ email: 'root@example.com', groups: ['admins'] });
    const script = [
      'create temp table imported (id int, name text);',
      '\\copy imported from stdin',
      '1\tone',
      '2\ttwo',
      '\\.',
      'select count(*) from imported;',
      'copy (select id from customers order by id limit 3) to stdout;',
    ].join('\n');
    const out = await psql(token, 'root@example.com', ['-f', '-'], script);
    expect(out.stderr).toBe('');
    expect(out.stdout.trim().split('\n')).toEqual(['2', '1', '2', '3']);
  });

  it('is refused what the default policy holds or denies, and keeps its session', async () => {
    const token = await stack.issuer.issueToken({ email: 'alice@example.com' });
    const client = proxyClient('alice@example.com', token);
    await client.connect();
    for (const text of [
      'DrOp /* sneaky */ TABLE orders',
      'delete from orders',
      "select pg_read_file('/etc/passwd')",
    ]) {
      const error = await client.query(text).catch((e) => e);
      expect(error.code, text).toBe('42501');
    }
    expect((await client.query('select count(*)::int as n from orders')).rows[0].n).toBeGreaterThan(0);
    await client.end();
  });

  it('runs pgbench in simple and prepared mode without failures', async () => {
    const token = await stack.issuer.issueToken({ email: 'admin@example.com', groups: ['admins'] });
    const url = psqlUrl('admin@example.com');
    const init = await runCommand('pgbench', ['-i', '-s', '1', '-q', url], { env: { PGPASSWORD: token } });
    expect(init.code, init.stderr).toBe(0);
    const runs = [
      ['-S', '-M', 'simple'],
      ['-S', '-M', 'extended'],
      ['-S', '-M', 'prepared'],
      ['-M', 'prepared'], // the TPC-B-like default: updates, inserts, transactions
    ];
    for (const flags of runs) {
      const run = await runCommand('pgbench', [...flags, '-c', '4', '-j', '2', '-T', '2', url], {
        env: { PGPASSWORD: token },
      });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/number of failed transactions: 0 /);
      expect(
        Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1]),
      ).toBeGreaterThan(10);
    }
  });

  it('is recorded in the DynamoDB audit trail with its identity', async () => {
    const token = await stack.issuer.issueToken({ email: 'audited@example.com', actor: 'agent' });
    const marker = `audit-marker-${Date.now()}`;
    const out = await psql(token, 'audited@example.com', ['-c', `select '${marker}'`]);
    expect(out.code).toBe(0);
    const tables = tableNames(stack.dynamo.tablePrefix);
    // Events are shipped in batches off the statement path: wait until the proxy has none left.
    await waitFor(() => stack.proxy.running.pendingAuditEvents === 0, 60_000);
    const found = await dynamo.send(
      new QueryCommand({
        TableName: tables.events,
        IndexName: 'by_principal',
        KeyConditionExpression: 'principal = :p',
        ExpressionAttributeValues: { ':p': { S: 'audited@example.com' } },
      }),
    );
    const items = (found.Items ?? []) as Record<string, { S?: string; N?: string }>[];
    const statement = items.find((i) => i.text?.S?.includes(marker));
    expect(statement).toBeDefined();
    expect(statement!.principal?.S).toBe('audited@example.com');
    expect(statement!.commandTag?.S).toBe('SELECT 1');
    const session = await dynamo.send(
      new QueryCommand({
        TableName: tables.sessions,
        KeyConditionExpression: 'sessionId = :s',
        ExpressionAttributeValues: { ':s': { S: statement!.sessionId!.S! } },
      }),
    );
    const record = session.Items?.[0];
    expect(record?.principal?.S).toBe('audited@example.com');
    expect(record?.actor?.S).toBe('agent');
    expect(record?.role?.S).toBe('developer');
  });
});

describe('tokens that must not get in', () => {
  async function refusal(password: string, user = 'mallory@example.com') {
    const before = relay.connections;
    const client = proxyClient(user, password);
    const error = (await client.connect().then(
      () => undefined,
      (e) => e,
    )) as { code?: string; message: string } | undefined;
    await client.end().catch(() => undefined);
    expect(relay.connections, 'no upstream connection may be opened').toBe(before);
    expect(error, 'the connection must be refused').toBeDefined();
    return error!;
  }

  const hour = 3600;
  const base = { email: 'mallory@example.com', groups: ['engineering'] };

  it('an expired token', async () => {
    const token = await stack.issuer.issueToken({
      ...base,
      ttlSeconds: 60,
      now: new Date(Date.now() - 2 * hour * 1000),
    });
    const error = await refusal(token);
    expect(error.code).toBe('28P01');
    expect(error.message).toMatch(/expired/);
  });

  it('a token not valid yet', async () => {
    const token = await stack.issuer.issueToken({ ...base, now: new Date(Date.now() + hour * 1000) });
    expect((await refusal(token)).code).toBe('28P01');
  });

  it('a tampered token (payload changed, signature kept)', async () => {
    const token = await stack.issuer.issueToken(base);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    claims.groups = ['admins'];
    const forged = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
    expect((await refusal(forged)).code).toBe('28P01');
  });

  it('a token from another issuer, even signed with a key the real issuer publishes', async () => {
    const { keys } = await readOrCreateIssuerKeys(stack.dataDir);
    const token = await signToken(keys[0]!, 'https://evil.example.com', {
      ...base,
      ttlSeconds: hour,
      audience: stack.issuer.audience,
    });
    const error = await refusal(token);
    expect(error.code).toBe('28P01');
  });

  it('a token for another audience', async () => {
    const token = await stack.issuer.issueToken({ ...base, audience: 'some-other-app' });
    expect((await refusal(token)).code).toBe('28P01');
  });

  it('an unsigned token (alg: none)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${enc({ alg: 'none', typ: 'JWT' })}.${enc({
      iss: stack.issuer.url,
      aud: stack.issuer.audience,
      sub: 'dev|mallory@example.com',
      email: 'mallory@example.com',
      groups: ['admins'],
      iat: now,
      exp: now + hour,
    })}.`;
    expect((await refusal(token)).code).toBe('28P01');
  });

  it('an empty password', async () => {
    // node-postgres sends an empty PasswordMessage when asked with password ''
    const error = await refusal('');
    expect(['28P01', undefined]).toContain(error.code);
  });

  it('a valid token presented under another user name', async () => {
    const token = await stack.issuer.issueToken({ email: 'alice@example.com' });
    const error = await refusal(token, 'bob@example.com');
    expect(error.code).toBe('28000');
    expect(error.message).toMatch(/does not match/);
  });

  it('a valid token whose groups grant no role', async () => {
    const token = await stack.issuer.issueToken({ ...base, groups: ['marketing'] });
    const error = await refusal(token);
    expect(error.code).toBe('28000');
  });

  it('keeps accepting tokens after the issuer rotates its key', async () => {
    await stack.issuer.rotateKey();
    // The verifier refetches the JWKS for an unknown key at most once per cooldown (1 s locally).
    await new Promise((r) => setTimeout(r, 1_100));
    const token = await stack.issuer.issueToken({ email: 'alice@example.com' });
    const out = await psql(token, 'alice@example.com', ['-c', 'select 1']);
    expect(out.stdout.trim()).toBe('1');
  });
});

describe('the proxy talking to the API over HTTP (the production wiring)', () => {
  let remote: RunningProxy;
  beforeAll(async () => {
    remote = await startProxy({
      host: '127.0.0.1',
      port: 0,
      tls: {
        cert: stack.certPem,
        key: await import('node:fs').then((fs) => fs.readFileSync(`${stack.dataDir}/tls/key.pem`, 'utf8')),
      },
      allowPlaintext: false,
      upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
      credentials: () => postgres.roles.app_ro,
      controlPlane: createHttpControlPlane({
        baseUrl: stack.api.url,
        fetch: localSigningFetch(stack.api.serviceToken),
      }),
      proxyId: 'remote-test',
    });
  });
  afterAll(async () => {
    await remote?.close();
  });

  it('authenticates, decides and audits through the HTTP API', async () => {
    const token = await stack.issuer.issueToken({ email: 'remote@example.com' });
    const out = await psql(
      token,
      'remote@example.com',
      ['-c', 'select count(*) from orders'],
      undefined,
      remote.port,
    );
    expect(out.stderr).toBe('');
    expect(Number(out.stdout.trim())).toBeGreaterThan(0);
    const bad = await psql('not-a-token', 'remote@example.com', ['-c', 'select 1'], undefined, remote.port);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/token/);
  });
});
