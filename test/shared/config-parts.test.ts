import { describe, expect, it } from 'vitest';
import {
  apiConfigFromEnv,
  approvalsConfigFromEnv,
  auditStoreConfigFromEnv,
  readConfigParts,
} from '../../shared/config.ts';
import { PgWardenError } from '../../shared/errors.ts';

function failure(run: () => unknown): PgWardenError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(PgWardenError);
    return error as PgWardenError;
  }
  throw new Error('expected a configuration error');
}

describe('readConfigParts', () => {
  it('names the problems of every part in one error', () => {
    const env = {
      // API: no issuer, audience, roles or service token
      PGWARDEN_APPROVALS_QUEUE_URL: 'not a url',
      PGWARDEN_AUDIT_RETENTION_DAYS: 'forever',
    };
    const error = failure(() =>
      readConfigParts({
        api: () => apiConfigFromEnv(env),
        approvals: () => approvalsConfigFromEnv(env),
        store: () => auditStoreConfigFromEnv(env),
      }),
    );
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^invalid configuration: /);
    expect(error.message).toContain('PGWARDEN_OIDC_ISSUER');
    expect(error.message).toContain('PGWARDEN_APPROVALS_QUEUE_URL');
    expect(error.message).toContain('PGWARDEN_AUDIT_RETENTION_DAYS');
    expect(error.message.match(/invalid configuration/g)).toHaveLength(1);
  });

  it('returns each part when all are valid, and lets errors that are not configuration through', () => {
    const parts = readConfigParts({ a: () => 1, b: () => ({ name: 'x' }) });
    expect(parts).toEqual({ a: 1, b: { name: 'x' } });
    expect(() =>
      readConfigParts({
        a: () => {
          throw new TypeError('a bug');
        },
      }),
    ).toThrow(TypeError);
  });
});
