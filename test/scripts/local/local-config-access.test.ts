import { describe, expect, it } from 'vitest';
import { loadLocalConfig } from '../../../scripts/local/local-config.ts';

describe('local mode: who holds the API capabilities', () => {
  it('uses the default groups, as the Lambda does', () => {
    expect(loadLocalConfig({}, '/repo').access).toEqual({
      auditors: ['auditors'],
      admins: ['admins'],
      reviewers: ['reviewers'],
    });
  });

  it('honours PGWARDEN_AUDITOR_GROUPS, PGWARDEN_ADMIN_GROUPS and PGWARDEN_REVIEWER_GROUPS', () => {
    const config = loadLocalConfig(
      {
        PGWARDEN_AUDITOR_GROUPS: 'compliance',
        PGWARDEN_ADMIN_GROUPS: 'platform, dba',
        PGWARDEN_REVIEWER_GROUPS: 'sre',
      },
      '/repo',
    );
    expect(config.access).toEqual({
      auditors: ['compliance'],
      admins: ['platform', 'dba'],
      reviewers: ['sre'],
    });
  });
});
