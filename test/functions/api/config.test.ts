/**
 * shared/config.ts: the API's configuration (filed beside the API it configures; it mirrors
 * test/shared/config.test.ts if the lead prefers the strict mirror).
 */
import { describe, expect, it } from 'vitest';
import { apiConfigFromEnv, parseRoleMappings } from '../../../shared/config.ts';
import { PgWardenError } from '../../../shared/errors.ts';

const valid = {
  PGWARDEN_OIDC_ISSUER: 'https://login.example.com',
  PGWARDEN_OIDC_AUDIENCE: 'pgwarden',
  PGWARDEN_ROLES: 'admin=admins,platform;developer=engineering',
  PGWARDEN_SERVICE_TOKEN: 'service-token-0123456789abcdef',
  PGWARDEN_PROXY_ROLE_ARNS: 'arn:aws:iam::123456789012:role/pgwarden-proxy',
};

function configError(env: Record<string, string | undefined>): PgWardenError {
  try {
    apiConfigFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(PgWardenError);
    expect((error as PgWardenError).code).toBe('CONFIG_INVALID');
    return error as PgWardenError;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('apiConfigFromEnv', () => {
  it('reads a complete environment with defaults', () => {
    expect(apiConfigFromEnv(valid)).toEqual({
      oidc: {
        issuer: 'https://login.example.com',
        audience: 'pgwarden',
        algorithms: ['RS256', 'ES256'],
        emailsVerified: false,
        groupsClaim: 'groups',
      },
      roles: [
        { role: 'admin', groups: ['admins', 'platform'] },
        { role: 'developer', groups: ['engineering'] },
      ],
      serviceToken: { value: 'service-token-0123456789abcdef' },
      tablePrefix: 'pgwarden-',
      proxyAuth: { mode: 'iam', roleArns: ['arn:aws:iam::123456789012:role/pgwarden-proxy'] },
    });
  });

  it("authenticates the proxy's routes by IAM (its role named), or by a SigV4 key pair; never by token", () => {
    const { PGWARDEN_PROXY_ROLE_ARNS: _r, ...noRole } = valid;
    expect(configError(noRole).message).toContain('PGWARDEN_PROXY_ROLE_ARNS is missing');
    expect(configError({ ...valid, PGWARDEN_PROXY_ROLE_ARNS: 'pgwarden-proxy' }).message).toContain(
      'is not an IAM role ARN',
    );
    expect(
      apiConfigFromEnv({
        ...noRole,
        PGWARDEN_PROXY_AUTH: 'sigv4',
        PGWARDEN_PROXY_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        PGWARDEN_PROXY_SECRET_ACCESS_KEY: 'secret-0123456789abcdef',
        PGWARDEN_PROXY_SIGNING_REGION: 'eu-west-1',
      }).proxyAuth,
    ).toEqual({
      mode: 'sigv4',
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'secret-0123456789abcdef',
      region: 'eu-west-1',
    });
    expect(configError({ ...noRole, PGWARDEN_PROXY_AUTH: 'sigv4' }).message).toContain(
      'PGWARDEN_PROXY_ACCESS_KEY_ID',
    );
    expect(configError({ ...valid, PGWARDEN_PROXY_AUTH: 'token' }).message).toContain(
      'PGWARDEN_PROXY_AUTH must be iam or sigv4',
    );
  });

  it('reads the optional settings', () => {
    const config = apiConfigFromEnv({
      ...valid,
      PGWARDEN_OIDC_ISSUER: 'http://127.0.0.1:9000',
      PGWARDEN_OIDC_ALGORITHMS: 'ES256, EdDSA',
      PGWARDEN_OIDC_GROUPS_CLAIM: 'roles',
      PGWARDEN_TABLE_PREFIX: 'dev_',
      PGWARDEN_DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000',
    });
    expect(config.oidc).toMatchObject({
      issuer: 'http://127.0.0.1:9000',
      algorithms: ['ES256', 'EdDSA'],
      groupsClaim: 'roles',
    });
    expect(config.tablePrefix).toBe('dev_');
    expect(config.dynamoDbEndpoint).toBe('http://127.0.0.1:8000');
  });

  it('names every missing variable at once', () => {
    const { message } = configError({});
    for (const name of ['PGWARDEN_OIDC_ISSUER', 'PGWARDEN_OIDC_AUDIENCE', 'PGWARDEN_ROLES']) {
      expect(message).toContain(`${name} is missing`);
    }
    expect(message).toContain(
      'set exactly one of PGWARDEN_SERVICE_TOKEN and PGWARDEN_SERVICE_TOKEN_SECRET_ARN',
    );
  });

  it('takes the service token from a Secrets Manager ARN instead, never both', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/service-token-AbCdEf';
    const { PGWARDEN_SERVICE_TOKEN: _direct, ...withoutToken } = valid;
    expect(
      apiConfigFromEnv({ ...withoutToken, PGWARDEN_SERVICE_TOKEN_SECRET_ARN: arn }).serviceToken,
    ).toEqual({
      secretArn: arn,
    });
    expect(configError({ ...valid, PGWARDEN_SERVICE_TOKEN_SECRET_ARN: arn }).message).toContain(
      'exactly one',
    );
    expect(configError({ ...withoutToken, PGWARDEN_SERVICE_TOKEN_SECRET_ARN: 'token' }).message).toContain(
      'must be a Secrets Manager secret ARN',
    );
  });

  it('treats blank values as missing', () => {
    expect(configError({ ...valid, PGWARDEN_OIDC_AUDIENCE: '  ' }).message).toContain(
      'PGWARDEN_OIDC_AUDIENCE is missing',
    );
  });

  it.each([
    ['PGWARDEN_OIDC_ISSUER', 'not a url'],
    ['PGWARDEN_OIDC_ISSUER', 'http://login.example.com'],
    ['PGWARDEN_OIDC_ALGORITHMS', 'RS256,HS256'],
    ['PGWARDEN_OIDC_ALGORITHMS', 'none'],
    ['PGWARDEN_ROLES', 'admin'],
    ['PGWARDEN_SERVICE_TOKEN', 'short'],
    ['PGWARDEN_TABLE_PREFIX', 'bad prefix!'],
    ['PGWARDEN_DYNAMODB_ENDPOINT', 'localhost:8000'],
  ])('refuses %s=%j', (name, value) => {
    expect(configError({ ...valid, [name]: value }).message).toContain(name);
  });
});

describe('parseRoleMappings', () => {
  it('keeps the written order and trims blanks', () => {
    expect(parseRoleMappings(' developer = engineering ; admin=admins, platform ;')).toEqual([
      { role: 'developer', groups: ['engineering'] },
      { role: 'admin', groups: ['admins', 'platform'] },
    ]);
  });

  it.each([
    ['', /no role mappings/],
    ['admin', /role=group1,group2/],
    ['admin=a=b', /role=group1,group2/],
    ['=admins', /names no role/],
    ['admin=', /lists no groups/],
    ['admin=a;admin=b', /listed twice/],
  ])('refuses %j', (text, message) => {
    expect(() => parseRoleMappings(text)).toThrow(message);
  });
});

describe('identity settings', () => {
  it('refuses an issuer with a fragment or query: issuer#subject must name one principal', () => {
    expect(configError({ ...valid, PGWARDEN_OIDC_ISSUER: 'https://login.example.com#x' }).message).toMatch(
      /without query or fragment/,
    );
    expect(
      configError({ ...valid, PGWARDEN_OIDC_ISSUER: 'https://login.example.com/?tenant=1' }).message,
    ).toMatch(/PGWARDEN_OIDC_ISSUER/);
  });

  it('reads PGWARDEN_OIDC_EMAILS_VERIFIED as true or false only', () => {
    expect(apiConfigFromEnv({ ...valid, PGWARDEN_OIDC_EMAILS_VERIFIED: 'true' }).oidc.emailsVerified).toBe(
      true,
    );
    expect(configError({ ...valid, PGWARDEN_OIDC_EMAILS_VERIFIED: 'yes' }).message).toMatch(
      /PGWARDEN_OIDC_EMAILS_VERIFIED must be true or false/,
    );
  });
});
