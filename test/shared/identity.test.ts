/**
 * shared/identity.ts: a person is (issuer, subject); an email names them only when verified. The
 * startup user, rule patterns and how restrictive and permissive rules match a person's tokens.
 */
import { describe, expect, it } from 'vitest';
import {
  assertStartupUserMatches,
  type Principal,
  type PrincipalPattern,
  principalFromClaims,
  principalKey,
  principalMatches,
  principalPattern,
  type SessionPrincipal,
  samePrincipal,
} from '../../shared/identity.ts';

const A = 'https://a.example';
const B = 'https://b.example';

function principal(overrides: Partial<Principal> = {}): Principal {
  return {
    name: 'ada@example.com',
    issuer: A,
    subject: 'u-1',
    email: 'ada@example.com',
    groups: ['engineering'],
    expiresAt: 2_000_000_000,
    actor: 'person',
    ...overrides,
  };
}

describe('principalFromClaims', () => {
  it('names a principal without a verified email by its subject, and keeps when its groups were asserted', () => {
    const p = principalFromClaims({
      issuer: A,
      subject: 'u-1',
      groups: [],
      issuedAt: 1_700_000_000,
      expiresAt: 1_700_000_600,
      actor: 'person',
    });
    expect(p).toMatchObject({
      name: 'u-1',
      issuer: A,
      subject: 'u-1',
      groupsAsOf: '2023-11-14T22:13:20.000Z',
    });
    expect(p.email).toBeUndefined();
  });

  it('keys principals by issuer and subject: the same subject at two issuers is two people', () => {
    expect(samePrincipal({ issuer: A, subject: 'u-1' }, { issuer: B, subject: 'u-1' })).toBe(false);
    expect(principalKey({ issuer: A, subject: 'u-1' })).not.toBe(principalKey({ issuer: B, subject: 'u-1' }));
    // a subject containing # cannot forge another issuer's key: issuers have no fragment
    expect(principalKey({ issuer: A, subject: 'x#y' })).toBe(`${A}#x#y`);
  });
});

describe('the startup user', () => {
  it.each([
    ['the verified email', principal(), 'ada@example.com'],
    ['the verified email in another case, with spaces', principal(), '  ADA@Example.COM '],
    ['the subject', principal(), 'u-1'],
    ['the subject of a token without email', principal({ email: undefined, name: 'u-1' }), 'u-1'],
  ])('accepts %s', (_label, p, user) => {
    expect(() => assertStartupUserMatches(p, user)).not.toThrow();
  });

  it.each([
    [
      'an email the token does not carry',
      principal({ email: undefined, name: 'u-1' }),
      'ada@example.com',
      /connect with user=u-1/,
    ],
    ['someone else', principal(), 'bob@example.com', /connect with user=ada@example.com/],
    ['the subject in another case (subjects are exact)', principal(), 'U-1', /does not match/],
    [
      'an email known only from an earlier token',
      principal({ email: undefined, name: 'u-1', knownEmail: 'ada@example.com' }),
      'ada@example.com',
      /no email its issuer verified/,
    ],
  ])('refuses %s', (_label, p, user, message) => {
    expect(() => assertStartupUserMatches(p, user)).toThrow(message);
  });
});

describe('rule patterns', () => {
  it.each<[string, PrincipalPattern | undefined]>([
    ['Ada@Example.com', { kind: 'email', email: 'ada@example.com' }],
    [`${A}#u-1`, { kind: 'id', issuer: A, subject: 'u-1' }],
    [`${A}#x#y`, { kind: 'id', issuer: A, subject: 'x#y' }],
    ['00u1abc', { kind: 'subject', subject: '00u1abc' }],
    ['dev|ada', { kind: 'subject', subject: 'dev|ada' }],
    ['', undefined],
    [`${A}#`, undefined],
    [A, undefined],
    [`${A}?x=1#u`, undefined],
  ])('%s', (text, expected) => {
    expect(principalPattern(text)).toEqual(expected);
  });
});

describe('matching', () => {
  const verified: SessionPrincipal = {
    name: 'ada@example.com',
    issuer: A,
    subject: 'u-1',
    email: 'ada@example.com',
    groups: [],
    actor: 'person',
  };
  const sameWithoutEmail: SessionPrincipal = {
    name: 'u-1',
    issuer: A,
    subject: 'u-1',
    knownEmail: 'ada@example.com',
    groups: [],
    actor: 'person',
  };
  const neverVerified: SessionPrincipal = {
    name: 'u-1',
    issuer: A,
    subject: 'u-1',
    groups: [],
    actor: 'person',
  };
  const otherIssuerSameSubject: SessionPrincipal = {
    name: 'u-1',
    issuer: B,
    subject: 'u-1',
    groups: [],
    actor: 'person',
  };
  const subjectLooksLikeEmail: SessionPrincipal = {
    name: 'ada@example.com',
    issuer: B,
    subject: 'ADA@example.com',
    groups: [],
    actor: 'person',
  };
  const email = principalPattern('ada@example.com')!;
  const id = principalPattern(`${A}#u-1`)!;
  const subject = principalPattern('u-1')!;

  it("an email names the verified holder; a deny also catches the same person's email-less token", () => {
    expect(principalMatches(email, verified, false)).toBe(true);
    expect(principalMatches(email, sameWithoutEmail, false)).toBe(false); // never widens access
    expect(principalMatches(email, sameWithoutEmail, true)).toBe(true); // never escapes a deny
    expect(principalMatches(email, neverVerified, true)).toBe(false);
  });

  it('a subject that is an email only restricts, never grants', () => {
    expect(principalMatches(email, subjectLooksLikeEmail, false)).toBe(false);
    expect(principalMatches(email, subjectLooksLikeEmail, true)).toBe(true);
  });

  it('issuer#subject names exactly one principal, whatever its tokens carry', () => {
    for (const p of [verified, sameWithoutEmail, neverVerified]) {
      expect(principalMatches(id, p, false)).toBe(true);
    }
    expect(principalMatches(id, otherIssuerSameSubject, true)).toBe(false);
  });

  it('a bare subject is exact for allow rules and case-insensitive for restrictive ones', () => {
    expect(principalMatches(subject, neverVerified, false)).toBe(true);
    expect(principalMatches(principalPattern('U-1')!, neverVerified, false)).toBe(false);
    expect(principalMatches(principalPattern('U-1')!, neverVerified, true)).toBe(true);
  });
});
