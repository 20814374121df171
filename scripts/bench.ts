/**
 * `npm run bench`: how much pgwarden costs compared with connecting directly and with pgbouncer.
 *
 * Measures, in one run:
 *  1. pgbench -S (select-only, scale 10) in simple, extended and prepared query mode at several
 *     client counts against (a) PostgreSQL directly (plaintext), (b) pgbouncer in session mode with
 *     client-side TLS (skipped when the binary is missing) and (c) pgwarden (TLS, token auth, every
 *     statement audited to DynamoDB). Per cell: TPS, average latency, ratios, and the CPU time per
 *     transaction of the proxy process (pgbouncer's and pgwarden's, from /proc/<pid>/stat).
 *  2. Idle connection memory: the RSS a proxy process gains for N (default 1,000) authenticated,
 *     idle TLS connections, for pgwarden and pgbouncer.
 *  3. A Markdown summary with PASS/MISS against the targets (pgwarden ≥ 70% of pgbouncer's TPS at
 *     8 clients in simple and prepared mode; ≤ 100 MB for 1,000 idle connections). It is a
 *     measurement: the exit code is 0 whether or not a target is met.
 *
 * Why everything runs in one process tree, in one run, with cells interleaved: pgbench, the proxy
 * and PostgreSQL share the machine's cores (two on the reference machine), so absolute figures
 * move with the machine, its load and the client's own CPU use. Only ratios measured side by side
 * in the same run mean anything. The pgwarden proxy runs as a separate child process
 * (scripts/bench/proxy-process.ts) so that its CPU time and RSS can be read alone; the OIDC issuer
 * and DynamoDB (dynalite) run in this process, so the proxy's figures count proxy work only
 * (including its share of the audit trail: building events and sending them to DynamoDB).
 *
 * Needs pgbench (and optionally pgbouncer): `bash scripts/ensure-test-tools.sh`.
 * `npm run bench -- --help` lists the options.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import pg from 'pg';
import { tableNames } from '../functions/adapters/dynamodb-audit-store.ts';
import { startApiSink } from './bench/api-sink.ts';
import { approvalLatencySection } from './bench/approvals.ts';
import { countItems, type TableCount } from './bench/audit-count.ts';
import { openIdleConnections } from './bench/idle.ts';
import { maskingSection } from './bench/masking.ts';
import {
  type Endpoint,
  type PgbenchResult,
  pgbench,
  pgbenchEnv,
  type QueryMode,
  run,
  runningChildren,
} from './bench/pgbench.ts';
import { findPgbouncer, type RunningPgbouncer, startPgbouncer } from './bench/pgbouncer.ts';
import { cpuTimes, machineCpu, ownCpuMicros, rssBytes, treeCpu } from './bench/procstat.ts';
import type { ProxyStats } from './bench/protocol.ts';
import { type ProxyChild, startProxyChild } from './bench/proxy-child.ts';
import {
  type CellResult,
  diagnosticTable,
  find,
  fmt,
  type IdleResult,
  idleTable,
  MB,
  ratio,
  type TargetName,
  throughputTable,
} from './bench/report.ts';
import { startLocalDynamo } from './local/dynamodb.ts';
import { createDevIssuer } from './local/oidc-issuer.ts';
import { getFreePort, startLocalPostgres } from './local/postgres.ts';
import { ensureLocalCertificate } from './local/tls.ts';

// ---- options ----------------------------------------------------------------------------------

const usage = `npm run bench -- [options]

  --quick              3 s per cell instead of 10 s
  --duration <s>       seconds per pgbench cell            (env BENCH_DURATION)
  --clients <list>     client counts, e.g. 1,8,32          (env BENCH_CLIENTS, default 1,8,32)
  --modes <list>       simple,extended,prepared            (env BENCH_MODES)
  --targets <list>     direct,pgbouncer,pgwarden           (env BENCH_TARGETS); diagnostics, not run
                       by default: "pipe" = a bare Node TLS pipe (no parsing, auth or audit), the
                       ceiling for a Node proxy; "pgwarden-noaudit" = pgwarden with no spool whose
                       audit events are dropped (isolates the relay's own cost);
                       "pgwarden-strict" = PGWARDEN_AUDIT_MODE=strict (each statement's intent
                       stored by the API before it runs); "pgwarden-write" = the spool with
                       PGWARDEN_AUDIT_SPOOL_SYNC=write; "pgwarden" = the default spool (fdatasync
                       before each statement is forwarded, group commit)
  --threads <n>        pgbench threads, at most            (env BENCH_THREADS, default 2)
  --idle <n>           idle connections to open; 0 skips   (env BENCH_IDLE, default 1000)
  --scale <n>          pgbench scale                       (env BENCH_SCALE, default 10)
  --no-pgbouncer       skip pgbouncer
  --profile            run the pgwarden proxy with --cpu-prof (profile kept in the work directory)
  --keep               keep the work directory (logs, profiles) after the run
  --approvals <n>      runs of the approval-latency section; 0 skips  (env BENCH_APPROVALS, default 20)
  --approvals-only     run only the approval-latency section (hold → Slack post, click → release)
  --masking <rows>     rows of the masking section (6 columns, 2 masked); 0 skips  (env BENCH_MASKING, default 1000000)
  --masking-only       run only the masking section (masked vs unmasked vs direct: rows/s, proxy RSS)
`;

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    clients: { type: 'string' },
    modes: { type: 'string' },
    targets: { type: 'string' },
    threads: { type: 'string' },
    idle: { type: 'string' },
    scale: { type: 'string' },
    'no-pgbouncer': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    approvals: { type: 'string' },
    'approvals-only': { type: 'boolean', default: false },
    masking: { type: 'string' },
    'masking-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  process.stdout.write(usage);
  process.exit(0);
}

function positiveInt(name: string, text: string | undefined, fallback: number, allowZero = false): number {
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    process.stderr.write(
      `bench: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got "${text}")\n`,
    );
    process.exit(2);
  }
  return value;
}

function list<T extends string>(
  name: string,
  text: string | undefined,
  allowed: readonly T[],
  fallback: readonly T[] = allowed,
): T[] {
  if (text === undefined || text === '') return [...fallback];
  const items = text.split(',').map((s) => s.trim()) as T[];
  const unknown = items.filter((item) => !allowed.includes(item));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown ${name}: ${unknown.join(', ')} (allowed: ${allowed.join(', ')})\n`);
    process.exit(2);
  }
  return items;
}

const env = process.env;
const durationSeconds = positiveInt(
  '--duration',
  flags.duration ?? env['BENCH_DURATION'],
  flags.quick ? 3 : 10,
);
const clientCounts = (flags.clients ?? env['BENCH_CLIENTS'] ?? '1,8,32')
  .split(',')
  .map((s) => positiveInt('--clients', s.trim(), 1));
const modes = list<QueryMode>('mode', flags.modes ?? env['BENCH_MODES'], ['simple', 'extended', 'prepared']);
/** in the order each cell runs them; `pipe` (a bare Node TLS pipe, the ceiling) only when asked for */
const allTargets: readonly TargetName[] = [
  'direct',
  'pgbouncer',
  'pipe',
  'pgwarden-noaudit',
  'pgwarden-dynalite',
  'pgwarden-strict',
  'pgwarden-write',
  'pgwarden',
];
const targets = list('target', flags.targets ?? env['BENCH_TARGETS'], allTargets, [
  'direct',
  'pgbouncer',
  'pgwarden',
]);
const maxThreads = positiveInt('--threads', flags.threads ?? env['BENCH_THREADS'], 2);
const idleCount = positiveInt('--idle', flags.idle ?? env['BENCH_IDLE'], 1000, true);
const scale = positiveInt('--scale', flags.scale ?? env['BENCH_SCALE'], 10);
const approvalRuns = positiveInt('--approvals', flags.approvals ?? env['BENCH_APPROVALS'], 20, true);
const maskingRows = positiveInt('--masking', flags.masking ?? env['BENCH_MASKING'], 1_000_000, true);

const TARGET_CLIENTS = 8;
const TARGET_RATIO = 0.7;
const TARGET_IDLE_MB = 100;
const TARGET_IDLE_CONNECTIONS = 1000;
/** a cell during which other processes used more than this share of the CPUs is flagged */
const DISTURBED = 0.05;
const audience = 'pgwarden';
const principal = 'bench@example.com';
const tablePrefix = 'bench_';

// ---- lifecycle ---------------------------------------------------------------------------------

const cleanups: Array<{ name: string; run: () => Promise<void> | void }> = [];
let interrupted = false;

function onCleanup(name: string, step: () => Promise<void> | void): void {
  cleanups.push({ name, run: step });
}

async function cleanUp(): Promise<void> {
  for (const child of runningChildren) child.kill('SIGTERM');
  for (const { name, run: step } of cleanups.reverse().splice(0)) {
    try {
      await step();
    } catch (error) {
      process.stderr.write(`bench: could not stop ${name}: ${(error as Error).message}\n`);
    }
  }
}

process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\nbench: interrupted, stopping everything…\n');
  setTimeout(() => process.exit(130), 30_000).unref();
  void cleanUp().then(() => process.exit(130));
});
process.on('SIGTERM', () => process.emit('SIGINT'));
// the AWS SDK warns (once per process) that its 2027 releases need Node 22; not news in a bench
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

const out = (line = '') => process.stdout.write(`${line}\n`);
/** share of the CPUs busy before the runs while the bench itself was idle (other processes) */
let background: number | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const time = () => new Date().toISOString().slice(11, 19);

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (flags['approvals-only']) {
    out(await approvalLatencySection({ runs: approvalRuns || 20, log }));
    return;
  }
  if (flags['masking-only']) {
    out(await maskingSection({ rows: maskingRows || 1_000_000, log }));
    return;
  }
  if (!(await hasCommand('pgbench'))) {
    process.stderr.write(
      'bench: pgbench is not installed; run `bash scripts/ensure-test-tools.sh` (Debian) first\n',
    );
    process.exit(1);
  }
  const pgbouncerBinary =
    flags['no-pgbouncer'] || !targets.includes('pgbouncer') ? undefined : findPgbouncer();
  const runPgbouncer = pgbouncerBinary !== undefined;

  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-bench-'));
  // as root, PostgreSQL and pgbouncer run as the postgres user, who must be able to enter it
  chmodSync(dir, 0o711);
  onCleanup('work directory', () => {
    if (flags.keep || flags.profile) out(`work directory kept: ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });

  out(`# pgwarden bench — ${new Date().toISOString()}`);
  out();
  out(
    `pgbench -S, scale ${scale}, ${durationSeconds} s per cell, clients ${clientCounts.join(',')}, modes ${modes.join(',')}, ` +
      `≤${maxThreads} pgbench threads; ${idleCount} idle connections; ${cpuCount()} CPUs, Node ${process.version}, ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  if (targets.includes('pgbouncer') && !runPgbouncer) {
    out(
      flags['no-pgbouncer']
        ? 'pgbouncer: skipped (--no-pgbouncer)'
        : 'pgbouncer: SKIPPED — binary not found (install with `bash scripts/ensure-test-tools.sh` or `apt-get install -y pgbouncer`)',
    );
  }
  out();

  // PostgreSQL with room for the idle test (pgwarden and pgbouncer each hold one server connection
  // per client) plus the pgbench clients.
  const maxConnections = Math.max(1100, idleCount + Math.max(...clientCounts) + 100);
  log(`starting PostgreSQL (max_connections=${maxConnections})`);
  const postgresDir = join(dir, 'postgres-data');
  mkdirSync(postgresDir, { mode: 0o711 });
  const postgres = await startLocalPostgres({ dataDir: postgresDir, maxConnections });
  onCleanup('postgres', postgres.stop);
  const login = postgres.roles.app_rw;
  const direct: Endpoint = {
    host: postgres.host,
    port: postgres.port,
    user: login.user,
    password: login.password,
    database: 'app',
    sslmode: 'disable',
  };
  log(`initialising pgbench tables (scale ${scale})`);
  await initPgbench(postgres.port, postgres.roles.app_admin, login.user);

  log('starting dynalite and the dev OIDC issuer (in this process)');
  const dynamo = await startLocalDynamo({ dataDir: join(dir, 'dynamodb') });
  onCleanup('dynalite', dynamo.close);
  const issuerPort = await getFreePort();
  const issuer = createDevIssuer({ dataDir: dir, issuerUrl: `http://127.0.0.1:${issuerPort}/dev-oidc` });
  const root = new Hono();
  root.route('/dev-oidc', issuer.app);
  const issuerServer = await new Promise<Server>((resolve) => {
    const server = serve({ fetch: root.fetch, hostname: '127.0.0.1', port: issuerPort }, () =>
      resolve(server as Server),
    );
  });
  onCleanup(
    'issuer',
    () =>
      new Promise<void>((resolve) => {
        issuerServer.close(() => resolve());
        issuerServer.closeAllConnections();
      }),
  );
  const token = await issuer.issueToken({
    email: principal,
    groups: ['engineering'],
    ttlSeconds: 6 * 3600,
    audience,
  });
  const certificate = await ensureLocalCertificate(dir);
  log('starting the control-plane API the proxy ships audit batches to (in this process)');
  const apiSink = await startApiSink({ file: join(dir, 'audit-events.jsonl'), port: await getFreePort() });
  onCleanup('api', apiSink.close);

  const proxyConfig = {
    upstream: { host: postgres.host, port: postgres.port, credential: login },
    tls: { cert: certificate.cert, key: certificate.key },
    issuerUrl: issuer.issuerUrl,
    audience,
    roleMappings: [{ role: 'app_rw', groups: ['engineering'] }],
    dynamoEndpoint: dynamo.endpoint,
    tablePrefix,
    auditStore: 'api' as const,
    api: { url: apiSink.url, serviceToken: apiSink.serviceToken },
  };
  let spools = 0;
  const startProxy = async (
    profile: boolean,
    auditStore: 'api' | 'dynamodb' | 'discard' = 'api',
    auditMode: 'buffered' | 'strict' = 'buffered',
    sync: 'always' | 'write' = 'always',
  ): Promise<ProxyChild> => {
    // Every audited proxy has its own durable spool (PGWARDEN_AUDIT_SPOOL_SYNC=always, the default);
    // the noaudit target has none, so its figures are the relay's own cost.
    const spoolDir = join(dir, `spool-${++spools}`);
    const child = await startProxyChild({
      config: {
        ...proxyConfig,
        auditStore,
        ...(auditStore === 'discard' ? {} : { audit: { mode: auditMode, spoolDir, sync } }),
      },
      nodeFlags: profile ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`] : [],
    });
    onCleanup('pgwarden proxy', async () => {
      await child.stop();
    });
    return child;
  };

  let proxy: ProxyChild | undefined;
  if (targets.includes('pgwarden')) {
    log('starting the pgwarden proxy (child process)');
    proxy = await startProxy(flags.profile);
  }
  let dynalite: ProxyChild | undefined;
  if (targets.includes('pgwarden-dynalite')) {
    log('starting a pgwarden proxy that writes audit events to dynalite itself (diagnostic target)');
    dynalite = await startProxy(flags.profile, 'dynamodb');
  }
  let strict: ProxyChild | undefined;
  if (targets.includes('pgwarden-strict')) {
    log('starting a pgwarden proxy in strict audit mode (each intent stored by the API first)');
    strict = await startProxy(flags.profile, 'api', 'strict');
  }
  let spoolWrite: ProxyChild | undefined;
  if (targets.includes('pgwarden-write')) {
    log('starting a pgwarden proxy whose spool forwards after write(2) and syncs every 10 ms');
    spoolWrite = await startProxy(flags.profile, 'api', 'buffered', 'write');
  }
  let noaudit: ProxyChild | undefined;
  if (targets.includes('pgwarden-noaudit')) {
    log('starting a second pgwarden proxy whose audit store drops events (diagnostic target)');
    noaudit = await startProxy(flags.profile, 'discard');
  }
  const warden = (port: number): Endpoint => ({
    host: '127.0.0.1',
    port,
    user: principal,
    password: token,
    database: 'app',
    sslmode: 'require',
  });

  let bouncer: RunningPgbouncer | undefined;
  if (runPgbouncer) {
    log('starting pgbouncer (session mode, client TLS)');
    bouncer = await startPgbouncer(pgbouncerBinary, {
      dir: join(dir, 'pgbouncer'),
      upstream: { host: postgres.host, port: postgres.port },
      database: 'app',
      login,
      certPath: certificate.certPath,
      keyPath: certificate.keyPath,
      poolSize: Math.max(idleCount, ...clientCounts) + 10,
      maxClientConnections: Math.max(2000, idleCount + 100),
    });
    onCleanup('pgbouncer', bouncer.stop);
  }
  const bouncerEndpoint = (b: RunningPgbouncer): Endpoint => ({
    ...direct,
    port: b.port,
    sslmode: 'require',
  });

  let pipe: ProxyChild | undefined;
  if (targets.includes('pipe')) {
    log('starting the bare Node TLS pipe (diagnostic target)');
    pipe = await startProxyChild({
      kind: 'pipe',
      config: { upstream: { host: postgres.host, port: postgres.port }, tls: proxyConfig.tls },
    });
    const started = pipe;
    onCleanup('TLS pipe', async () => {
      await started.stop();
    });
  }

  // ---- throughput ----
  const runners: Runner[] = [];
  for (const target of allTargets) {
    if (!targets.includes(target)) continue;
    if (target === 'direct') runners.push({ target, endpoint: direct });
    else if (target === 'pgbouncer' && bouncer)
      runners.push({ target, endpoint: bouncerEndpoint(bouncer), pid: bouncer.pid });
    else if (target === 'pipe' && pipe)
      runners.push({ target, endpoint: { ...direct, port: pipe.port, sslmode: 'require' }, pid: pipe.pid });
    else if (target === 'pgwarden' && proxy)
      runners.push({ target, endpoint: warden(proxy.port), pid: proxy.pid, proxy });
    else if (target === 'pgwarden-dynalite' && dynalite)
      runners.push({ target, endpoint: warden(dynalite.port), pid: dynalite.pid, proxy: dynalite });
    else if (target === 'pgwarden-noaudit' && noaudit) {
      runners.push({ target, endpoint: warden(noaudit.port), pid: noaudit.pid, proxy: noaudit });
    } else if (target === 'pgwarden-strict' && strict)
      runners.push({ target, endpoint: warden(strict.port), pid: strict.pid, proxy: strict });
    else if (target === 'pgwarden-write' && spoolWrite)
      runners.push({ target, endpoint: warden(spoolWrite.port), pid: spoolWrite.pid, proxy: spoolWrite });
  }
  const cells: CellResult[] = [];
  let statementsThroughProxy = 0;

  log('warming up (2 s per target, not reported)');
  for (const runner of runners) {
    const result = await pgbench(runner.endpoint, {
      mode: 'prepared',
      clients: 2,
      threads: 2,
      durationSeconds: 2,
    });
    if (runner.target === 'pgwarden') statementsThroughProxy += result.transactions;
    if (runner.proxy) await drainAudit(runner.proxy);
  }
  background = await backgroundLoad(2000);
  out(
    `Machine load before the runs: ${(background * 100).toFixed(0)}% of ${cpuCount()} CPUs busy while the bench was idle` +
      (background > 0.1
        ? ' — OTHER PROCESSES ARE USING CPU: absolute figures are low, compare ratios only'
        : ''),
  );

  out();
  out('## pgbench -S runs');
  out();
  for (const mode of modes) {
    for (const clients of clientCounts) {
      for (const runner of runners) {
        const spec = { mode, clients, threads: Math.min(clients, maxThreads), durationSeconds };
        const cell = await measure(runner, spec);
        if (runner.target === 'pgwarden') statementsThroughProxy += cell.transactions;
        cells.push(cell);
        printCell(cell, cells);
        await sleep(500);
      }
    }
  }

  await noaudit?.stop();
  const strictStats = await strict?.stop();
  const spoolWriteStats = await spoolWrite?.stop();
  let throughputProxyStats: ProxyStats | undefined;
  if (proxy) {
    throughputProxyStats = await proxy.stop();
    if (flags.profile) {
      const which = noaudit ? ` (pgwarden pid ${proxy.pid}, pgwarden-noaudit pid ${noaudit.pid})` : '';
      out(`\nCPU profiles of the proxy written to ${join(dir, 'profiles')}${which}`);
    }
  }

  // ---- idle connection memory ----
  const idle: IdleResult[] = [];
  if (idleCount > 0) {
    out();
    out(`## ${fmt(idleCount)} idle TLS connections`);
    out();
    if (targets.includes('pgwarden')) {
      log('starting a fresh pgwarden proxy for the idle-connection test');
      const fresh = await startProxy(false);
      idle.push(await idleMemory('pgwarden', fresh.pid, warden(fresh.port), fresh));
      await waitFor(async () => (await fresh.stats()).sessions === 0, 10_000);
      const final = await fresh.stop();
      if (final) out(`pgwarden: after closing, audit events pending ${final.pendingAuditEvents}`);
    }
    if (pipe) idle.push(await idleMemory('pipe', pipe.pid, { ...direct, port: pipe.port }, pipe));
    if (bouncer) idle.push(await idleMemory('pgbouncer', bouncer.pid, bouncerEndpoint(bouncer)));
  }

  // ---- audit trail ----
  let eventsCount: TableCount | undefined;
  let sessionsCount: TableCount | undefined;
  if (throughputProxyStats || targets.includes('pgwarden')) {
    const client = new DynamoDBClient({
      endpoint: dynamo.endpoint,
      region: 'local',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const names = tableNames(tablePrefix);
      eventsCount = await countItems(client, names.events, 60_000);
      sessionsCount = await countItems(client, names.sessions, 20_000);
    } finally {
      client.destroy();
    }
  }

  // ---- summary ----
  out();
  out('## Summary');
  out();
  out(
    `pgbench -S (select-only), scale ${scale}, ${durationSeconds} s per cell, ${cpuCount()} CPUs shared by pgbench, ` +
      'the proxy and PostgreSQL. Direct = plaintext; pgbouncer = session mode, client TLS; pgwarden = client TLS, ' +
      'OIDC token auth, every statement and session audited: the proxy POSTs event batches to the control-plane ' +
      "API over HTTP as in production (the API acknowledges after an fsync'd append, standing in for DynamoDB, " +
      "which does not run on the proxy's host). CPU µs/tx = the proxy process's utime+stime " +
      'per transaction.' +
      (background === undefined
        ? ''
        : ` Other processes kept ${(background * 100).toFixed(0)}% of the CPUs busy before the runs.`),
  );
  out();
  out(throughputTable(cells, modes, clientCounts));
  const disturbed = cells.filter((c) => c.foreignBusy > DISTURBED);
  if (disturbed.length > 0) {
    out();
    out(
      `Disturbed cells (other processes used > ${DISTURBED * 100}% of the CPUs meanwhile; their figures are low): ` +
        disturbed
          .map((c) => `${c.mode}/${c.clients}/${c.target} ${(c.foreignBusy * 100).toFixed(0)}%`)
          .join(', '),
    );
  }
  const diagnostics = diagnosticTable(cells, modes, clientCounts);
  if (diagnostics) {
    out();
    out(
      'Diagnostic targets (TPS, ratio to pgbouncer, proxy CPU µs/tx): pipe = bare Node TLS pipe, the ceiling for',
    );
    out(
      'a Node proxy; pgwarden-noaudit = pgwarden whose audit store drops events; pgwarden-dynalite = pgwarden ' +
        'running the DynamoDB SDK in-process against dynalite on the same cores (local mode).',
    );
    out();
    out(diagnostics);
  }
  if (idle.length > 0) {
    out();
    out(idleTable(idle));
  }
  if (throughputProxyStats) {
    const s = throughputProxyStats;
    out();
    out(
      `Audit trail (throughput phase): ${fmt(statementsThroughProxy)} pgbench transactions through pgwarden; ` +
        `the proxy's store acknowledged ${fmt(s.stored.statement)} statement events and ` +
        `${fmt(s.stored.session_opened)}/${fmt(s.stored.session_closed)} session opened/closed events; ` +
        `${fmt(s.pendingAuditEvents)} still pending at exit; ${s.failedPuts} failed store calls.`,
    );
  }
  for (const [name, s] of [
    ['pgwarden', throughputProxyStats],
    ['pgwarden-strict', strictStats],
    ['pgwarden-write', spoolWriteStats],
  ] as const) {
    if (!s?.spool) continue;
    const { syncs, syncMicros, commits, groupedRecords } = s.spool;
    out(
      `Audit spool (${name}): ${fmt(syncs)} fdatasync calls, ${fmt(syncMicros / Math.max(1, syncs), 0)} µs each on average; ` +
        `${fmt(commits)} group commits carried ${fmt(groupedRecords)} records (${fmt(groupedRecords / Math.max(1, commits), 1)} per commit); ` +
        `shipper: ${fmt(s.shipper?.batches)} batches, ${fmt(s.shipper?.failedAttempts)} failed attempts.`,
    );
  }
  out(
    `Control-plane API: acknowledged ${fmt(apiSink.stored.statement)} statement and ` +
      `${fmt(apiSink.stored.session_opened)}/${fmt(apiSink.stored.session_closed)} session opened/closed events.`,
  );
  if (eventsCount && eventsCount.count > 0) {
    const note = (c: TableCount) =>
      c.complete ? '' : ` (at least: counting stopped after ${c.seconds.toFixed(0)} s)`;
    out(
      `DynamoDB at the end (both phases): ${fmt(eventsCount.count)} items in the events table${note(eventsCount)}, ` +
        `${fmt(sessionsCount?.count)} in the sessions table${sessionsCount ? note(sessionsCount) : ''}.`,
    );
  }
  out();
  out('### Targets');
  out();
  for (const line of targetLines(cells, idle, bouncer !== undefined)) out(line);
  out();
  const spool = throughputProxyStats?.spool;
  const ceilings = ceilingLines(cells, spool && spool.syncs > 0 ? spool.syncMicros / spool.syncs : undefined);
  if (ceilings.length > 0) {
    out('Ceilings measured in this run (what no Node proxy with the durable audit spool could exceed here):');
    out();
    for (const line of ceilings) out(line);
    out();
  }
  if (approvalRuns > 0) out(await approvalLatencySection({ runs: approvalRuns, log }));
  if (maskingRows > 0) out(await maskingSection({ rows: maskingRows, log }));
}

// ---- pieces ------------------------------------------------------------------------------------

function log(message: string): void {
  process.stderr.write(`${time()} ${message}\n`);
}

function cpuCount(): number {
  return availableParallelism();
}

async function hasCommand(command: string): Promise<boolean> {
  try {
    await run(command, ['--version'], process.env);
    return true;
  } catch {
    return false;
  }
}

async function initPgbench(
  port: number,
  admin: { user: string; password: string },
  reader: string,
): Promise<void> {
  const endpoint: Endpoint = { host: '127.0.0.1', port, ...admin, database: 'app', sslmode: 'disable' };
  await run('pgbench', ['-i', '-q', '-s', String(scale)], pgbenchEnv(endpoint));
  const client = new pg.Client({ host: '127.0.0.1', port, ...admin, database: 'app' });
  await client.connect();
  try {
    await client.query(
      `GRANT SELECT, INSERT, UPDATE ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO ${reader}`,
    );
  } finally {
    await client.end();
  }
}

function idleTarget(endpoint: Endpoint) {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    password: endpoint.password,
    database: endpoint.database,
  };
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(100);
  }
  return false;
}

/** Waits until the proxy has shipped its audit buffer (at most 5 minutes); returns seconds waited. */
async function drainAudit(proxy: ProxyChild): Promise<{ backlog: number; seconds: number }> {
  const started = performance.now();
  const backlog = (await proxy.stats()).pendingAuditEvents;
  await waitFor(async () => (await proxy.stats()).pendingAuditEvents === 0, 300_000);
  return { backlog, seconds: (performance.now() - started) / 1000 };
}

interface Runner {
  target: TargetName;
  endpoint: Endpoint;
  /** the proxy process whose CPU is measured */
  pid?: number;
  /** pgwarden: asked for its audit backlog after each cell */
  proxy?: ProxyChild;
}

async function measure(
  runner: Runner,
  spec: { mode: QueryMode; clients: number; threads: number; durationSeconds: number },
): Promise<CellResult> {
  const pid = runner.pid;
  const cpu0 = pid === undefined ? undefined : cpuTimes(pid);
  const own0 = ownCpuMicros();
  const machine0 = machineCpu();
  const tree0 = treeCpu();
  const result: PgbenchResult = await pgbench(runner.endpoint, spec);
  const tree1 = treeCpu();
  const machine1 = machineCpu();
  const cpu1 = pid === undefined ? undefined : cpuTimes(pid);
  const cell: CellResult = {
    target: runner.target,
    mode: spec.mode,
    clients: spec.clients,
    ...result,
    machineBusy: (machine1.busy - machine0.busy) / (machine1.total - machine0.total),
    foreignBusy:
      Math.max(0, machine1.process - machine0.process - (tree1 - tree0)) / (machine1.total - machine0.total),
  };
  if (cpu0 && cpu1) {
    cell.cpuPerTx = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / result.transactions;
    cell.systemCpuShare =
      (cpu1.system - cpu0.system) / (cpu1.user + cpu1.system - cpu0.user - cpu0.system || 1);
  }
  if (runner.proxy && pid !== undefined && cpu0) {
    // pgbench's sessions end after it exits; their close events are part of the cell's audit work
    await sleep(200);
    const drained = await drainAudit(runner.proxy);
    const cpu2 = cpuTimes(pid);
    cell.auditStoreCpuPerTx = (ownCpuMicros() - own0) / result.transactions;
    cell.cpuPerTxWithAudit = (cpu2.user + cpu2.system - cpu0.user - cpu0.system) / result.transactions;
    cell.auditBacklog = drained.backlog;
    cell.auditDrainSeconds = drained.seconds;
  }
  return cell;
}

/**
 * RSS a proxy process gains for `idleCount` authenticated idle TLS connections. A Node child is
 * warmed up first (code loaded on the first session counts in "before") and also measured after a
 * forced full GC, so garbage does not pass for per-connection memory.
 */
async function idleMemory(
  target: IdleResult['target'],
  pid: number,
  endpoint: Endpoint,
  child?: ProxyChild,
): Promise<IdleResult> {
  const at = idleTarget(endpoint);
  if (child) {
    const warm = await openIdleConnections(at, 4, 4);
    await warm.close();
    if (target === 'pgwarden') await drainAudit(child);
  }
  await sleep(1000);
  const rssBefore = rssBytes(pid);
  const gcBefore = await child?.gc();
  const rssBeforeGc = child ? rssBytes(pid) : undefined;
  const opened = await openIdleConnections(at, idleCount, 16);
  if (target === 'pgwarden' && child) await drainAudit(child);
  await sleep(2000);
  const rssAfter = rssBytes(pid);
  const gcAfter = await child?.gc();
  const rssAfterGc = child ? rssBytes(pid) : undefined;
  const result: IdleResult = {
    target,
    connections: opened.opened,
    openSeconds: opened.seconds,
    rssBefore,
    rssAfter,
    rssBeforeGc,
    rssAfterGc,
    heapBefore: gcBefore?.heapUsed,
    heapAfter: gcAfter?.heapUsed,
  };
  const added = rssAfter - rssBefore;
  let line =
    `${target}: ${fmt(opened.opened)} connections opened in ${opened.seconds.toFixed(1)} s ` +
    `(${fmt(opened.opened / opened.seconds)}/s); RSS ${fmt(rssBefore / MB, 1)} → ${fmt(rssAfter / MB, 1)} MB ` +
    `(+${fmt(added / MB, 1)} MB, ${fmt(added / 1024 / opened.opened, 1)} KB each)`;
  if (gcBefore && gcAfter && rssBeforeGc !== undefined && rssAfterGc !== undefined) {
    line +=
      `; after a forced full GC ${fmt(rssBeforeGc / MB, 1)} → ${fmt(rssAfterGc / MB, 1)} MB ` +
      `(+${fmt((rssAfterGc - rssBeforeGc) / MB, 1)} MB); V8 heap used ${fmt(gcBefore.heapUsed / MB, 1)} → ` +
      `${fmt(gcAfter.heapUsed / MB, 1)} MB, external ${fmt(gcBefore.external / MB, 1)} → ${fmt(gcAfter.external / MB, 1)} MB` +
      `, ${gcAfter.sessions} sessions`;
  }
  out(line);
  await opened.close();
  return result;
}

/** Share of all CPUs busy over `ms` while the bench itself does nothing. */
async function backgroundLoad(ms: number): Promise<number> {
  const a = machineCpu();
  await sleep(ms);
  const b = machineCpu();
  return (b.busy - a.busy) / (b.total - a.total);
}

const targetWidth = Math.max(...targets.map((t) => t.length));

function printCell(cell: CellResult, all: readonly CellResult[]): void {
  const d = find(all, 'direct', cell.mode, cell.clients);
  const b = find(all, 'pgbouncer', cell.mode, cell.clients);
  const p = find(all, 'pipe', cell.mode, cell.clients);
  const parts = [
    `${time()} ${cell.mode.padEnd(8)} c=${String(cell.clients).padStart(2)} ${cell.target.padEnd(targetWidth)}`,
    `${fmt(cell.tps).padStart(7)} TPS`,
    `lat ${cell.latencyMs.toFixed(3)} ms`,
  ];
  if (cell.failed > 0) parts.push(`FAILED ${cell.failed}`);
  if (cell.target !== 'direct') parts.push(`${ratio(cell.tps, d?.tps)} direct`);
  if (cell.target !== 'direct' && cell.target !== 'pgbouncer')
    parts.push(`${ratio(cell.tps, b?.tps)} pgbouncer`);
  if (cell.target.startsWith('pgwarden') && p) parts.push(`${ratio(cell.tps, p.tps)} pipe`);
  if (cell.cpuPerTx !== undefined) {
    parts.push(
      `proxy CPU ${cell.cpuPerTx.toFixed(1)} µs/tx (${((cell.systemCpuShare ?? 0) * 100).toFixed(0)}% sys)`,
    );
  }
  if (cell.target === 'pgwarden') {
    parts.push(
      `incl. audit shipping ${fmt(cell.cpuPerTxWithAudit, 1)} µs/tx`,
      `API/store in bench process ${fmt(cell.auditStoreCpuPerTx, 1)} µs/tx`,
      `audit backlog ${fmt(cell.auditBacklog)} shipped in ${fmt(cell.auditDrainSeconds, 1)} s`,
    );
  }
  parts.push(
    `machine ${(cell.machineBusy * 100).toFixed(0)}% busy, other processes ${(cell.foreignBusy * 100).toFixed(0)}%` +
      (cell.foreignBusy > DISTURBED ? ' (DISTURBED)' : ''),
  );
  out(parts.join(' | '));
}

/**
 * Upper bounds the run itself measures, for the target cells:
 * - the bare Node TLS pipe's TPS (no parsing, no auth, no audit): the most a Node proxy gets here;
 * - the durable spool: each statement waits for at least one fdatasync that starts after its record
 *   is queued, so with C clients in a closed loop TPS ≤ C / (pgbouncer's latency + one fdatasync).
 */
function ceilingLines(cells: readonly CellResult[], meanSyncMicros: number | undefined): string[] {
  const lines: string[] = [];
  for (const mode of ['simple', 'prepared'] as const) {
    const b = find(cells, 'pgbouncer', mode, TARGET_CLIENTS);
    if (!b) continue;
    const pipe = find(cells, 'pipe', mode, TARGET_CLIENTS);
    if (pipe)
      lines.push(`- ${mode}: bare Node TLS pipe ${fmt(pipe.tps)} TPS = ${ratio(pipe.tps, b.tps)} pgbouncer`);
    if (meanSyncMicros !== undefined) {
      const bound = TARGET_CLIENTS / ((b.latencyMs + meanSyncMicros / 1000) / 1000);
      lines.push(
        `- ${mode}: durable spool, one fdatasync (${fmt(meanSyncMicros, 0)} µs on average here) per statement on top of ` +
          `pgbouncer's ${b.latencyMs.toFixed(3)} ms: ≤ ${fmt(bound)} TPS = ${ratio(bound, b.tps)} pgbouncer`,
      );
    }
  }
  return lines;
}

function targetLines(
  cells: readonly CellResult[],
  idle: readonly IdleResult[],
  hadPgbouncer: boolean,
): string[] {
  const lines: string[] = [];
  for (const mode of ['simple', 'prepared'] as const) {
    const label = `pgwarden ≥ ${TARGET_RATIO * 100}% of pgbouncer TPS, ${TARGET_CLIENTS} clients, ${mode}`;
    const w = find(cells, 'pgwarden', mode, TARGET_CLIENTS);
    const b = find(cells, 'pgbouncer', mode, TARGET_CLIENTS);
    if (!w || !b) {
      const why = !hadPgbouncer ? 'pgbouncer skipped' : `no ${TARGET_CLIENTS}-client ${mode} cell for both`;
      lines.push(`- N/A  ${label} (${why})`);
      continue;
    }
    const r = w.tps / b.tps;
    lines.push(
      `- ${r >= TARGET_RATIO ? 'PASS' : 'MISS'} ${label}: ${(r * 100).toFixed(0)}% (${fmt(w.tps)} vs ${fmt(b.tps)})`,
    );
  }
  const label = `pgwarden ≤ ${TARGET_IDLE_MB} MB added for ${fmt(TARGET_IDLE_CONNECTIONS)} idle TLS connections`;
  const w = idle.find((r) => r.target === 'pgwarden');
  const added = w && (w.rssAfter - w.rssBefore) / MB;
  if (!w || added === undefined) lines.push(`- N/A  ${label} (idle test not run)`);
  else if (w.connections !== TARGET_IDLE_CONNECTIONS) {
    lines.push(`- N/A  ${label} (measured ${fmt(w.connections)} connections: +${added.toFixed(1)} MB)`);
  } else {
    lines.push(`- ${added <= TARGET_IDLE_MB ? 'PASS' : 'MISS'} ${label}: ${added.toFixed(1)} MB`);
  }
  return lines;
}

try {
  await main();
} catch (error) {
  if (!interrupted) {
    process.stderr.write(
      `\nbench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    await cleanUp();
    process.exit(1);
  }
}
if (!interrupted) {
  await cleanUp();
  process.exit(0);
}
