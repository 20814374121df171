/** shared/config.ts: the proxy's configuration, as the ECS task gives it. */
import { describe, expect, it } from 'vitest';
import { parseCredentials, proxyConfigFromEnv } from '../../shared/config.ts';
import { PgWardenError } from '../../shared/errors.ts';

const valid = {
  PGWARDEN_TLS_CERT: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----',
  PGWARDEN_TLS_KEY: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----',
  PGWARDEN_UPSTREAM_HOST: 'db.internal',
  PGWARDEN_UPSTREAM_CREDENTIALS: '{"developer":{"user":"app_rw","password":"s3cret"}}',
  PGWARDEN_API_URL: 'https://api.example.com',
  PGWARDEN_API_REGION: 'eu-west-1',
  PGWARDEN_MASKING_KEY: 'masking-key-0123456789abcdef0123456789',
};

function problems(env: Record<string, string | undefined>): string {
  try {
    proxyConfigFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(PgWardenError);
    return (error as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('proxyConfigFromEnv', () => {
  it('reads a complete environment with safe defaults', () => {
    const config = proxyConfigFromEnv(valid);
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 6432,
      allowPlaintext: false,
      upstream: { host: 'db.internal', port: 5432, ssl: 'verify-full' },
      credentials: { developer: { user: 'app_rw', password: 's3cret' } },
      drainSeconds: 30,
    });
    expect(config.policyText).toBeUndefined();
  });

  it('refuses to run without TLS unless plaintext is explicitly allowed', () => {
    const { PGWARDEN_TLS_CERT: _c, PGWARDEN_TLS_KEY: _k, ...noTls } = valid;
    expect(problems(noTls)).toMatch(/tokens must not travel in clear/);
    expect(proxyConfigFromEnv({ ...noTls, PGWARDEN_ALLOW_PLAINTEXT: 'true' }).tls).toBeUndefined();
    expect(problems({ ...valid, PGWARDEN_TLS_KEY: '' })).toMatch(/go together/);
  });

  it('names every problem at once, never echoing a password', () => {
    const message = problems({
      PGWARDEN_UPSTREAM_SSL: 'sometimes',
      PGWARDEN_UPSTREAM_CREDENTIALS: '{"developer":{"user":"x"}}',
    });
    for (const name of [
      'PGWARDEN_UPSTREAM_HOST',
      'PGWARDEN_API_URL',
      'PGWARDEN_API_REGION',
      'PGWARDEN_UPSTREAM_SSL',
    ]) {
      expect(message).toContain(name);
    }
    expect(message).toContain('role "developer" needs a string user and password');
  });

  it("signs its API calls for a region (given, the task's, or the API URL's) and takes no service token", () => {
    expect(proxyConfigFromEnv(valid).apiRegion).toBe('eu-west-1');
    const { PGWARDEN_API_REGION: _r, ...noRegion } = valid;
    expect(proxyConfigFromEnv({ ...noRegion, AWS_REGION: 'us-east-2' }).apiRegion).toBe('us-east-2');
    const url = 'https://abc123.execute-api.ap-south-1.amazonaws.com';
    expect(proxyConfigFromEnv({ ...noRegion, PGWARDEN_API_URL: url }).apiRegion).toBe('ap-south-1');
    expect(problems(noRegion)).toContain('PGWARDEN_API_REGION is missing');
    // the shared bearer token is gone: a leftover one is named, not silently ignored
    expect(problems({ ...valid, PGWARDEN_SERVICE_TOKEN: 'x'.repeat(32) })).toContain(
      'PGWARDEN_SERVICE_TOKEN is no longer used',
    );
  });

  it('needs a masking key shared by every task, long enough to be a secret', () => {
    expect(proxyConfigFromEnv(valid).maskingKey).toBe(valid.PGWARDEN_MASKING_KEY);
    const { PGWARDEN_MASKING_KEY: _m, ...noKey } = valid;
    expect(problems(noKey)).toContain('PGWARDEN_MASKING_KEY is missing');
    expect(problems({ ...valid, PGWARDEN_MASKING_KEY: 'short' })).toContain('at least 32 characters');
  });

  it('passes a policy document through for the proxy to enforce', () => {
    expect(proxyConfigFromEnv({ ...valid, PGWARDEN_POLICY: 'version: "x"' }).policyText).toBe('version: "x"');
  });

  it('polls the stored policy every 30 s unless PGWARDEN_POLICY_REFRESH_SECONDS says otherwise', () => {
    expect(proxyConfigFromEnv(valid).policyRefreshSeconds).toBe(30);
    expect(proxyConfigFromEnv({ ...valid, PGWARDEN_POLICY_REFRESH_SECONDS: '5' }).policyRefreshSeconds).toBe(
      5,
    );
    for (const bad of ['0', '-1', 'soon', '3601'])
      expect(problems({ ...valid, PGWARDEN_POLICY_REFRESH_SECONDS: bad }), bad).toContain(
        'PGWARDEN_POLICY_REFRESH_SECONDS',
      );
  });
});

describe('parseCredentials', () => {
  it('refuses what is not a JSON object of logins', () => {
    expect(() => parseCredentials('not json')).toThrow(/must be JSON/);
    expect(() => parseCredentials('[]')).toThrow(/JSON object/);
    expect(() => parseCredentials('{}')).toThrow(/names no role/);
  });
});

describe('proxyConfigFromEnv: the session edge', () => {
  it('defaults: SCRAM only upstream, 20 sessions per principal, 100 connections per address, 30 s to log in', () => {
    const config = proxyConfigFromEnv(valid);
    expect(config.upstream.auth).toEqual(['scram-sha-256']);
    expect(config.limits).toEqual({
      authTimeoutMs: 30_000,
      maxConnectionsPerPrincipal: 20,
      maxConnectionsPerAddress: 100,
    });
  });

  it('reads the operator’s choices', () => {
    const config = proxyConfigFromEnv({
      ...valid,
      PGWARDEN_UPSTREAM_REQUIRE_AUTH: 'scram-sha-256, md5',
      PGWARDEN_MAX_CONNECTIONS_PER_PRINCIPAL: '5',
      PGWARDEN_MAX_CONNECTIONS_PER_ADDRESS: '50',
      PGWARDEN_AUTH_TIMEOUT_SECONDS: '10',
    });
    expect(config.upstream.auth).toEqual(['scram-sha-256', 'md5']);
    expect(config.limits).toEqual({
      authTimeoutMs: 10_000,
      maxConnectionsPerPrincipal: 5,
      maxConnectionsPerAddress: 50,
    });
  });

  it('refuses unknown methods and limits that are not whole positive numbers', () => {
    const message = problems({
      ...valid,
      PGWARDEN_UPSTREAM_REQUIRE_AUTH: 'scram,trust',
      PGWARDEN_MAX_CONNECTIONS_PER_PRINCIPAL: '0',
      PGWARDEN_MAX_CONNECTIONS_PER_ADDRESS: 'lots',
      PGWARDEN_AUTH_TIMEOUT_SECONDS: '2.5',
    });
    expect(message).toContain(
      'PGWARDEN_UPSTREAM_REQUIRE_AUTH may list scram-sha-256, md5, password, none (got scram, trust)',
    );
    expect(message).toContain('PGWARDEN_MAX_CONNECTIONS_PER_PRINCIPAL');
    expect(message).toContain('PGWARDEN_MAX_CONNECTIONS_PER_ADDRESS');
    expect(message).toContain('PGWARDEN_AUTH_TIMEOUT_SECONDS');
  });
});

describe('session lifetime settings', () => {
  it('default to a 12 h maximum age and a re-check every 5 minutes', () => {
    expect(proxyConfigFromEnv(valid).sessionLifetime).toEqual({
      maxSessionSeconds: 43_200,
      recheckSeconds: 300,
    });
    expect(
      proxyConfigFromEnv({
        ...valid,
        PGWARDEN_MAX_SESSION_SECONDS: '3600',
        PGWARDEN_SESSION_RECHECK_SECONDS: '60',
      }).sessionLifetime,
    ).toEqual({ maxSessionSeconds: 3600, recheckSeconds: 60 });
  });

  it.each([
    ['PGWARDEN_MAX_SESSION_SECONDS', '0'],
    ['PGWARDEN_MAX_SESSION_SECONDS', '99999999'],
    ['PGWARDEN_SESSION_RECHECK_SECONDS', '1.5'],
    ['PGWARDEN_SESSION_RECHECK_SECONDS', '7200'],
  ])('refuses %s=%s', (name, value) => {
    expect(problems({ ...valid, [name]: value })).toContain(name);
  });
});
