import { describe, expect, it } from 'vitest';
import { auditStoreConfigFromEnv } from '../../shared/config.ts';

describe('auditStoreConfigFromEnv', () => {
  it('defaults to the auditors group and keeps records for good', () => {
    expect(auditStoreConfigFromEnv({})).toEqual({ auditorGroups: ['auditors'] });
  });

  it('reads the auditor groups and the retention', () => {
    expect(
      auditStoreConfigFromEnv({
        PGWARDEN_AUDITOR_GROUPS: ' compliance , security ',
        PGWARDEN_AUDIT_RETENTION_DAYS: '400',
      }),
    ).toEqual({ auditorGroups: ['compliance', 'security'], retentionDays: 400 });
  });

  it('fails loudly on a retention it cannot use', () => {
    for (const value of ['0', '-1', '1.5', 'forever', '36501']) {
      expect(() => auditStoreConfigFromEnv({ PGWARDEN_AUDIT_RETENTION_DAYS: value }), value).toThrow(
        /PGWARDEN_AUDIT_RETENTION_DAYS must be a whole number/,
      );
    }
  });
});
