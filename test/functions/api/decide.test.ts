/** shared/decide.ts (filed with the API that serves it): the default pack, enforced. */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRequest } from '../../../shared/control-plane.ts';
import { DEFAULT_POLICY_VERSION, StatementDecider } from '../../../shared/decide.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { decisionBody } from '../../fakes/control-plane.ts';

beforeAll(async () => {
  await loadSqlParser();
});

const as = (text: string, role = 'developer', groups = ['engineering']): DecisionRequest => ({
  ...decisionBody,
  session: {
    ...decisionBody.session,
    role,
    roles: [role],
    principal: { ...decisionBody.session.principal, groups },
  },
  statement: { text, protocol: 'simple' },
});

describe('StatementDecider with the default pack', () => {
  const decider = new StatementDecider();

  it('allows reads and stamps the policy version', () => {
    expect(decider.decide(as('select count(*) from customers'))).toEqual({
      action: 'allow',
      ruleId: expect.any(String),
      policyVersion: DEFAULT_POLICY_VERSION,
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      kinds: ['select'],
      // the session's masks and the content detectors apply to every result (shared/masking)
      masks: expect.any(Array),
      detectors: expect.any(Object),
    });
  });

  it('holds destructive statements for approval', () => {
    for (const text of [
      'drop table orders',
      'delete from orders',
      'truncate orders',
      'alter table orders add x int',
    ]) {
      expect(decider.decide(as(text)).action, text).toBe('require_approval');
    }
  });

  it('denies server file access and role escalation to non-admins, with a reason', () => {
    for (const text of [
      "select pg_read_file('/etc/passwd')",
      'set role app_admin',
      "copy orders to program 'sh'",
    ]) {
      const decision = decider.decide(as(text));
      expect(decision.action, text).toBe('deny');
      expect(decision.reason, text).toBeTruthy();
    }
  });

  it('refuses the whole message when one of its statements is refused', () => {
    expect(decider.decide(as('select 1; drop table orders')).action).toBe('require_approval');
  });

  it('denies what the parser cannot read', () => {
    expect(decider.decide(as('selec * frm customers')).action).toBe('deny');
  });

  it('lets admins run DDL', () => {
    expect(decider.decide(as('create table t (id int)', 'admin', ['admins'])).action).toBe('allow');
  });

  it('never reuses a cached decision across principals, groups or roles', () => {
    const cached = new StatementDecider();
    expect(cached.decide(as('drop table orders', 'admin', ['admins'])).action).toBe('allow');
    expect(cached.decide(as('drop table orders')).action).toBe('require_approval');
    expect(cached.decide(as("select pg_read_file('/a')", 'admin', ['admins'])).action).toBe('allow');
    expect(cached.decide(as("select pg_read_file('/b')")).action).toBe('deny');
  });

  it('keeps deciding per session after the cache is reset at its bound', () => {
    const small = new StatementDecider(undefined, 3);
    const admin = as('drop table orders', 'admin', ['admins']);
    const developer = as('drop table orders');
    for (let round = 0; round < 3; round++) {
      // the same session objects again and again, as the proxy passes them
      expect(small.decide(admin).action).toBe('allow');
      expect(small.decide(developer).action).toBe('require_approval');
      expect(small.decide(as(`select ${round} from orders`)).action).toBe('allow');
      expect(small.decide(as(`truncate orders${round}`)).action).toBe('require_approval');
    }
  });

  it('decides statements that differ only in literals alike, and others apart', () => {
    const cached = new StatementDecider();
    expect(cached.decide(as('delete from orders where id = 1')).action).toBe('allow');
    expect(cached.decide(as('delete from orders where id = 2')).action).toBe('allow');
    expect(cached.decide(as('delete from orders')).action).toBe('require_approval');
    expect(cached.decide(as('select "ssn" from customers; drop table orders')).action).toBe(
      'require_approval',
    );
  });

  it('allows masked reads with their masks (the rule is still named)', () => {
    const decision = decider.decide(as('select ssn from customers'));
    expect(decision.action).toBe('allow');
    expect(decision.ruleId).not.toBe('default');
    expect(decision.masks?.map((m) => m.ruleId)).toContain('mask-ssn');
  });
});
