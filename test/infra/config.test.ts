import { describe, expect, it } from 'vitest';
import { type PgWardenConfig, pgWardenConfigFromContext, rolesToEnv } from '../../infra/config.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { cdkJsonContext, REQUIRED_CONTEXT, TLS_SECRET_ARN } from './synth.ts';

function configFrom(context: Record<string, unknown>): PgWardenConfig {
  return pgWardenConfigFromContext((key) => context[key]);
}

/** The problems a context is refused with, one per line. */
function problems(context: Record<string, unknown>): string[] {
  try {
    configFrom(context);
  } catch (error) {
    expect(error).toBeInstanceOf(PgWardenError);
    expect((error as PgWardenError).code).toBe('CONFIG_INVALID');
    return (error as Error).message
      .split('\n')
      .slice(1)
      .map((line) => line.replace(/^ {2}- /, ''));
  }
  throw new Error('the context was accepted');
}

const valid = { ...cdkJsonContext(), ...REQUIRED_CONTEXT };

describe('context defaults (cdk.json plus the required values)', () => {
  it('reads a complete configuration', () => {
    const config = configFrom(valid);
    expect(config.oidc).toEqual({
      issuer: 'https://login.example.com/',
      audience: 'pgwarden',
      algorithms: ['RS256', 'ES256'],
      groupsClaim: 'groups',
    });
    expect(config.roles).toEqual([
      { role: 'admin', groups: ['admins', 'platform'] },
      { role: 'developer', groups: ['engineering'] },
      { role: 'auditor', groups: ['auditors'] },
    ]);
    expect(config.upstream).toEqual({
      host: 'db.internal.example.com',
      port: 5432,
      ssl: 'verify-full',
      credentialsSecretArn: REQUIRED_CONTEXT['upstreamCredentialsSecretArn'],
    });
    expect(config.tlsSecretArn).toBe(TLS_SECRET_ARN);
    expect(config.network).toEqual({
      vpcCidr: '10.0.0.0/16',
      maxAzs: 2,
      natGateways: 1,
      internetFacing: false,
    });
    expect(config.proxy).toEqual({
      port: 5432,
      cpu: 512,
      memoryMiB: 1024,
      architecture: 'arm64',
      minTasks: 2,
      maxTasks: 6,
      cpuTargetPercent: 60,
      connectionsPerTask: 500,
      drainSeconds: 30,
      ephemeralStorageGiB: 20,
      policyRefreshSeconds: 30,
    });
    expect(config.audit).toEqual({ mode: 'buffered', params: 'hashed', spoolMaxMiB: 8192 });
    expect(config.access).toEqual({ auditors: ['auditors'], admins: ['admins'], reviewers: ['reviewers'] });
    // No Slack secret ARNs: the stack creates placeholders for the operator to fill in.
    expect(config.slack).toEqual({ channel: 'pgwarden-approvals' });
    expect(config.alarmTopicArn).toBeUndefined();
    expect(config.tablePrefix).toBe('pgwarden-');
    expect(config.stackName).toBe('PgWarden');
  });

  it('has the same defaults without cdk.json (an embedding app)', () => {
    const config = configFrom(REQUIRED_CONTEXT);
    expect(config.proxy.port).toBe(5432);
    expect(config.proxy.drainSeconds).toBe(30);
    expect(config.logRetentionDays).toBe(365);
  });
});

describe('values from the command line (-c key=value gives strings)', () => {
  it('parses numbers, booleans and comma-separated lists', () => {
    const config = configFrom({
      ...REQUIRED_CONTEXT,
      proxyPort: '5433',
      upstreamPort: '6543',
      internetFacing: 'true',
      allowedClientCidrs: '203.0.113.0/24, 198.51.100.7/32',
      oidcAlgorithms: 'ES256',
      drainSeconds: '60',
    });
    expect(config.proxy.port).toBe(5433);
    expect(config.upstream.port).toBe(6543);
    expect(config.network.internetFacing).toBe(true);
    expect(config.network.allowedClientCidrs).toEqual(['203.0.113.0/24', '198.51.100.7/32']);
    expect(config.oidc.algorithms).toEqual(['ES256']);
    expect(config.proxy.drainSeconds).toBe(60);
  });

  it('reads the approvals, audit and access settings', () => {
    const botToken = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/slack-bot-token-AbCdEf';
    const signing = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/slack-signing-GhIjKl';
    const config = configFrom({
      ...REQUIRED_CONTEXT,
      slackBotTokenSecretArn: botToken,
      slackSigningSecretArn: signing,
      slackChannel: 'db-approvals',
      alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:ops-alarms',
      auditMode: 'strict',
      auditParams: 'clear',
      auditRetentionDays: '730',
      proxyEphemeralStorageGiB: '100',
      auditSpoolMaxMiB: '90000',
      policyRefreshSeconds: '5',
      auditorGroups: 'compliance',
      adminGroups: ['platform', 'dba'],
      reviewerGroups: 'dba,security',
    });
    expect(config.slack).toEqual({
      channel: 'db-approvals',
      botTokenSecretArn: botToken,
      signingSecretArn: signing,
    });
    expect(config.alarmTopicArn).toBe('arn:aws:sns:eu-west-1:123456789012:ops-alarms');
    expect(config.audit).toEqual({ mode: 'strict', params: 'clear', spoolMaxMiB: 90000, retentionDays: 730 });
    expect(config.proxy.ephemeralStorageGiB).toBe(100);
    expect(config.proxy.policyRefreshSeconds).toBe(5);
    expect(config.access).toEqual({
      auditors: ['compliance'],
      admins: ['platform', 'dba'],
      reviewers: ['dba', 'security'],
    });
  });

  it('takes roles as an ordered object in cdk.json and hands the API the PGWARDEN_ROLES form', () => {
    const config = configFrom({
      ...REQUIRED_CONTEXT,
      roles: { admin: ['admins'], developer: 'engineering' },
    });
    expect(config.roles.map((mapping) => mapping.role)).toEqual(['admin', 'developer']);
    expect(rolesToEnv(config.roles)).toBe('admin=admins;developer=engineering');
  });
});

describe('refused context', () => {
  it('lists every missing required key at once, each with an example', () => {
    expect(problems({})).toEqual([
      'oidcIssuer is missing (e.g. -c oidcIssuer=https://login.example.com/)',
      'oidcAudience is missing (e.g. -c oidcAudience=pgwarden)',
      'roles is missing (e.g. -c roles="admin=admins;developer=engineering;auditor=auditors")',
      'upstreamHost is missing (e.g. -c upstreamHost=db.internal.example.com)',
      'upstreamCredentialsSecretArn is missing (a complete secret ARN, e.g. arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/upstream-AbCdEf)',
      'tlsSecretArn is missing (a complete secret ARN, e.g. arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/tls-AbCdEf)',
    ]);
  });

  it.each([
    ['an http issuer', { oidcIssuer: 'http://login.example.com/' }, 'oidcIssuer must be an https URL'],
    ['an HMAC algorithm', { oidcAlgorithms: 'RS256,HS256' }, 'oidcAlgorithms may only list'],
    ['a role without groups', { roles: 'admin=' }, 'roles: role "admin" lists no groups'],
    ['a role listed twice', { roles: 'a=x;a=y' }, 'roles: role "a" is listed twice'],
    ['roles as a list', { roles: ['admin'] }, 'roles must be'],
    [
      'a partial secret ARN',
      { tlsSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/tls' },
      'tlsSecretArn must be a complete Secrets Manager ARN',
    ],
    [
      'a secret name',
      { upstreamCredentialsSecretArn: 'pgwarden/upstream' },
      'upstreamCredentialsSecretArn must be a complete',
    ],
    ['a port out of range', { proxyPort: '70000' }, 'proxyPort must be a whole number from 1 to 65535'],
    ['a word for a number', { upstreamPort: 'five' }, 'upstreamPort must be a whole number'],
    [
      'an unknown SSL mode',
      { upstreamSsl: 'allow' },
      'upstreamSsl must be one of disable, prefer, require, verify-full',
    ],
    ['a malformed VPC id', { vpcId: 'my-vpc' }, 'vpcId must look like vpc-0123456789abcdef0'],
    [
      'a malformed security group',
      { upstreamSecurityGroupId: 'db' },
      'upstreamSecurityGroupId must look like sg-',
    ],
    [
      'a malformed client CIDR',
      { allowedClientCidrs: '10.0.0.0/33' },
      'allowedClientCidrs: "10.0.0.0/33" is not an IPv4 CIDR',
    ],
    ['a host name as a CIDR', { upstreamCidr: 'db.internal' }, 'upstreamCidr must be an IPv4 CIDR'],
    ['a CPU Fargate does not offer', { proxyCpu: 768 }, 'proxyCpu must be one of 256, 512, 1024, 2048, 4096'],
    [
      'memory that does not fit the CPU',
      { proxyCpu: 256, proxyMemoryMiB: 4096 },
      'proxyMemoryMiB for proxyCpu=256 must be 512–2048',
    ],
    [
      'fewer max than min tasks',
      { proxyMinTasks: 4, proxyMaxTasks: 2 },
      'proxyMaxTasks must be ≥ proxyMinTasks',
    ],
    [
      'a drain longer than ECS waits',
      { drainSeconds: 115 },
      'drainSeconds must be a whole number from 0 to 110',
    ],
    [
      'an unknown architecture',
      { proxyArchitecture: 'arm' },
      'proxyArchitecture must be one of arm64, x86_64',
    ],
    ['a yes for a boolean', { internetFacing: 'yes' }, 'internetFacing must be true or false'],
    ['a table prefix DynamoDB refuses', { tablePrefix: 'pg warden' }, 'tablePrefix may contain only'],
    ['a retention CloudWatch refuses', { logRetentionDays: 100 }, 'logRetentionDays must be one of'],
    ['a stack name CloudFormation refuses', { stackName: '1st_stack' }, 'stackName must start with a letter'],
    [
      'a Slack secret by name',
      { slackBotTokenSecretArn: 'pgwarden/slack' },
      'slackBotTokenSecretArn must be a complete Secrets Manager ARN',
    ],
    ['an unknown audit mode', { auditMode: 'lenient' }, 'auditMode must be one of buffered, strict'],
    ['an unknown parameter mode', { auditParams: 'masked' }, 'auditParams must be one of off, hashed, clear'],
    [
      'a retention of zero days',
      { auditRetentionDays: '0' },
      'auditRetentionDays must be a whole number from 1',
    ],
    [
      'a spool larger than the ephemeral storage allows',
      { auditSpoolMaxMiB: 16384 },
      'auditSpoolMaxMiB (16384) must leave 5 GiB of proxyEphemeralStorageGiB (20) free',
    ],
    [
      'ephemeral storage Fargate does not offer',
      { proxyEphemeralStorageGiB: 201 },
      'proxyEphemeralStorageGiB must be a whole number from 20 to 200',
    ],
    [
      'a policy refresh of an hour and more',
      { policyRefreshSeconds: 3601 },
      'policyRefreshSeconds must be a whole number from 1 to 3600',
    ],
    [
      'an alarm topic that is not an SNS ARN',
      { alarmTopicArn: 'ops-alarms' },
      'alarmTopicArn must look like arn:aws:sns:',
    ],
  ])('refuses %s', (_label, override, expected) => {
    const found = problems({ ...REQUIRED_CONTEXT, ...override });
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(expected);
  });

  it('refuses an internet-facing proxy without a client allow-list', () => {
    expect(problems({ ...REQUIRED_CONTEXT, internetFacing: true })).toEqual([
      'internetFacing=true needs allowedClientCidrs (say who may reach the proxy, e.g. your office or VPN ranges)',
    ]);
  });
});
