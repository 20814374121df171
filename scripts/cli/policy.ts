/**
 * `pgwarden policy ...`: check policy documents locally, and apply / show / list the stored versions
 * through the API (PGWARDEN_API_URL, with the caller's own OIDC token in PGWARDEN_TOKEN).
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_POLICY_YAML } from '../../shared/policy/default-policy.ts';
import { checkPolicyText, formatIssue, type PolicyIssue } from '../../shared/policy/parse-policy.ts';
import type { PolicyVersionSummary } from '../../shared/policy/stored.ts';
import { ApiRefusal, type ApiRequest, ApiUnreachable, CliFailure, callApi } from './api-client.ts';
import type { CliCommand, CliIo } from './command.ts';

export const policyUsage = `  policy validate FILE   check a policy document (YAML or JSON); prints each problem with its line
  policy apply FILE      validate, then store it as the new current version (admins; PGWARDEN_TOKEN)
  policy show            print the current policy and its version (PGWARDEN_TOKEN)
  policy history         list the stored versions, newest first (admins, auditors; PGWARDEN_TOKEN)
  policy show-default    print the default policy pack, a starting point for your own`;

export const policyCommand: CliCommand = async ([command, file], io) => {
  if (command === 'show-default') {
    io.out(DEFAULT_POLICY_YAML);
    return 0;
  }
  if (command === 'validate' && file) {
    const text = readText(file, io);
    if (text === undefined) return 2;
    return validated(file, text, io) ? 0 : 1;
  }
  if (command === 'apply' && file) return apply(file, io);
  if (command === 'show') return show(io);
  if (command === 'history') return history(io);
  return undefined;
};

function readText(file: string, io: CliIo): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    io.err(`pgwarden: cannot read ${file}: ${(error as Error).message}\n`);
    return undefined;
  }
}

function validated(file: string, text: string, io: CliIo): boolean {
  const check = checkPolicyText(text);
  if (!check.ok) {
    printIssues(file, check.issues, io);
    return false;
  }
  const { policy } = check;
  io.out(
    `${file}: valid policy version ${policy.version}, ${policy.rules.length} rules, default ${policy.default.action}\n`,
  );
  return true;
}

function printIssues(file: string, issues: PolicyIssue[], io: CliIo): void {
  io.err(`${file} is not a valid policy:\n`);
  for (const issue of issues) io.err(`  ${file}: ${formatIssue(issue)}\n`);
}

async function apply(file: string, io: CliIo): Promise<number> {
  const text = readText(file, io);
  if (text === undefined) return 2;
  // Checked here first: the same validation the API runs, without a round trip or a token.
  if (!validated(file, text, io)) return 1;
  const response = await call(io, {
    method: 'PUT',
    path: 'v1/policies',
    body: { contentType: /\.json$/i.test(file) ? 'application/json' : 'text/yaml', text },
  });
  if (!response.ok) return 1;
  const stored = response.body as { version: string; declaredVersion: string; rules: number };
  io.out(
    `applied ${file} as version ${stored.version} (declared ${stored.declaredVersion}, ${stored.rules} rules)\n`,
  );
  io.out(`${stored.version}\n`);
  return 0;
}

async function show(io: CliIo): Promise<number> {
  const response = await call(io, { path: 'v1/policies/current' });
  if (!response.ok) return 1;
  const current = response.body as { version: string; storedAt: string | null; storedBy: string | null };
  const origin =
    current.storedAt === null ? 'the built-in default' : `stored ${current.storedAt} by ${current.storedBy}`;
  io.err(`current policy: version ${current.version} (${origin})\n`);
  io.out(`${JSON.stringify((response.body as { policy: unknown }).policy, null, 2)}\n`);
  return 0;
}

async function history(io: CliIo): Promise<number> {
  const response = await call(io, { path: 'v1/policies?limit=100' });
  if (!response.ok) return 1;
  const { versions } = response.body as { versions: PolicyVersionSummary[] };
  if (versions.length === 0) {
    io.out('no policy stored yet: the built-in default pack is in force\n');
    return 0;
  }
  for (const v of versions)
    io.out(`${v.version}\t${v.storedAt}\t${v.storedBy}\t${v.declaredVersion}\t${v.rules} rules\n`);
  return 0;
}

type CallResult = { ok: true; body: unknown } | { ok: false };

/** One API call with the caller's token; problems are printed (in this area's words) and reported as not ok. */
async function call(io: CliIo, request: ApiRequest): Promise<CallResult> {
  try {
    const body = await callApi<unknown>(io, request, {
      missingToken:
        'set PGWARDEN_TOKEN to your OIDC token (locally: npm run -s token -- EMAIL --groups admins)',
    });
    return { ok: true, body };
  } catch (error) {
    if (!(error instanceof CliFailure)) throw error;
    io.err(`pgwarden: ${failureText(request, error)}\n`);
    return { ok: false };
  }
}

function failureText(request: ApiRequest, failure: CliFailure): string {
  if (failure instanceof ApiUnreachable) {
    const reason = failure.cause instanceof Error ? failure.cause.message : String(failure.cause);
    return `cannot reach the API at ${failure.apiUrl} (${reason}); set PGWARDEN_API_URL`;
  }
  if (failure instanceof ApiRefusal) {
    const { status, error } = failure;
    return `${request.method ?? 'GET'} /${request.path} failed (${status}${error?.code ? ` ${error.code}` : ''}): ${error?.message ?? 'no details'}`;
  }
  return failure.message;
}
