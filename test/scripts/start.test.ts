import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../scripts/local/postgres.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const tsxCli = join(repoRoot, 'node_modules', 'tsx', 'dist', 'cli.mjs');

let dataDir: string;
let child: ChildProcess;
let env: NodeJS.ProcessEnv;
let stdout = '';
let stderr = '';
let apiPort: number;
let proxyPort: number;

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-start-'));
  apiPort = await getFreePort();
  proxyPort = await getFreePort();
  env = {
    ...process.env,
    PGWARDEN_DATA_DIR: dataDir,
    PGWARDEN_API_PORT: String(apiPort),
    PGWARDEN_PROXY_PORT: String(proxyPort),
  };
  // Its own process group, so a signal reaches it and everything it started, as Ctrl-C would.
  // `node --import tsx` (no tsx parent process): tsx's CLI relays signals with a 30 ms race of its own.
  child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: repoRoot,
    env,
    detached: true,
  });
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (stdout.includes('Ctrl-C stops everything')) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`npm start exited early (${child.exitCode}):\n${stderr}`));
      }
    }, 50);
  });
}, 90_000);

afterAll(async () => {
  if (child?.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('prints how to connect and records its ports for the token command', async () => {
    expect(stdout).toContain(`port=${proxyPort} dbname=app user=alice@example.com sslmode=require`);
    expect(stdout).toContain('@modelcontextprotocol/server-postgres');
    expect(stdout).toContain(
      `postgresql://alice%40example.com:<TOKEN>@localhost:${proxyPort}/app?sslmode=verify-full&sslrootcert=${join(dataDir, 'tls', 'cert.pem')}`,
    );
    const state = JSON.parse(await readFile(join(dataDir, 'local.json'), 'utf8'));
    expect(state).toMatchObject({ issuerUrl: `http://127.0.0.1:${apiPort}/dev-oidc`, proxyPort });
  });

  it('accepts a token from the token command at the proxy', async () => {
    const token = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [tsxCli, 'scripts/token.ts', 'alice@example.com', '--groups', 'engineering'],
        { cwd: repoRoot, env },
        (error, out) => (error ? reject(error) : resolve(out.trim())),
      ),
    );
    const client = new pg.Client({
      host: 'localhost',
      port: proxyPort,
      database: 'app',
      user: 'alice@example.com',
      password: token,
      ssl: { ca: await readFile(join(dataDir, 'tls', 'cert.pem'), 'utf8') },
    });
    await client.connect();
    try {
      const r = await client.query('SELECT current_user AS who, count(*)::int AS n FROM orders');
      expect(r.rows[0]).toEqual({ who: 'app_rw', n: 20000 });
    } finally {
      await client.end();
    }
  });

  it('stops everything on Ctrl-C and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = Date.now();
    process.kill(-child.pid!, 'SIGINT');
    const code = await exited;
    expect(code, stderr.slice(-2000)).toBe(0);
    while (groupAlive(child.pid!) && Date.now() - started < 10_000)
      await new Promise((r) => setTimeout(r, 50));
    expect(groupAlive(child.pid!)).toBe(false);
    expect(stderr).toContain('stopped');
  });
});
