/**
 * Opening and re-checking sessions against the principals directory, with real tokens (jose) from
 * two issuers (one of them omits `email`, as many access tokens do) and the directory on dynalite:
 * two tokens of one person are one principal; the same subject or the same email at two issuers
 * are two; a disabled principal or a removed group reaches tokens issued before the change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../../functions/adapters/dynamodb-principal-directory.ts';
import { createOidcVerifier } from '../../../functions/adapters/oidc-verifier.ts';
import { createControlPlaneService } from '../../../functions/api/service.ts';
import type { ControlPlane } from '../../../shared/control-plane.ts';
import { RecordingAuditStore } from '../../fakes/approvals.ts';
import { openSessionBody } from '../../fakes/control-plane.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';
import { startTestIssuer, type TestIssuer } from '../../fakes/oidc-issuer.ts';

let corporate: TestIssuer;
/** a second issuer whose tokens never carry an email */
let noEmail: TestIssuer;
let db: LocalDynamoDb;
let directory: DynamoDbPrincipalDirectory;
let audit: RecordingAuditStore;
let clock = new Date();
const nowSeconds = () => Math.floor(clock.getTime() / 1000);

beforeAll(async () => {
  [corporate, noEmail, db] = await Promise.all([startTestIssuer(), startTestIssuer(), startDynamoDb()]);
  const tables = approvalTableNames('identity-');
  await ensureApprovalTables(db.client, tables);
  directory = new DynamoDbPrincipalDirectory(db.client, tables.principals);
  audit = new RecordingAuditStore();
});
afterAll(() => Promise.all([corporate.stop(), noEmail.stop(), db.stop()]));

function service(issuer: TestIssuer, options: { emailsVerified?: boolean } = {}): ControlPlane {
  let n = 0;
  return createControlPlaneService({
    verifier: createOidcVerifier({
      issuer: issuer.issuer,
      audience: issuer.audience,
      currentDate: () => clock,
      ...(options.emailsVerified === undefined ? {} : { emailsVerified: options.emailsVerified }),
    }),
    store: audit,
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => clock,
    newId: () => `id-${++n}-${Math.random().toString(36).slice(2)}`,
    principals: directory,
  });
}

const open = (issuer: TestIssuer, token: string, user: string, options: { emailsVerified?: boolean } = {}) =>
  service(issuer, options).openSession({ ...openSessionBody, token, user });

describe('two tokens of one person', () => {
  it('are one principal: the email-less token connects as the subject and keeps the known email for rules', async () => {
    clock = new Date();
    const first = await corporate.sign({ sub: 'ada-1', email: 'Ada@Example.com', groups: ['engineering'] });
    const a = await open(corporate, first, 'ada@example.com');
    const second = await corporate.sign({ sub: 'ada-1', groups: ['engineering'] });
    await expect(open(corporate, second, 'ada@example.com')).rejects.toThrow(/connect with user=ada-1/);
    const b = await open(corporate, second, 'ada-1');
    expect(b.principal).toMatchObject({
      issuer: a.principal.issuer,
      subject: 'ada-1',
      knownEmail: 'Ada@Example.com',
    });
    expect(b.principal.email).toBeUndefined();
  });

  it('an email the issuer did not verify (false, missing, or a string) names nobody', async () => {
    for (const [claims, label] of [
      [{ email_verified: false }, 'false'],
      [{ email_verified: undefined }, 'missing'],
      [{ email_verified: 'true' }, 'a string'],
    ] as const) {
      const token = await corporate.sign({
        sub: `mallory-${label}`,
        email: 'ada@example.com',
        groups: ['engineering'],
        ...claims,
      });
      await expect(open(corporate, token, 'ada@example.com')).rejects.toThrow(/does not match/);
      const opened = await open(corporate, token, `mallory-${label}`);
      expect(opened.principal.email).toBeUndefined();
      expect(opened.principal.knownEmail).toBeUndefined();
    }
  });

  it('an issuer configured as asserting verified emails need not say email_verified, but false still counts', async () => {
    const token = await corporate.sign({
      sub: 'lee-1',
      email: 'lee@example.com',
      email_verified: undefined,
      groups: ['engineering'],
    });
    expect((await open(corporate, token, 'lee@example.com', { emailsVerified: true })).principal.email).toBe(
      'lee@example.com',
    );
    const no = await corporate.sign({
      sub: 'lee-2',
      email: 'lee@example.com',
      email_verified: false,
      groups: ['engineering'],
    });
    await expect(open(corporate, no, 'lee@example.com', { emailsVerified: true })).rejects.toThrow(
      /does not match/,
    );
  });
});

describe('two issuers', () => {
  it('the same subject at two issuers is two principals: disabling one leaves the other', async () => {
    clock = new Date();
    const atCorporate = await corporate.sign({
      sub: 'u-100',
      email: 'kim@example.com',
      groups: ['engineering'],
    });
    const atOther = await noEmail.sign({ sub: 'u-100', groups: ['engineering'] });
    await open(corporate, atCorporate, 'u-100');
    await open(noEmail, atOther, 'u-100');
    await directory.change({ issuer: corporate.issuer, subject: 'u-100' }, { disabled: true }, 'root', clock);
    await expect(open(corporate, atCorporate, 'u-100')).rejects.toMatchObject({ code: 'AUTH_DISABLED' });
    const other = await open(noEmail, atOther, 'u-100');
    expect(other.principal).toMatchObject({ issuer: noEmail.issuer, subject: 'u-100' });
    expect(other.principal.knownEmail).toBeUndefined(); // kim's email is the other issuer's principal's
  });
});

describe('a disabled principal', () => {
  it('is refused with any of its tokens, and the refusal is audited', async () => {
    clock = new Date();
    const token = await corporate.sign({ sub: 'gone-1', email: 'gone@example.com', groups: ['engineering'] });
    await open(corporate, token, 'gone@example.com');
    await directory.change(
      { issuer: corporate.issuer, subject: 'gone-1' },
      { disabled: true, reason: 'offboarded' },
      'root',
      clock,
    );
    await expect(open(corporate, token, 'gone@example.com')).rejects.toThrow(/disabled on .* \(offboarded\)/);
    const fresh = await corporate.sign({ sub: 'gone-1', groups: ['engineering'] });
    await expect(open(corporate, fresh, 'gone-1')).rejects.toMatchObject({ code: 'AUTH_DISABLED' });
    expect(audit.events).toContainEqual(
      expect.objectContaining({ type: 'auth_failed', code: 'AUTH_DISABLED', user: 'gone-1' }),
    );
  });
});

describe('group changes', () => {
  it("reach a token issued before them; a token issued after is the IdP's newer word", async () => {
    clock = new Date();
    const before = await corporate.sign({ sub: 'moved-1', groups: ['engineering'], iat: nowSeconds() - 60 });
    await open(corporate, before, 'moved-1');
    await directory.change(
      { issuer: corporate.issuer, subject: 'moved-1' },
      { groups: ['sales'] },
      'root',
      new Date(clock.getTime() - 30_000),
    );
    await expect(open(corporate, before, 'moved-1')).rejects.toMatchObject({ code: 'AUTH_NO_ROLE' });
    const after = await corporate.sign({ sub: 'moved-1', groups: ['engineering'], iat: nowSeconds() });
    expect((await open(corporate, after, 'moved-1')).role).toBe('developer');
  });

  it('a token dated in the future (an issuer clock far ahead) is refused, so it cannot outrank a later change', async () => {
    clock = new Date();
    const ahead = await corporate.sign(
      { sub: 'skew-1', groups: ['engineering'], iat: nowSeconds() + 3600 },
      { expiresIn: 7200 },
    );
    await expect(open(corporate, ahead, 'skew-1')).rejects.toMatchObject({
      code: 'AUTH_TOKEN_NOT_YET_VALID',
    });
    // a few seconds ahead is ordinary skew: accepted, and counted as asserted now, not later
    const slight = await corporate.sign({ sub: 'skew-1', groups: ['engineering'], iat: nowSeconds() + 10 });
    const opened = await open(corporate, slight, 'skew-1');
    expect(Date.parse(opened.principal.groupsAsOf ?? '')).toBeLessThanOrEqual(clock.getTime());
  });

  it('a token that expired moments ago (within the clock tolerance) opens nothing', async () => {
    clock = new Date();
    const late = await corporate.sign({ sub: 'late-1', groups: ['engineering'] }, { expiresIn: -5 });
    await expect(open(corporate, late, 'late-1')).rejects.toMatchObject({ code: 'AUTH_TOKEN_EXPIRED' });
  });
});

describe('checkSession', () => {
  async function opened(sub: string) {
    clock = new Date();
    const token = await corporate.sign({ sub, groups: ['engineering'], iat: nowSeconds() - 60 });
    return (await open(corporate, token, sub)).principal;
  }
  const check = (sub: string, groupsAsOf?: string) =>
    service(corporate).checkSession!({
      sessionId: 's-1',
      issuer: corporate.issuer,
      subject: sub,
      role: 'developer',
      ...(groupsAsOf === undefined ? {} : { groupsAsOf }),
    });

  it('keeps a session the directory knows nothing newer about', async () => {
    const p = await opened('chk-1');
    expect(await check('chk-1', p.groupsAsOf)).toEqual({ status: 'active' });
  });

  it('refreshes groups that still grant the role', async () => {
    const p = await opened('chk-2');
    await directory.change(
      { issuer: corporate.issuer, subject: 'chk-2' },
      { groups: ['engineering', 'contractors'] },
      'root',
      clock,
    );
    expect(await check('chk-2', p.groupsAsOf)).toEqual({
      status: 'active',
      groups: ['engineering', 'contractors'],
      roles: ['developer'],
      groupsAsOf: clock.toISOString(),
    });
  });

  it("ends a session whose principal lost the role's group, or was disabled", async () => {
    const p = await opened('chk-3');
    await directory.change({ issuer: corporate.issuer, subject: 'chk-3' }, { groups: [] }, 'root', clock);
    expect(await check('chk-3', p.groupsAsOf)).toMatchObject({
      status: 'ended',
      reason: expect.stringMatching(/no longer in a group/),
    });
    const q = await opened('chk-4');
    await directory.change({ issuer: corporate.issuer, subject: 'chk-4' }, { disabled: true }, 'root', clock);
    expect(await check('chk-4', q.groupsAsOf)).toMatchObject({
      status: 'ended',
      reason: expect.stringMatching(/disabled/),
    });
  });

  it('ends it too when the same principal presented a newer token without the group', async () => {
    const p = await opened('chk-5');
    const newer = await corporate.sign({ sub: 'chk-5', groups: ['sales'], iat: nowSeconds() - 1 });
    await expect(open(corporate, newer, 'chk-5')).rejects.toMatchObject({ code: 'AUTH_NO_ROLE' });
    expect(await check('chk-5', p.groupsAsOf)).toMatchObject({ status: 'ended' });
  });
});
