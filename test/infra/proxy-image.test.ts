/**
 * The proxy image without Docker: the Dockerfile's own build steps (its JSON-form `RUN` lines:
 * esbuild, then copying the parser's WebAssembly) run here into a directory that stands for the
 * image's /app, and the bundle is started the way the image's CMD starts it, then drained by
 * SIGTERM as ECS stops a task.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESM_BANNER } from '../../infra/constructs/control-plane.ts';
import { AUDIT_SPOOL_DIR } from '../../infra/constructs/proxy.ts';
import { REPO_ROOT } from '../../infra/repo-root.ts';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
let bundleDir: string;

/** The build stage's JSON-form `RUN [...]` lines, as argv lists. */
function runSteps(): string[][] {
  return dockerfile
    .split('\n')
    .filter((text) => text.startsWith('RUN ['))
    .map((text) => JSON.parse(text.slice('RUN '.length)) as string[]);
}

function esbuildArgs(): string[] {
  const step = runSteps().find((argv) => argv[0] === 'esbuild');
  expect(step, 'the Dockerfile bundles with esbuild in JSON form').toBeDefined();
  return step!;
}

/** Runs esbuild from the repository root as the build stage does (its /src). */
function esbuild(args: string[], input?: string): void {
  const result = spawnSync(join(REPO_ROOT, 'node_modules/.bin/esbuild'), args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
  });
  expect(result.status, result.stderr).toBe(0);
}

/** The build's own flags with another entry point and output file. */
function sameFlags(outfile: string): string[] {
  return esbuildArgs()
    .slice(1)
    .filter((arg) => arg.startsWith('--'))
    .map((arg) => (arg.startsWith('--outfile=') ? `--outfile=${outfile}` : arg));
}

/** The final stage's CMD, as argv. */
function command(): string[] {
  const line = dockerfile.split('\n').find((text) => text.startsWith('CMD '));
  return JSON.parse(line!.slice('CMD '.length)) as string[];
}

function start(env: Record<string, string>): ChildProcessWithoutNullStreams {
  const [program, ...args] = command();
  return spawn(program === 'node' ? process.execPath : program!, args, {
    cwd: bundleDir,
    env: { PATH: process.env['PATH'] ?? '', ...env },
  });
}

function exited(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function collect(child: ChildProcessWithoutNullStreams): { text: () => string } {
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  return { text: () => output };
}

async function waitForLine(
  read: () => string,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = read().match(pattern);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`no ${pattern} in:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeAll(() => {
  bundleDir = mkdtempSync(join(tmpdir(), 'pgwarden-image-'));
  const inImage = (path: string) =>
    path.startsWith('dist/') ? join(bundleDir, path.slice('dist/'.length)) : path;
  for (const [program, ...args] of runSteps()) {
    if (program === 'esbuild') {
      esbuild(
        args.map((arg) => (arg.startsWith('--outfile=') ? `--outfile=${inImage(arg.slice(10))}` : arg)),
      );
    } else if (program === 'cp') {
      const [from, to] = args as [string, string];
      copyFileSync(join(REPO_ROOT, from), join(inImage(to), basename(from)));
    } else {
      throw new Error(`the test does not know how to run the build step ${program}`);
    }
  }
});
afterAll(() => rmSync(bundleDir, { recursive: true, force: true }));

describe('Dockerfile', () => {
  it('builds on node:22-slim, runs the bundle as the unprivileged node user', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:22-slim$/m);
    expect(dockerfile.match(/^FROM \$\{NODE_IMAGE\}/gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(command()).toEqual(['node', '--enable-source-maps', 'proxy.mjs']);
    const locked = JSON.parse(
      readFileSync(join(REPO_ROOT, 'node_modules/esbuild/package.json'), 'utf8'),
    ).version;
    expect(dockerfile).toContain(`ARG ESBUILD_VERSION=${locked}`); // the image bundles like the tests do
    expect(esbuildArgs()).toContain(`--banner:js=${ESM_BANNER}`); // as the Lambda bundle
    expect(esbuildArgs()).toEqual(
      expect.arrayContaining(['proxy/main.ts', '--bundle', '--platform=node', '--format=esm']),
    );
  });

  it('creates the audit spool mount point, owned by node, before dropping to node', () => {
    // ECS on Fargate gives the task volume the owner of the image's directory; the root file system
    // is read-only, so without this the proxy could not spool at all.
    const lines = dockerfile.split('\n');
    const create = lines.findIndex(
      (line) =>
        line.startsWith('RUN mkdir -p') &&
        line.includes(AUDIT_SPOOL_DIR) &&
        line.includes('chown -R node:node'),
    );
    expect(create, `a RUN line creating ${AUDIT_SPOOL_DIR} for node`).toBeGreaterThan(
      lines.findLastIndex((line) => line.startsWith('FROM ')),
    );
    expect(create).toBeLessThan(lines.indexOf('USER node'));
    expect(lines).toContain(`VOLUME ["${AUDIT_SPOOL_DIR}"]`);
  });
});

describe('the image layout', () => {
  it('lets a bundled libpg-query find its WebAssembly (the SQL parser the policy engine uses)', () => {
    const probe = join(bundleDir, 'parser-probe.mjs');
    esbuild(
      ['--sourcefile=parser-probe.ts', ...sameFlags(probe)],
      "import { loadModule, parseSync } from 'libpg-query'; await loadModule(); console.log(parseSync('select 1').stmts.length);",
    );
    const run = spawnSync(process.execPath, [probe], { cwd: bundleDir, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('1');
  });
});

describe('the bundled proxy', () => {
  it('refuses to start without its configuration, naming what is missing', async () => {
    const child = start({});
    const output = collect(child);
    expect(await exited(child)).toBe(1);
    expect(output.text()).toContain('PGWARDEN_UPSTREAM_HOST is missing');
    expect(output.text()).toContain('PGWARDEN_API_REGION is missing');
    expect(output.text()).toContain('PGWARDEN_MASKING_KEY is missing');
  });

  it('starts from the environment ECS gives it, answers a health check, and drains on SIGTERM', async () => {
    const child = start({
      PGWARDEN_PROXY_HOST: '127.0.0.1',
      PGWARDEN_PROXY_PORT: '0',
      PGWARDEN_ALLOW_PLAINTEXT: 'true',
      PGWARDEN_UPSTREAM_HOST: '127.0.0.1',
      PGWARDEN_UPSTREAM_PORT: '9',
      PGWARDEN_UPSTREAM_SSL: 'disable',
      PGWARDEN_UPSTREAM_CREDENTIALS: JSON.stringify({ developer: { user: 'app_rw', password: 'secret' } }),
      PGWARDEN_API_URL: 'http://127.0.0.1:9',
      // the region its API calls are signed for, and credentials as the task role's would be found
      PGWARDEN_API_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'example-secret-0123456789',
      PGWARDEN_MASKING_KEY: 'masking-key-0123456789abcdef0123456789abcdef',
      PGWARDEN_DRAIN_SECONDS: '1',
    });
    const output = collect(child);
    const exit = exited(child);
    try {
      const [, port] = await waitForLine(output.text, /"message":"proxy listening".*"port":(\d+)/);
      // What the NLB and the container health check do: open a TCP connection and close it.
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1', () => {
          socket.end();
          resolve();
        });
        socket.once('error', reject);
      });
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      expect(output.text()).toMatch(/"message":"draining".*"signal":"SIGTERM"/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
