/**
 * `npm run -s token -- alice@example.com --groups engineering [--ttl 1h] [--agent]`
 * Prints a token from the local development issuer, and nothing else, on stdout, so it can be used
 * as `PGPASSWORD=$(npm run -s token -- …)`. Composition root: reads process.env and argv.
 */
import { parseArgs } from 'node:util';
import { loadLocalConfig, readLocalState } from './local/local-config.ts';
import { readOrCreateIssuerKeys, signToken } from './local/oidc-issuer.ts';

const usage = `usage: npm run -s token -- <email> [--groups g1,g2] [--ttl 1h|30m|3600] [--agent] [--email verified|unverified|omitted]

Prints a token of the local development issuer (the one \`npm start\` trusts) on stdout.

  <email>          who the token is for; connect with user=<email>
  --groups, -g     comma-separated groups (admins, engineering, auditors, reviewers)
  --ttl            lifetime: seconds, or a number with s, m, h or d (default 1h)
  --agent          mark the token as issued to an AI agent rather than a person
  --email          how the token carries the email: verified (default), unverified
                   (email_verified false) or omitted; without a verified email, connect
                   with user=dev|<email> (the subject)
  --help, -h       this text

example:
  PGPASSWORD=$(npm run -s token -- alice@example.com --groups engineering) \\
    psql "host=127.0.0.1 port=6432 dbname=app user=alice@example.com sslmode=require"`;

class UsageError extends Error {}

function parseTtl(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/i.exec(text.trim());
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[(match?.[2] ?? '').toLowerCase()];
  const seconds = match && unit ? Number(match[1]) * unit : Number.NaN;
  if (!(seconds > 0)) throw new UsageError(`--ttl must be like 3600, 30m, 1h or 1d (got "${text}")`);
  return seconds;
}

async function main(argv: string[], env: Record<string, string | undefined>): Promise<string | undefined> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  if (positionals.length !== 1) throw new UsageError('give exactly one email address');
  const email = positionals[0]!.trim();
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new UsageError(`"${email}" is not an email address`);
  const groups = (values.groups ?? [])
    .flatMap((g) => g.split(','))
    .map((g) => g.trim())
    .filter((g) => g !== '');
  const ttlSeconds = parseTtl(values.ttl ?? '1h');
  if (groups.length === 0) {
    process.stderr.write(
      'note: no --groups given; pgwarden grants no role without one (e.g. --groups engineering)\n',
    );
  }

  const config = loadLocalConfig(env, process.cwd());
  const state = readLocalState(config.dataDir);
  const keys = await readOrCreateIssuerKeys(config.dataDir);
  return signToken(keys.keys[0]!, state?.issuerUrl ?? config.issuerUrl, {
    email,
    groups,
    ttlSeconds,
    audience: state?.audience ?? config.audience,
    actor: values.agent ? 'agent' : 'person',
    emailClaim: emailClaimOf(values.email),
  });
}

function emailClaimOf(text: string | undefined): 'verified' | 'unverified' | 'omitted' {
  const value = text ?? 'verified';
  if (value === 'verified' || value === 'unverified' || value === 'omitted') return value;
  throw new UsageError(`--email must be verified, unverified or omitted (got "${value}")`);
}

function parseCommandLine(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      groups: { type: 'string', short: 'g', multiple: true },
      ttl: { type: 'string' },
      agent: { type: 'boolean' },
      email: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

try {
  const token = await main(process.argv.slice(2), process.env);
  if (token === undefined) {
    process.stdout.write(usage + '\n');
  } else {
    process.stdout.write(token + '\n');
  }
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`token: ${message}\n`);
  if (error instanceof UsageError) process.stderr.write(`\n${usage}\n`);
  process.exitCode = 1;
}
