/**
 * Approval latencies, measured locally on the stack the e2e tests use: a real PostgreSQL, the proxy,
 * the API on dynalite, SQS on fauxqs with the notifier run by the local poller, and a Slack Web API
 * stand-in that records when the message arrives and sends signed clicks as Slack does.
 *
 * Per run, a statement that needs approval is sent through the proxy, and two spans are timed:
 * - hold → Slack message posted: from sending the statement to chat.postMessage reaching Slack
 *   (decision, approval stored, queued, received by the poller, message built and posted);
 * - click → statement released: from sending the signed Approve click to the client receiving
 *   the statement's result (signature check, identity lookup, conditional write, the proxy's wait
 *   woken, the statement forwarded and run).
 * Both for local mode's wiring (the proxy calls the approvals service in-process) and for the
 * production wiring (the proxy long-polls the API over HTTP with its service token), run by run in
 * turn so both see the same load on the shared cores.
 *
 * Runs alone with `npx tsx scripts/bench/approvals.ts [runs]`, or as a section of `npm run bench`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createApprovalGate } from '../../proxy/approval-gate.ts';
import { createHttpApprovalsClient } from '../../proxy/approvals-http.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import { createHttpControlPlane } from '../../proxy/control-plane-http.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import {
  blockActionPayload,
  type FakeSlack,
  sendInteraction,
  startFakeSlack,
} from '../../test/fakes/slack-api.ts';
import { startTestStack, type TestStack } from '../../test/fixtures/local-stack.ts';

export const HOLD_TO_POST_TARGET_MS = 1_000;
export const CLICK_TO_RELEASE_TARGET_MS = 500;

const SIGNING_SECRET = 'bench-signing-secret-0123456789';
const CHANNEL = 'C0BENCH';

export interface Spans {
  wiring: string;
  holdToPost: number[];
  clickToRelease: number[];
  holdToNotice: number[];
}

export interface ApprovalBenchOptions {
  runs: number;
  log?: (message: string) => void;
}

/** Runs the measurement and returns the Markdown section (heading, table, targets). */
export async function approvalLatencySection(options: ApprovalBenchOptions): Promise<string> {
  const results = await measureApprovalLatencies(options);
  return formatApprovalSection(results, options.runs);
}

export async function measureApprovalLatencies(options: ApprovalBenchOptions): Promise<Spans[]> {
  const log = options.log ?? (() => {});
  log('approvals: starting PostgreSQL, dynalite, fauxqs, the Slack stand-in and pgwarden');
  const slack = await startFakeSlack();
  let stack: TestStack | undefined;
  let httpProxy: RunningProxy | undefined;
  try {
    stack = await startTestStack({
      approvals: {
        slack: {
          botToken: slack.token,
          signingSecret: SIGNING_SECRET,
          channel: CHANNEL,
          apiUrl: slack.apiUrl,
        },
      },
    });
    slack.users.set('U0REVIEWER', { email: 'reviewer@example.com', confirmed: true });
    // the reviewer signs in once, so pgwarden knows their groups when they click
    const reviewer = await stack.issuer.issueToken({ email: 'reviewer@example.com', groups: ['reviewers'] });
    const seen = await fetch(`${stack.api.url}/v1/approvals?status=pending`, {
      headers: { authorization: `Bearer ${reviewer}` },
    });
    if (!seen.ok) throw new Error(`the reviewer could not sign in: HTTP ${seen.status}`);

    const admin = new pg.Client({
      host: stack.postgres.host,
      port: stack.postgres.port,
      database: 'app',
      ...stack.postgres.roles.app_admin,
    });
    await admin.connect();
    await admin.query(
      'create table if not exists bench_approvals (n int); insert into bench_approvals values (0)',
    );
    await admin.end();

    httpProxy = await startProxy({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: stack.certPem, key: readFileSync(join(stack.dataDir, 'tls', 'key.pem'), 'utf8') },
      allowPlaintext: false,
      upstream: { host: stack.postgres.host, port: stack.postgres.port, ssl: 'disable' },
      credentials: () => stack!.postgres.roles.app_rw,
      controlPlane: createHttpControlPlane({
        baseUrl: stack.api.url,
        fetch: localSigningFetch(stack.api.serviceToken),
      }),
      gate: createApprovalGate({
        client: createHttpApprovalsClient({
          baseUrl: stack.api.url,
          fetch: localSigningFetch(stack.api.serviceToken),
        }),
      }),
      proxyId: 'bench-http',
    });

    // Wirings alternate run by run, so both see the same machine load (cores are shared).
    const wirings = [
      await connect(stack, 'local mode (in-process)', stack.proxy.port),
      await connect(stack, 'production wiring (HTTP long-poll)', httpProxy.port),
    ];
    try {
      log(`approvals: ${WARM_UP_ROUNDS} warm-up rounds, then ${options.runs} measured, alternating wirings`);
      for (let round = 0; round < WARM_UP_ROUNDS + options.runs; round++) {
        for (const wiring of wirings) {
          const spans = await oneRun(stack, slack, wiring, round);
          if (round < WARM_UP_ROUNDS) continue;
          wiring.spans.holdToPost.push(spans.holdToPost);
          wiring.spans.clickToRelease.push(spans.clickToRelease);
          if (spans.holdToNotice !== undefined) wiring.spans.holdToNotice.push(spans.holdToNotice);
        }
      }
    } finally {
      for (const wiring of wirings) await wiring.client.end();
    }
    const results = wirings.map((w) => w.spans);
    return results;
  } finally {
    await httpProxy?.close();
    await stack?.stop();
    await slack.stop();
  }
}

/** First rounds (first parse, first SDK requests, JIT) are not counted. */
const WARM_UP_ROUNDS = 3;

interface Wiring {
  client: pg.Client;
  spans: Spans;
  /** when the last NoticeResponse arrived */
  noticeAt: number;
}

async function connect(stack: TestStack, name: string, port: number): Promise<Wiring> {
  const token = await stack.issuer.issueToken({
    email: 'agent@example.com',
    groups: ['engineering'],
    actor: 'agent',
  });
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    database: 'app',
    user: 'agent@example.com',
    password: token,
    ssl: { rejectUnauthorized: false },
  });
  await client.connect();
  const wiring: Wiring = {
    client,
    spans: { wiring: name, holdToPost: [], clickToRelease: [], holdToNotice: [] },
    noticeAt: 0,
  };
  client.on('notice', () => {
    wiring.noticeAt = performance.now();
  });
  return wiring;
}

/** One held statement, approved in Slack: the spans in milliseconds. */
async function oneRun(stack: TestStack, slack: FakeSlack, wiring: Wiring, round: number) {
  const posts = slack.callsTo('chat.postMessage').length;
  wiring.noticeAt = 0;
  const sent = performance.now();
  let released = 0;
  // a comment makes each run its own statement (own text hash, own approval)
  const result = wiring.client
    .query(`update bench_approvals set n = n + 1 /* ${wiring.spans.wiring} run ${round} */`)
    .then(() => {
      released = performance.now();
    });
  const [post] = (await slack.waitForCalls('chat.postMessage', posts + 1, 10_000)).slice(posts);
  const posted = performance.now();
  const approvalId = approveButton(post!.args['blocks']);
  const message = [...slack.messages.values()].find((m) =>
    JSON.stringify(m.blocks).includes(`\`${approvalId}\``),
  );
  if (approvalId === undefined || message === undefined)
    throw new Error('the Slack message has no Approve button');
  const clicked = performance.now();
  const response = await sendInteraction(
    `${stack.api.url}/slack/events`,
    blockActionPayload({
      userId: 'U0REVIEWER',
      actionId: 'approval_approve',
      approvalId,
      channel: message.channel,
      ts: message.ts,
    }),
    { signingSecret: SIGNING_SECRET },
  );
  if (response.status !== 200) throw new Error(`the click was refused: HTTP ${response.status}`);
  // the click's answer waits for the Slack message update; the release does not wait for it
  await result;
  return {
    holdToPost: posted - sent,
    clickToRelease: released - clicked,
    holdToNotice: wiring.noticeAt > 0 ? wiring.noticeAt - sent : undefined,
  };
}

function approveButton(blocks: unknown): string | undefined {
  for (const block of (blocks ?? []) as Array<{
    type?: string;
    elements?: Array<{ action_id?: string; value?: string }>;
  }>) {
    for (const element of block.elements ?? [])
      if (element.action_id === 'approval_approve') return element.value;
  }
  return undefined;
}

/** Nearest-rank percentile. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function formatApprovalSection(results: readonly Spans[], runs: number): string {
  const ms = (value: number) => (Number.isNaN(value) ? 'n/a' : `${value.toFixed(0)} ms`);
  const row = (wiring: string, span: string, samples: number[]) =>
    `| ${wiring} | ${span} | ${ms(percentile(samples, 50))} | ${ms(percentile(samples, 95))} | ${ms(Math.max(...samples))} |`;
  const lines = [
    `## Approval latency (${runs} runs each, Slack stand-in, all local)`,
    '',
    '| wiring | span | p50 | p95 | max |',
    '|---|---|---:|---:|---:|',
  ];
  for (const r of results) {
    lines.push(row(r.wiring, 'hold → client notified (NoticeResponse)', r.holdToNotice));
    lines.push(row(r.wiring, 'hold → Slack message posted', r.holdToPost));
    lines.push(row(r.wiring, 'click → statement released', r.clickToRelease));
  }
  lines.push('', '### Targets', '');
  for (const r of results) {
    const post = percentile(r.holdToPost, 95);
    const release = percentile(r.clickToRelease, 95);
    lines.push(
      `- ${post < HOLD_TO_POST_TARGET_MS ? 'PASS' : 'MISS'} ${r.wiring}: hold → Slack message posted < ${HOLD_TO_POST_TARGET_MS} ms at p95 (${ms(post)})`,
      `- ${release < CLICK_TO_RELEASE_TARGET_MS ? 'PASS' : 'MISS'} ${r.wiring}: click → statement released < ${CLICK_TO_RELEASE_TARGET_MS} ms at p95 (${ms(release)})`,
    );
  }
  return `${lines.join('\n')}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const runs = Number(process.argv[2] ?? '20');
  approvalLatencySection({ runs, log: (m) => process.stderr.write(`${m}\n`) }).then(
    (section) => process.stdout.write(section),
    (error: unknown) => {
      process.stderr.write(
        `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
