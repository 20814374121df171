import { describe, expect, it } from 'vitest';
import {
  approvalRetryKey,
  approvalTextHash,
  asOf,
  consumeApproval,
  decideApproval,
  decisionRefusal,
  effectiveStatus,
  expireApproval,
  newApproval,
} from '../../../shared/approvals.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import { approvalRequest, REQUESTER, REQUESTER_SUBJECT, reviewer } from '../../fakes/approvals.ts';

const t0 = new Date('2026-01-01T10:00:00.000Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const windows = { decisionSeconds: 3600, useSeconds: 900 };

function pending(overrides: Parameters<typeof approvalRequest>[0] = {}) {
  return newApproval(approvalRequest(overrides), {
    id: 'a-1',
    now: t0,
    defaultApprovers: ['reviewers'],
    windows,
  });
}

describe('a new approval', () => {
  it('binds the principal, session, database, fingerprint and the exact text hash', () => {
    const approval = pending();
    expect(approval).toMatchObject({
      id: 'a-1',
      status: 'pending',
      principal: REQUESTER,
      sessionId: 'session-1',
      database: 'shop',
      applicationName: 'psql',
      text: 'delete from orders where id = 7',
      fingerprint: 'fp-delete-orders',
      textHash: approvalTextHash('delete from orders where id = 7'),
      ruleId: 'deletes-need-approval',
      reason: 'deletes on orders need a reviewer',
      approvers: ['reviewers'],
      requestedAt: t0.toISOString(),
      expiresAt: at(3600).toISOString(),
      holdTimeoutSeconds: 30,
    });
    expect(approval.textHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('uses the default approvers when the rule names none, and keeps the deadline after a long hold', () => {
    const request = approvalRequest();
    request.decision = { ...request.decision, approval: { approvers: '', timeoutSeconds: 7200 } };
    const approval = newApproval(request, { id: 'x', now: t0, defaultApprovers: ['dba', 'sre'], windows });
    expect(approval.approvers).toEqual(['dba', 'sre']);
    expect(approval.expiresAt).toBe(at(7200).toISOString());
  });

  it('is refused for a decision that does not require approval', () => {
    const request = approvalRequest();
    request.decision = { ...request.decision, action: 'allow' };
    expect(() => newApproval(request, { id: 'x', now: t0, defaultApprovers: ['r'] })).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST' }),
    );
  });

  it('hashes the exact text: one changed byte or literal is another statement for a retry', () => {
    const base = pending();
    const otherLiteral = pending({ text: 'delete from orders where id = 8' });
    const otherSpacing = pending({ text: 'delete from orders where id = 7 ' });
    expect(approvalRetryKey(otherLiteral)).not.toBe(approvalRetryKey(base));
    expect(approvalRetryKey(otherSpacing)).not.toBe(approvalRetryKey(base));
    expect(approvalRetryKey(pending({ subject: 'sub|other' }))).not.toBe(approvalRetryKey(base));
    // the same subject at another issuer is another person
    expect(approvalRetryKey(pending({ issuer: 'https://other-issuer.example' }))).not.toBe(
      approvalRetryKey(base),
    );
    expect(approvalRetryKey(pending({ database: 'prod' }))).not.toBe(approvalRetryKey(base));
    // one person, whatever their display name (another token without the email): one retry key
    expect(approvalRetryKey(pending({ principal: 'sub|dev', sessionId: 's2' }))).toBe(approvalRetryKey(base));
  });
});

describe('deciding', () => {
  it('approves: the approval becomes usable for the use window', () => {
    const approved = decideApproval(pending(), reviewer(), { verdict: 'approve' }, at(60), windows);
    expect(approved).toMatchObject({
      status: 'approved',
      decidedBy: 'rita@example.com',
      decidedAt: at(60).toISOString(),
      decidedVia: 'api',
      expiresAt: at(60 + 900).toISOString(),
    });
  });

  it('denies with an optional reason (trimmed, bounded)', () => {
    const denied = decideApproval(
      pending(),
      reviewer(),
      { verdict: 'deny', reason: `  ${'x'.repeat(900)} ` },
      at(1),
    );
    expect(denied.status).toBe('denied');
    expect(denied.denyReason).toHaveLength(500);
    expect(decideApproval(pending(), reviewer(), { verdict: 'deny' }, at(1)).denyReason).toBeUndefined();
  });

  const refusals: Array<[string, Parameters<typeof reviewer>[0], RegExp]> = [
    [
      'the requester (same issuer and subject)',
      { name: REQUESTER, email: REQUESTER, subject: REQUESTER_SUBJECT },
      /requested this statement/,
    ],
    [
      'the requester with another token that carries no email',
      { name: REQUESTER_SUBJECT, email: undefined, subject: REQUESTER_SUBJECT },
      /requested this statement/,
    ],
    [
      'the requester with another token whose display name is someone else',
      { name: 'rita@example.com', email: undefined, subject: REQUESTER_SUBJECT },
      /requested this statement/,
    ],
    [
      'another account with the requester verified email (in other case), at another issuer',
      { name: 'x', email: 'DEV@example.com', issuer: 'https://other-issuer.example', subject: 'u-1' },
      /requested/,
    ],
    ['a non-member of the approver group', { groups: ['engineering'] }, /membership of "reviewers"/],
    ['an agent token', { actor: 'agent' }, /decided by people/],
  ];
  it.each(refusals)('refuses %s', (_label, who, message) => {
    const approval = pending();
    expect(decisionRefusal(approval, reviewer(who), at(1))).toMatch(message);
    expect(() => decideApproval(approval, reviewer(who), { verdict: 'approve' }, at(1))).toThrow(
      PgWardenError,
    );
    try {
      decideApproval(approval, reviewer(who), { verdict: 'approve' }, at(1));
    } catch (error) {
      expect((error as PgWardenError).code).toBe('FORBIDDEN');
    }
  });

  it('lets another person decide: the same subject at another issuer, or a display name that looks like the requester', () => {
    const approval = pending();
    for (const who of [
      reviewer({
        issuer: 'https://other-issuer.example',
        subject: REQUESTER_SUBJECT,
        email: 'x@example.com',
      }),
      reviewer({ name: REQUESTER, email: undefined, subject: 'sub|rita' }),
      // an address the requester's issuer did not verify was never recorded as theirs
      reviewer({ subject: 'sub|rita', email: 'rita@example.com' }),
    ]) {
      expect(decisionRefusal(approval, who, at(1))).toBeUndefined();
    }
    const unverified = pending({ principal: 'sub|dev' }); // requester token without a verified email
    expect(unverified.requesterEmail).toBeUndefined();
    expect(decisionRefusal(unverified, reviewer({ email: REQUESTER }), at(1))).toBeUndefined();
    expect(decisionRefusal(unverified, reviewer({ subject: REQUESTER_SUBJECT }), at(1))).toMatch(/requested/);
  });

  it('lets nobody decide an approval stored before requesters were recorded', () => {
    const { requesterIssuer: _i, requesterSubject: _s, ...legacy } = pending();
    expect(decisionRefusal(legacy, reviewer(), at(1))).toMatch(/does not record who asked/);
    expect(() => decideApproval(legacy, reviewer(), { verdict: 'approve' }, at(1))).toThrow(PgWardenError);
  });

  it('records who decided by issuer and subject', () => {
    const approved = decideApproval(pending(), reviewer(), { verdict: 'approve' }, at(1));
    expect(approved).toMatchObject({
      decidedBy: 'rita@example.com',
      decidedByIssuer: 'https://issuer.example',
      decidedBySubject: 'sub|rita',
      requesterIssuer: 'https://issuer.example',
      requesterSubject: REQUESTER_SUBJECT,
      requesterEmail: REQUESTER,
    });
  });

  it('refuses a second decision, whichever it is', () => {
    const approved = decideApproval(pending(), reviewer(), { verdict: 'approve' }, at(1));
    expect(() =>
      decideApproval(
        approved,
        reviewer({ name: 'sam@example.com', email: 'sam@example.com' }),
        { verdict: 'deny' },
        at(2),
      ),
    ).toThrow(/already approved by rita@example.com/);
    const denied = decideApproval(pending(), reviewer(), { verdict: 'deny' }, at(1));
    expect(() => decideApproval(denied, reviewer(), { verdict: 'approve' }, at(2))).toThrow(/already denied/);
  });

  it('refuses to decide once the deadline has passed', () => {
    const approval = pending();
    expect(effectiveStatus(approval, at(3599))).toBe('pending');
    expect(effectiveStatus(approval, at(3600))).toBe('expired');
    expect(() => decideApproval(approval, reviewer(), { verdict: 'approve' }, at(3600))).toThrow(/expired/);
  });
});

describe('using an approval', () => {
  it('is possible once, within the use window', () => {
    const approved = decideApproval(pending(), reviewer(), { verdict: 'approve' }, at(10), windows);
    const consumed = consumeApproval(approved, at(20));
    expect(consumed).toMatchObject({ status: 'consumed', consumedAt: at(20).toISOString() });
    expect(consumeApproval(consumed!, at(21))).toBeUndefined();
  });

  it('is not possible while pending, after a deny, or after the window', () => {
    expect(consumeApproval(pending(), at(1))).toBeUndefined();
    expect(
      consumeApproval(decideApproval(pending(), reviewer(), { verdict: 'deny' }, at(1)), at(2)),
    ).toBeUndefined();
    const approved = decideApproval(pending(), reviewer(), { verdict: 'approve' }, at(10), windows);
    expect(consumeApproval(approved, at(10 + 900))).toBeUndefined();
    expect(asOf(approved, at(10 + 900)).status).toBe('expired');
  });

  it('expires a lapsed approval only once', () => {
    const approval = pending();
    expect(expireApproval(approval, at(10))).toBeUndefined();
    const expired = expireApproval(approval, at(4000));
    expect(expired?.status).toBe('expired');
    expect(expireApproval(expired!, at(5000))).toBeUndefined();
  });
});
