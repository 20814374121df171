/**
 * Done when: a mixed workload through the proxy (pgbench simple and prepared, psql with a refused
 * statement, node-postgres simple and extended) is found in full, with who ran it, through what and
 * what happened, through the API and through the CLI.
 * Run alone: npx vitest run test/e2e/audit-query.e2e.test.ts
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../fixtures/local-stack.ts';
import { runCommand } from '../fixtures/run-command.ts';

type Record_ = Record<string, unknown> & {
  eventId: string;
  sessionId: string;
  seq: number;
  principal: string;
  applicationName: string;
  text: string;
  decision: string;
  ruleId: string;
  outcome?: string;
  sqlstate?: string;
};

let stack: TestStack;
let auditorToken = '';
let since = '';
/** what each client ran, by application_name */
const expected = new Map<string, { principal: string; statements: number }>();

const CLIENTS = 2;
const TRANSACTIONS = 100; // per client: 200 transactions per pgbench run, 4 statements each
const BENCH_SCRIPT = [
  '\\set aid random(1, 500)',
  '\\set delta random(-500, 500)',
  'BEGIN;',
  'UPDATE bench_accounts SET abalance = abalance + :delta WHERE aid = :aid;',
  'SELECT abalance FROM bench_accounts WHERE aid = :aid;',
  'END;',
  '',
].join('\n');

const conninfo = (user: string) =>
  `host=127.0.0.1 port=${stack.proxy.port} dbname=app user=${user} sslmode=require`;

beforeAll(async () => {
  stack = await startTestStack();
  since = new Date(Date.now() - 1000).toISOString();
  auditorToken = await stack.issuer.issueToken({ email: 'audrey@example.com', groups: ['auditors'] });
  // The table pgbench works on, made directly (not through the proxy: not part of the workload).
  const admin = new pg.Client({
    host: stack.postgres.host,
    port: stack.postgres.port,
    database: 'app',
    ...stack.postgres.superuser,
  });
  await admin.connect();
  await admin.query('CREATE TABLE bench_accounts (aid int PRIMARY KEY, abalance int NOT NULL DEFAULT 0)');
  await admin.query('INSERT INTO bench_accounts (aid) SELECT generate_series(1, 500)');
  await admin.query('GRANT SELECT, UPDATE ON bench_accounts TO app_rw');
  await admin.end();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

async function pgbench(mode: 'simple' | 'prepared'): Promise<void> {
  const principal = 'bench@example.com';
  const applicationName = `e2e-pgbench-${mode}`;
  const token = await stack.issuer.issueToken({ email: principal });
  const script = join(stack.dataDir, `bench-${mode}.sql`);
  await writeFile(script, BENCH_SCRIPT);
  const run = await runCommand(
    'pgbench',
    [
      '-n',
      '-M',
      mode,
      '-f',
      script,
      '-c',
      String(CLIENTS),
      '-j',
      '2',
      '-t',
      String(TRANSACTIONS),
      conninfo(principal),
    ],
    { env: { PGPASSWORD: token, PGAPPNAME: applicationName }, timeoutMs: 120_000 },
  );
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout).toMatch(/number of failed transactions: 0 /);
  const processed = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1]);
  expect(processed).toBe(CLIENTS * TRANSACTIONS);
  expected.set(applicationName, { principal, statements: processed * 4 });
}

describe('a mixed workload through the proxy', () => {
  it('runs pgbench in simple and prepared mode', async () => {
    await pgbench('simple');
    await pgbench('prepared');
  }, 240_000);

  it('runs psql, where a DROP TABLE is held for approval and so refused (42501)', async () => {
    const principal = 'pat@example.com';
    const token = await stack.issuer.issueToken({ email: principal });
    const script = [
      'select 1;',
      'select count(*) from customers;',
      'DROP TABLE orders;',
      "select 'after the refusal, still connected';",
      '',
    ].join('\n');
    const out = await runCommand('psql', ['-X', '-q', '-A', '-t', conninfo(principal), '-f', '-'], {
      env: { PGPASSWORD: token, PGAPPNAME: 'e2e-psql' },
      input: script,
    });
    expect(out.stderr).toMatch(/ERROR: {2}.*(approval|approve)/i);
    expect(out.stdout).toContain('after the refusal, still connected');
    expected.set('e2e-psql', { principal, statements: 4 });
  });

  it('runs node-postgres with the simple and the extended protocol', async () => {
    const principal = 'nora@example.com';
    const token = await stack.issuer.issueToken({ email: principal, actor: 'agent' });
    const client = new pg.Client({
      host: '127.0.0.1',
      port: stack.proxy.port,
      database: 'app',
      user: principal,
      password: token,
      ssl: { rejectUnauthorized: false },
      application_name: 'e2e-node-pg',
    });
    await client.connect();
    for (let i = 0; i < 10; i += 1) await client.query(`select ${i} as simple_n`);
    for (let i = 0; i < 15; i += 1) {
      const { rows } = await client.query('select $1::int + 1 as extended_n', [i]);
      expect(rows[0].extended_n).toBe(i + 1);
    }
    await client.end();
    expected.set('e2e-node-pg', { principal, statements: 25 });
  });
});

async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${stack.api.url}${path}`, {
    headers: { authorization: `Bearer ${auditorToken}` },
  });
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}

async function allEvents(params: Record<string, string>): Promise<Record_[]> {
  const events: Record_[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ ...params, limit: '1000', ...(cursor ? { cursor } : {}) });
    const page: { events: Record_[]; nextCursor: string | null } = await api(`/v1/audit/events?${query}`);
    events.push(...page.events);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return events;
}

function countByApplication(events: Record_[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) counts[e.applicationName] = (counts[e.applicationName] ?? 0) + 1;
  return counts;
}

const expectedCounts = () =>
  Object.fromEntries([...expected].map(([app, { statements }]) => [app, statements]));

describe('every statement, found through the API', () => {
  let events: Record_[] = [];

  it('once the audit is flushed, counts per application_name equal what was run', async () => {
    expect(expected.size).toBe(4);
    // Records travel in batches (spooled, shipped off the statement path): poll until all are in.
    const deadline = Date.now() + 60_000;
    for (;;) {
      events = await allEvents({ since });
      const settled = events.every((e) => e.outcome !== 'pending');
      if (
        (settled && JSON.stringify(countByApplication(events)) === JSON.stringify(expectedCounts())) ||
        Date.now() > deadline
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(countByApplication(events)).toEqual(expectedCounts());
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
  }, 90_000);

  it('says who ran each statement, through what, and what happened', async () => {
    for (const e of events) {
      expect(e.principal, e.text).toBe(expected.get(e.applicationName)!.principal);
      expect(e.type).toBe('statement');
      expect(typeof e.startedAt).toBe('string');
    }
    const refused = events.filter((e) => e.outcome === 'refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      applicationName: 'e2e-psql',
      principal: 'pat@example.com',
      text: 'DROP TABLE orders;',
      decision: 'require_approval',
      ruleId: 'approve-schema-changes',
      sqlstate: '42501',
    });
    const others = events.filter((e) => e !== refused[0]);
    expect(others.every((e) => e.decision === 'allow' && e.outcome === 'ok')).toBe(true);
    const prepared = events.filter((e) => e.applicationName === 'e2e-pgbench-prepared');
    expect(new Set(prepared.map((e) => e['protocol']))).toEqual(new Set(['extended']));
    const node = events.filter((e) => e.applicationName === 'e2e-node-pg');
    expect(node.filter((e) => e['protocol'] === 'simple')).toHaveLength(10);
    expect(node.filter((e) => e['protocol'] === 'extended')).toHaveLength(15);
    expect(node.every((e) => e['actor'] === 'agent')).toBe(true);
    const updates = events.filter((e) => /^UPDATE bench_accounts/.test(e.text));
    expect(updates).toHaveLength(2 * CLIENTS * TRANSACTIONS);
    expect(updates.every((e) => e['commandTag'] === 'UPDATE 1' && e['rows'] === 1)).toBe(true);
  });

  it('finds the refused statement by decision, by principal and by text', async () => {
    const byDecision = await allEvents({ decision: 'require_approval', since });
    expect(byDecision.map((e) => e.text)).toEqual(['DROP TABLE orders;']);
    const byPrincipal = await allEvents({ principal: 'pat@example.com' });
    expect(byPrincipal.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    const byText = await allEvents({ text: 'drop table', since });
    expect(byText).toHaveLength(1);
  });

  it('answers a whole session: the record and its statements in order', async () => {
    const drop = (await allEvents({ decision: 'require_approval', since }))[0]!;
    const deadline = Date.now() + 30_000;
    let body: { session: Record<string, unknown> | null; events: Record_[] };
    do {
      body = await api(`/v1/sessions/${drop.sessionId}`);
      if (body.session?.['closedAt'] !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    } while (Date.now() < deadline);
    expect(body.session).toMatchObject({
      sessionId: drop.sessionId,
      principal: 'pat@example.com',
      applicationName: 'e2e-psql',
      state: 'closed',
      statements: 4,
      endReason: 'client_terminate',
    });
    expect(typeof body.session?.['durationMs']).toBe('number');
    expect(body.events.map((e) => e.text)).toEqual([
      'select 1;',
      'select count(*) from customers;',
      'DROP TABLE orders;',
      "select 'after the refusal, still connected';",
    ]);
  });
});

describe('every statement, found through the CLI', () => {
  const cli = (...args: string[]) =>
    runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'audit', ...args], {
      env: { PGWARDEN_API_URL: stack.api.url, PGWARDEN_TOKEN: auditorToken },
      timeoutMs: 120_000,
    });

  it('exports all of it as JSON lines, with the same counts', async () => {
    const out = await cli('export', '--since', since, '--format', 'jsonl');
    expect(out.code, out.stderr).toBe(0);
    const events = out.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record_);
    expect(countByApplication(events)).toEqual(expectedCounts());
    expect(out.stderr).toContain(`exported ${events.length} statements`);
  }, 120_000);

  it('exports CSV with one row per statement', async () => {
    const file = join(stack.dataDir, 'audit.csv');
    const out = await cli('export', '--since', since, '--format', 'csv', '--out', file);
    expect(out.code, out.stderr).toBe(0);
    const total = [...expected.values()].reduce((sum, e) => sum + e.statements, 0);
    expect(out.stderr).toBe(`exported ${total} statements to ${file}\n`);
  }, 120_000);

  it('lists the refused statement in a readable table, and shows its session', async () => {
    const list = await cli('list', '--decision', 'require_approval', '--since', '1h');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      /pat@example\.com\s+e2e-psql\s+\S+\s+3\s+require_approval\s+approve-schema-changes\s+refused 42501\s+.*DROP TABLE orders;/,
    );
    const json = JSON.parse((await cli('list', '--principal', 'pat@example.com', '--json')).stdout);
    const sessionId = json.events[0].sessionId as string;
    const session = await cli('session', sessionId);
    expect(session.code, session.stderr).toBe(0);
    expect(session.stdout).toMatch(/who {7}pat@example\.com, role developer/);
    expect(session.stdout).toMatch(/4 statements, client_terminate/);
  }, 120_000);

  it("verifies every session's hash chain made by the real proxy: all intact, each anchored by its close", async () => {
    // pgbench, psql (with a refusal) and node-postgres (both protocols): chained by the proxy as they
    // ran, stored through the append-only store; the closes may still be on their way
    const deadline = Date.now() + 60_000;
    let answer: { ok: boolean; sessions: Array<{ sessionId: string; status: string; links: number }> };
    for (;;) {
      const out = await cli('verify', '--from', '1h', '--json');
      answer = JSON.parse(out.stdout);
      if (out.code === 0 && answer.sessions.every((v) => v.status === 'intact')) break;
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(answer.ok).toBe(true);
    expect(answer.sessions.filter((v) => v.status !== 'intact')).toEqual([]);
    const links = answer.sessions.reduce((sum, v) => sum + v.links, 0);
    expect(links).toBe([...expected.values()].reduce((sum, e) => sum + e.statements, 0));
  }, 120_000);
});
