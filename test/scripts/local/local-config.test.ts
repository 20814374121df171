import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadLocalConfig,
  parseUpstreamUrl,
  readLocalState,
  readOrCreateServiceToken,
  writeLocalState,
} from '../../../scripts/local/local-config.ts';

describe('loadLocalConfig', () => {
  it('has the local defaults', () => {
    const config = loadLocalConfig({}, '/repo');
    expect(config).toMatchObject({
      host: '127.0.0.1',
      dataDir: '/repo/.pgwarden',
      audience: 'pgwarden',
      apiPort: 8787,
      proxyPort: 6432,
      issuerUrl: 'http://127.0.0.1:8787/dev-oidc',
      upstreamUsers: { admin: 'app_admin', developer: 'app_rw', auditor: 'app_ro', reviewer: 'app_ro' },
    });
    expect(config.roleMappings).toEqual([
      { role: 'admin', groups: ['admins'] },
      { role: 'developer', groups: ['engineering'] },
      { role: 'auditor', groups: ['auditors'] },
      { role: 'reviewer', groups: ['reviewers'] },
    ]);
    expect(config.externalUpstream).toBeUndefined();
  });

  it('takes ports, the data dir and an external upstream from the environment', () => {
    const config = loadLocalConfig(
      {
        PGWARDEN_API_PORT: '9000',
        PGWARDEN_PROXY_PORT: '7432',
        PGWARDEN_DATA_DIR: 'tmp/data',
        PGWARDEN_UPSTREAM: 'postgres://svc:p%40ss@db.internal:5433/shop?sslmode=require',
      },
      '/repo',
    );
    expect(config.apiPort).toBe(9000);
    expect(config.proxyPort).toBe(7432);
    expect(config.issuerUrl).toBe('http://127.0.0.1:9000/dev-oidc');
    expect(config.dataDir).toBe('/repo/tmp/data');
    expect(config.externalUpstream).toEqual({
      host: 'db.internal',
      port: 5433,
      database: 'shop',
      user: 'svc',
      password: 'p@ss',
      ssl: 'require',
    });
    expect(new Set(Object.values(config.upstreamUsers))).toEqual(new Set(['svc']));
  });

  it('reports every invalid value at once, without echoing the password', () => {
    let message = '';
    try {
      loadLocalConfig(
        {
          PGWARDEN_API_PORT: 'http',
          PGWARDEN_PROXY_PORT: '70000',
          PGWARDEN_UPSTREAM: 'mysql://u:secret@h/db',
        },
        '/repo',
      );
    } catch (error) {
      expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
      message = (error as Error).message;
    }
    expect(message).toContain('PGWARDEN_API_PORT');
    expect(message).toContain('PGWARDEN_PROXY_PORT');
    expect(message).toContain('PGWARDEN_UPSTREAM');
    expect(message).not.toContain('secret');
  });

  it('parses upstream URLs', () => {
    expect(parseUpstreamUrl('postgresql://u:p@127.0.0.1/app')).toMatchObject({ port: 5432, ssl: 'prefer' });
    expect(() => parseUpstreamUrl('postgres://u@h/db')).toThrow(/password/);
    expect(() => parseUpstreamUrl('postgres://u:p@h/db?sslmode=verify-ca')).toThrow(/sslmode/);
    expect(parseUpstreamUrl('postgres://u:p@h/db').auth).toBeUndefined();
    expect(parseUpstreamUrl('postgres://u:p@h/db?require_auth=md5,scram-sha-256').auth).toEqual([
      'md5',
      'scram-sha-256',
    ]);
    expect(() => parseUpstreamUrl('postgres://u:p@h/db?require_auth=trust')).toThrow(/require_auth/);
  });
});

describe('local state and secrets', () => {
  it('keeps one service token per data dir, privately', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgwarden-config-'));
    try {
      const token = readOrCreateServiceToken(dir);
      expect(token.length).toBeGreaterThanOrEqual(32);
      expect(readOrCreateServiceToken(dir)).toBe(token);
      expect((await stat(join(dir, 'secrets.json'))).mode & 0o777).toBe(0o600);
      expect(readLocalState(dir)).toBeUndefined();
      const state = {
        issuerUrl: 'http://127.0.0.1:8787/dev-oidc',
        apiUrl: 'http://127.0.0.1:8787',
        proxyHost: '127.0.0.1',
        proxyPort: 6432,
        audience: 'pgwarden',
        certPath: join(dir, 'tls', 'cert.pem'),
        pid: 1,
        startedAt: new Date(0).toISOString(),
      };
      writeLocalState(dir, state);
      expect(readLocalState(dir)).toEqual(state);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
