/**
 * pgbouncer for the side-by-side runs: session pooling, TLS towards clients with the same
 * certificate as pgwarden, plaintext towards the bench PostgreSQL (as pgwarden). Optional: when the
 * binary is missing the bench skips it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { getFreePort } from '../local/postgres.ts';

export interface PgbouncerOptions {
  dir: string;
  upstream: { host: string; port: number };
  database: string;
  login: { user: string; password: string };
  certPath: string;
  keyPath: string;
  poolSize: number;
  maxClientConnections: number;
}

export interface RunningPgbouncer {
  host: '127.0.0.1';
  port: number;
  pid: number;
  stop(): Promise<void>;
}

const candidates = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

export function findPgbouncer(): string | undefined {
  for (const path of candidates) if (existsSync(path)) return path;
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'pgbouncer'))) return join(dir, 'pgbouncer');
  }
  return undefined;
}

/** uid/gid of a user from /etc/passwd (no getpwnam in Node). */
function userIds(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export async function startPgbouncer(binary: string, options: PgbouncerOptions): Promise<RunningPgbouncer> {
  const port = await getFreePort();
  const dir = options.dir;
  mkdirSync(dir, { recursive: true });
  const quote = (value: string) => `"${value.replace(/"/g, '""')}"`;
  const files = {
    ini: join(dir, 'pgbouncer.ini'),
    users: join(dir, 'userlist.txt'),
    cert: join(dir, 'cert.pem'),
    key: join(dir, 'key.pem'),
    log: join(dir, 'pgbouncer.log'),
  };
  writeFileSync(files.users, `${quote(options.login.user)} ${quote(options.login.password)}\n`, {
    mode: 0o600,
  });
  writeFileSync(files.cert, readFileSync(options.certPath), { mode: 0o644 });
  writeFileSync(files.key, readFileSync(options.keyPath), { mode: 0o600 });
  writeFileSync(
    files.ini,
    [
      '[databases]',
      `${options.database} = host=${options.upstream.host} port=${options.upstream.port} dbname=${options.database}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${files.users}`,
      'pool_mode = session',
      `max_client_conn = ${options.maxClientConnections}`,
      `default_pool_size = ${options.poolSize}`,
      'min_pool_size = 0',
      'reserve_pool_size = 0',
      'client_tls_sslmode = require',
      `client_tls_cert_file = ${files.cert}`,
      `client_tls_key_file = ${files.key}`,
      'server_tls_sslmode = disable',
      `logfile = ${files.log}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_pooler_errors = 1',
      'stats_period = 3600',
      'ignore_startup_parameters = extra_float_digits',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );

  // pgbouncer refuses to run as root; -u makes it switch to an unprivileged user, who must be able
  // to read its files (and write its log).
  const args = ['-q'];
  if (process.getuid?.() === 0) {
    const ids = userIds('postgres') ?? userIds('nobody');
    if (!ids) throw new Error('running as root, but there is no postgres (or nobody) user for pgbouncer -u');
    const user = userIds('postgres') ? 'postgres' : 'nobody';
    chmodSync(dir, 0o700);
    for (const path of [dir, files.ini, files.users, files.cert, files.key])
      chownSync(path, ids.uid, ids.gid);
    args.push('-u', user);
  }
  args.push(files.ini);

  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitForPort(port, child, () => `${stderr}${readLog(files.log)}`);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    stop() {
      stopped ??= terminate(child, exited);
      return stopped;
    },
  };
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`pgbouncer exited with ${child.exitCode ?? child.signalCode}:\n${output()}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pgbouncer did not listen on port ${port} within 10 s:\n${output()}`);
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM'); // pgbouncer: immediate shutdown (the bench has closed its clients)
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
