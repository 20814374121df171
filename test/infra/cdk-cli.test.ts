/**
 * `npx cdk synth` from the repository root as a user runs it from a fresh clone: no AWS
 * credentials, no account or region (an environment-agnostic stack), no Docker.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../infra/repo-root.ts';
import { nagViolations, newOutdir, REQUIRED_CONTEXT, removeOutdirs } from './synth.ts';

afterAll(removeOutdirs);

interface Run {
  code: number | null;
  output: string;
}

/** The environment without anything that could reach or identify an AWS account. */
function offlineEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(AWS_|CDK_)/.test(name)) env[name] = value;
  }
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  };
}

function cdkSynth(outdir: string, context: Record<string, unknown>): Promise<Run> {
  const args = ['cdk', 'synth', '--ci', '--no-notices', '--no-version-reporting', '-q', '-o', outdir];
  for (const [key, value] of Object.entries(context)) args.push('-c', `${key}=${String(value)}`);
  return new Promise((resolve, reject) => {
    const child = spawn('npx', args, {
      cwd: REPO_ROOT,
      env: offlineEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('npx cdk synth', () => {
  it('synthesizes offline with the required context and passes cdk-nag', async () => {
    const outdir = newOutdir();
    const run = await cdkSynth(outdir, REQUIRED_CONTEXT);
    expect(run.code, run.output).toBe(0);
    const template = JSON.parse(readFileSync(join(outdir, 'PgWarden.template.json'), 'utf8'));
    expect(Object.keys(template.Resources).length).toBeGreaterThan(50);
    expect(nagViolations(outdir)).toEqual([]);
    expect(existsSync(join(outdir, 'PgWarden.assets.json'))).toBe(true);
  }, 160_000);

  it('without the required context, exits non-zero with the list of what to pass', async () => {
    const outdir = newOutdir();
    const run = await cdkSynth(outdir, { proxyCpu: 300 });
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('invalid pgwarden context (cdk.json or -c key=value):');
    expect(run.output).toContain('  - oidcIssuer is missing');
    expect(run.output).toContain('  - tlsSecretArn is missing');
    expect(run.output).toContain('  - proxyCpu must be one of 256, 512, 1024, 2048, 4096');
    expect(run.output).not.toMatch(/^\s+at /m); // a message, not a stack trace
  }, 160_000);
});
