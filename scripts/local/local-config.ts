/**
 * Local mode's configuration: fixed defaults, a few overrides from an environment passed in (only
 * the composition roots pass `process.env`), and the state `npm start` leaves for the token command.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UPSTREAM_AUTH_METHODS, type UpstreamAuthMethod, type UpstreamSslMode } from '../../proxy/options.ts';
import {
  type AccessGroupsConfig,
  type AuditTrailConfig,
  accessGroupsFromEnv,
  auditTrailConfigFromEnv,
  reviewerGroupsMaxAgeFromEnv,
  sessionLifetimeFromEnv,
} from '../../shared/config.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { RoleMapping } from '../../shared/identity.ts';
import { readOrCreateSecrets } from './secrets.ts';

type Env = Record<string, string | undefined>;

export interface ExternalUpstream {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  ssl: UpstreamSslMode;
  /** `require_auth` in the URL, as libpq reads it (default scram-sha-256) */
  auth?: UpstreamAuthMethod[];
}

export interface LocalConfig {
  /** everything local listens on loopback only */
  host: '127.0.0.1';
  /** absolute */
  dataDir: string;
  audience: string;
  apiPort: number;
  proxyPort: number;
  /** where the dev issuer is mounted on the API's server */
  issuerPath: string;
  issuerUrl: string;
  tablePrefix: string;
  /** ordered: the first mapping a principal's groups match is its primary role */
  roleMappings: RoleMapping[];
  /** pgwarden role → upstream login role of the local PostgreSQL */
  upstreamUsers: Record<string, string>;
  /** PGWARDEN_UPSTREAM: use this server (and this one login for every role) instead of a local one */
  externalUpstream?: ExternalUpstream;
  /** PGWARDEN_POLICY_FILE: a policy document to enforce instead of the default pack (absolute) */
  policyFile?: string;
  /**
   * SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET (both or neither): approvals are posted to Slack, in
   * PGWARDEN_SLACK_CHANNEL (default pgwarden-approvals); without them they are printed to the console.
   */
  slack?: LocalSlackConfig;
  /** PGWARDEN_AUDIT_*: the proxy's audit trail; the spool defaults to `<dataDir>/spool` */
  audit: AuditTrailConfig;
  /** PGWARDEN_AUDITOR_GROUPS, PGWARDEN_ADMIN_GROUPS, PGWARDEN_REVIEWER_GROUPS: as in the Lambda */
  access: AccessGroupsConfig;
  /** PGWARDEN_MAX_SESSION_SECONDS, PGWARDEN_SESSION_RECHECK_SECONDS: as in the proxy */
  sessionLifetime: { maxSessionSeconds: number; recheckSeconds: number };
  /** PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS: as in the Lambda */
  reviewerGroupsMaxAgeSeconds: number;
}

export interface LocalSlackConfig {
  botToken: string;
  signingSecret: string;
  channel: string;
  /** PGWARDEN_SLACK_API_URL: a Slack Web API stand-in instead of https://slack.com/api/ */
  apiUrl?: string;
}

export const defaultSlackChannel = 'pgwarden-approvals';

export const defaultApiPort = 8787;
export const defaultProxyPort = 6432;
export const devIssuerPath = '/dev-oidc';

const roleMappings: RoleMapping[] = [
  { role: 'admin', groups: ['admins'] },
  { role: 'developer', groups: ['engineering'] },
  { role: 'auditor', groups: ['auditors'] },
  { role: 'reviewer', groups: ['reviewers'] },
];

const upstreamUsers: Record<string, string> = {
  admin: 'app_admin',
  developer: 'app_rw',
  auditor: 'app_ro',
  reviewer: 'app_ro',
};

export function localIssuerUrl(apiPort: number, host = '127.0.0.1'): string {
  return `http://${host}:${apiPort}${devIssuerPath}`;
}

export function loadLocalConfig(env: Env, cwd: string): LocalConfig {
  const problems: string[] = [];
  const port = (name: string, fallback: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallback;
    const value = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
    if (!(value >= 0 && value <= 65_535)) problems.push(`${name} must be a port number (got "${text}")`);
    return value;
  };
  const apiPort = port('PGWARDEN_API_PORT', defaultApiPort);
  const proxyPort = port('PGWARDEN_PROXY_PORT', defaultProxyPort);
  const dataDir = resolve(cwd, env['PGWARDEN_DATA_DIR']?.trim() || '.pgwarden');
  const audit = auditTrailConfigFromEnv(env, join(dataDir, 'spool'), problems);
  audit.spoolDir = resolve(cwd, audit.spoolDir);

  const slack = localSlackFromEnv(env, problems);
  const sessionLifetime = sessionLifetimeFromEnv(env, problems);
  const reviewerGroupsMaxAgeSeconds = reviewerGroupsMaxAgeFromEnv(env, problems);

  let externalUpstream: ExternalUpstream | undefined;
  const policyFile = env['PGWARDEN_POLICY_FILE']?.trim() || undefined;
  const upstreamText = env['PGWARDEN_UPSTREAM']?.trim();
  if (upstreamText) {
    try {
      externalUpstream = parseUpstreamUrl(upstreamText);
    } catch (error) {
      problems.push(`PGWARDEN_UPSTREAM: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid local configuration: ${problems.join('; ')}`);
  }

  const users =
    externalUpstream === undefined
      ? { ...upstreamUsers }
      : Object.fromEntries(roleMappings.map((m) => [m.role, externalUpstream.user]));
  return {
    host: '127.0.0.1',
    dataDir,
    audience: 'pgwarden',
    apiPort,
    proxyPort,
    issuerPath: devIssuerPath,
    issuerUrl: localIssuerUrl(apiPort),
    tablePrefix: 'pgwarden-local-',
    roleMappings: roleMappings.map((m) => ({ role: m.role, groups: [...m.groups] })),
    upstreamUsers: users,
    ...(externalUpstream === undefined ? {} : { externalUpstream }),
    ...(policyFile === undefined ? {} : { policyFile: resolve(cwd, policyFile) }),
    ...(slack && { slack }),
    audit,
    access: accessGroupsFromEnv(env),
    sessionLifetime,
    reviewerGroupsMaxAgeSeconds,
  };
}

function localSlackFromEnv(env: Env, problems: string[]): LocalSlackConfig | undefined {
  const botToken = env['SLACK_BOT_TOKEN']?.trim();
  const signingSecret = env['SLACK_SIGNING_SECRET']?.trim();
  if (!botToken && !signingSecret) return undefined;
  if (!botToken || !signingSecret) {
    problems.push('SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET go together (Slack posts and verifies clicks)');
    return undefined;
  }
  const apiUrl = env['PGWARDEN_SLACK_API_URL']?.trim() || undefined;
  if (apiUrl !== undefined && !/^https?:\/\/[^/]+/.test(apiUrl)) {
    problems.push('PGWARDEN_SLACK_API_URL must be an http(s) URL');
  }
  return {
    botToken,
    signingSecret,
    channel: env['PGWARDEN_SLACK_CHANNEL']?.trim() || defaultSlackChannel,
    ...(apiUrl === undefined ? {} : { apiUrl }),
  };
}

/** `postgres://user:pass@host:port/db?sslmode=…`; the password is never echoed in errors. */
export function parseUpstreamUrl(text: string): ExternalUpstream {
  const url = URL.parse(text);
  if (url === null || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new Error('must be a postgres://user:password@host:port/database URL');
  }
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  if (user === '' || password === '' || url.hostname === '') {
    throw new Error('must name a user, a password and a host (postgres://user:password@host:port/database)');
  }
  const port = url.port === '' ? 5432 : Number(url.port);
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || user;
  const sslmode = url.searchParams.get('sslmode') ?? 'prefer';
  const modes: readonly UpstreamSslMode[] = ['disable', 'prefer', 'require', 'verify-full'];
  if (!(modes as readonly string[]).includes(sslmode)) {
    throw new Error(`sslmode must be one of ${modes.join(', ')} (got "${sslmode}")`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const auth = url.searchParams.get('require_auth')?.split(',');
  const unknown = auth?.filter((m) => !(UPSTREAM_AUTH_METHODS as readonly string[]).includes(m)) ?? [];
  if (unknown.length > 0) {
    throw new Error(`require_auth may list ${UPSTREAM_AUTH_METHODS.join(', ')} (got "${unknown.join(',')}")`);
  }
  return {
    host,
    port,
    database,
    user,
    password,
    ssl: sslmode as UpstreamSslMode,
    ...(auth === undefined ? {} : { auth: auth as UpstreamAuthMethod[] }),
  };
}

/** The bearer token the proxy would present to the API over HTTP; generated once per data dir. */
export function readOrCreateServiceToken(dataDir: string): string {
  return readOrCreateSecrets(dataDir, ['service_token']).service_token;
}

/** What a running `npm start` tells other local commands (the token command, docs, tests). */
export interface LocalState {
  issuerUrl: string;
  apiUrl: string;
  proxyHost: string;
  proxyPort: number;
  audience: string;
  certPath: string;
  pid: number;
  startedAt: string;
}

export function localStatePath(dataDir: string): string {
  return join(dataDir, 'local.json');
}

export function writeLocalState(dataDir: string, state: LocalState): void {
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(localStatePath(dataDir), JSON.stringify(state, null, 2) + '\n');
}

export function readLocalState(dataDir: string): Partial<LocalState> | undefined {
  const path = localStatePath(dataDir);
  if (!existsSync(path)) return undefined;
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Partial<LocalState>) : undefined;
  } catch {
    return undefined;
  }
}
