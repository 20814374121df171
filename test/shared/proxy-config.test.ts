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
