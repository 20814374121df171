/**
 * Sessions end with their token, their maximum age, and their principal's access, measured on the
 * server: a real PostgreSQL behind the real proxy, the real control-plane service with the real
 * OIDC verifier (jose) against a test issuer, the principals directory on dynalite, and psql and
 * node-postgres as clients. Re-checks run every half second here (PGWARDEN_SESSION_RECHECK_SECONDS).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../functions/adapters/dynamodb-principal-directory.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import type { SessionLifetimeOptions } from '../../proxy/session-lifetime.ts';
import { type LocalPostgres, startLocalPostgres } from '../../scripts/local/postgres.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import { StatementDecider } from '../../shared/decide.ts';
import { parsePolicy } from '../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { RecordingAuditStore } from '../fakes/approvals.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';
import { startTestIssuer, type TestIssuer } from '../fakes/oidc-issuer.ts';
import { runCommand } from '../fixtures/run-command.ts';

const POLICY = `
version: lifetime-1
default: { action: allow }
rules:
  - id: no-customers-for-contractors
    match: { groups: [contractors], relations: [customers] }
    action: deny
    reason: contractors do not read customers
  - id: mallory-reads-nothing
    match: { principals: [mallory@example.com] }
    action: deny
    reason: mallory is suspended
`;

let dir: string;
let postgres: LocalPostgres;
let db: LocalDynamoDb;
let idp: TestIssuer;
let directory: DynamoDbPrincipalDirectory;
let admin: pg.Client;
let audit: RecordingAuditStore;
/** re-checks every 0.5 s, a long maximum age */
let proxy: RunningProxy;
/** a maximum session age of 2 s */
let shortLived: RunningProxy;
let counter = 0;

beforeAll(async () => {
  await loadSqlParser();
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-lifetime-'));
  [postgres, db, idp] = await Promise.all([
    startLocalPostgres({ dataDir: dir }),
    startDynamoDb(),
    startTestIssuer(),
  ]);
  const tables = approvalTableNames('lifetime-');
  await ensureApprovalTables(db.client, tables);
  directory = new DynamoDbPrincipalDirectory(db.client, tables.principals);
  audit = new RecordingAuditStore();
  const service = createControlPlaneService({
    verifier: createOidcVerifier({ issuer: idp.issuer, audience: idp.audience }),
    store: audit,
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => new Date(),
    newId: () => `id-${++counter}-${Math.random().toString(36).slice(2)}`,
    decider: new StatementDecider(parsePolicy(POLICY)),
    principals: directory,
  });
  const cert = await ensureLocalCertificate(dir);
  const start = (lifetime: SessionLifetimeOptions) =>
    startProxy({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: cert.cert, key: cert.key },
      allowPlaintext: false,
      upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
      credentials: () => postgres.roles.app_rw,
      controlPlane: service,
      proxyId: 'lifetime-test',
      lifetime,
    });
  [proxy, shortLived] = await Promise.all([
    start({ recheckSeconds: 0.5, maxSessionSeconds: 3600 }),
    start({ recheckSeconds: 0, maxSessionSeconds: 2 }),
  ]);
  admin = new pg.Client({
    host: postgres.host,
    port: postgres.port,
    database: 'app',
    ...postgres.roles.app_admin,
  });
  await admin.connect();
  await admin.query('create table lifetime_marks (note text)');
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await Promise.all([proxy?.close(), shortLived?.close()]);
  await Promise.all([postgres?.stop(), db?.stop(), idp?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

interface Person {
  sub: string;
  email?: string;
  groups: string[];
}

function token(person: Person, options: { expiresIn?: number; iat?: number; email?: 'omit' } = {}) {
  return idp.sign(
    {
      sub: person.sub,
      ...(person.email !== undefined && options.email !== 'omit' ? { email: person.email } : {}),
      groups: person.groups,
      ...(options.iat === undefined ? {} : { iat: options.iat }),
    },
    { expiresIn: options.expiresIn ?? 600 },
  );
}

async function connect(
  password: string,
  user: string,
  options: { port?: number; applicationName?: string } = {},
): Promise<{ client: pg.Client; ended: Promise<Error> }> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: options.port ?? proxy.port,
    database: 'app',
    user,
    password,
    ssl: { rejectUnauthorized: false },
    application_name: options.applicationName ?? `lifetime-${++counter}`,
  });
  // The FATAL that ends an idle session arrives as the client's 'error' event.
  const ended = new Promise<Error>((resolve) => client.on('error', resolve));
  await client.connect();
  return { client, ended };
}

/** The session's backend as the server sees it (pg_stat_activity), by application_name. */
async function backends(applicationName: string): Promise<number> {
  const { rows } = await admin.query(
    'select count(*)::int as n from pg_stat_activity where application_name = $1',
    [applicationName],
  );
  return rows[0].n as number;
}

/** Polls the server until no backend of the session is left (the test fails if one stays). */
async function backendGone(applicationName: string): Promise<number> {
  for (let i = 0; i < 100 && (await backends(applicationName)) > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return backends(applicationName);
}

/** Polls a condition the proxy reaches asynchronously (audit records are shipped in batches). */
async function until(condition: () => boolean): Promise<void> {
  for (let n = 0; n < 100 && !condition(); n++) await new Promise((resolve) => setTimeout(resolve, 100));
  expect(condition()).toBe(true);
}

async function marks(note: string): Promise<number> {
  const { rows } = await admin.query('select count(*)::int as n from lifetime_marks where note = $1', [note]);
  return rows[0].n as number;
}

describe("a session ends at its token's exp", () => {
  it('ends an idle session with a FATAL that says why; the open transaction is rolled back on the server', async () => {
    const person = { sub: 'exp-idle', email: 'exp-idle@example.com', groups: ['engineering'] };
    const app = `exp-idle-${++counter}`;
    const { client, ended } = await connect(await token(person, { expiresIn: 3 }), person.email, {
      applicationName: app,
    });
    await client.query('begin');
    await client.query("insert into lifetime_marks values ('exp-idle')");
    expect(await backends(app)).toBe(1);
    const error = (await ended) as Error & { code?: string };
    expect(error.message).toMatch(
      /pgwarden: your token expired at \d{4}-\d\d-\d\dT.*; reconnect with a fresh token/,
    );
    expect(error.code).toBe('57P01');
    expect(await backendGone(app)).toBe(0);
    expect(await marks('exp-idle')).toBe(0);
    expect(audit.events).toContainEqual(
      expect.objectContaining({ type: 'session_opened', subject: 'exp-idle' }),
    );
    await until(() =>
      audit.events.some(
        (e) => e.type === 'session_closed' && e.subject === 'exp-idle' && e.reason === 'token_expired',
      ),
    );
  });

  it('ends a statement still running at exp: the token is the authority, the server stops it', async () => {
    const person = { sub: 'exp-busy', email: 'exp-busy@example.com', groups: ['engineering'] };
    const app = `exp-busy-${++counter}`;
    const { client, ended } = await connect(await token(person, { expiresIn: 3 }), person.email, {
      applicationName: app,
    });
    void ended;
    await client.query('begin');
    await client.query("insert into lifetime_marks values ('exp-busy')");
    const running = client.query('select pg_sleep(60)').then(
      () => undefined,
      (error: Error) => error,
    );
    const error = (await running) as (Error & { code?: string }) | undefined;
    expect(error?.message).toMatch(/your token expired at/);
    expect(await backendGone(app)).toBe(0);
    expect(await marks('exp-busy')).toBe(0);
  });

  it('ends a session in the middle of a result stream without corrupting the client protocol', async () => {
    const person = { sub: 'exp-stream', email: 'exp-stream@example.com', groups: ['engineering'] };
    const result = await runCommand(
      'psql',
      [
        '-X',
        `host=127.0.0.1 port=${proxy.port} dbname=app user=${person.email} sslmode=require application_name=exp-stream`,
        '-c',
        "\\copy (select repeat('x', 1000) from generate_series(1, 100000000)) to '/dev/null'",
      ],
      {
        env: { PGPASSWORD: await token(person, { expiresIn: 3 }), PGCONNECT_TIMEOUT: '10' },
        timeoutMs: 60_000,
      },
    );
    expect(result.code).not.toBe(0);
    // between two messages psql reads the FATAL; inside one, it sees the connection end: never garbage
    expect(result.stderr).toMatch(
      /your token expired at|server closed the connection unexpectedly|connection to server .* lost/,
    );
    expect(result.stderr).not.toMatch(/invalid message|unexpected message type|lost synchronization/i);
    expect(await backendGone('exp-stream')).toBe(0);
  });

  it('psql prints the reason when its statement is cut off', async () => {
    const person = { sub: 'exp-psql', email: 'exp-psql@example.com', groups: ['engineering'] };
    const result = await runCommand(
      'psql',
      [
        '-X',
        `host=127.0.0.1 port=${proxy.port} dbname=app user=${person.email} sslmode=require application_name=exp-psql`,
        '-c',
        'select pg_sleep(30)',
      ],
      {
        env: { PGPASSWORD: await token(person, { expiresIn: 3 }), PGCONNECT_TIMEOUT: '10' },
        timeoutMs: 40_000,
      },
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/FATAL: +pgwarden: your token expired at .*; reconnect with a fresh token/);
    expect(await backendGone('exp-psql')).toBe(0);
  });

  it('refuses to open a session with a token that expired moments ago (within the clock tolerance)', async () => {
    const person = { sub: 'exp-late', email: 'exp-late@example.com', groups: ['engineering'] };
    const late = await token(person, { expiresIn: -5 });
    await expect(connect(late, person.email)).rejects.toThrow(/your token expired at/);
  });
});

describe('the maximum session age', () => {
  it('ends a session whose token lives for years', async () => {
    const person = { sub: 'old-session', email: 'old@example.com', groups: ['engineering'] };
    const app = `max-age-${++counter}`;
    const tenYears = 10 * 365 * 24 * 3600; // beyond setTimeout's 24.8 days: reached in steps
    const { client, ended } = await connect(await token(person, { expiresIn: tenYears }), person.email, {
      port: shortLived.port,
      applicationName: app,
    });
    await client.query('select 1');
    const error = (await ended) as Error & { code?: string };
    expect(error.message).toMatch(/maximum session age \(2 s\)/);
    expect(error.code).toBe('57P01');
    expect(await backendGone(app)).toBe(0);
  });
});

describe('re-checks of open sessions', () => {
  it('ends the session of an engineer removed from the group behind their role (administrator change)', async () => {
    const person = { sub: 'removed-eng', email: 'removed@example.com', groups: ['engineering'] };
    const app = `removed-${++counter}`;
    const { client, ended } = await connect(await token(person), person.email, { applicationName: app });
    await client.query('select 1');
    await directory.change(
      { issuer: idp.issuer, subject: person.sub },
      { groups: ['marketing'] },
      'admin@example.com',
      new Date(Date.now() + 1_000),
    );
    const error = (await ended) as Error & { code?: string };
    expect(error.message).toMatch(/no longer in a group that grants the role "developer"/);
    expect(error.code).toBe('57P01');
    expect(await backendGone(app)).toBe(0);
    // the same, still unexpired token cannot open a new session
    await expect(
      connect(await token(person, { iat: Math.floor(Date.now() / 1000) - 60 }), person.email),
    ).rejects.toThrow(/none of your groups \(marketing\)/);
  });

  it('ends it when the person presents a newer token without the group (the IdP removed it)', async () => {
    const person = { sub: 'idp-removed', email: 'idp-removed@example.com', groups: ['engineering'] };
    const app = `idp-removed-${++counter}`;
    const now = Math.floor(Date.now() / 1000);
    const first = await token(person, { iat: now - 30 });
    const { client, ended } = await connect(first, person.email, { applicationName: app });
    await client.query('select 1');
    const newer = await token({ ...person, groups: ['sales'] }, { iat: now - 10 });
    await expect(connect(newer, person.email)).rejects.toThrow(/none of your groups \(sales\)/);
    const error = await ended;
    expect(error.message).toMatch(/no longer in a group that grants the role "developer"/);
    expect(await backendGone(app)).toBe(0);
  });

  it("ends a disabled principal's session, and refuses their reconnection with the same token", async () => {
    const person = { sub: 'disabled-eng', email: 'disabled@example.com', groups: ['engineering'] };
    const app = `disabled-${++counter}`;
    const valid = await token(person);
    const { client, ended } = await connect(valid, person.email, { applicationName: app });
    await client.query('select 1');
    await directory.change(
      { issuer: idp.issuer, subject: person.sub },
      { disabled: true, reason: 'laptop stolen' },
      'admin@example.com',
      new Date(),
    );
    const error = await ended;
    expect(error.message).toMatch(/access through pgwarden was disabled on .* \(laptop stolen\)/);
    await until(() =>
      audit.events.some(
        (e) => e.type === 'session_closed' && e.subject === person.sub && e.reason === 'access_revoked',
      ),
    );
    expect(await backendGone(app)).toBe(0);
    await expect(connect(valid, person.email)).rejects.toThrow(/disabled/);
    // another token of the same person (no email this time) is the same principal: refused too
    await expect(connect(await token(person, { email: 'omit' }), person.sub)).rejects.toThrow(/disabled/);
  });

  it('refreshes the groups decisions read, without ending the session', async () => {
    const person = { sub: 'new-contractor', email: 'contractor@example.com', groups: ['engineering'] };
    const { client } = await connect(await token(person), person.email);
    expect((await client.query('select count(*) from customers')).rows[0].count).not.toBeUndefined();
    await directory.change(
      { issuer: idp.issuer, subject: person.sub },
      { groups: ['engineering', 'contractors'] },
      'admin@example.com',
      new Date(Date.now() + 1_000),
    );
    let refused: Error | undefined;
    for (let i = 0; i < 50 && refused === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      refused = await client.query('select count(*) from customers').then(
        () => undefined,
        (error: Error) => error,
      );
    }
    expect(refused?.message).toMatch(/contractors do not read customers/);
    expect((await client.query('select 1 as still_open')).rows[0].still_open).toBe(1);
    await client.end();
    // every statement record names the principal by issuer and subject (the email is display)
    await until(() =>
      audit.events.some(
        (e) =>
          e.type === 'statement' &&
          e.subject === person.sub &&
          e.issuer === idp.issuer &&
          e.principal === person.email &&
          e.ruleId === 'no-customers-for-contractors',
      ),
    );
  });
});

describe('two tokens of one person', () => {
  const mallory = { sub: 'mallory-1', email: 'mallory@example.com', groups: ['engineering'] };

  it('a token without the email connects as the subject, and the rule that names the email still applies', async () => {
    // pgwarden learns mallory's verified email from a token that carries it
    const withEmail = await connect(await token(mallory), mallory.email);
    await expect(withEmail.client.query('select 1')).rejects.toThrow(/mallory is suspended/);
    await withEmail.client.end();

    const bare = await token(mallory, { email: 'omit' });
    await expect(connect(bare, mallory.email)).rejects.toThrow(/connect with user=mallory-1/);
    const withoutEmail = await connect(bare, mallory.sub);
    await expect(withoutEmail.client.query('select 1')).rejects.toThrow(/mallory is suspended/);
    await withoutEmail.client.end();
  });

  it('a subject with URL-unsafe characters works as the user of a connection URL (Cursor, MCP servers)', async () => {
    const bare = await idp.sign({ sub: 'dev|cursor@example.com', groups: ['engineering'] });
    const user = encodeURIComponent('dev|cursor@example.com');
    const client = new pg.Client({
      connectionString: `postgres://${user}:${bare}@127.0.0.1:${proxy.port}/app?sslmode=no-verify`,
    });
    await client.connect();
    expect((await client.query('select current_user as login')).rows[0].login).toBe(
      postgres.roles.app_rw.user,
    );
    await client.end();
  });

  it('an unverified email names nobody: not as the startup user, not for a rule', async () => {
    const unverified = await idp.sign({
      sub: 'eve-1',
      email: 'mallory@example.com',
      email_verified: false,
      groups: ['engineering'],
    });
    await expect(connect(unverified, 'mallory@example.com')).rejects.toThrow(/connect with user=eve-1/);
    const eve = await connect(unverified, 'eve-1');
    expect((await eve.client.query('select 1 as ok')).rows[0].ok).toBe(1);
    await eve.client.end();
  });
});
