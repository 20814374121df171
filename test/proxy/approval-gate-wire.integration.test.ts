/**
 * A held statement on the wire: a real PostgreSQL, the real proxy with the default policy and the
 * approval gate, driven by psql and node-postgres. The approvals API is a controllable stand-in
 * here (the real one is exercised end to end in test/e2e/approvals.e2e.test.ts), so each test
 * decides exactly when and how the approval ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApprovalsApi, createApprovalGate } from '../../proxy/approval-gate.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { type LocalPostgres, startLocalPostgres } from '../../scripts/local/postgres.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import type { ApprovalView, CreateApprovalRequest } from '../../shared/approvals.ts';
import { StatementDecider } from '../../shared/decide.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** Approvals that stay pending until the test decides them; waits answer the moment it does. */
class ControlledApprovals implements ApprovalsApi {
  readonly requests: CreateApprovalRequest[] = [];
  readonly approvals = new Map<string, ApprovalView>();
  /** the signal of every wait, in order: aborted when the held client cancels or goes away */
  readonly waitSignals: Array<AbortSignal | undefined> = [];
  /** the answer to the next request, instead of a new pending approval */
  nextRequest: ApprovalView | Error | undefined;
  private readonly waiters = new Map<string, Array<() => void>>();

  async request(body: CreateApprovalRequest): Promise<ApprovalView> {
    this.requests.push(body);
    const scripted = this.nextRequest;
    this.nextRequest = undefined;
    if (scripted instanceof Error) throw scripted;
    if (scripted) return scripted;
    const id = `appr-${this.requests.length}`;
    const approval: ApprovalView = {
      id,
      status: 'pending',
      principal: body.session.principal.name,
      sessionId: body.session.sessionId,
      database: body.session.database,
      applicationName: body.session.applicationName,
      text: body.statement.text,
      fingerprint: body.decision.fingerprint ?? '',
      textHash: '',
      ruleId: body.decision.ruleId,
      reason: body.decision.reason ?? '',
      approvers: [body.decision.approval?.approvers ?? 'reviewers'],
      requestedAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      holdTimeoutSeconds: body.decision.approval?.timeoutSeconds ?? 300,
    };
    this.approvals.set(id, approval);
    return approval;
  }

  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalView> {
    this.waitSignals.push(signal);
    return new Promise((resolve) => {
      const answer = () => {
        clearTimeout(timer);
        resolve(this.approvals.get(id)!);
      };
      const timer = setTimeout(answer, timeoutMs);
      signal?.addEventListener('abort', answer, { once: true });
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), answer]);
    });
  }

  /** a request body as the proxy sends it, for scripting answers */
  requestLike(text: string): CreateApprovalRequest {
    return {
      session: {
        sessionId: 'earlier',
        principal: {
          name: 'alice@example.com',
          issuer: 'https://issuer.example',
          subject: 'alice@example.com',
          groups: ['engineering'],
          actor: 'person',
        },
        role: 'developer',
        roles: ['developer'],
        database: 'app',
        applicationName: 'psql',
      },
      statement: { text, protocol: 'simple' },
      decision: { action: 'require_approval', ruleId: 'approve-writes-without-where', policyVersion: 'v' },
    };
  }

  decide(id: string, change: Partial<ApprovalView>): void {
    this.approvals.set(id, { ...this.approvals.get(id)!, ...change });
    for (const wake of this.waiters.get(id) ?? []) wake();
    this.waiters.delete(id);
  }

  /** the id of the n-th approval asked for, once the proxy has asked */
  async held(n: number): Promise<string> {
    await waitFor(() => this.requests.length >= n, 10_000);
    return `appr-${n}`;
  }
}

let dir: string;
let postgres: LocalPostgres;
let proxy: RunningProxy;
let admin: pg.Client;
let approvals: ControlledApprovals;
const controlPlane = new InMemoryControlPlane();

beforeAll(async () => {
  await loadSqlParser();
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-approval-wire-'));
  postgres = await startLocalPostgres({ dataDir: dir });
  const cert = await ensureLocalCertificate(dir);
  const decider = new StatementDecider();
  controlPlane.decider = (request) => decider.decide(request);
  approvals = new ControlledApprovals();
  proxy = await startProxy({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key },
    allowPlaintext: false,
    upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
    credentials: () => postgres.roles.app_rw,
    controlPlane,
    // the gate's own hold is capped for the timeout test; the others are decided well before
    gate: createApprovalGate({
      client: { request: (b) => approvals.request(b), wait: (...a) => approvals.wait(...a) },
      maxHoldSeconds: 3,
    }),
    proxyId: 'approval-wire-test',
  });
  admin = new pg.Client({
    host: postgres.host,
    port: postgres.port,
    database: 'app',
    ...postgres.roles.app_admin,
  });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await proxy?.close();
  await postgres?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let table: string;
let tables = 0;
beforeEach(async () => {
  approvals = new ControlledApprovals();
  table = `held_${++tables}`;
  await admin.query(`create table ${table} as select g as id from generate_series(1, 5) g`);
});

const rowsLeft = async () => Number((await admin.query(`select count(*) from ${table}`)).rows[0].count);

function psql(sql: string) {
  return runCommand(
    'psql',
    [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      `host=127.0.0.1 port=${proxy.port} dbname=app user=alice@example.com sslmode=require`,
      '-c',
      sql,
    ],
    { env: { PGPASSWORD: 'good-token', PGCONNECT_TIMEOUT: '10' }, timeoutMs: 30_000 },
  );
}

async function client() {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    database: 'app',
    user: 'alice@example.com',
    password: 'good-token',
    ssl: { rejectUnauthorized: false },
  });
  await c.connect();
  return c;
}

describe('a statement held for approval', () => {
  it('waits in psql, shows who must approve, and runs when approved: DELETE 5', async () => {
    const run = psql(`delete from ${table}`);
    const id = await approvals.held(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(await rowsLeft(), 'nothing runs while held').toBe(5);
    approvals.decide(id, { status: 'approved', decidedBy: 'rita@example.com' });
    const out = await run;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe('DELETE 5');
    expect(out.stderr).toContain(
      `NOTICE:  pgwarden: statement held until a member of "reviewers" approves it (approval ${id})`,
    );
    expect(out.stderr).toContain(`npm run -s pgwarden -- approvals approve ${id}`);
    expect(await rowsLeft()).toBe(0);
    expect(approvals.requests[0]).toMatchObject({
      statement: { text: `delete from ${table}`, protocol: 'simple' },
      decision: { action: 'require_approval', ruleId: 'approve-writes-without-where' },
      session: { principal: { name: 'alice@example.com' } },
    });
  });

  it('fails in psql with the reviewer and the reason when denied, and nothing is deleted', async () => {
    const run = psql(`delete from ${table}`);
    const id = await approvals.held(1);
    approvals.decide(id, { status: 'denied', decidedBy: 'rita@example.com', denyReason: 'not on a Friday' });
    const out = await run;
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      `ERROR:  pgwarden: denied by rita@example.com: not on a Friday (approval ${id})`,
    );
    expect(await rowsLeft()).toBe(5);
  });

  it('delivers the notice while held, keeps later messages until the decision, then runs them in order', async () => {
    const c = await client();
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const held = c.query(`delete from ${table}`);
    const after = c.query(`select count(*)::int as n from ${table}`);
    const id = await approvals.held(1);
    await waitFor(() => notices.length === 1, 10_000);
    expect(notices[0]).toContain(id);
    let settled = false;
    void after.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(settled, 'the next statement waits behind the held one').toBe(false);
    approvals.decide(id, { status: 'approved', decidedBy: 'rita@example.com' });
    expect((await held).rowCount).toBe(5);
    expect((await after).rows[0].n).toBe(0);
    await c.end();
  });

  it('holds a prepared statement (extended protocol) the same way', async () => {
    const c = await client();
    const held = c.query({ name: 'wipe', text: `delete from ${table}` });
    const id = await approvals.held(1);
    expect(approvals.requests[0]!.statement.protocol).toBe('extended');
    approvals.decide(id, { status: 'approved', decidedBy: 'rita@example.com' });
    expect((await held).rowCount).toBe(5);
    await c.end();
  });

  it('aborts the transaction it is in when denied, as a PostgreSQL error would', async () => {
    const c = await client();
    await c.query('begin');
    await c.query(`insert into ${table} values (6)`);
    const held = c.query(`delete from ${table}`).catch((e: { code?: string }) => e);
    approvals.decide(await approvals.held(1), { status: 'denied', decidedBy: 'rita@example.com' });
    expect(((await held) as { code?: string }).code).toBe('42501');
    const next = await c.query('select 1').catch((e: { code?: string }) => e);
    expect((next as { code?: string }).code).toBe('25P02');
    await c.query('rollback');
    expect(await rowsLeft()).toBe(5);
    await c.end();
  });

  it('times out with the approval id and how to retry, and the session goes on', async () => {
    const c = await client();
    const started = Date.now();
    const error = await c.query(`delete from ${table}`).catch((e: { code?: string; message: string }) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(error).toMatchObject({ code: '42501' });
    expect((error as Error).message).toMatch(/approval appr-1 was not decided within 3 s/);
    expect((error as Error).message).toMatch(/run the same statement again/);
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    expect(await rowsLeft()).toBe(5);
    await c.end();
  });

  it('runs a retry at once when the API hands it the earlier approval', async () => {
    approvals.nextRequest = {
      ...(await approvals.request(approvals.requestLike(`delete from ${table}`))),
      status: 'approved',
      decidedBy: 'rita@example.com',
    };
    const out = await psql(`delete from ${table}`);
    expect(out.stdout.trim()).toBe('DELETE 5');
    expect(out.stderr).not.toContain('NOTICE');
    expect(approvals.requests).toHaveLength(2);
  });

  it('fails closed with SQLSTATE 58000 when the approvals API cannot be reached', async () => {
    approvals.nextRequest = new PgWardenError('CONTROL_PLANE_UNAVAILABLE', 'down');
    const c = await client();
    const error = await c.query(`delete from ${table}`).catch((e: { code?: string; message: string }) => e);
    expect(error).toMatchObject({ code: '58000' });
    expect((error as Error).message).toMatch(/could not reach its approvals service/);
    expect(await rowsLeft()).toBe(5);
    await c.end();
  });

  it('records the outcome in the audit trail: released as allow, denied as deny', async () => {
    const before = controlPlane.statements().length;
    const run = psql(`delete from ${table}`);
    approvals.decide(await approvals.held(1), { status: 'approved', decidedBy: 'rita@example.com' });
    await run;
    const run2 = psql(`delete from ${table}`);
    approvals.decide(await approvals.held(2), { status: 'denied', decidedBy: 'rita@example.com' });
    await run2;
    const mine = () =>
      controlPlane
        .statements()
        .slice(before)
        .filter((e) => e.text === `delete from ${table}`);
    // audit events are shipped in batches off the statement path
    await waitFor(() => mine().length === 2, 10_000);
    const events = mine();
    expect(events.map((e) => [e.decision, e.ruleId, e.commandTag ?? e.sqlstate])).toEqual([
      ['allow', 'approve-writes-without-where', 'DELETE 5'],
      ['deny', 'approve-writes-without-where', '42501'],
    ]);
  });
});

describe('a held statement whose client gives up', () => {
  it('ends the hold with 57014 on a CancelRequest, and the session goes on', async () => {
    const c = await client();
    const held = c.query(`delete from ${table}`).catch((error: unknown) => error);
    const id = await approvals.held(1);
    await waitFor(() => approvals.waitSignals.length > 0);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const socket = net.connect(proxy.port, '127.0.0.1', () => {
        const cancel = Buffer.alloc(16);
        cancel.writeInt32BE(16, 0);
        cancel.writeInt32BE(80877102, 4);
        cancel.writeInt32BE(processID, 8);
        cancel.writeInt32BE(secretKey, 12);
        socket.end(cancel);
        resolve();
      });
    });
    const error = (await held) as { code?: string; message: string };
    expect(error.code).toBe('57014');
    expect(error.message).toContain(`while it waited for approval ${id}`);
    expect(approvals.waitSignals[0]?.aborted).toBe(true);
    expect(await rowsLeft()).toBe(5);
    // The held statement never reached the server, so the cancel must not go there either: it
    // would stop the next statement (here one that runs long enough to be hit) instead.
    expect((await c.query('select 1 as one from pg_sleep(0.3)')).rows[0].one).toBe(1);
    await c.end();
  });

  it('stops waiting when the client disconnects', async () => {
    const c = await client();
    c.on('error', () => {});
    c.query(`delete from ${table}`).catch(() => {});
    await approvals.held(1);
    await waitFor(() => approvals.waitSignals.length > 0);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await waitFor(() => approvals.waitSignals[0]?.aborted === true, 5_000);
    expect(await rowsLeft()).toBe(5);
  });
});
