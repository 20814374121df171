/**
 * The approval flow end to end, as a team runs it: psql through the real proxy on a real
 * PostgreSQL holds a risky statement; the API stores the approval in DynamoDB (dynalite) and
 * queues it on SQS (fauxqs); the notifier, run by the local poller, posts it to Slack (a local
 * stand-in of the Slack Web API); a reviewer's click arrives as Slack sends it, signed and
 * verified with Bolt's verification; the held statement runs or fails with the reason.
 */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalsCommand } from '../../scripts/cli/approvals.ts';
import type { ApprovalView } from '../../shared/approvals.ts';
import {
  blockActionPayload,
  denySubmissionPayload,
  type FakeSlack,
  type SlackCall,
  sendInteraction,
  startFakeSlack,
} from '../fakes/slack-api.ts';
import {
  startTestPostgres,
  startTestStack,
  type TestPostgres,
  type TestStack,
} from '../fixtures/local-stack.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const SIGNING_SECRET = 'e2e-signing-secret-0123456789';
const CHANNEL = 'C0APPROVALS';
const HOLD_SECONDS = 5;

let postgres: TestPostgres;
let slack: FakeSlack;
let stack: TestStack;
let admin: pg.Client;

beforeAll(async () => {
  postgres = await startTestPostgres();
  slack = await startFakeSlack();
  stack = await startTestStack({
    postgres,
    approvals: {
      slack: { botToken: slack.token, signingSecret: SIGNING_SECRET, channel: CHANNEL, apiUrl: slack.apiUrl },
      maxHoldSeconds: HOLD_SECONDS,
    },
  });
  admin = new pg.Client({
    host: postgres.host,
    port: postgres.port,
    database: 'app',
    ...postgres.roles.app_admin,
  });
  await admin.connect();

  // Slack users, and who they are to pgwarden: it learns a person's groups when they sign in once,
  // by calling the API with their token (reviewers) or by connecting through the gateway (bob).
  const reviewers: Array<[string, string, string[]]> = [
    ['U0RITA', 'rita@example.com', ['reviewers']],
    ['U0RUTH', 'ruth@example.com', ['reviewers']],
    ['U0REX', 'rex@example.com', ['engineering', 'reviewers']],
  ];
  for (const [id, email, groups] of reviewers) {
    slack.users.set(id, { email, confirmed: true });
    expect((await cli(['list'], await token(email, groups))).code).toBe(0);
  }
  slack.users.set('U0BOB', { email: 'bob@example.com', confirmed: true });
  const bob = await psql('bob@example.com', 'select 1', ['engineering'], 'person');
  expect(bob.code, bob.stderr).toBe(0);
  slack.users.set('U0STRANGER', { email: 'stranger@example.com', confirmed: true });
  slack.users.set('U0UNCONFIRMED', { email: 'ruth@example.com', confirmed: false });
});
afterAll(async () => {
  await admin?.end();
  await stack?.stop();
  await slack?.stop();
  await postgres?.stop();
});

const token = (email: string, groups: string[], actor: 'person' | 'agent' = 'person') =>
  stack.issuer.issueToken({ email, groups, actor });

async function cli(args: string[], pgwardenToken: string) {
  let err = '';
  const code = await approvalsCommand(args, {
    out: () => {},
    err: (t) => {
      err += t;
    },
    env: { PGWARDEN_API_URL: stack.api.url, PGWARDEN_TOKEN: pgwardenToken },
  });
  return { code, err };
}

async function psql(
  email: string,
  sql: string,
  groups = ['engineering'],
  actor: 'person' | 'agent' = 'agent',
) {
  const password = await token(email, groups, actor);
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
    { env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'cursor-agent' }, timeoutMs: 60_000 },
  );
}

interface Posted {
  approvalId: string;
  channel: string;
  ts: string;
  call: SlackCall;
}

/** The Slack post announcing the statement whose text contains `text`. */
async function posted(text: string): Promise<Posted> {
  let found: Posted | undefined;
  await waitFor(() => {
    for (const call of slack.callsTo('chat.postMessage')) {
      const blocks = JSON.stringify(call.args['blocks']);
      if (!blocks.includes(text)) continue;
      const id = buttons(call).find((b) => b.action_id === 'approval_approve')?.value;
      const message = [...slack.messages.values()].find((m) =>
        JSON.stringify(m.blocks).includes(`\`${id}\``),
      );
      if (id && message) found = { approvalId: id, channel: message.channel, ts: message.ts, call };
    }
    return found !== undefined;
  }, 10_000);
  return found!;
}

function buttons(call: SlackCall): Array<{ action_id: string; value: string; text: { text: string } }> {
  const blocks = (call.args['blocks'] ?? []) as Array<{ type: string; elements?: unknown[] }>;
  return blocks.filter((b) => b.type === 'actions').flatMap((b) => (b.elements ?? []) as never[]);
}

function click(userId: string, actionId: 'approval_approve' | 'approval_deny', post: Posted, options = {}) {
  return sendInteraction(
    `${stack.api.url}/slack/events`,
    blockActionPayload({ userId, actionId, approvalId: post.approvalId, channel: post.channel, ts: post.ts }),
    { signingSecret: SIGNING_SECRET, ...options },
  );
}

async function status(id: string): Promise<string> {
  return (await stack.approvals!.service.get(id)).status;
}

/** ephemeral messages Slack showed `userId` */
const toldTo = (userId: string) =>
  slack
    .callsTo('chat.postEphemeral')
    .filter((c) => c.args['user'] === userId)
    .map((c) => String(c.args['text']));

async function scratch(name: string, rows = 5) {
  await admin.query(`create table ${name} as select g as id from generate_series(1, ${rows}) g`);
  return async () => Number((await admin.query(`select count(*) from ${name}`)).rows[0].count);
}

describe('a statement held for approval in Slack', () => {
  it('psql holds `delete from orders`, Slack gets Approve/Deny, a signed click releases it: DELETE n', async () => {
    const orders = Number((await admin.query('select count(*) from orders')).rows[0].count);
    const run = psql('alice@example.com', 'delete from orders');
    const post = await posted('delete from orders');
    expect(post.call.args['channel']).toBe(CHANNEL);
    expect(buttons(post.call).map((b) => [b.action_id, b.text.text, b.value])).toEqual([
      ['approval_approve', 'Approve', post.approvalId],
      ['approval_deny', 'Deny', post.approvalId],
    ]);
    const text = JSON.stringify(post.call.args['blocks']);
    expect(text).toContain('alice@example.com');
    expect(text).toContain('cursor-agent');
    expect(text).toContain('approve-writes-without-where');
    expect(await status(post.approvalId)).toBe('pending');
    expect(Number((await admin.query('select count(*) from orders')).rows[0].count)).toBe(orders);

    const response = await click('U0RITA', 'approval_approve', post);
    expect(response.status).toBe(200);
    const out = await run;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe(`DELETE ${orders}`);
    expect(out.stderr).toContain(`approval ${post.approvalId}`);
    expect(Number((await admin.query('select count(*) from orders')).rows[0].count)).toBe(0);

    // the message is brought up to date: approved by rita, then what the statement did
    await waitFor(() => {
      const message = slack.messages.get(`${post.channel}/${post.ts}`)!;
      const blocks = JSON.stringify(message.blocks);
      return blocks.includes('rita@example.com') && blocks.includes(`DELETE ${orders}`);
    }, 15_000);
    expect(
      buttons({ method: '', args: { blocks: slack.messages.get(`${post.channel}/${post.ts}`)!.blocks } }),
    ).toEqual([]);
  });

  it('a deny with a reason in the dialog fails the statement in psql with who and why', async () => {
    const left = await scratch('slack_deny');
    const run = psql('alice@example.com', 'delete from slack_deny');
    const post = await posted('delete from slack_deny');
    const opened = slack.callsTo('views.open').length;
    expect((await click('U0RITA', 'approval_deny', post)).status).toBe(200);
    const [dialog] = (await slack.waitForCalls('views.open', opened + 1)).slice(opened);
    const view = dialog!.args['view'] as { private_metadata: string };
    const submitted = await sendInteraction(
      `${stack.api.url}/slack/events`,
      denySubmissionPayload({
        userId: 'U0RITA',
        privateMetadata: view.private_metadata,
        reason: 'run it in the maintenance window',
      }),
      { signingSecret: SIGNING_SECRET },
    );
    expect(submitted.status).toBe(200);
    const out = await run;
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(
      `ERROR:  pgwarden: denied by rita@example.com: run it in the maintenance window (approval ${post.approvalId})`,
    );
    expect(await left()).toBe(5);
  });

  it('times out with the approval id; approved later in Slack, the same statement passes on retry', async () => {
    const left = await scratch('slack_later');
    const first = await psql('alice@example.com', 'delete from slack_later');
    const post = await posted('delete from slack_later');
    expect(first.code).not.toBe(0);
    expect(first.stderr).toContain(`approval ${post.approvalId} was not decided within ${HOLD_SECONDS} s`);
    expect(first.stderr).toContain('run the same statement again');
    expect(await left()).toBe(5);

    expect((await click('U0RITA', 'approval_approve', post)).status).toBe(200);
    expect(await status(post.approvalId)).toBe('approved');
    const retry = await psql('alice@example.com', 'delete from slack_later');
    expect(retry.stdout.trim(), retry.stderr).toBe('DELETE 5');
    expect(await status(post.approvalId)).toBe('consumed');
  }, 30_000);
});

describe('Slack clicks that must not decide', () => {
  it('self-approval: the requester is a reviewer, and is still refused', async () => {
    const run = psql('rex@example.com', 'delete from orders', ['engineering', 'reviewers']);
    const post = await posted('rex@example.com');
    expect((await click('U0REX', 'approval_approve', post)).status).toBe(200);
    await waitFor(() => toldTo('U0REX').length > 0);
    expect(toldTo('U0REX').at(-1)).toMatch(
      /rex@example.com requested this statement and cannot decide on it/,
    );
    expect(await status(post.approvalId)).toBe('pending');
    expect((await click('U0RUTH', 'approval_approve', post)).status).toBe(200);
    expect((await run).code).toBe(0);
  });

  it('a forged signature, a wrong secret and a replayed old request are refused before anything is read', async () => {
    const run = psql('alice@example.com', 'update customers set name = name');
    const post = await posted('update customers set name = name');
    const forged = await click('U0RITA', 'approval_approve', post, { signature: `v0=${'0'.repeat(64)}` });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { error: { message: string } }).error.message).toMatch(
      /signed by Slack/,
    );
    expect((await click('U0RITA', 'approval_approve', post, { signWith: 'not-the-secret' })).status).toBe(
      401,
    );
    const stale = await click('U0RITA', 'approval_approve', post, {
      timestamp: Math.floor(Date.now() / 1000) - 6 * 60,
    });
    expect(stale.status).toBe(401);
    expect(((await stale.json()) as { error: { message: string } }).error.message).toMatch(
      /older than 5 minutes/,
    );
    expect(await status(post.approvalId)).toBe('pending');

    // people Slack knows but pgwarden may not let decide
    for (const [user, why] of [
      ['U0BOB', /bob@example.com may not decide/],
      ['U0STRANGER', /does not know anyone whose identity provider verified stranger@example.com/],
      ['U0UNCONFIRMED', /not confirmed/],
    ] as const) {
      expect((await click(user, 'approval_approve', post)).status).toBe(200);
      await waitFor(() => toldTo(user).length > 0);
      expect(toldTo(user).at(-1), user).toMatch(why);
    }
    expect(await status(post.approvalId)).toBe('pending');

    // the real click works, once: a second decision is refused
    expect((await click('U0RITA', 'approval_approve', post)).status).toBe(200);
    expect((await run).stdout.trim()).toMatch(/^UPDATE \d+$/);
    expect((await click('U0RUTH', 'approval_deny', post)).status).toBe(200);
    await waitFor(() => toldTo('U0RUTH').some((t) => /already/.test(t)));
  }, 30_000);
});

/** A node-postgres client (extended protocol) through the gateway, with a fresh token of `email`. */
async function pgClient(email: string, groups = ['engineering']): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: stack.proxy.port,
    database: 'app',
    user: email,
    password: await token(email, groups, 'agent'),
    ssl: { rejectUnauthorized: false },
    application_name: 'node-agent',
  });
  await client.connect();
  return client;
}

/** The pending approval of `text` other than `except`, once the proxy has asked for it. */
async function pendingOf(text: string, except: string[] = []): Promise<ApprovalView> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = (await stack.approvals!.service.listPending()).find(
      (a) => a.text === text && !except.includes(a.id),
    );
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no pending approval of ${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function listed(reviewerToken: string): Promise<string> {
  let out = '';
  const code = await approvalsCommand(['list'], {
    out: (t) => {
      out += t;
    },
    err: () => {},
    env: { PGWARDEN_API_URL: stack.api.url, PGWARDEN_TOKEN: reviewerToken },
  });
  expect(code).toBe(0);
  return out;
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: { code?: string; message: string }) => e,
  );

describe('extended protocol: one approval, one execution of the values the reviewer saw', () => {
  it('Slack, the CLI and the API show the values (masked where a mask rule covers them); one click runs them once', async () => {
    await admin.query('create table ext_vals (id int, n int not null default 0, ssn text)');
    await admin.query('insert into ext_vals (id) values (1), (2), (3)');
    const text = 'update ext_vals set n = n + $1::int, ssn = $2';
    const c = await pgClient('alice@example.com');
    const held = c.query(text, [7, '123-45-6789']);
    const post = await posted('update ext_vals');
    const blocks = JSON.stringify(post.call.args['blocks']);
    expect(blocks).toContain("$1 = '7'");
    expect(blocks).toContain('$2 = *** (masked: mask-ssn)');
    expect(blocks).not.toContain('6789');
    const rita = await token('rita@example.com', ['reviewers']);
    const cliOut = await listed(rita);
    expect(cliOut).toContain(post.approvalId);
    expect(cliOut).toContain("$1 = '7'");
    expect(cliOut).toContain('$2 = *** (masked: mask-ssn)');
    const api = await fetch(`${stack.api.url}/v1/approvals/${post.approvalId}`, {
      headers: { authorization: `Bearer ${rita}` },
    });
    const { approval } = (await api.json()) as { approval: ApprovalView };
    expect(approval.params).toEqual({
      count: 2,
      values: [
        { value: '7', format: 'text' },
        { value: '***', format: 'text', masked: 'mask-ssn' },
      ],
    });
    expect(approval.paramsHash).toMatch(/^[0-9a-f]{64}$/);

    expect((await click('U0RITA', 'approval_approve', post)).status).toBe(200);
    expect((await held).rowCount).toBe(3);
    expect(await status(post.approvalId)).toBe('consumed');
    // the same statement with the same values again: a new approval, not the used one
    const again = refusal(c.query(text, [7, '123-45-6789']));
    const second = await pendingOf(text);
    expect(second.id).not.toBe(post.approvalId);
    expect(second.paramsHash).toBe(approval.paramsHash);
    expect((await cli(['deny', second.id], rita)).code).toBe(0);
    expect((await again)?.code).toBe('42501');
    expect((await admin.query('select max(n)::int as n from ext_vals')).rows[0].n).toBe(7);
    await c.end();
  });

  it('after a timeout the retry of the same values passes once; other values ask anew', async () => {
    await admin.query('create table ext_retry (id int, n int not null default 0)');
    await admin.query('insert into ext_retry (id) values (1), (2), (3)');
    const text = 'update ext_retry set n = n + $1::int';
    const c = await pgClient('alice@example.com');
    const timedOut = await refusal(c.query(text, [1]));
    expect(timedOut?.message).toMatch(/was not decided within/);
    const first = (await stack.approvals!.service.listPending()).find((a) => a.text === text)!;
    const rita = await token('rita@example.com', ['reviewers']);
    expect((await cli(['approve', first.id], rita)).code).toBe(0);
    // other values: not what was approved
    const other = refusal(c.query(text, [100]));
    const otherApproval = await pendingOf(text, [first.id]);
    expect((await cli(['deny', otherApproval.id], rita)).code).toBe(0);
    expect((await other)?.code).toBe('42501');
    expect(await status(first.id)).toBe('approved');
    // the approved values: once
    expect((await c.query(text, [1])).rowCount).toBe(3);
    expect(await status(first.id)).toBe('consumed');
    const twice = refusal(c.query(text, [1]));
    const third = await pendingOf(text, [first.id, otherApproval.id]);
    expect((await cli(['deny', third.id], rita)).code).toBe(0);
    expect((await twice)?.code).toBe('42501');
    expect((await admin.query('select max(n)::int as n from ext_retry')).rows[0].n).toBe(1);
    await c.end();
  }, 30_000);

  it('concurrent retries on two connections (two tokens of one person): only one runs', async () => {
    await admin.query('create table ext_race (id int, n int not null default 0)');
    await admin.query('insert into ext_race (id) values (1), (2), (3)');
    const text = 'update ext_race set n = n + $1::int';
    const [c1, c2] = [await pgClient('alice@example.com'), await pgClient('alice@example.com')];
    expect((await refusal(c1.query(text, [1])))?.message).toMatch(/was not decided within/);
    const approval = (await stack.approvals!.service.listPending()).find((a) => a.text === text)!;
    const rita = await token('rita@example.com', ['reviewers']);
    expect((await cli(['approve', approval.id], rita)).code).toBe(0);
    const retries = [refusal(c1.query(text, [1])), refusal(c2.query(text, [1]))];
    const loser = await pendingOf(text, [approval.id]);
    expect((await cli(['deny', loser.id], rita)).code).toBe(0);
    const outcomes = (await Promise.all(retries)).map((e) => e?.code ?? 'ran').sort();
    expect(outcomes).toEqual(['42501', 'ran']);
    expect((await admin.query('select max(n)::int as n from ext_race')).rows[0].n).toBe(1);
    await Promise.all([c1.end(), c2.end()]);
  }, 30_000);

  it('a cancel while held, then a retry: it waits on the same approval and runs once when approved', async () => {
    await admin.query('create table ext_cancel (id int, n int not null default 0)');
    await admin.query('insert into ext_cancel (id) values (1), (2), (3)');
    const text = 'update ext_cancel set n = n + $1::int';
    const c = await pgClient('alice@example.com');
    const held = refusal(c.query(text, [2]));
    const approval = await pendingOf(text);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const socket = net.connect(stack.proxy.port, '127.0.0.1', () => {
        socket.end(serialize.cancel(processID, secretKey));
        resolve();
      });
    });
    expect((await held)?.code).toBe('57014');
    expect(await status(approval.id)).toBe('pending');
    const retry = c.query(text, [2]);
    await new Promise((r) => setTimeout(r, 300));
    const rita = await token('rita@example.com', ['reviewers']);
    expect((await cli(['approve', approval.id], rita)).code).toBe(0);
    expect((await retry).rowCount).toBe(3);
    expect(await status(approval.id)).toBe('consumed');
    expect((await admin.query('select max(n)::int as n from ext_cancel')).rows[0].n).toBe(2);
    await c.end();
  }, 30_000);
});
