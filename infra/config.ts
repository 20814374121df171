/**
 * The deployment's settings, read from CDK context (`cdk.json` or `-c key=value`). Values given on
 * the command line are strings and values in cdk.json may be JSON, so every reader accepts both.
 * Every problem is reported at once, each naming the context key to fix, so a first deploy fails
 * with one complete message instead of one key per attempt.
 */
import { parseRoleMappings, SIGNING_ALGORITHMS } from '../shared/config.ts';
import { PgWardenError } from '../shared/errors.ts';
import type { RoleMapping } from '../shared/identity.ts';

export type UpstreamSsl = 'disable' | 'prefer' | 'require' | 'verify-full';
export type CpuArchitecture = 'arm64' | 'x86_64';
export type AuditMode = 'buffered' | 'strict';
export type AuditParams = 'off' | 'hashed' | 'clear';

export interface PgWardenConfig {
  stackName: string;
  oidc: { issuer: string; audience: string; algorithms: string[]; groupsClaim: string };
  /** ordered group → role mapping (the first match is a principal's primary role) */
  roles: RoleMapping[];
  upstream: {
    host: string;
    port: number;
    ssl: UpstreamSsl;
    /** Secrets Manager secret whose value is `{"role":{"user","password"}, …}` */
    credentialsSecretArn: string;
    /** Secrets Manager secret whose value is the PEM CA bundle for verify-full */
    caSecretArn?: string;
    /** the database's security group: the stack opens it to the proxy on the upstream port */
    securityGroupId?: string;
    /** where the proxy may connect on the upstream port when no security group is given */
    cidr?: string;
  };
  /** Secrets Manager secret whose value is `{"cert": "<PEM>", "key": "<PEM>"}` */
  tlsSecretArn: string;
  network: {
    vpcId?: string;
    /** of a new VPC */
    vpcCidr: string;
    maxAzs: number;
    natGateways: number;
    internetFacing: boolean;
    /** who may connect to the proxy port; undefined means the VPC's own CIDR */
    allowedClientCidrs?: string[];
  };
  proxy: {
    port: number;
    cpu: number;
    memoryMiB: number;
    architecture: CpuArchitecture;
    minTasks: number;
    maxTasks: number;
    cpuTargetPercent: number;
    connectionsPerTask: number;
    drainSeconds: number;
    /** Fargate ephemeral storage (GiB, 20 included – 200): holds the audit spool */
    ephemeralStorageGiB: number;
    /** PGWARDEN_POLICY_REFRESH_SECONDS */
    policyRefreshSeconds: number;
  };
  audit: {
    /** PGWARDEN_AUDIT_MODE */
    mode: AuditMode;
    /** PGWARDEN_AUDIT_PARAMS */
    params: AuditParams;
    /** PGWARDEN_AUDIT_SPOOL_MAX_MB: must fit the ephemeral storage */
    spoolMaxMiB: number;
    /** PGWARDEN_AUDIT_RETENTION_DAYS (TTL); undefined keeps the trail for good */
    retentionDays?: number;
  };
  /** PGWARDEN_AUDITOR_GROUPS, PGWARDEN_ADMIN_GROUPS, PGWARDEN_REVIEWER_GROUPS */
  access: { auditors: string[]; admins: string[]; reviewers: string[] };
  slack: {
    /** PGWARDEN_SLACK_CHANNEL */
    channel: string;
    /** an existing secret holding the bot token (xoxb-…); absent: the stack creates a placeholder */
    botTokenSecretArn?: string;
    /** an existing secret holding the app's signing secret; absent: the stack creates a placeholder */
    signingSecretArn?: string;
  };
  /** an SNS topic the alarms (notifier dead-letter queue) notify */
  alarmTopicArn?: string;
  tablePrefix: string;
  logRetentionDays: number;
}

/** Reads one context key; `app.node.tryGetContext` in the app, a plain object in tests. */
export type ContextReader = (key: string) => unknown;

/** CloudWatch Logs accepts only these retention periods. */
const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];
/** Fargate's valid cpu → memory (MiB) combinations. */
const FARGATE_MEMORY: Record<number, [number, number, number]> = {
  256: [512, 2048, 1024],
  512: [1024, 4096, 1024],
  1024: [2048, 8192, 1024],
  2048: [4096, 16384, 1024],
  4096: [8192, 30720, 1024],
};
/** ECS stops a container at most 120 s after SIGTERM; the drain plus a margin (for the audit spool) must fit. */
export const STOP_MARGIN_SECONDS = 10;
const MAX_STOP_TIMEOUT_SECONDS = 120;
/** ephemeral storage the spool may not use (image layers, the OS, temporary files) */
const EPHEMERAL_RESERVED_GIB = 5;

/** `{ [key]: value }` when the value is set, so optional properties stay absent rather than undefined. */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export function pgWardenConfigFromContext(get: ContextReader): PgWardenConfig {
  const problems: string[] = [];
  const read = new Reader(get, problems);

  const issuer = read.string('oidcIssuer', { example: 'https://login.example.com/' });
  if (issuer !== undefined && URL.parse(issuer)?.protocol !== 'https:') {
    problems.push(`oidcIssuer must be an https URL (got "${issuer}")`);
  }
  const audience = read.string('oidcAudience', { example: 'pgwarden' });
  const algorithms = read.list('oidcAlgorithms') ?? ['RS256', 'ES256'];
  const refused = algorithms.filter((alg) => !SIGNING_ALGORITHMS.includes(alg));
  if (refused.length > 0) {
    problems.push(
      `oidcAlgorithms may only list ${SIGNING_ALGORITHMS.join(', ')} (got ${refused.join(', ')})`,
    );
  }
  const groupsClaim = read.optionalString('oidcGroupsClaim') ?? 'groups';
  const roles = readRoles(get('roles'), problems);

  const upstreamHost = read.string('upstreamHost', { example: 'db.internal.example.com' });
  const upstreamPort = read.int('upstreamPort', 5432, 1, 65535);
  const ssl = read.choice(
    'upstreamSsl',
    ['disable', 'prefer', 'require', 'verify-full'] as const,
    'verify-full',
  );
  const credentialsSecretArn = read.secretArn('upstreamCredentialsSecretArn', true);
  const caSecretArn = read.secretArn('upstreamCaSecretArn', false);
  const securityGroupId = read.pattern(
    'upstreamSecurityGroupId',
    /^sg-[0-9a-f]{8,17}$/,
    'sg-0123456789abcdef0',
  );
  const upstreamCidr = read.cidr('upstreamCidr');
  const tlsSecretArn = read.secretArn('tlsSecretArn', true);

  const vpcId = read.pattern('vpcId', /^vpc-[0-9a-f]{8,17}$/, 'vpc-0123456789abcdef0');
  const vpcCidr = read.cidr('vpcCidr') ?? '10.0.0.0/16';
  const internetFacing = read.bool('internetFacing', false);
  const allowedClientCidrs = read.list('allowedClientCidrs');
  for (const cidr of allowedClientCidrs ?? []) {
    if (!isIpv4Cidr(cidr))
      problems.push(`allowedClientCidrs: "${cidr}" is not an IPv4 CIDR such as 10.0.0.0/16`);
  }
  if (internetFacing && allowedClientCidrs === undefined) {
    problems.push(
      'internetFacing=true needs allowedClientCidrs (say who may reach the proxy, e.g. your office or VPN ranges)',
    );
  }

  const cpu = read.int('proxyCpu', 512, 256, 4096);
  const memoryMiB = read.int('proxyMemoryMiB', 1024, 512, 30720);
  const memoryRange = FARGATE_MEMORY[cpu];
  if (memoryRange === undefined) {
    problems.push(`proxyCpu must be one of ${Object.keys(FARGATE_MEMORY).join(', ')} (Fargate task sizes)`);
  } else if (memoryMiB < memoryRange[0] || memoryMiB > memoryRange[1] || memoryMiB % memoryRange[2] !== 0) {
    problems.push(
      `proxyMemoryMiB for proxyCpu=${cpu} must be ${memoryRange[0]}–${memoryRange[1]} in steps of ${memoryRange[2]}`,
    );
  }
  const minTasks = read.int('proxyMinTasks', 2, 1, 100);
  const maxTasks = read.int('proxyMaxTasks', 6, 1, 100);
  if (maxTasks < minTasks) problems.push('proxyMaxTasks must be ≥ proxyMinTasks');
  const drainSeconds = read.int('drainSeconds', 30, 0, MAX_STOP_TIMEOUT_SECONDS - STOP_MARGIN_SECONDS);
  const ephemeralStorageGiB = read.int('proxyEphemeralStorageGiB', 20, 20, 200);
  const spoolMaxMiB = read.int('auditSpoolMaxMiB', 8192, 64, 190 * 1024);
  // The image, the OS and logs take a few GiB of the task's ephemeral storage; the spool gets the rest.
  if (spoolMaxMiB > (ephemeralStorageGiB - EPHEMERAL_RESERVED_GIB) * 1024) {
    problems.push(
      `auditSpoolMaxMiB (${spoolMaxMiB}) must leave ${EPHEMERAL_RESERVED_GIB} GiB of proxyEphemeralStorageGiB (${ephemeralStorageGiB}) free: raise proxyEphemeralStorageGiB or lower auditSpoolMaxMiB`,
    );
  }
  const retentionText = read.optionalString('auditRetentionDays');
  const auditRetentionDays =
    retentionText === undefined ? undefined : read.int('auditRetentionDays', 0, 1, 36_500);

  const tablePrefix = read.optionalString('tablePrefix') ?? 'pgwarden-';
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(tablePrefix)) {
    problems.push('tablePrefix may contain only letters, digits, "_", "-" and "." (1–200 characters)');
  }
  const logRetentionDays = read.int('logRetentionDays', 365, 1, 3653);
  if (!RETENTION_DAYS.includes(logRetentionDays)) {
    problems.push(`logRetentionDays must be one of ${RETENTION_DAYS.join(', ')}`);
  }
  const alarmTopicArn = read.pattern(
    'alarmTopicArn',
    /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/,
    'arn:aws:sns:eu-west-1:123456789012:pgwarden-alarms',
  );
  const stackName = read.optionalString('stackName') ?? 'PgWarden';
  if (!/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stackName)) {
    problems.push('stackName must start with a letter and contain only letters, digits and "-"');
  }

  const config: PgWardenConfig = {
    stackName,
    oidc: { issuer: issuer ?? '', audience: audience ?? '', algorithms, groupsClaim },
    roles,
    upstream: {
      host: upstreamHost ?? '',
      port: upstreamPort,
      ssl,
      credentialsSecretArn: credentialsSecretArn ?? '',
      ...(caSecretArn === undefined ? {} : { caSecretArn }),
      ...(securityGroupId === undefined ? {} : { securityGroupId }),
      ...(upstreamCidr === undefined ? {} : { cidr: upstreamCidr }),
    },
    tlsSecretArn: tlsSecretArn ?? '',
    network: {
      ...(vpcId === undefined ? {} : { vpcId }),
      vpcCidr,
      maxAzs: read.int('maxAzs', 2, 2, 6),
      natGateways: read.int('natGateways', 1, 1, 6),
      internetFacing,
      ...(allowedClientCidrs === undefined ? {} : { allowedClientCidrs }),
    },
    proxy: {
      port: read.int('proxyPort', 5432, 1, 65535),
      cpu,
      memoryMiB,
      architecture: read.choice('proxyArchitecture', ['arm64', 'x86_64'] as const, 'arm64'),
      minTasks,
      maxTasks,
      cpuTargetPercent: read.int('proxyCpuTargetPercent', 60, 10, 90),
      connectionsPerTask: read.int('proxyConnectionsPerTask', 500, 10, 100_000),
      drainSeconds,
      ephemeralStorageGiB,
      policyRefreshSeconds: read.int('policyRefreshSeconds', 30, 1, 3600),
    },
    audit: {
      mode: read.choice('auditMode', ['buffered', 'strict'] as const, 'buffered'),
      params: read.choice('auditParams', ['off', 'hashed', 'clear'] as const, 'hashed'),
      spoolMaxMiB,
      ...(auditRetentionDays === undefined ? {} : { retentionDays: auditRetentionDays }),
    },
    access: {
      auditors: read.list('auditorGroups') ?? ['auditors'],
      admins: read.list('adminGroups') ?? ['admins'],
      reviewers: read.list('reviewerGroups') ?? ['reviewers'],
    },
    slack: {
      channel: read.optionalString('slackChannel') ?? 'pgwarden-approvals',
      ...optional('botTokenSecretArn', read.secretArn('slackBotTokenSecretArn', false)),
      ...optional('signingSecretArn', read.secretArn('slackSigningSecretArn', false)),
    },
    ...optional('alarmTopicArn', alarmTopicArn),
    tablePrefix,
    logRetentionDays,
  };
  if (problems.length > 0) {
    throw new PgWardenError(
      'CONFIG_INVALID',
      `invalid pgwarden context (cdk.json or -c key=value):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return config;
}

/** `role=group1,group2;role2=group3` (PGWARDEN_ROLES' format) or, in cdk.json, `{"role": ["group1"]}`. */
function readRoles(value: unknown, problems: string[]): RoleMapping[] {
  if (value === undefined || value === null || value === '') {
    problems.push('roles is missing (e.g. -c roles="admin=admins;developer=engineering;auditor=auditors")');
    return [];
  }
  let text: string;
  if (typeof value === 'string') {
    text = value;
  } else if (typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).map(([role, groups]) => {
      const list = Array.isArray(groups) ? groups.map(String) : [String(groups)];
      return `${role}=${list.join(',')}`;
    });
    text = entries.join(';');
  } else {
    problems.push('roles must be "role=group1,group2;role2=group3" or an object {"role": ["group", …]}');
    return [];
  }
  try {
    return parseRoleMappings(text);
  } catch (error) {
    problems.push(`roles: ${(error as Error).message}`);
    return [];
  }
}

/** The wire form of the role mapping, as the API reads it from PGWARDEN_ROLES. */
export function rolesToEnv(roles: readonly RoleMapping[]): string {
  return roles.map((mapping) => `${mapping.role}=${mapping.groups.join(',')}`).join(';');
}

function isIpv4Cidr(value: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (match === null) return false;
  const [, a, b, c, d, bits] = match.map(Number);
  return [a, b, c, d].every((octet) => octet! <= 255) && bits! <= 32;
}

const SECRET_EXAMPLE_NAMES: Record<string, string> = {
  tlsSecretArn: 'tls',
  upstreamCaSecretArn: 'upstream-ca',
  slackBotTokenSecretArn: 'slack-bot-token',
  slackSigningSecretArn: 'slack-signing-secret',
};

/** Typed readers that record a problem (naming the key) instead of throwing. */
class Reader {
  constructor(
    private readonly get: ContextReader,
    private readonly problems: string[],
  ) {}

  optionalString(key: string): string | undefined {
    const value = this.get(key);
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' && typeof value !== 'number') {
      this.problems.push(`${key} must be a string`);
      return undefined;
    }
    const text = String(value).trim();
    return text === '' ? undefined : text;
  }

  string(key: string, hint: { example: string }): string | undefined {
    const value = this.optionalString(key);
    if (value === undefined) this.problems.push(`${key} is missing (e.g. -c ${key}=${hint.example})`);
    return value;
  }

  int(key: string, fallback: number, min: number, max: number): number {
    const value = this.get(key);
    if (value === undefined || value === null || value === '') return fallback;
    const n = typeof value === 'number' ? value : Number(String(value).trim());
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(
        `${key} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`,
      );
      return fallback;
    }
    return n;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.get(key);
    if (value === undefined || value === null || value === '') return fallback;
    if (value === true || value === 'true') return true;
    if (value === false || value === 'false') return false;
    this.problems.push(`${key} must be true or false (got ${JSON.stringify(value)})`);
    return fallback;
  }

  choice<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.optionalString(key);
    if (value === undefined) return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problems.push(`${key} must be one of ${allowed.join(', ')} (got "${value}")`);
    return fallback;
  }

  /** A JSON array in cdk.json or a comma-separated string on the command line. */
  list(key: string): string[] | undefined {
    const value = this.get(key);
    if (value === undefined || value === null) return undefined;
    const items = Array.isArray(value)
      ? value.map(String)
      : typeof value === 'string'
        ? value.split(',')
        : null;
    if (items === null) {
      this.problems.push(`${key} must be a list (a JSON array, or comma-separated)`);
      return undefined;
    }
    const cleaned = items.map((item) => item.trim()).filter((item) => item !== '');
    return cleaned.length > 0 ? cleaned : undefined;
  }

  pattern(key: string, pattern: RegExp, example: string): string | undefined {
    const value = this.optionalString(key);
    if (value !== undefined && !pattern.test(value)) {
      this.problems.push(`${key} must look like ${example} (got "${value}")`);
      return undefined;
    }
    return value;
  }

  cidr(key: string): string | undefined {
    const value = this.optionalString(key);
    if (value !== undefined && !isIpv4Cidr(value)) {
      this.problems.push(`${key} must be an IPv4 CIDR such as 10.0.0.0/16 (got "${value}")`);
      return undefined;
    }
    return value;
  }

  /**
   * A complete secret ARN (with the six-character suffix Secrets Manager appends): ECS injects
   * secrets by ARN, and a partial ARN would need a wildcard in the task's IAM policy.
   */
  secretArn(key: string, required: boolean): string | undefined {
    const value = this.optionalString(key);
    const name = SECRET_EXAMPLE_NAMES[key] ?? 'upstream';
    const example = `arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/${name}-AbCdEf`;
    if (value === undefined) {
      if (required) this.problems.push(`${key} is missing (a complete secret ARN, e.g. ${example})`);
      return undefined;
    }
    if (
      !/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/.test(
        value,
      )
    ) {
      this.problems.push(`${key} must be a complete Secrets Manager ARN ending in -XXXXXX (got "${value}")`);
      return undefined;
    }
    return value;
  }
}
