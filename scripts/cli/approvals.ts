/**
 * `pgwarden approvals ...`: decide held statements without Slack, through the same API and the
 * same rules (approver group, never your own statement, once, before it expires). The caller's
 * OIDC token comes from PGWARDEN_TOKEN; the API from PGWARDEN_API_URL (local default :8787).
 */
import { parseArgs } from 'node:util';
import { paramLines } from '../../shared/approvals/params.ts';
import { visibleText } from '../../shared/approvals/visible-text.ts';
import type { ApprovalListResponse, ApprovalResponse, ApprovalView } from '../../shared/approvals.ts';
import { type ApiRequest, CliFailure, callApi, jsonBody } from './api-client.ts';
import type { CliCommand, CliIo } from './command.ts';

export const approvalsUsage = `  approvals list                       statements waiting for a reviewer (needs the reviewers group)
  approvals approve ID                 run a held statement (as a member of its approver group)
  approvals deny ID [--reason TEXT]    refuse it; the reason is shown to whoever is waiting
    (your token in PGWARDEN_TOKEN; locally: PGWARDEN_TOKEN=$(npm run -s token -- you@example.com --groups reviewers))`;

export const approvalsCommand: CliCommand = async (args, io) => {
  const [command, ...rest] = args;
  let options: { reason?: string; positionals: string[] };
  try {
    const parsed = parseArgs({
      args: rest,
      options: { reason: { type: 'string', short: 'r' } },
      allowPositionals: true,
      strict: true,
    });
    options = { ...parsed.values, positionals: parsed.positionals };
  } catch (error) {
    io.err(`pgwarden: ${(error as Error).message}\n`);
    return 2;
  }
  const [id, ...extra] = options.positionals;
  try {
    if (command === 'list' && id === undefined) return await list(io);
    if ((command === 'approve' || command === 'deny') && id !== undefined && extra.length === 0) {
      if (command === 'approve' && options.reason !== undefined) {
        io.err('pgwarden: --reason goes with deny\n');
        return 2;
      }
      return await decide(io, command, id, options.reason);
    }
  } catch (error) {
    if (!(error instanceof CliFailure)) throw error;
    io.err(`pgwarden: ${error.message}\n`);
    return 1;
  }
  return undefined;
};

async function list(io: CliIo): Promise<number> {
  const { approvals } = await call<ApprovalListResponse>(io, { path: 'v1/approvals?status=pending' });
  if (approvals.length === 0) {
    io.out('no statements are waiting for approval\n');
    return 0;
  }
  for (const approval of approvals) io.out(`${printable(describeApproval(approval))}\n\n`);
  io.out(
    `approve:  npm run -s pgwarden -- approvals approve ID\ndeny:     npm run -s pgwarden -- approvals deny ID --reason "..."\n`,
  );
  return 0;
}

async function decide(io: CliIo, verdict: 'approve' | 'deny', id: string, reason?: string): Promise<number> {
  const path = `v1/approvals/${encodeURIComponent(id)}/${verdict}`;
  const body = verdict === 'deny' && reason !== undefined ? { reason } : {};
  const { approval } = await call<ApprovalResponse>(io, { method: 'POST', path, body: jsonBody(body) });
  const because = approval.denyReason ? `: ${approval.denyReason}` : '';
  io.out(
    approval.status === 'approved'
      ? `approved ${approval.id}: ${approval.principal}'s statement on ${approval.database} runs now (or on its next retry until ${approval.expiresAt})\n`
      : `denied ${approval.id}${because}; ${approval.principal} is told so\n`,
  );
  return 0;
}

/**
 * One approval as a reviewer reads it before deciding. The statement is printed whole: Slack shows
 * a long one only in part and sends the reviewer here for the rest, and an approval releases all
 * of it.
 */
export function describeApproval(a: ApprovalView): string {
  const text = a.text;
  return [
    `${a.id}  requested ${a.requestedAt} by ${a.principal}${a.actor === 'agent' ? ' (agent)' : ''}${a.applicationName ? ` via ${a.applicationName}` : ''} on ${a.database}`,
    `  rule     ${a.ruleId}: ${a.reason}`,
    `  approver ${a.approvers.join(' or ')}; can be decided until ${a.expiresAt}`,
    `  ${text.replace(/\n/g, '\n  ')}`,
    ...(a.params && a.params.count > 0
      ? [
          '  with (runs once with exactly these values):',
          ...paramLines(a.params).map((line) => `    ${line}`),
        ]
      : []),
  ].join('\n');
}

/**
 * The requester chose the statement and its values: control characters (an escape sequence could
 * rewrite what the reviewer's terminal shows) and Unicode format characters (a bidirectional
 * override reorders what is shown) are printed as escapes, line breaks and tabs kept.
 */
export function printable(text: string): string {
  return visibleText(text);
}

function call<T>(io: CliIo, request: ApiRequest): Promise<T> {
  return callApi<T>(io, request, {
    missingToken:
      'set PGWARDEN_TOKEN to your OIDC token (locally: PGWARDEN_TOKEN=$(npm run -s token -- you@example.com --groups reviewers))',
    notFoundHint: 'npm run -s pgwarden -- approvals list',
    timeoutMs: 30_000,
  });
}
