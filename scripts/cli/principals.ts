/**
 * `pgwarden principals ...`: what pgwarden knows of a principal, and an administrator's changes
 * (disable at once, enable, set groups). Each reaches open sessions at their next re-check
 * (PGWARDEN_SESSION_RECHECK_SECONDS) and Slack clicks at once. Needs an admins token in PGWARDEN_TOKEN.
 */
import { parseArgs } from 'node:util';
import type { KnownPrincipal } from '../../shared/approvals/ports.ts';
import { type ApiRequest, CliFailure, callApi, jsonBody } from './api-client.ts';
import type { CliCommand, CliIo } from './command.ts';

export const principalsUsage = `  principals show (--email E | --issuer I --subject S)      what pgwarden knows (needs the admins group)
  principals disable --issuer I --subject S [--reason TEXT] end their sessions, refuse their tokens and clicks
  principals enable --issuer I --subject S
  principals groups --issuer I --subject S --groups g1,g2   the groups pgwarden uses from now on`;

export const principalsCommand: CliCommand = async (args, io) => {
  const [command, ...rest] = args;
  let values: { email?: string; issuer?: string; subject?: string; reason?: string; groups?: string };
  try {
    values = parseArgs({
      args: rest,
      options: {
        email: { type: 'string' },
        issuer: { type: 'string' },
        subject: { type: 'string' },
        reason: { type: 'string', short: 'r' },
        groups: { type: 'string', short: 'g' },
      },
      strict: true,
    }).values;
  } catch (error) {
    io.err(`pgwarden: ${(error as Error).message}\n`);
    return 2;
  }
  const id =
    values.issuer !== undefined && values.subject !== undefined
      ? { issuer: values.issuer, subject: values.subject }
      : undefined;
  try {
    if (command === 'show' && values.email !== undefined)
      return await show(io, `email=${encodeURIComponent(values.email)}`);
    if (command === 'show' && id !== undefined)
      return await show(
        io,
        `issuer=${encodeURIComponent(id.issuer)}&subject=${encodeURIComponent(id.subject)}`,
      );
    if (command === 'disable' && id !== undefined)
      return await change(io, {
        ...id,
        disabled: true,
        ...(values.reason === undefined ? {} : { reason: values.reason }),
      });
    if (command === 'enable' && id !== undefined) return await change(io, { ...id, disabled: false });
    if (command === 'groups' && id !== undefined && values.groups !== undefined) {
      const groups = values.groups
        .split(',')
        .map((g) => g.trim())
        .filter((g) => g !== '');
      return await change(io, { ...id, groups });
    }
  } catch (error) {
    if (!(error instanceof CliFailure)) throw error;
    io.err(`pgwarden: ${error.message}\n`);
    return 1;
  }
  return undefined;
};

async function show(io: CliIo, query: string): Promise<number> {
  const { principals } = await call<{ principals: KnownPrincipal[] }>(io, { path: `v1/principals?${query}` });
  if (principals.length === 0) io.out('pgwarden has not seen that principal\n');
  for (const p of principals) io.out(`${describe(p)}\n`);
  return 0;
}

async function change(io: CliIo, body: Record<string, unknown>): Promise<number> {
  const { principal } = await call<{ principal: KnownPrincipal }>(io, {
    method: 'PATCH',
    path: 'v1/principals',
    body: jsonBody(body),
  });
  io.out(`${describe(principal)}\n`);
  return 0;
}

function describe(p: KnownPrincipal): string {
  return [
    `${p.issuer}#${p.subject}  ${p.name}${p.email ? ` <${p.email}>` : ''}${p.actor === 'agent' ? ' (agent)' : ''}`,
    `  groups   ${p.groups.join(', ') || 'none'} (as of ${p.groupsAsOf})`,
    `  seen     ${p.seenAt}`,
    `  status   ${p.disabled ? `disabled on ${p.disabled.at} by ${p.disabled.by}${p.disabled.reason ? `: ${p.disabled.reason}` : ''}` : 'enabled'}`,
  ].join('\n');
}

function call<T>(io: CliIo, request: ApiRequest): Promise<T> {
  return callApi<T>(io, request, {
    missingToken:
      "set PGWARDEN_TOKEN to an admin's OIDC token (locally: PGWARDEN_TOKEN=$(npm run -s token -- you@example.com --groups admins))",
    timeoutMs: 30_000,
  });
}
