/**
 * `npm run -s pgwarden -- <area> <command>`: the operator's command line. Composition root: reads
 * argv and the environment and dispatches to one module per area under scripts/cli/.
 */
import { approvalsCommand, approvalsUsage } from './cli/approvals.ts';
import { auditCommand, auditUsage } from './cli/audit.ts';
import type { CliCommand, CliIo } from './cli/command.ts';
import { policyCommand, policyUsage } from './cli/policy.ts';
import { principalsCommand, principalsUsage } from './cli/principals.ts';

const areas: Record<string, { command: CliCommand; usage: string }> = {
  policy: { command: policyCommand, usage: policyUsage },
  approvals: { command: approvalsCommand, usage: approvalsUsage },
  audit: { command: auditCommand, usage: auditUsage },
  principals: { command: principalsCommand, usage: principalsUsage },
};

function usage(): string {
  return `usage: npm run -s pgwarden -- <area> <command> [options]\n\n${Object.values(areas)
    .map((a) => a.usage)
    .join('\n')}`;
}

async function main(argv: string[]): Promise<number> {
  const [area, ...rest] = argv;
  const io: CliIo = {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    env: process.env,
  };
  const entry = area === undefined ? undefined : areas[area];
  const code = entry ? await entry.command(rest, io) : undefined;
  if (code !== undefined) return code;
  process.stderr.write(`${usage()}\n`);
  return argv.includes('--help') || argv.includes('-h') ? 0 : 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pgwarden: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
