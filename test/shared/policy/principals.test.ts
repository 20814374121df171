/**
 * Rules that name people, through evaluation and the decider's cache: two tokens of one person
 * are one principal, two principals with one display name are two, and an unverified or stale
 * email never widens access. Each case here was a way around a rule (bypass corpus).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { SessionContext } from '../../../shared/control-plane.ts';
import { StatementDecider } from '../../../shared/decide.ts';
import { decisionCacheKey, evaluatePolicy } from '../../../shared/policy/evaluate.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { ISSUER, session } from './sessions.ts';

beforeAll(async () => {
  await loadSqlParser();
});

const OTHER = 'https://other-issuer.example';

const policy = parsePolicy(`
version: people-1
default: { action: deny, reason: nobody by default }
rules:
  - id: mallory-denied
    match: { principals: [Mallory@Example.com] }
    action: deny
    reason: mallory is suspended
  - id: ada-may-read
    match: { principals: [ada@example.com], kinds: [select] }
    action: allow
  - id: svc-by-id
    match: { principals: ["${ISSUER}#svc-7"], kinds: [select] }
    action: allow
  - id: everyone-else-reads
    match: { groups: [engineering], kinds: [select] }
    action: allow
`);

function who(principal: Partial<SessionContext['principal']> & { subject: string }): SessionContext {
  const base = session();
  return {
    ...base,
    principal: {
      name: principal.email ?? principal.subject,
      issuer: ISSUER,
      groups: ['engineering'],
      actor: 'person',
      ...principal,
    },
  };
}

const decide = (s: SessionContext, sql = 'select 1') => evaluatePolicy(policy, analyzeSql(sql), s).ruleId;

describe('a deny rule that names a person by email', () => {
  it('applies to their token with the verified email', () => {
    expect(decide(who({ subject: 'm-1', email: 'mallory@example.com' }))).toBe('mallory-denied');
  });

  it('applies to their other token without email, once pgwarden has seen the email verified', () => {
    expect(decide(who({ subject: 'm-1', knownEmail: 'mallory@example.com' }))).toBe('mallory-denied');
  });

  it('applies to a principal whose subject is that email', () => {
    expect(decide(who({ subject: 'MALLORY@example.com' }))).toBe('mallory-denied');
  });
});

describe('an allow rule that names a person', () => {
  it('by email: only a token whose issuer verified it', () => {
    expect(decide(who({ subject: 'a-1', email: 'ada@example.com' }))).toBe('ada-may-read');
    // an email seen earlier is not this token's word: it never widens access
    expect(decide(who({ subject: 'a-1', knownEmail: 'ada@example.com', groups: [] }))).toBe('default');
    // a principal at another issuer whose subject is that address is someone else
    expect(decide(who({ subject: 'ada@example.com', issuer: OTHER, groups: [] }))).toBe('default');
  });

  it('by issuer#subject: that principal only, with or without email', () => {
    expect(decide(who({ subject: 'svc-7', groups: [] }))).toBe('svc-by-id');
    expect(decide(who({ subject: 'svc-7', issuer: OTHER, groups: [] }))).toBe('default');
  });
});

describe('the decision cache', () => {
  it('never serves one principal the decision of another with the same display name', () => {
    const decider = new StatementDecider(policy);
    const ada = who({ subject: 'a-1', email: 'ada@example.com', groups: [] });
    // another issuer's principal whose subject displays as ada@example.com
    const impostor = who({ subject: 'ada@example.com', issuer: OTHER, groups: [] });
    expect(impostor.principal.name).toBe(ada.principal.name);
    const request = (s: SessionContext) => ({
      session: s,
      statement: { text: 'select 1', protocol: 'simple' as const },
    });
    expect(decider.decide(request(ada)).action).toBe('allow');
    expect(decider.decide(request(impostor)).action).toBe('deny');
    expect(decisionCacheKey(analyzeSql('select 1'), ada, 'v')).not.toBe(
      decisionCacheKey(analyzeSql('select 1'), impostor, 'v'),
    );
  });

  it('follows a session whose groups a re-check replaced', () => {
    const decider = new StatementDecider(policy);
    const s = who({ subject: 'e-1' });
    const request = { session: s, statement: { text: 'select 1', protocol: 'simple' as const } };
    expect(decider.decide(request).action).toBe('allow');
    s.principal = { ...s.principal, groups: [] };
    expect(decider.decide(request).action).toBe('deny');
  });
});

describe('validation', () => {
  it('refuses entries that name nobody', () => {
    expect(() =>
      parsePolicy(`
version: bad
default: { action: allow }
rules:
  - id: r
    match: { principals: ["https://idp.example#"] }
    action: deny
`),
    ).toThrow(/names nobody/);
  });
});
