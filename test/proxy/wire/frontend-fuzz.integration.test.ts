/**
 * The bounded fuzzer: frontend traffic recorded from real clients (psql, pgbench, node-postgres;
 * test/fixtures/frontend-traffic/) is mutated and truncated, before and after authentication, and
 * played against the real proxy in front of a real PostgreSQL, a fixed number of cases per run.
 *
 * For every case: the proxy answers with an ErrorResponse or closes, or, when the stream still
 * ends on a message boundary, answers a probe; it never hangs, never sends a reply that does not
 * frame, never reports an internal error, and never lets a masked value out. Meanwhile a good
 * session keeps getting correct answers. After the run: no exception escaped, the server holds no
 * more connections of the gateway than before, the proxy holds only the good session, and the
 * canary table, which the policy protects and the fuzzed streams keep trying to change, is intact.
 *
 * Knobs (seed, count, replay of single cases): test/fixtures/frontend-fuzz/settings.ts.
 */
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { caseLabel, corpusOf, type FuzzCase, generateCase } from '../../fixtures/frontend-fuzz/cases.ts';
import { REGRESSION_CASES } from '../../fixtures/frontend-fuzz/regressions.ts';
import { type CaseOutcome, runCase } from '../../fixtures/frontend-fuzz/run-case.ts';
import { fuzzSettings } from '../../fixtures/frontend-fuzz/settings.ts';
import { startWatchdog, type Watchdog } from '../../fixtures/frontend-fuzz/watchdog.ts';
import { loadTraffic } from '../../fixtures/frontend-traffic/traffic.ts';
import {
  CANARY_ROWS,
  canaryState,
  prepareTrafficTables,
  trafficDecider,
  withSuperuser,
} from '../../fixtures/frontend-traffic/traffic-world.ts';
import { type ProxyHarness, startProxyHarness } from '../../fixtures/proxy-harness.ts';
import { waitFor } from '../../fixtures/wait-for.ts';

const settings = fuzzSettings(process.env);
const corpus = corpusOf(loadTraffic());
const replayHint = (ids: string[]) =>
  `replay: PGWARDEN_FUZZ_SEED=${settings.seed} PGWARDEN_FUZZ_ONLY=${ids.join(',')} ` +
  'npx vitest run test/proxy/wire/frontend-fuzz.integration.test.ts';

let h: ProxyHarness;
/** the masked values of the demo customers: none may ever reach a fuzz client */
let secrets: Set<string>;
let postmasterPidFile: string;
const escaped: unknown[] = [];
const onEscape = (error: unknown) => escaped.push(error);

beforeAll(async () => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  await loadSqlParser();
  h = await startProxyHarness();
  await prepareTrafficTables(h.postgres);
  h.controlPlane.decider = trafficDecider();
  await withSuperuser(h.postgres, async (c) => {
    const rows = await c.query<{ ssn: string; credit_card: string }>(
      'SELECT ssn, credit_card FROM customers',
    );
    secrets = new Set(rows.rows.flatMap((r) => [r.ssn, r.credit_card]));
    const dir = await c.query<{ data_directory: string }>('SHOW data_directory');
    postmasterPidFile = join(dir.rows[0]!.data_directory, 'postmaster.pid');
  });
});

afterAll(async () => {
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
  await h?.stop();
});

/** The fuzz cases whose connections are still open on the server (by their application_name). */
async function casesStillConnected(): Promise<string[]> {
  return withSuperuser(h.postgres, async (c) => {
    const r = await c.query<{ name: string }>(
      `SELECT application_name AS name FROM pg_stat_activity WHERE application_name LIKE 'fuzz-case-%'`,
    );
    return r.rows.map((row) => row.name);
  });
}

/** Connections the gateway's login holds on the server, apart from the catalog side connections. */
async function upstreamSessions(): Promise<number> {
  return withSuperuser(h.postgres, async (c) => {
    const r = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE usename = $1 AND backend_type = 'client backend'
          AND application_name IS DISTINCT FROM 'pgwarden-catalog'`,
      [h.postgres.roles.app_rw.user],
    );
    return r.rows[0]!.n;
  });
}

/** A session that behaves, run beside the fuzz cases: a simple and an extended query per round. */
class GoodSession {
  rounds = 0;
  readonly failures: string[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly client: pg.Client) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const id = (this.rounds % 3) + 1;
      try {
        const simple = await this.client.query(`SELECT v FROM fuzz_good WHERE id = ${id}`);
        const extended = await this.client.query({
          name: 'good-by-id',
          text: 'SELECT v, $1::int AS id FROM fuzz_good WHERE id = $1',
          values: [id],
        });
        if (simple.rows[0]?.v !== `good-${id}`)
          this.failures.push(`simple query answered ${JSON.stringify(simple.rows)}`);
        if (extended.rows[0]?.v !== `good-${id}` || extended.rows[0]?.id !== id)
          this.failures.push(`extended query answered ${JSON.stringify(extended.rows)}`);
      } catch (error) {
        this.failures.push(`round ${this.rounds}: ${String(error)}`);
        return;
      }
      this.rounds++;
      // a steady client, not a busy loop that starves the cases of CPU
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

interface Failure {
  c: FuzzCase;
  problems: string[];
}

/** What a run saw, case by case. */
interface Tally {
  failures: Failure[];
  endings: Record<CaseOutcome['ending'], number>;
  sqlstates: Map<string, number>;
  serverInternalErrors: Set<string>;
  durations: Array<[number, FuzzCase]>;
}

/** Problems of one outcome that only the test can see: masked values in the replies. */
function leaks(outcome: CaseOutcome): string[] {
  const text = outcome.received.toString('latin1');
  const found = [...text.matchAll(/\d{3}-\d{2}-\d{4}|\d{16}/g)]
    .map((m) => m[0])
    .filter((v) => secrets.has(v));
  return found.length > 0 ? [`masked values reached the client: ${found.slice(0, 3).join(', ')}`] : [];
}

function describeCase(c: FuzzCase): string {
  return `case ${c.id} (${c.phase}, ${c.source}, writes ${c.writes.kind}, hang-up ${c.hangUp}): ${c.mutations.join('; ') || 'unchanged'}`;
}

function casesToRun(): FuzzCase[] {
  const generated = (id: string) => generateCase(corpus, settings.seed, Number(id));
  if (settings.only) {
    return settings.only.map((id) => REGRESSION_CASES.find((c) => c.id === id) ?? generated(id));
  }
  return [...REGRESSION_CASES, ...Array.from({ length: settings.cases }, (_, i) => generated(String(i)))];
}

/**
 * The test control plane keeps every decision request and audit event it saw (statement texts of
 * up to half a megabyte): dropped as the run goes, so the memory figures are the proxy's own.
 */
function forgetControlPlaneHistory(): void {
  for (const history of [h.controlPlane.decisions, h.controlPlane.events] as unknown[][])
    if (history.length > 500) history.splice(0);
}

/** Plays the cases, `settings.concurrency` at a time, each slot watched by the watchdog. */
async function playAll(cases: FuzzCase[], watchdog: Watchdog): Promise<Tally> {
  const tally: Tally = {
    failures: [],
    endings: { closed: 0, probed: 0 },
    sqlstates: new Map(),
    serverInternalErrors: new Set(),
    durations: [],
  };
  const target = {
    host: '127.0.0.1',
    port: h.proxy.port,
    timeoutMs: settings.timeoutMs,
    quietMs: settings.quietMs,
  };
  let next = 0;
  const slot = async (index: number) => {
    for (let i = next++; i < cases.length; i = next++) {
      const c = cases[i]!;
      watchdog.inFlight(index, c.id);
      const started = Date.now();
      try {
        const outcome = await runCase(c, target);
        tally.endings[outcome.ending]++;
        for (const code of outcome.errors) tally.sqlstates.set(code, (tally.sqlstates.get(code) ?? 0) + 1);
        for (const message of outcome.serverInternalErrors) tally.serverInternalErrors.add(message);
        const problems = [...outcome.problems, ...leaks(outcome)];
        if (problems.length > 0) tally.failures.push({ c, problems });
      } catch (error) {
        tally.failures.push({ c, problems: [`the case could not run: ${String(error)}`] });
      }
      tally.durations.push([Date.now() - started, c]);
      forgetControlPlaneHistory();
      if (escaped.length > 0)
        tally.failures.push({ c, problems: escaped.splice(0).map((e) => `escaped: ${String(e)}`) });
    }
    watchdog.inFlight(index, undefined);
  };
  await Promise.all(Array.from({ length: settings.concurrency }, (_, index) => slot(index)));
  return tally;
}

/** What the run left behind once the proxy had time to let go: sessions, upstream connections. */
async function leftBehind(baseline: { sessions: number; upstream: number }) {
  await waitFor(() => h.proxy.sessions <= baseline.sessions, 15_000).catch(() => undefined);
  let upstream = await upstreamSessions();
  for (let i = 0; i < 60 && upstream > baseline.upstream; i++) {
    await new Promise((r) => setTimeout(r, 250));
    upstream = await upstreamSessions();
  }
  const cases = (await casesStillConnected()).map((name) => name.slice(caseLabel('').length));
  return { sessions: h.proxy.sessions, upstream, cases };
}

function printSummary(
  cases: FuzzCase[],
  tally: Tally,
  seconds: number,
  goodRounds: number,
  memory: [NodeJS.MemoryUsage, NodeJS.MemoryUsage],
): void {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;
  const regressions = cases.filter((c) => REGRESSION_CASES.includes(c)).length;
  const sqlstates = Object.fromEntries([...tally.sqlstates].sort((a, b) => b[1] - a[1]));
  const slowest = [...tally.durations].sort((a, b) => b[0] - a[0]).slice(0, 5);
  console.log(
    [
      `frontend fuzzer: ${cases.length} cases (${regressions} regression) in ${seconds.toFixed(1)} s, ` +
        `seed ${settings.seed}, concurrency ${settings.concurrency}`,
      `  endings: closed ${tally.endings.closed}, probe answered ${tally.endings.probed}; good session ${goodRounds} rounds`,
      `  memory: RSS ${mb(memory[0].rss)} -> ${mb(memory[1].rss)}, heap ${mb(memory[0].heapUsed)} -> ${mb(memory[1].heapUsed)}`,
      `  SQLSTATEs received: ${JSON.stringify(sqlstates)}`,
      ...(tally.serverInternalErrors.size > 0
        ? [
            `  the server's own internal errors (not pgwarden's): ${[...tally.serverInternalErrors].join('; ')}`,
          ]
        : []),
      '  slowest cases:',
      ...slowest.map(([ms, c]) => `    ${ms} ms ${describeCase(c)}`),
    ].join('\n'),
  );
}

describe('frontend fuzzer', () => {
  it('makes the same cases from the same seed, and other cases from another', () => {
    const bytes = (c: FuzzCase) =>
      c.phase === 'pre-auth' ? Buffer.concat([c.plain, c.afterTls ?? Buffer.alloc(0)]) : c.body;
    for (const index of [0, 1, 17, 999]) {
      expect(generateCase(corpus, settings.seed, index)).toEqual(generateCase(corpus, settings.seed, index));
    }
    // every case of a few seeds can be made (a generator that throws would end a long run early)
    for (const seed of [1, 16, 17, settings.seed])
      for (let i = 0; i < 1500; i++) expect(() => generateCase(corpus, seed, i)).not.toThrow();
    const other = Array.from({ length: 20 }, (_, i) => bytes(generateCase(corpus, settings.seed + 1, i)));
    const same = Array.from({ length: 20 }, (_, i) => bytes(generateCase(corpus, settings.seed, i)));
    expect(same.reduce((n, b) => n + b.length, 0)).toBeGreaterThan(0);
    expect(other.filter((b, i) => b.equals(same[i]!)).length).toBeLessThan(20);
  });

  it('counts every write statement that reaches the canary, even one that changed nothing and was rolled back', async () => {
    const before = await canaryState(h.postgres);
    // the gateway's own login, straight on the server: only pgwarden's policy stands in its way
    const direct = await h.direct();
    await direct.query('BEGIN');
    await direct.query('DELETE FROM canary WHERE id = -1');
    await direct.query('ROLLBACK');
    await direct.end();
    const after = await canaryState(h.postgres);
    expect(after.touches).toBe(before.touches + 1);
    expect(after.digest).toBe(before.digest);
  });

  it(
    settings.only
      ? `replays cases ${settings.only.join(', ')} (seed ${settings.seed})`
      : `survives ${settings.cases} generated cases (seed ${settings.seed}) and the regression cases`,
    async () => {
      const cases = casesToRun();
      const watchdog = startWatchdog({
        slots: settings.concurrency,
        stallMs: 20_000,
        postmasterPidFile,
        replay: replayHint(['<case ids above>']),
        regressionIds: REGRESSION_CASES.map((c) => c.id),
      });
      const goodClient = await h.viaProxy({ application_name: 'fuzz-good-session' });
      const good = new GoodSession(goodClient);
      good.start();
      await waitFor(() => good.rounds >= 3 || good.failures.length > 0, 10_000);
      const baseline = { upstream: await upstreamSessions(), sessions: h.proxy.sessions };
      const canaryBefore = await canaryState(h.postgres);
      const memoryBefore = process.memoryUsage();
      const started = Date.now();

      const tally = await playAll(cases, watchdog);
      const seconds = (Date.now() - started) / 1000;
      await watchdog.stop();
      await good.stop();
      const left = await leftBehind(baseline);
      const canaryAfter = await canaryState(h.postgres);
      const memoryAfter = process.memoryUsage();
      await goodClient.end();
      printSummary(cases, tally, seconds, good.rounds, [memoryBefore, memoryAfter]);

      const report = tally.failures
        .slice(0, 20)
        .map((f) => `${describeCase(f.c)}\n    ${f.problems.join('\n    ')}`)
        .join('\n');
      const failed = tally.failures.map((f) => f.c.id);
      expect(tally.failures.length, `${failed.length} failing cases\n${report}\n${replayHint(failed)}`).toBe(
        0,
      );
      expect(escaped).toEqual([]);
      expect(good.failures).toEqual([]);
      expect(good.rounds).toBeGreaterThan(3);
      expect(left.cases, `connections left open on the server\n${replayHint(left.cases)}`).toEqual([]);
      expect(left.sessions).toBe(baseline.sessions);
      expect(left.upstream).toBe(baseline.upstream);
      expect(canaryAfter).toEqual(canaryBefore);
      expect(canaryAfter.rows).toBe(CANARY_ROWS);
      // generous sanity bound, not a measurement: memory must not grow without bound
      expect(memoryAfter.rss - memoryBefore.rss).toBeLessThan(1024 * 1024 * 1024);
    },
    600_000 + settings.cases * 100,
  );
});
