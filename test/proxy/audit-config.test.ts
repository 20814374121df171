import { describe, expect, it } from 'vitest';
import { auditTrailConfigFromEnv, proxyConfigFromEnv } from '../../shared/config.ts';

describe('audit trail configuration', () => {
  it('defaults: buffered, synced before forwarding, hashed parameters, 1 GiB, the given spool dir', () => {
    const problems: string[] = [];
    expect(auditTrailConfigFromEnv({}, '/data/spool', problems)).toEqual({
      mode: 'buffered',
      spoolDir: '/data/spool',
      sync: 'always',
      maxSpoolBytes: 1024 ** 3,
      params: 'hashed',
    });
    expect(problems).toEqual([]);
  });

  it('reads every variable', () => {
    const problems: string[] = [];
    const config = auditTrailConfigFromEnv(
      {
        PGWARDEN_AUDIT_MODE: 'strict',
        PGWARDEN_AUDIT_SPOOL_DIR: '/var/spool/pgwarden',
        PGWARDEN_AUDIT_SPOOL_SYNC: 'write',
        PGWARDEN_AUDIT_SPOOL_MAX_MB: '64',
        PGWARDEN_AUDIT_PARAMS: 'off',
      },
      '/data/spool',
      problems,
    );
    expect(config).toEqual({
      mode: 'strict',
      spoolDir: '/var/spool/pgwarden',
      sync: 'write',
      maxSpoolBytes: 64 * 1024 * 1024,
      params: 'off',
    });
    expect(problems).toEqual([]);
  });

  it('reports every invalid value, and the proxy configuration fails with all of them', () => {
    const env = {
      PGWARDEN_AUDIT_MODE: 'lenient',
      PGWARDEN_AUDIT_SPOOL_SYNC: 'never',
      PGWARDEN_AUDIT_SPOOL_MAX_MB: '-1',
      PGWARDEN_AUDIT_PARAMS: 'plain',
    };
    const problems: string[] = [];
    auditTrailConfigFromEnv(env, '/data/spool', problems);
    expect(problems).toHaveLength(4);
    expect(() =>
      proxyConfigFromEnv({
        ...env,
        PGWARDEN_ALLOW_PLAINTEXT: 'true',
        PGWARDEN_UPSTREAM_HOST: 'db',
        PGWARDEN_UPSTREAM_CREDENTIALS: '{"developer":{"user":"u","password":"p"}}',
        PGWARDEN_API_URL: 'https://api.example.com',
        PGWARDEN_API_REGION: 'eu-west-1',
      }),
    ).toThrow(/PGWARDEN_AUDIT_MODE must be one of buffered, strict.*PGWARDEN_AUDIT_PARAMS/);
  });
});
