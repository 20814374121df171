/**
 * The control-plane API's configuration, read from an environment given as an argument (only the
 * Lambda handler passes `process.env`). Every problem is reported at once so a deploy fails with
 * one complete message instead of one variable per attempt.
 */
import { PgWardenError } from './errors.ts';
import type { RoleMapping } from './identity.ts';

export interface ApiConfig {
  oidc: { issuer: string; audience: string; algorithms: string[]; groupsClaim: string };
  roles: RoleMapping[];
  /** the proxy's credential: given directly, or (in AWS) read from Secrets Manager at cold start */
  serviceToken: { value: string } | { secretArn: string };
  tablePrefix: string;
  dynamoDbEndpoint?: string;
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
    problems.push('PGWARDEN_OIDC_ISSUER must be an https URL (http only for localhost)');
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

  const tablePrefix = env['PGWARDEN_TABLE_PREFIX'] ?? 'pgwarden-';
  // DynamoDB table names allow only these characters; the suffixes ('sessions', 'events') keep them ≥ 3 long.
  if (!/^[A-Za-z0-9_.-]{0,200}$/.test(tablePrefix)) {
    problems.push('PGWARDEN_TABLE_PREFIX may contain only letters, digits, "_", "-" and "." (at most 200)');
  }

  const dynamoDbEndpoint = env['PGWARDEN_DYNAMODB_ENDPOINT']?.trim() || undefined;
  if (dynamoDbEndpoint !== undefined && !isHttpUrl(dynamoDbEndpoint)) {
    problems.push('PGWARDEN_DYNAMODB_ENDPOINT must be an http(s) URL');
  }

  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return {
    oidc: { issuer, audience, algorithms, groupsClaim },
    roles,
    serviceToken,
    tablePrefix,
    ...(dynamoDbEndpoint === undefined ? {} : { dynamoDbEndpoint }),
  };
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

function isIssuerUrl(value: string): boolean {
  const url = URL.parse(value);
  if (url === null) return false;
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
  };
  /** role → database login held by the gateway */
  credentials: Record<string, { user: string; password: string }>;
  apiUrl: string;
  serviceToken: string;
  proxyId: string;
  drainSeconds: number;
  /** PGWARDEN_POLICY: a policy document (YAML or JSON text) to enforce instead of the default pack */
  policyText?: string;
}

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const;

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
  const serviceToken = required('PGWARDEN_SERVICE_TOKEN');
  const drainSeconds = Number(env['PGWARDEN_DRAIN_SECONDS'] ?? '30');
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0) problems.push('PGWARDEN_DRAIN_SECONDS must be ≥ 0');

  const config: ProxyConfig = {
    host: env['PGWARDEN_PROXY_HOST']?.trim() || '0.0.0.0',
    port: port('PGWARDEN_PROXY_PORT', 6432),
    tls: cert && key ? { cert, key } : undefined,
    allowPlaintext,
    upstream: {
      host: required('PGWARDEN_UPSTREAM_HOST'),
      port: port('PGWARDEN_UPSTREAM_PORT', 5432),
      ssl,
      ...(env['PGWARDEN_UPSTREAM_CA']?.trim() ? { ca: env['PGWARDEN_UPSTREAM_CA'].trim() } : {}),
    },
    credentials,
    apiUrl,
    serviceToken,
    proxyId: env['PGWARDEN_PROXY_ID']?.trim() || env['HOSTNAME']?.trim() || 'pgwarden-proxy',
    drainSeconds,
    ...(env['PGWARDEN_POLICY']?.trim() ? { policyText: env['PGWARDEN_POLICY'] } : {}),
  };
  if (problems.length > 0) {
    throw new PgWardenError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return config;
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
