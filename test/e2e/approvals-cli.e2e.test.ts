/**
 * Approvals without Slack, as local mode runs them: a real PostgreSQL, the proxy holding the
 * statement, the approvals API on DynamoDB (dynalite), the SQS emulator feeding the console
 * notifier, and reviewers deciding with `pgwarden approvals ...` and their own tokens.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalsCommand } from '../../scripts/cli/approvals.ts';
import {
  startTestPostgres,
  startTestStack,
  type TestPostgres,
  type TestStack,
} from '../fixtures/local-stack.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** the stack caps every hold at this many seconds, so the timeout path runs in a test */
const HOLD_SECONDS = 4;

let postgres: TestPostgres;
let stack: TestStack;
let admin: pg.Client;
const printed: string[] = [];

beforeAll(async () => {
  postgres = await startTestPostgres();
  stack = await startTestStack({
    postgres,
    approvals: { console: (text) => printed.push(text), maxHoldSeconds: HOLD_SECONDS, pollWaitSeconds: 1 },
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
  await stack?.stop();
  await postgres?.stop();
});

const token = (email: string, groups: string[], actor: 'person' | 'agent' = 'person') =>
  stack.issuer.issueToken({ email, groups, actor });

/** psql through the proxy as `email`; resolves when psql exits */
async function psql(email: string, sql: string, groups = ['engineering']) {
  const password = await token(email, groups, 'agent');
  return runCommand(
    'psql',
    [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      `host=127.0.0.1 port=${stack.proxy.port} dbname=app user=${email} sslmode=require`,
      '-c',
      sql,
    ],
    { env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: '10' }, timeoutMs: 60_000 },
  );
}

/** `pgwarden approvals ...` in-process, with the caller's token (undefined: none set) */
async function cli(args: string[], pgwardenToken: string | undefined) {
  let out = '';
  let err = '';
  const code = await approvalsCommand(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    env: {
      PGWARDEN_API_URL: stack.api.url,
      ...(pgwardenToken === undefined ? {} : { PGWARDEN_TOKEN: pgwardenToken }),
    },
  });
  return { code, out, err };
}

/** the id of the approval the console announced for `text` */
async function announced(text: string): Promise<string> {
  let id: string | undefined;
  await waitFor(() => {
    const banner = printed.find((p) => p.includes('waiting for approval') && p.includes(text));
    id = banner === undefined ? undefined : /approval {2}(\S+)/.exec(banner)?.[1];
    return id !== undefined;
  }, 10_000);
  return id!;
}

async function scratch(name: string, rows = 5) {
  await admin.query(`create table ${name} as select g as id from generate_series(1, ${rows}) g`);
  return async () => Number((await admin.query(`select count(*) from ${name}`)).rows[0].count);
}

const rita = () => token('rita@example.com', ['reviewers']);

describe('approvals decided with the CLI', () => {
  it('psql holds `delete from orders`; the console shows it; a reviewer approves; psql gets DELETE n', async () => {
    const orders = Number((await admin.query('select count(*) from orders')).rows[0].count);
    expect(orders).toBeGreaterThan(0);
    const run = psql('alice@example.com', 'delete from orders');
    const id = await announced('delete from orders');
    const banner = printed.find((p) => p.includes(id))!;
    expect(banner).toContain('alice@example.com (AI agent) via psql, database app');
    expect(banner).toContain(`npm run -s pgwarden -- approvals approve ${id}`);

    const listed = await cli(['list'], await rita());
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toContain(id);
    expect(listed.out).toContain('delete from orders');
    expect(listed.out).toContain('approve-writes-without-where');

    const approved = await cli(['approve', id], await rita());
    expect(approved.code, approved.err).toBe(0);
    expect(approved.out).toMatch(new RegExp(`^approved ${id}`));

    const out = await run;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe(`DELETE ${orders}`);
    expect(out.stderr).toContain(`approval ${id}`);
    // the outcome reaches the notifier through the audit trail and the queue
    await waitFor(
      () => printed.some((p) => p.includes(id) && p.includes(`executed: DELETE ${orders}`)),
      15_000,
    );
  });

  it('a reviewer denies with a reason and psql shows who and why; nothing is deleted', async () => {
    const left = await scratch('deny_me');
    const run = psql('alice@example.com', 'delete from deny_me');
    const id = await announced('delete from deny_me');
    const denied = await cli(['deny', id, '--reason', 'use a WHERE clause'], await rita());
    expect(denied.code, denied.err).toBe(0);
    const out = await run;
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(
      `ERROR:  pgwarden: denied by rita@example.com: use a WHERE clause (approval ${id})`,
    );
    expect(await left()).toBe(5);
    await waitFor(
      () => printed.some((p) => p.includes(id) && p.includes('denied by rita@example.com')),
      10_000,
    );
  });

  it('times out with the approval id, and the same statement passes on retry once approved (once)', async () => {
    const left = await scratch('later_me');
    const first = await psql('alice@example.com', 'delete from later_me');
    expect(first.code).not.toBe(0);
    const id = /approval (\S+) was not decided within/.exec(first.stderr)?.[1];
    expect(id, first.stderr).toBeDefined();
    expect(first.stderr).toMatch(/ERROR: {2}pgwarden: approval \S+ was not decided within 4 s/);
    expect(first.stderr).toMatch(/run the same statement again/);
    expect(await left()).toBe(5);

    expect((await cli(['approve', id!], await rita())).code).toBe(0);
    const retry = await psql('alice@example.com', 'delete from later_me');
    expect(retry.stdout.trim(), retry.stderr).toBe('DELETE 5');
    expect(retry.stderr).not.toContain('NOTICE');

    // the approval was for one run: the next one is held again
    await admin.query('insert into later_me values (1)');
    const again = await psql('alice@example.com', 'delete from later_me');
    expect(again.stderr).toMatch(/was not decided within/);
    expect(await left()).toBe(1);
  }, 30_000);
});

describe('the CLI refuses', () => {
  it('self-approval, even by a reviewer', async () => {
    const run = psql('rex@example.com', 'delete from orders', ['engineering', 'reviewers']);
    const id = await announced('rex@example.com');
    const self = await cli(['approve', id], await token('rex@example.com', ['engineering', 'reviewers']));
    expect(self.code).toBe(1);
    expect(self.err).toMatch(/refused: rex@example.com requested this statement and cannot decide on it/);
    await cli(['deny', id], await rita());
    expect((await run).stderr).toMatch(/denied by rita@example.com: no reason given/);
  });

  it('people outside the approver group, agents, a second decision, and an unknown id', async () => {
    const held = psql('alice@example.com', 'update customers set name = name');
    const id = await announced('update customers set name = name');

    const outsider = await cli(['approve', id], await token('bob@example.com', ['engineering']));
    expect(outsider.code).toBe(1);
    expect(outsider.err).toMatch(/refused: .*bob@example.com may not decide/);

    const agent = await cli(['approve', id], await token('bot@example.com', ['reviewers'], 'agent'));
    expect(agent.code).toBe(1);
    expect(agent.err).toMatch(/decided by people/);

    expect((await cli(['approve', id], await rita())).code).toBe(0);
    const twice = await cli(['deny', id], await token('ruth@example.com', ['reviewers']));
    expect(twice.code).toBe(1);
    expect(twice.err).toMatch(/already (approved|consumed)/);
    expect((await held).stdout.trim()).toMatch(/^UPDATE \d+$/);

    const unknown = await cli(['approve', 'no-such-approval'], await rita());
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/no-such-approval/);
  });

  it('listing for non-reviewers, bad tokens and no token, with what to do', async () => {
    const notReviewer = await cli(['list'], await token('bob@example.com', ['engineering']));
    expect(notReviewer.code).toBe(1);
    expect(notReviewer.err).toMatch(/refused: .*"reviewers"/);

    const forged = await cli(['list'], `${(await rita()).slice(0, -4)}AAAA`);
    expect(forged.code).toBe(1);
    expect(forged.err).toMatch(/your token was not accepted/);

    const none = await cli(['list'], undefined);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/set PGWARDEN_TOKEN/);

    expect((await cli(['approve'], await rita())).code).toBeUndefined();
    expect((await cli(['approve', 'x', '--reason', 'r'], await rita())).code).toBe(2);
  });
});

describe('the pgwarden command line', () => {
  it('has the approvals area', async () => {
    const out = await runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'approvals', 'list'], {
      env: { PGWARDEN_API_URL: stack.api.url, PGWARDEN_TOKEN: await rita() },
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/no statements are waiting for approval|approve: {2}npm run/);
  });
});
