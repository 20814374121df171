/**
 * Synthesizes the pgwarden app in-process the way `cdk synth` does (cdk.json context, cdk-nag
 * plugin), once per call: the template and the validation report come from the same synthesis.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { createPgWardenApp } from '../../infra/pgwarden-app.ts';
import type { PgWardenStack } from '../../infra/pgwarden-stack.ts';
import { REPO_ROOT } from '../../infra/repo-root.ts';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const TLS_SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgwarden/tls-AbCdEf`;
export const CREDENTIALS_SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgwarden/upstream-GhIjKl`;

/** What a user must pass on top of cdk.json's defaults. */
export const REQUIRED_CONTEXT: Record<string, unknown> = {
  oidcIssuer: 'https://login.example.com/',
  oidcAudience: 'pgwarden',
  roles: 'admin=admins,platform;developer=engineering;auditor=auditors',
  upstreamHost: 'db.internal.example.com',
  upstreamCredentialsSecretArn: CREDENTIALS_SECRET_ARN,
  tlsSecretArn: TLS_SECRET_ARN,
};

export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

export interface Synthesized {
  stack: PgWardenStack;
  template: Template;
  outdir: string;
}

export interface SynthOptions {
  context?: Record<string, unknown>;
  /** changes the stack before synthesis (e.g. adds a resource nag must catch) */
  mutate?: (stack: PgWardenStack) => void;
  outdir?: string;
}

const outdirs: string[] = [];

/** A fresh cloud-assembly directory, removed by `removeOutdirs` (call it in afterAll). */
export function newOutdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-cdk-'));
  outdirs.push(dir);
  return dir;
}

export function removeOutdirs(): void {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export function synthesize(options: SynthOptions = {}): Synthesized {
  const outdir = options.outdir ?? newOutdir();
  const { app, stack } = createPgWardenApp({
    context: { ...cdkJsonContext(), ...REQUIRED_CONTEXT, ...options.context },
    outdir,
    env: { account: ACCOUNT, region: REGION },
  });
  options.mutate?.(stack);
  const assembly = app.synth();
  return { stack, template: Template.fromJSON(assembly.getStackArtifact(stack.artifactId).template), outdir };
}

export interface NagViolation {
  rule: string;
  path: string;
}

/** Findings from the cdk-nag report that synthesis writes (also when it fails). */
export function nagViolations(outdir: string): NagViolation[] {
  const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as {
    pluginReports: Array<{
      violations: Array<{ ruleName: string; violatingConstructs: Array<{ constructPath: string }> }>;
    }>;
  };
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.flatMap((violation) =>
      violation.violatingConstructs.map((construct) => ({
        rule: violation.ruleName,
        path: construct.constructPath,
      })),
    ),
  );
}
