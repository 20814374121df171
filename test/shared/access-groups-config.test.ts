import { describe, expect, it } from 'vitest';
import { accessGroupsFromEnv, approvalsConfigFromEnv, auditStoreConfigFromEnv } from '../../shared/config.ts';

describe('accessGroupsFromEnv', () => {
  it('defaults to the auditors, admins and reviewers groups', () => {
    expect(accessGroupsFromEnv({})).toEqual({
      auditors: ['auditors'],
      admins: ['admins'],
      reviewers: ['reviewers'],
    });
  });

  it('reads each capability from its own comma list, trimmed, without empty entries', () => {
    expect(
      accessGroupsFromEnv({
        PGWARDEN_AUDITOR_GROUPS: ' compliance , security ',
        PGWARDEN_ADMIN_GROUPS: 'platform,,dba',
        PGWARDEN_REVIEWER_GROUPS: 'dba , sre,',
      }),
    ).toEqual({
      auditors: ['compliance', 'security'],
      admins: ['platform', 'dba'],
      reviewers: ['dba', 'sre'],
    });
  });

  it('never lets one variable widen another capability', () => {
    // Setting the admins must not leave the default "admins" group (or any other) elsewhere, nor
    // the other way round: each list is exactly its own variable's.
    const access = accessGroupsFromEnv({ PGWARDEN_ADMIN_GROUPS: 'platform' });
    expect(access.admins).toEqual(['platform']);
    expect(access.auditors).toEqual(['auditors']);
    expect(access.reviewers).toEqual(['reviewers']);
    const onlyReviewers = accessGroupsFromEnv({ PGWARDEN_REVIEWER_GROUPS: 'admins' });
    expect(onlyReviewers.reviewers).toEqual(['admins']);
    expect(onlyReviewers.admins).toEqual(['admins']);
    expect(onlyReviewers.auditors).toEqual(['auditors']);
  });

  it('keeps a group name whole: no splitting on spaces, no case folding', () => {
    expect(accessGroupsFromEnv({ PGWARDEN_ADMIN_GROUPS: 'DB Admins,db-admins' }).admins).toEqual([
      'DB Admins',
      'db-admins',
    ]);
  });

  it('treats an empty or comma-only variable as unset (the default group)', () => {
    for (const value of ['', '  ', ',', ' , , ']) {
      expect(accessGroupsFromEnv({ PGWARDEN_ADMIN_GROUPS: value }).admins, JSON.stringify(value)).toEqual([
        'admins',
      ]);
    }
  });

  it('gives the audit store and approvals the same auditor and reviewer lists', () => {
    const env = { PGWARDEN_AUDITOR_GROUPS: 'compliance', PGWARDEN_REVIEWER_GROUPS: 'dba, sre' };
    const access = accessGroupsFromEnv(env);
    expect(auditStoreConfigFromEnv(env).auditorGroups).toEqual(access.auditors);
    expect(approvalsConfigFromEnv(env).reviewerGroups).toEqual(access.reviewers);
    expect(auditStoreConfigFromEnv({}).auditorGroups).toEqual(accessGroupsFromEnv({}).auditors);
    expect(approvalsConfigFromEnv({}).reviewerGroups).toEqual(accessGroupsFromEnv({}).reviewers);
  });
});
