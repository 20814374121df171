import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, importJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuerKeys } from '../../scripts/local/oidc-issuer.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-token-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function token(args: string[], dir = dataDir): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'npx',
      ['tsx', 'scripts/token.ts', ...args],
      { cwd: repoRoot, env: { ...process.env, PGWARDEN_DATA_DIR: dir }, timeout: 20_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const jwtLine = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/;

describe('npm run token', () => {
  it('prints exactly one JWT line, signed by the persisted issuer key', async () => {
    const run = await token(['alice@example.com', '--groups', 'engineering,reviewers']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(jwtLine);
    const keys = JSON.parse(await readFile(join(dataDir, 'issuer', 'keys.json'), 'utf8')) as IssuerKeys;
    const { d: _d, ...publicJwk } = keys.keys[0]!.privateJwk;
    const { payload } = await jwtVerify(run.stdout.trim(), await importJWK(publicJwk, 'ES256'), {
      issuer: 'http://127.0.0.1:8787/dev-oidc',
      audience: 'pgwarden',
    });
    expect(payload).toMatchObject({ email: 'alice@example.com', groups: ['engineering', 'reviewers'] });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload['pgwarden_actor']).toBeUndefined();
  });

  it('takes the issuer from local.json, a ttl and the agent flag', async () => {
    const other = await mkdtemp(join(tmpdir(), 'pgwarden-token-'));
    try {
      await writeFile(
        join(other, 'local.json'),
        JSON.stringify({ issuerUrl: 'http://127.0.0.1:9999/dev-oidc', audience: 'pgwarden' }),
      );
      const [thirty, seconds] = await Promise.all([
        token(['bot@example.com', '-g', 'engineering', '--ttl', '30m', '--agent'], other),
        token(['bot@example.com', '--groups=admins', '--ttl', '90'], other),
      ]);
      expect(thirty.stdout).toMatch(jwtLine);
      const claims = decodeJwt(thirty.stdout.trim());
      expect(claims.iss).toBe('http://127.0.0.1:9999/dev-oidc');
      expect(claims.exp! - claims.iat!).toBe(1800);
      expect(claims['pgwarden_actor']).toBe('agent');
      const short = decodeJwt(seconds.stdout.trim());
      expect(short.exp! - short.iat!).toBe(90);
      expect(short['groups']).toEqual(['admins']);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('prints usage on --help and fails with nothing on stdout on bad input', async () => {
    const [help, noEmail, badTtl, unknown] = await Promise.all([
      token(['--help']),
      token(['--groups', 'engineering']),
      token(['alice@example.com', '--ttl', 'soon']),
      token(['alice@example.com', '--frobnicate']),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run -s token/);
    for (const run of [noEmail, badTtl, unknown]) {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^token: /);
    }
    expect(badTtl.stderr).toContain('--ttl');
  });
});
