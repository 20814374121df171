/**
 * The control-plane API's configuration, read from an environment given as an argument (only the
 * Lambda handler passes `process.env`). Every problem is reported at once so a deploy fails with
 * one complete message instead of one variable per attempt.
 */
import { PgWardenError } from './errors.ts';
import type { RoleMapping } from './identity.ts';

export interface ApiConfig {
  /** emailsVerified: PGWARDEN_OIDC_EMAILS_VERIFIED (see functions/adapters/oidc-verifier.ts) */
  oidc: {
    issuer: string;
    audience: string;
    algorithms: string[];
    groupsClaim: string;
    emailsVerified: boolean;
  };
  roles: RoleMapping[];
  /** the proxy's credential: given directly, or (in AWS) read from Secrets Manager at cold start */
  serviceToken: { value: string } | { secretArn: string };
  tablePrefix: string;
  dynamoDbEndpoint?: string;
  /**
   * How the proxy's routes authenticate (functions/api/proxy-auth.ts): PGWARDEN_PROXY_AUTH=iam (the
   * default; API Gateway's IAM authorizer verified the SigV4 signature, PGWARDEN_PROXY_ROLE_ARNS
   * lists the proxy task roles the app accepts) or sigv4 (the app verifies the signature itself
   * against PGWARDEN_PROXY_ACCESS_KEY_ID / PGWARDEN_PROXY_SECRET_ACCESS_KEY, for a proxy outside AWS).
   * A bearer token is never accepted on these routes.
   */
  proxyAuth:
    | { mode: 'iam'; roleArns: string[] }
    | { mode: 'sigv4'; accessKeyId: string; secretAccessKey: string; region: string };
}

/**
 * Asymmetric JWS algorithms only: an OIDC issuer publishes public keys, so an HMAC algorithm would
 * let anyone holding the public key forge tokens (algorithm confusion), and `none` needs no key.
 */
export const SIGNING_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

export const DEFAULT_ALGORITHMS = ['RS256', 'ES256'];

/**
 * How stale a principal's groups may be where they decide something: an open session is re-checked
 * this often (PGWARDEN_SESSION_RECHECK_SECONDS), and a Slack reviewer's groups must have been
 * asserted no longer ago than this (PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS).
 */
export const DEFAULT_SESSION_RECHECK_SECONDS = 300;
export const DEFAULT_REVIEWER_GROUPS_MAX_AGE_SECONDS = 300;
/** PGWARDEN_MAX_SESSION_SECONDS: no session lives longer, whatever its token's lifetime */
export const DEFAULT_MAX_SESSION_SECONDS = 12 * 3600;
const MIN_SERVICE_TOKEN_LENGTH = 16;

type Env = Record<string, string | undefined>;

export function apiConfigFromEnv(env: Env): ApiConfig {
  const problems: string[] = [];
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) problems.push(`${name} is missing`);
    return value ?? '';
  };

  const issuer = required('PGWARDEN_OIDC_ISSUER');
  if (issuer && !isIssuerUrl(issuer)) {
    problems.push(
      'PGWARDEN_OIDC_ISSUER must be an https URL without query or fragment (http only for localhost)',
    );
  }
  const audience = required('PGWARDEN_OIDC_AUDIENCE');
  const algorithms = list(env['PGWARDEN_OIDC_ALGORITHMS']) ?? DEFAULT_ALGORITHMS;
  const refused = algorithms.filter((alg) => !SIGNING_ALGORITHMS.includes(alg));
  if (refused.length > 0 || algorithms.length === 0) {
    problems.push(
      `PGWARDEN_OIDC_ALGORITHMS may only list ${SIGNING_ALGORITHMS.join(', ')} (got ${refused.join(', ') || 'nothing'})`,
    );
  }
  const groupsClaim = env['PGWARDEN_OIDC_GROUPS_CLAIM']?.trim() || 'groups';
  const emailsVerified = booleanSetting(env, 'PGWARDEN_OIDC_EMAILS_VERIFIED', false, problems);

  let roles: RoleMapping[] = [];
  const rolesText = required('PGWARDEN_ROLES');
  if (rolesText) {
    try {
      roles = parseRoleMappings(rolesText);
    } catch (error) {
      problems.push(`PGWARDEN_ROLES: ${(error as Error).message}`);
    }
  }

  const tokenValue = env['PGWARDEN_SERVICE_TOKEN']?.trim();
  const tokenArn = env['PGWARDEN_SERVICE_TOKEN_SECRET_ARN']?.trim();
  if (!tokenValue === !tokenArn) {
    problems.push('set exactly one of PGWARDEN_SERVICE_TOKEN and PGWARDEN_SERVICE_TOKEN_SECRET_ARN');
  } else if (tokenValue) {
    const problem = serviceTokenProblem(tokenValue);
    if (problem) problems.push(`PGWARDEN_SERVICE_TOKEN ${problem}`);
  } else if (tokenArn && !/^arn:aws[a-z-]*:secretsmanager:/.test(tokenArn)) {
    problems.push('PGWARDEN_SERVICE_TOKEN_SECRET_ARN must be a Secrets Manager secret ARN');
  }
  const serviceToken = tokenValue ? { value: tokenValue } : { secretArn: tokenArn ?? '' };

  const tables = dynamoDbTablesFromEnv(env, problems);
  const proxyAuth = proxyAuthFromEnv(env, problems);

  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return {
    oidc: { issuer, audience, algorithms, groupsClaim, emailsVerified },
    roles,
    serviceToken,
    ...tables,
    proxyAuth,
  };
}

function proxyAuthFromEnv(env: Env, problems: string[]): ApiConfig['proxyAuth'] {
  const mode = env['PGWARDEN_PROXY_AUTH']?.trim() || 'iam';
  if (mode === 'iam') {
    const roleArns = list(env['PGWARDEN_PROXY_ROLE_ARNS']) ?? [];
    if (roleArns.length === 0)
      problems.push(
        'PGWARDEN_PROXY_ROLE_ARNS is missing (the proxy task roles allowed to call the proxy routes)',
      );
    for (const arn of roleArns) {
      if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/\S+$/.test(arn))
        problems.push(`PGWARDEN_PROXY_ROLE_ARNS: "${arn}" is not an IAM role ARN`);
    }
    return { mode, roleArns };
  }
  if (mode === 'sigv4') {
    const accessKeyId = env['PGWARDEN_PROXY_ACCESS_KEY_ID']?.trim() ?? '';
    const secretAccessKey = env['PGWARDEN_PROXY_SECRET_ACCESS_KEY']?.trim() ?? '';
    if (!accessKeyId || secretAccessKey.length < 16)
      problems.push(
        'PGWARDEN_PROXY_AUTH=sigv4 needs PGWARDEN_PROXY_ACCESS_KEY_ID and PGWARDEN_PROXY_SECRET_ACCESS_KEY (at least 16 characters)',
      );
    const region = env['PGWARDEN_PROXY_SIGNING_REGION']?.trim() || env['AWS_REGION']?.trim() || 'local';
    return { mode, accessKeyId, secretAccessKey, region };
  }
  problems.push('PGWARDEN_PROXY_AUTH must be iam or sigv4');
  return { mode: 'iam', roleArns: [] };
}

/** Why a service token is too weak to use, or undefined when it is fine. */
export function serviceTokenProblem(token: string): string | undefined {
  return token.length < MIN_SERVICE_TOKEN_LENGTH
    ? `must be at least ${MIN_SERVICE_TOKEN_LENGTH} characters`
    : undefined;
}

/**
 * `admin=admins,platform;developer=engineering` → ordered mappings (the first matching one is a
 * principal's primary role, so order is kept exactly as written).
 */
export function parseRoleMappings(text: string): RoleMapping[] {
  const mappings: RoleMapping[] = [];
  for (const entry of text.split(';')) {
    if (entry.trim() === '') continue;
    const [rawRole, rawGroups, ...rest] = entry.split('=');
    const role = rawRole?.trim() ?? '';
    const groups = list(rawGroups) ?? [];
    if (rest.length > 0 || rawGroups === undefined) {
      throw new PgWardenError('CONFIG_INVALID', `"${entry.trim()}" must look like role=group1,group2`);
    }
    if (role === '') throw new PgWardenError('CONFIG_INVALID', `"${entry.trim()}" names no role`);
    if (groups.length === 0) throw new PgWardenError('CONFIG_INVALID', `role "${role}" lists no groups`);
    if (mappings.some((m) => m.role === role)) {
      throw new PgWardenError('CONFIG_INVALID', `role "${role}" is listed twice`);
    }
    mappings.push({ role, groups });
  }
  if (mappings.length === 0) throw new PgWardenError('CONFIG_INVALID', 'no role mappings given');
  return mappings;
}

/** Comma-separated values without blanks; undefined when the variable is unset or blank. */
function list(value: string | undefined): string[] | undefined {
  const items = (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  return items.length > 0 ? items : undefined;
}

function isHttpUrl(value: string): boolean {
  const url = URL.parse(value);
  return url !== null && (url.protocol === 'https:' || url.protocol === 'http:');
}

/** true/false (unset: `fallback`). */
function booleanSetting(env: Env, name: string, fallback: boolean, problems: string[]): boolean {
  const value = env[name]?.trim().toLowerCase();
  if (value === undefined || value === '') return fallback;
  if (value !== 'true' && value !== 'false') problems.push(`${name} must be true or false`);
  return value === 'true';
}

/** A whole number of seconds from `min` to `max` (unset: `fallback`). */
function secondsSetting(
  env: Env,
  name: string,
  fallback: number,
  [min, max]: [number, number],
  problems: string[],
): number {
  const text = env[name]?.trim();
  if (!text) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${name} must be a whole number of seconds from ${min} to ${max}`);
    return fallback;
  }
  return n;
}

/** An https issuer (http on loopback) without query or fragment: `issuer#subject` names a principal. */
function isIssuerUrl(value: string): boolean {
  const url = URL.parse(value);
  if (url === null || url.search !== '' || url.hash !== '' || value.includes('#')) return false;
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  return url.protocol === 'https:' || (url.protocol === 'http:' && loopback);
}

/** The proxy's configuration (production: ECS task environment, secrets injected from Secrets Manager). */
export interface ProxyConfig {
  host: string;
  port: number;
  tls: { cert: string; key: string } | undefined;
  allowPlaintext: boolean;
  upstream: {
    host: string;
    port: number;
    ssl: 'disable' | 'prefer' | 'require' | 'verify-full';
    ca?: string;
    /** PGWARDEN_UPSTREAM_REQUIRE_AUTH: how the database may authenticate the gateway */
    auth: UpstreamAuthMethodName[];
  };
  /** PGWARDEN_AUTH_TIMEOUT_SECONDS and PGWARDEN_MAX_CONNECTIONS_PER_* (see proxy/options.ts ProxyLimits) */
  limits: {
    authTimeoutMs: number;
    maxConnectionsPerPrincipal: number;
    maxConnectionsPerAddress: number;
  };
  /** role → database login held by the gateway */
  credentials: Record<string, { user: string; password: string }>;
  apiUrl: string;
  /**
   * The region the proxy signs its API calls for (SigV4, its task role's credentials from the AWS
   * SDK's default chain): PGWARDEN_API_REGION, else AWS_REGION, else the API URL's region.
   */
  apiRegion: string;
  proxyId: string;
  drainSeconds: number;
  /** PGWARDEN_POLICY: a policy document (YAML or JSON text) to enforce instead of the default pack */
  policyText?: string;
  /** PGWARDEN_POLICY_REFRESH_SECONDS: how often the stored current policy is polled (default 30) */
  policyRefreshSeconds: number;
  /** PGWARDEN_MAX_SESSION_SECONDS (default 12 h) and PGWARDEN_SESSION_RECHECK_SECONDS (default 300) */
  sessionLifetime: { maxSessionSeconds: number; recheckSeconds: number };
  audit: AuditTrailConfig;
  /**
   * PGWARDEN_MASKING_KEY: the HMAC key of the `hash` and `fake` mask methods. Every proxy task must
   * share it (and keep it across restarts) so equal values stay joinable; it never leaves the proxy.
   */
  maskingKey: string;
  statementLimits: StatementLimitsConfig;
}

/** Defaults of the size bounds below. */
export const DEFAULT_MAX_STATEMENT_BYTES = 1024 * 1024;
export const DEFAULT_MAX_MASKED_ROW_BYTES = 16 * 1024 * 1024;

/** How much of a statement or a row the proxy holds whole (see proxy/options.ts ProxyLimits). */
export interface StatementLimitsConfig {
  /** PGWARDEN_MAX_STATEMENT_BYTES (default 1 MiB): the longest Query or Parse text it parses (54000 beyond) */
  maxStatementBytes: number;
  /** PGWARDEN_MAX_MASKED_ROW_BYTES (default 16 MiB): the largest row held whole to mask or scan (54000 beyond) */
  maxMaskedRowBytes: number;
}

export function statementLimitsFromEnv(env: Env, problems: string[]): StatementLimitsConfig {
  const bytes = (name: string, fallback: number, max: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1024 || n > max)
      problems.push(`${name} must be a number of bytes from 1024 to ${max}`);
    return n;
  };
  return {
    maxStatementBytes: bytes('PGWARDEN_MAX_STATEMENT_BYTES', DEFAULT_MAX_STATEMENT_BYTES, 64 * 1024 * 1024),
    maxMaskedRowBytes: bytes(
      'PGWARDEN_MAX_MASKED_ROW_BYTES',
      DEFAULT_MAX_MASKED_ROW_BYTES,
      1024 * 1024 * 1024,
    ),
  };
}

/** The proxy's audit trail (see proxy/audit-trail.ts and the README's "Audit trail"). */
export interface AuditTrailConfig {
  /** PGWARDEN_AUDIT_MODE: buffered (default) or strict */
  mode: 'buffered' | 'strict';
  /** PGWARDEN_AUDIT_SPOOL_DIR */
  spoolDir: string;
  /** PGWARDEN_AUDIT_SPOOL_SYNC: always (default) or write */
  sync: 'always' | 'write';
  /** PGWARDEN_AUDIT_SPOOL_MAX_MB (default 1024) in bytes */
  maxSpoolBytes: number;
  /** PGWARDEN_AUDIT_PARAMS: off, hashed (default) or clear */
  params: 'off' | 'hashed' | 'clear';
}

/**
 * Reads the audit variables; `defaultSpoolDir` is the proxy's data directory's `spool`. Problems are
 * appended to `problems` so the caller reports every configuration error at once.
 */
export function auditTrailConfigFromEnv(
  env: Env,
  defaultSpoolDir: string,
  problems: string[],
): AuditTrailConfig {
  const choice = <T extends string>(name: string, values: readonly T[], fallback: T): T => {
    const value = (env[name]?.trim() || fallback) as T;
    if (!values.includes(value)) problems.push(`${name} must be one of ${values.join(', ')}`);
    return value;
  };
  const maxMb = Number(env['PGWARDEN_AUDIT_SPOOL_MAX_MB']?.trim() || '1024');
  if (!Number.isFinite(maxMb) || maxMb <= 0)
    problems.push('PGWARDEN_AUDIT_SPOOL_MAX_MB must be a number > 0');
  return {
    mode: choice('PGWARDEN_AUDIT_MODE', ['buffered', 'strict'], 'buffered'),
    spoolDir: env['PGWARDEN_AUDIT_SPOOL_DIR']?.trim() || defaultSpoolDir,
    sync: choice('PGWARDEN_AUDIT_SPOOL_SYNC', ['always', 'write'], 'always'),
    maxSpoolBytes: Math.floor(maxMb * 1024 * 1024),
    params: choice('PGWARDEN_AUDIT_PARAMS', ['off', 'hashed', 'clear'], 'hashed'),
  };
}

/** PGWARDEN_MAX_SESSION_SECONDS and PGWARDEN_SESSION_RECHECK_SECONDS (the proxy, and local mode). */
export function sessionLifetimeFromEnv(env: Env, problems: string[]): ProxyConfig['sessionLifetime'] {
  return {
    maxSessionSeconds: secondsSetting(
      env,
      'PGWARDEN_MAX_SESSION_SECONDS',
      DEFAULT_MAX_SESSION_SECONDS,
      [60, 7 * 24 * 3600],
      problems,
    ),
    recheckSeconds: secondsSetting(
      env,
      'PGWARDEN_SESSION_RECHECK_SECONDS',
      DEFAULT_SESSION_RECHECK_SECONDS,
      [5, 3600],
      problems,
    ),
  };
}

/** PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS (the API, and local mode). */
export function reviewerGroupsMaxAgeFromEnv(env: Env, problems: string[]): number {
  return secondsSetting(
    env,
    'PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS',
    DEFAULT_REVIEWER_GROUPS_MAX_AGE_SECONDS,
    [30, 7 * 24 * 3600],
    problems,
  );
}

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const;

/**
 * Named as libpq's `require_auth`. Only SCRAM makes the server prove it knows the password; md5
 * and password (cleartext) hand whoever answers something to replay or the password itself, and
 * none accepts a server that asks for nothing: each only when the operator lists it.
 */
const UPSTREAM_AUTH_METHODS = ['scram-sha-256', 'md5', 'password', 'none'] as const;
export type UpstreamAuthMethodName = (typeof UPSTREAM_AUTH_METHODS)[number];

/**
 * PGWARDEN_UPSTREAM_REQUIRE_AUTH: a comma-separated list of the methods above, default
 * scram-sha-256. Problems are appended to `problems`.
 */
export function upstreamAuthFromEnv(env: Env, problems: string[]): UpstreamAuthMethodName[] {
  const methods = list(env['PGWARDEN_UPSTREAM_REQUIRE_AUTH']) ?? ['scram-sha-256'];
  const unknown = methods.filter((m) => !(UPSTREAM_AUTH_METHODS as readonly string[]).includes(m));
  if (unknown.length > 0 || methods.length === 0) {
    problems.push(
      `PGWARDEN_UPSTREAM_REQUIRE_AUTH may list ${UPSTREAM_AUTH_METHODS.join(', ')} (got ${unknown.join(', ') || 'nothing'})`,
    );
  }
  return methods as UpstreamAuthMethodName[];
}

/** The proxy's connection limits; problems are appended to `problems`. */
export function proxyLimitsFromEnv(env: Env, problems: string[]): ProxyConfig['limits'] {
  const count = (name: string, fallback: number, max: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max)
      problems.push(`${name} must be a whole number from 1 to ${max}`);
    return n;
  };
  return {
    authTimeoutMs: count('PGWARDEN_AUTH_TIMEOUT_SECONDS', 30, 600) * 1000,
    maxConnectionsPerPrincipal: count('PGWARDEN_MAX_CONNECTIONS_PER_PRINCIPAL', 20, 100_000),
    maxConnectionsPerAddress: count('PGWARDEN_MAX_CONNECTIONS_PER_ADDRESS', 100, 100_000),
  };
}

/**
 * PEM values come from the environment itself (ECS injects Secrets Manager secrets as variables),
 * so no file reads are needed here.
 */
export function proxyConfigFromEnv(env: Env): ProxyConfig {
  const problems: string[] = [];
  const required = (name: string): string => {
    const value = env[name]?.trim();
    if (!value) problems.push(`${name} is missing`);
    return value ?? '';
  };
  const port = (name: string, fallback: number): number => {
    const text = env[name]?.trim();
    if (!text) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`${name} must be a port number`);
    return n;
  };

  const cert = env['PGWARDEN_TLS_CERT']?.trim();
  const key = env['PGWARDEN_TLS_KEY']?.trim();
  const allowPlaintext = env['PGWARDEN_ALLOW_PLAINTEXT'] === 'true';
  if ((cert && !key) || (!cert && key)) problems.push('PGWARDEN_TLS_CERT and PGWARDEN_TLS_KEY go together');
  if (!cert && !allowPlaintext) {
    problems.push('PGWARDEN_TLS_CERT/PGWARDEN_TLS_KEY are missing (tokens must not travel in clear)');
  }

  const ssl = (env['PGWARDEN_UPSTREAM_SSL']?.trim() || 'verify-full') as ProxyConfig['upstream']['ssl'];
  if (!SSL_MODES.includes(ssl)) problems.push(`PGWARDEN_UPSTREAM_SSL must be one of ${SSL_MODES.join(', ')}`);

  let credentials: ProxyConfig['credentials'] = {};
  const credentialsText = required('PGWARDEN_UPSTREAM_CREDENTIALS');
  if (credentialsText) {
    try {
      credentials = parseCredentials(credentialsText);
    } catch (error) {
      problems.push(`PGWARDEN_UPSTREAM_CREDENTIALS: ${(error as Error).message}`);
    }
  }

  const apiUrl = required('PGWARDEN_API_URL');
  if (apiUrl && !isHttpUrl(apiUrl)) problems.push('PGWARDEN_API_URL must be an http(s) URL');
  const apiRegion =
    env['PGWARDEN_API_REGION']?.trim() || env['AWS_REGION']?.trim() || regionOfApiUrl(apiUrl) || '';
  if (!apiRegion)
    problems.push('PGWARDEN_API_REGION is missing (the region of the API the proxy signs its calls for)');
  if (env['PGWARDEN_SERVICE_TOKEN']?.trim())
    problems.push(
      'PGWARDEN_SERVICE_TOKEN is no longer used: the proxy signs its API calls with its AWS identity (SigV4)',
    );
  const drainSeconds = Number(env['PGWARDEN_DRAIN_SECONDS'] ?? '30');
  const policyRefreshSeconds = Number(env['PGWARDEN_POLICY_REFRESH_SECONDS']?.trim() || '30');
  if (!Number.isFinite(policyRefreshSeconds) || policyRefreshSeconds < 1 || policyRefreshSeconds > 3600)
    problems.push('PGWARDEN_POLICY_REFRESH_SECONDS must be a number of seconds from 1 to 3600');
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0) problems.push('PGWARDEN_DRAIN_SECONDS must be ≥ 0');

  const sessionLifetime = sessionLifetimeFromEnv(env, problems);
  const maskingKey = required('PGWARDEN_MASKING_KEY');
  if (maskingKey && maskingKey.length < 32)
    problems.push('PGWARDEN_MASKING_KEY must be at least 32 characters (a random secret)');

  const config: ProxyConfig = {
    maskingKey,
    host: env['PGWARDEN_PROXY_HOST']?.trim() || '0.0.0.0',
    port: port('PGWARDEN_PROXY_PORT', 6432),
    tls: cert && key ? { cert, key } : undefined,
    allowPlaintext,
    upstream: {
      host: required('PGWARDEN_UPSTREAM_HOST'),
      port: port('PGWARDEN_UPSTREAM_PORT', 5432),
      ssl,
      ...(env['PGWARDEN_UPSTREAM_CA']?.trim() ? { ca: env['PGWARDEN_UPSTREAM_CA'].trim() } : {}),
      auth: upstreamAuthFromEnv(env, problems),
    },
    limits: proxyLimitsFromEnv(env, problems),
    credentials,
    apiUrl,
    apiRegion,
    proxyId: env['PGWARDEN_PROXY_ID']?.trim() || env['HOSTNAME']?.trim() || 'pgwarden-proxy',
    drainSeconds,
    ...(env['PGWARDEN_POLICY']?.trim() ? { policyText: env['PGWARDEN_POLICY'] } : {}),
    policyRefreshSeconds,
    sessionLifetime,
    // The container's working directory holds the proxy's data; mount a volume there to keep the
    // spool across task replacements.
    audit: auditTrailConfigFromEnv(env, 'pgwarden-data/spool', problems),
    statementLimits: statementLimitsFromEnv(env, problems),
  };
  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return config;
}

/** `https://abc.execute-api.eu-west-1.amazonaws.com` → eu-west-1 */
function regionOfApiUrl(apiUrl: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(URL.parse(apiUrl)?.hostname ?? '')?.[1];
}

/** `{"developer":{"user":"app_rw","password":"…"}, …}` */
export function parseCredentials(text: string): ProxyConfig['credentials'] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PgWardenError('CONFIG_INVALID', 'must be JSON like {"role":{"user":"…","password":"…"}}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PgWardenError('CONFIG_INVALID', 'must be a JSON object keyed by role');
  }
  const out: ProxyConfig['credentials'] = {};
  for (const [role, value] of Object.entries(parsed)) {
    const v = value as { user?: unknown; password?: unknown };
    if (typeof v?.user !== 'string' || typeof v?.password !== 'string' || v.user === '') {
      throw new PgWardenError('CONFIG_INVALID', `role "${role}" needs a string user and password`);
    }
    out[role] = { user: v.user, password: v.password };
  }
  if (Object.keys(out).length === 0) throw new PgWardenError('CONFIG_INVALID', 'names no role');
  return out;
}

/** The operator CLI: where the API is and whose token to send. */
export interface CliConfig {
  apiUrl: string;
  /** the caller's OIDC token (PGWARDEN_TOKEN); commands that need one say so when it is missing */
  token?: string;
}

export function cliConfigFromEnv(env: Env): CliConfig {
  const apiUrl = (env.PGWARDEN_API_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
  const token = env.PGWARDEN_TOKEN?.trim();
  return token ? { apiUrl, token } : { apiUrl };
}

/**
 * Which OIDC groups hold the API's human capabilities (functions/api/auth.ts AccessGroups), each a
 * comma list meaning "any of". An unset or empty variable keeps the default, the same one the CDK
 * stack and local mode use.
 */
export interface AccessGroupsConfig {
  /** PGWARDEN_AUDITOR_GROUPS (default auditors): read the audit trail */
  auditors: string[];
  /** PGWARDEN_ADMIN_GROUPS (default admins): change policies */
  admins: string[];
  /** PGWARDEN_REVIEWER_GROUPS (default reviewers): list approvals; decide when a rule names no group */
  reviewers: string[];
}

export function accessGroupsFromEnv(env: Env): AccessGroupsConfig {
  return {
    auditors: list(env['PGWARDEN_AUDITOR_GROUPS']) ?? ['auditors'],
    admins: list(env['PGWARDEN_ADMIN_GROUPS']) ?? ['admins'],
    reviewers: list(env['PGWARDEN_REVIEWER_GROUPS']) ?? ['reviewers'],
  };
}

/** The audit trail on the API side: who may read it, and how long DynamoDB keeps it. */
export interface AuditStoreConfig {
  /** PGWARDEN_AUDITOR_GROUPS (comma list; default auditors): may read the trail through the API */
  auditorGroups: string[];
  /** PGWARDEN_AUDIT_RETENTION_DAYS: items expire (TTL attribute expiresAt) after this; default: kept */
  retentionDays?: number;
}

export function auditStoreConfigFromEnv(env: Env): AuditStoreConfig {
  const text = env['PGWARDEN_AUDIT_RETENTION_DAYS']?.trim();
  const days = text ? Number(text) : undefined;
  if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 36_500)) {
    throw new PgWardenError(
      'CONFIG_INVALID',
      'invalid configuration: PGWARDEN_AUDIT_RETENTION_DAYS must be a whole number of days from 1 to 36500 (unset keeps records)',
    );
  }
  return {
    auditorGroups: accessGroupsFromEnv(env).auditors,
    ...(days === undefined ? {} : { retentionDays: days }),
  };
}

/** A secret given directly (local mode, tests) or as a Secrets Manager ARN read at cold start. */
export type SecretSource = { value: string } | { secretArn: string };

/** Approvals (API side): the notifier queue, Slack interactivity and who reviews by default. */
export interface ApprovalsConfig {
  /** PGWARDEN_APPROVALS_QUEUE_URL; absent: approvals are decided through the API/CLI only */
  queueUrl?: string;
  /** SLACK_BOT_TOKEN(_SECRET_ARN) + SLACK_SIGNING_SECRET(_SECRET_ARN): both, or neither */
  slack?: { botToken: SecretSource; signingSecret: SecretSource; apiUrl?: string };
  /** PGWARDEN_SLACK_CHANNEL (default pgwarden-approvals) */
  channel: string;
  /** PGWARDEN_REVIEWER_GROUPS: may list and, when a rule names no approver group, decide */
  reviewerGroups: string[];
  /** PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS (default 300): see functions/api/routes/slack.ts */
  reviewerGroupsMaxAgeSeconds: number;
}

/** The notifier Lambda: where approvals are, and how to post to Slack. */
export interface NotifierConfig {
  tablePrefix: string;
  dynamoDbEndpoint?: string;
  botToken: SecretSource;
  channel: string;
  /** PGWARDEN_SLACK_API_URL: a Slack Web API stand-in (tests and local mode only) */
  slackApiUrl?: string;
  /** PGWARDEN_APPROVALS_QUEUE_URL: where the notifier schedules its look at a lapsing approval */
  queueUrl?: string;
}

export const DEFAULT_SLACK_CHANNEL = 'pgwarden-approvals';

export function approvalsConfigFromEnv(env: Env): ApprovalsConfig {
  const problems: string[] = [];
  const queueUrl = env['PGWARDEN_APPROVALS_QUEUE_URL']?.trim() || undefined;
  if (queueUrl !== undefined && !isHttpUrl(queueUrl))
    problems.push('PGWARDEN_APPROVALS_QUEUE_URL must be an http(s) URL');
  const botToken = secretSource(env, 'SLACK_BOT_TOKEN', problems);
  const signingSecret = secretSource(env, 'SLACK_SIGNING_SECRET', problems);
  if ((botToken === undefined) !== (signingSecret === undefined)) {
    problems.push('SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET go together (directly or as *_SECRET_ARN)');
  }
  const apiUrl = slackApiUrl(env, problems);
  const reviewerGroupsMaxAgeSeconds = reviewerGroupsMaxAgeFromEnv(env, problems);
  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return {
    reviewerGroupsMaxAgeSeconds,
    ...(queueUrl === undefined ? {} : { queueUrl }),
    ...(botToken !== undefined && signingSecret !== undefined
      ? { slack: { botToken, signingSecret, ...(apiUrl === undefined ? {} : { apiUrl }) } }
      : {}),
    channel: env['PGWARDEN_SLACK_CHANNEL']?.trim() || DEFAULT_SLACK_CHANNEL,
    reviewerGroups: accessGroupsFromEnv(env).reviewers,
  };
}

export function notifierConfigFromEnv(env: Env): NotifierConfig {
  const problems: string[] = [];
  const botToken = secretSource(env, 'SLACK_BOT_TOKEN', problems);
  if (botToken === undefined) problems.push('SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_SECRET_ARN is missing');
  const tables = dynamoDbTablesFromEnv(env, problems);
  const apiUrl = slackApiUrl(env, problems);
  const queueUrl = env['PGWARDEN_APPROVALS_QUEUE_URL']?.trim() || undefined;
  if (queueUrl !== undefined && !isHttpUrl(queueUrl))
    problems.push('PGWARDEN_APPROVALS_QUEUE_URL must be an http(s) URL');
  if (problems.length > 0 || botToken === undefined) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return {
    ...tables,
    botToken,
    channel: env['PGWARDEN_SLACK_CHANNEL']?.trim() || DEFAULT_SLACK_CHANNEL,
    ...(apiUrl === undefined ? {} : { slackApiUrl: apiUrl }),
    ...(queueUrl === undefined ? {} : { queueUrl }),
  };
}

/** PGWARDEN_TABLE_PREFIX and PGWARDEN_DYNAMODB_ENDPOINT: where the DynamoDB tables are. */
function dynamoDbTablesFromEnv(
  env: Env,
  problems: string[],
): { tablePrefix: string; dynamoDbEndpoint?: string } {
  const tablePrefix = env['PGWARDEN_TABLE_PREFIX'] ?? 'pgwarden-';
  // DynamoDB table names allow only these characters; the suffixes ('sessions', 'events') keep them ≥ 3 long.
  if (!/^[A-Za-z0-9_.-]{0,200}$/.test(tablePrefix)) {
    problems.push('PGWARDEN_TABLE_PREFIX may contain only letters, digits, "_", "-" and "." (at most 200)');
  }
  const dynamoDbEndpoint = env['PGWARDEN_DYNAMODB_ENDPOINT']?.trim() || undefined;
  if (dynamoDbEndpoint !== undefined && !isHttpUrl(dynamoDbEndpoint)) {
    problems.push('PGWARDEN_DYNAMODB_ENDPOINT must be an http(s) URL');
  }
  return { tablePrefix, ...(dynamoDbEndpoint === undefined ? {} : { dynamoDbEndpoint }) };
}

/** NAME or NAME_SECRET_ARN (not both); undefined when neither is set. */
function secretSource(env: Env, name: string, problems: string[]): SecretSource | undefined {
  const value = env[name]?.trim();
  const arn = env[`${name}_SECRET_ARN`]?.trim();
  if (value && arn) {
    problems.push(`set only one of ${name} and ${name}_SECRET_ARN`);
    return undefined;
  }
  if (arn) {
    if (!/^arn:aws[a-z-]*:secretsmanager:/.test(arn))
      problems.push(`${name}_SECRET_ARN must be a Secrets Manager secret ARN`);
    return { secretArn: arn };
  }
  return value ? { value } : undefined;
}

function slackApiUrl(env: Env, problems: string[]): string | undefined {
  const url = env['PGWARDEN_SLACK_API_URL']?.trim() || undefined;
  if (url !== undefined && !isHttpUrl(url)) problems.push('PGWARDEN_SLACK_API_URL must be an http(s) URL');
  // WebClient appends method names to this base: it must end with a slash.
  return url === undefined || url.endsWith('/') ? url : `${url}/`;
}

/**
 * Reads several parts of one process's configuration and reports every problem of every part at
 * once: a deployment with three mistakes learns of all three from one failed start, not one per
 * redeploy.
 */
export function readConfigParts<T extends Record<string, () => unknown>>(
  parts: T,
): { [K in keyof T]: ReturnType<T[K]> } {
  const values: Partial<Record<keyof T, unknown>> = {};
  const problems: string[] = [];
  for (const key of Object.keys(parts) as Array<keyof T>) {
    try {
      values[key] = parts[key]!();
    } catch (error) {
      if (!(error instanceof PgWardenError) || error.code !== 'CONFIG_INVALID') throw error;
      problems.push(error.message.replace(/^invalid configuration: /, ''));
    }
  }
  if (problems.length > 0)
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  return values as { [K in keyof T]: ReturnType<T[K]> };
}
