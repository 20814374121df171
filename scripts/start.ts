/**
 * `npm start`: pgwarden in local mode, one process. Composition root: the only place here that
 * reads process.env. Starts PostgreSQL (unless PGWARDEN_UPSTREAM names one), DynamoDB (dynalite),
 * the dev OIDC issuer + API on :8787 and the proxy on :6432; Ctrl-C stops all of it.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import type { UpstreamCredential, UpstreamTarget } from '../proxy/options.ts';
import { StatementDecider } from '../shared/decide.ts';
import { isPgWardenError, PgWardenError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Policy } from '../shared/policy/model.ts';
import { checkPolicyText, formatIssue } from '../shared/policy/parse-policy.ts';
import { startLocalDynamo } from './local/dynamodb.ts';
import {
  type LocalConfig,
  loadLocalConfig,
  readOrCreateServiceToken,
  writeLocalState,
} from './local/local-config.ts';
import { startLocalPostgres } from './local/postgres.ts';
import { readOrCreateSecrets } from './local/secrets.ts';
import { apiPortHint, assertPortsFree, proxyPortHint, startLocalServices } from './local/services.ts';
import { startLocalSqs } from './local/sqs.ts';
import { ensureLocalCertificate } from './local/tls.ts';

/** One line per event on stderr: `12:00:00.123 info  proxy listening host=127.0.0.1 port=6432`. */
function createStderrLogger(): Logger {
  const line = (level: string, message: string, fields?: Record<string, unknown>) => {
    const time = new Date().toISOString().slice(11, 23);
    const rest = Object.entries(fields ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${formatValue(value)}`)
      .join(' ');
    process.stderr.write(`${time} ${level.padEnd(5)} ${message}${rest ? ` ${rest}` : ''}\n`);
  };
  return {
    info: (message, fields) => line('info', message, fields),
    warn: (message, fields) => line('warn', message, fields),
    error: (message, fields) => line('error', message, fields),
  };
}

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text.replace(/\s+/g, ' ')) : text;
}

const logger = createStderrLogger();
const running: Array<{ name: string; stop: () => Promise<void> }> = [];
let stopRequested = false;
/** settles once start-up has finished or given up */
let startup: Promise<void> = Promise.resolve();

class Interrupted extends Error {}

/** Registers what started; a stop requested meanwhile ends start-up here (shutdown stops it all). */
function own(name: string, stop: () => Promise<void>): void {
  running.push({ name, stop });
  if (stopRequested) throw new Interrupted();
}

async function stopAll(): Promise<void> {
  for (const { name, stop } of running.reverse().splice(0)) {
    try {
      await stop();
    } catch (error) {
      logger.warn(`could not stop ${name} cleanly`, { error: errorText(error) });
    }
  }
}

let firstSignalAt = 0;

function shutdown(signal: NodeJS.Signals): void {
  if (stopRequested) {
    // Ctrl-C reaches every process of the terminal's group, and tsx's parent process may relay the
    // same signal once more: a repeat right after the first is that echo, not a second Ctrl-C.
    if (Date.now() - firstSignalAt < 2_000) return;
    logger.warn(`second ${signal}: exiting without waiting`);
    process.exit(130);
  }
  stopRequested = true;
  firstSignalAt = Date.now();
  logger.info(`${signal}: stopping`);
  setTimeout(() => {
    logger.error('shutdown took too long; exiting');
    process.exit(1);
  }, 15_000).unref();
  void startup.then(stopAll).then(() => {
    logger.info('stopped');
    process.exit(0);
  });
}

async function start(config: LocalConfig): Promise<void> {
  const { dataDir } = config;
  // an invalid policy stops start-up before anything is started
  const decider =
    config.policyFile === undefined ? undefined : new StatementDecider(readPolicyFile(config.policyFile));
  await assertPortsFree(config.host, [
    { what: 'the API', port: config.apiPort, hint: apiPortHint },
    { what: 'the proxy', port: config.proxyPort, hint: proxyPortHint },
  ]);
  const certificate = await ensureLocalCertificate(dataDir);
  const serviceToken = readOrCreateServiceToken(dataDir);

  let upstream: UpstreamTarget;
  let passwords: Record<string, string>;
  let database = 'app';
  if (config.externalUpstream) {
    const external = config.externalUpstream;
    upstream = {
      host: external.host,
      port: external.port,
      ssl: external.ssl,
      ...(external.auth === undefined ? {} : { auth: external.auth }),
    };
    passwords = { [external.user]: external.password };
    database = external.database;
    logger.info('using the upstream from PGWARDEN_UPSTREAM', { host: external.host, port: external.port });
  } else {
    const postgres = await startLocalPostgres({ dataDir, log: logger });
    own('postgres', postgres.stop);
    upstream = { host: postgres.host, port: postgres.port, ssl: 'disable' };
    passwords = Object.fromEntries(Object.values(postgres.roles).map((r) => [r.user, r.password]));
  }

  const dynamo = await startLocalDynamo({ dataDir: join(dataDir, 'dynamodb') });
  own('dynamodb', dynamo.close);
  // the approvals queue: the notifier (Slack, or this console) is fed through it as in AWS
  const sqs = await startLocalSqs();
  own('sqs', sqs.close);
  logger.info('sqs (fauxqs) listening', { endpoint: sqs.endpoint });
  logger.info('dynamodb (dynalite) listening', { endpoint: dynamo.endpoint });

  const services = await startLocalServices({
    dataDir,
    host: config.host,
    apiPort: config.apiPort,
    proxyPort: config.proxyPort,
    issuerPath: config.issuerPath,
    audience: config.audience,
    roleMappings: config.roleMappings,
    ...(decider === undefined ? {} : { decider }),
    dynamoEndpoint: dynamo.endpoint,
    tablePrefix: config.tablePrefix,
    serviceToken,
    maskingKey: Buffer.from(readOrCreateSecrets(dataDir, ['masking_key']).masking_key, 'utf8'),
    tls: certificate,
    upstream,
    credentials: (role: string): UpstreamCredential => {
      const user = config.upstreamUsers[role];
      const password = user === undefined ? undefined : passwords[user];
      if (user === undefined || password === undefined) {
        throw new PgWardenError('UPSTREAM_AUTH_FAILED', `no upstream login is configured for role "${role}"`);
      }
      return { user, password };
    },
    proxyId: `local-${hostname()}`,
    logger,
    audit: config.audit,
    access: config.access,
    lifetime: config.sessionLifetime,
    approvals: {
      reviewerGroupsMaxAgeSeconds: config.reviewerGroupsMaxAgeSeconds,
      sqs: { endpoint: sqs.endpoint, queueUrl: sqs.queueUrl },
      ...(config.slack ? { slack: config.slack } : { console: (text: string) => process.stdout.write(text) }),
    },
  });
  own('api and proxy', services.stop);

  writeLocalState(dataDir, {
    issuerUrl: services.issuer.issuerUrl,
    apiUrl: services.api.url,
    proxyHost: services.proxy.host,
    proxyPort: services.proxy.port,
    audience: config.audience,
    certPath: certificate.certPath,
    pid: process.pid,
    startedAt: new Date().toISOString(),
  });
  process.stdout.write(
    banner(
      config,
      { proxyPort: services.proxy.port, apiUrl: services.api.url, issuerUrl: services.issuer.issuerUrl },
      database,
      certificate.certPath,
    ),
  );
}

interface Endpoints {
  proxyPort: number;
  apiUrl: string;
  issuerUrl: string;
}

function banner(config: LocalConfig, endpoints: Endpoints, database: string, certPath: string): string {
  const { proxyPort } = endpoints;
  const token = 'npm run -s token -- alice@example.com --groups engineering';
  const url = `postgresql://alice%40example.com:<TOKEN>@localhost:${proxyPort}/${database}?sslmode=verify-full&sslrootcert=${certPath}`;
  const mcp = JSON.stringify(
    {
      mcpServers: {
        pgwarden: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-postgres', url] },
      },
    },
    null,
    2,
  );
  const fromHere = relative(process.cwd(), config.dataDir);
  const shownDataDir = fromHere === '' ? '.' : fromHere.startsWith('..') ? config.dataDir : fromHere;
  return `
pgwarden is running in local mode (data in ${shownDataDir}/)

  proxy   ${config.host}:${proxyPort} (TLS only)
  api     ${endpoints.apiUrl}   issuer ${endpoints.issuerUrl}
  groups  ${config.roleMappings.map((m) => `${m.groups.join('|')} → ${m.role}`).join(', ')}
  approvals ${config.slack ? `posted to Slack #${config.slack.channel}` : 'printed here (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET for Slack)'}; or: npm run -s pgwarden -- approvals list

Get a token (valid 1 hour; --ttl 8h for longer, --agent for an AI agent):
  ${token}

Connect with psql:
  PGPASSWORD=$(${token}) psql "host=${config.host} port=${proxyPort} dbname=${database} user=alice@example.com sslmode=require"

Cursor (~/.cursor/mcp.json), with <TOKEN> from \`${token} --agent --ttl 8h\`:
${mcp.replace(/^/gm, '  ')}

Ctrl-C stops everything.
`;
}

/** The operator's policy document; an invalid one stops start-up with every problem and its line. */
function readPolicyFile(path: string): Policy {
  const check = checkPolicyText(readFileSync(path, 'utf8'));
  if (!check.ok) {
    throw new PgWardenError(
      'CONFIG_INVALID',
      `PGWARDEN_POLICY_FILE ${path} is not a valid policy:\n${check.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
    );
  }
  logger.info('enforcing the policy file', {
    path,
    version: check.policy.version,
    rules: check.policy.rules.length,
  });
  return check.policy;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

let config: LocalConfig;
try {
  config = loadLocalConfig(process.env, process.cwd());
} catch (error) {
  process.stderr.write(`pgwarden: ${errorText(error)}\n`);
  process.exit(2);
}

startup = start(config).catch(async (error: unknown) => {
  // after Ctrl-C, a step that failed because its process was interrupted is not news
  if (stopRequested) return;
  const code = isPgWardenError(error) ? ` [${error.code}]` : '';
  process.stderr.write(`\npgwarden could not start${code}: ${errorText(error)}\n`);
  if (error instanceof Error && error.cause instanceof Error) {
    process.stderr.write(`  cause: ${error.cause.message}\n`);
  }
  await stopAll();
  process.exit(1);
});
