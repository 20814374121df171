/** Mask rule options in the policy: validation, predicates, approval, which rules apply, detectors. */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementDecider } from '../../../shared/decide.ts';
import { checkPolicyText, parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { admin, developer, session } from '../policy/sessions.ts';

beforeAll(loadSqlParser);

const policy = (body: string) =>
  parsePolicy(`version: "t-1"
default: { action: allow }
${body}`);

const decide = (p: ReturnType<typeof policy>, text: string, s = developer) =>
  new StatementDecider(p).decide({ session: s, statement: { text, protocol: 'simple' } });

describe('validation', () => {
  const issues = (text: string) => {
    const result = checkPolicyText(text);
    return result.ok ? [] : result.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
  };

  it('accepts detectors and the mask options', () => {
    const p = policy(`detectors: { enabled: [card, email], method: hash }
rules:
  - id: m
    match: {}
    action: mask
    mask: { columns: [ssn], method: redact, allowInPredicates: false, unmaskable: require_approval, approvers: dpo, timeoutSeconds: 60 }`);
    expect(p.detectors).toEqual({ enabled: ['card', 'email'], method: 'hash' });
    expect(p.rules[0]?.mask).toEqual({
      columns: ['ssn'],
      method: 'redact',
      allowInPredicates: false,
      unmaskable: 'require_approval',
      approvers: 'dpo',
      timeoutSeconds: 60,
    });
  });

  it('reports unknown detectors and bad options with their line and field', () => {
    expect(
      issues(`version: "1"
default: { action: allow }
detectors:
  enabled: [card, passport]
  method: scramble
rules:
  - id: m
    match: {}
    action: mask
    mask: { columns: [ssn], method: redact, allowInPredicates: "no", unmaskable: ask, approvers: dpo }`),
    ).toEqual([
      '10: rules[0].mask.allowInPredicates: must be true or false',
      '10: rules[0].mask.unmaskable: unknown unmaskable action "ask"; expected one of: deny, require_approval',
      '10: rules[0].mask.approvers: only unmaskable: require_approval takes approvers',
      '4: detectors.enabled[1]: unknown detector "passport"; expected one of: card, ssn, email, phone, iban, aws_access_key, jwt, private_key',
      '5: detectors.method: unknown mask method "scramble"; expected one of: redact, partial, hash, null, fake',
    ]);
  });

  it('requires approvers for unmaskable: require_approval', () => {
    expect(
      issues(`version: "1"
default: { action: allow }
rules:
  - id: m
    match: {}
    action: mask
    mask: { columns: [ssn], method: redact, unmaskable: require_approval }`),
    ).toEqual(['7: rules[0].mask: missing field "approvers": the group whose members may approve']);
  });
});

describe('what a mask rule does to a decision', () => {
  it('allows predicates by default and refuses them with allowInPredicates: false', () => {
    const open = policy(`rules:
  - { id: m, match: {}, action: mask, mask: { columns: [ssn], method: redact } }`);
    const strict = policy(`rules:
  - { id: m, match: {}, action: mask, mask: { columns: [ssn], method: redact, allowInPredicates: false } }`);
    for (const text of [
      "select id from customers where ssn like '1%'",
      'select id from customers order by ssn',
      'select count(*) from customers group by ssn',
      'select a.id from a join customers c on c.ssn = a.ssn',
    ]) {
      expect(decide(open, text).action).toBe('allow');
      const refused = decide(strict, text);
      expect(refused.action).toBe('deny');
      expect(refused.reason).toMatch(/not allow in WHERE, JOIN, GROUP BY or ORDER BY/);
    }
    expect(decide(strict, 'select ssn from customers').action).toBe('allow');
  });

  it('sends an unmaskable use for approval when the rule says so, keeping the masks', () => {
    const p = policy(`rules:
  - id: m
    match: {}
    action: mask
    mask: { columns: [ssn], method: redact, unmaskable: require_approval, approvers: dpo, timeoutSeconds: 120 }`);
    const decision = decide(p, 'select upper(ssn) from customers');
    expect(decision).toMatchObject({
      action: 'require_approval',
      ruleId: 'm',
      approval: { approvers: 'dpo', timeoutSeconds: 120 },
      masks: [{ ruleId: 'm', columns: ['ssn'], method: 'redact' }],
    });
    expect(decision.reason).toContain('"ssn"');
  });

  it('applies mask rules by session only, and not after the rule that allowed the statement', () => {
    const p = policy(`rules:
  - { id: mask-ssn, match: { columns: [ssn] }, action: mask, mask: { columns: [ssn], method: partial } }
  - { id: dpo-sees-emails, match: { principals: [dpo@example.com] }, action: allow }
  - { id: mask-email, match: {}, action: mask, mask: { columns: [email], method: hash } }
  - { id: mask-for-contractors, match: { groups: [contractors] }, action: mask, mask: { columns: [name], method: fake } }`);
    const dpo = session({ name: 'dpo@example.com' });
    const contractor = session({ groups: ['contractors'] });
    const rules = (text: string, s = developer) => decide(p, text, s).masks?.map((m) => m.ruleId);
    // `select *` names no column, a view hides them: the masks still apply (matched by identity on the wire)
    expect(rules('select * from customers')).toEqual(['mask-ssn', 'mask-email']);
    expect(rules('select tax_id from v_customers')).toEqual(['mask-ssn', 'mask-email']);
    expect(rules('select * from customers', dpo)).toEqual(['mask-ssn']);
    expect(rules('select email from customers', dpo)).toEqual(['mask-ssn']);
    expect(rules('select 1', contractor)).toEqual(['mask-ssn', 'mask-email', 'mask-for-contractors']);
    // an unmaskable use only counts for the masks that apply
    expect(decide(p, 'select upper(email) from customers', dpo).action).toBe('allow');
    expect(decide(p, 'select upper(email) from customers').action).toBe('deny');
  });

  it('lets DDL that names no masked column through to its own rule', () => {
    const decision = decide(
      policy(`rules:
  - { id: m, match: {}, action: mask, mask: { columns: [ssn], method: redact } }`),
      "alter table notes alter column body set default 'x'",
    );
    expect(decision.action).toBe('allow');
    expect(decision.masks?.length).toBe(1);
  });

  it('carries the policy detectors, and none when turned off', () => {
    expect(decide(policy(`detectors: { enabled: [email] }\nrules: []`), 'select 1').detectors).toEqual({
      enabled: ['email'],
      method: 'partial',
    });
    expect(decide(policy(`detectors: { enabled: [] }\nrules: []`), 'select 1').detectors).toBeUndefined();
    expect(decide(policy('rules: []'), 'select 1').detectors?.enabled).toContain('card');
  });

  it('never caches masks across sessions', () => {
    const p = policy(`rules:
  - { id: m, match: { roles: [developer] }, action: mask, mask: { columns: [ssn], method: redact } }`);
    const decider = new StatementDecider(p);
    const run = (s = developer) =>
      decider.decide({
        session: s,
        statement: { text: 'select upper(ssn) from customers', protocol: 'simple' },
      });
    expect(run().action).toBe('deny');
    expect(run(admin).action).toBe('allow');
    expect(run(admin).masks).toBeUndefined();
    expect(run().action).toBe('deny');
  });
});
