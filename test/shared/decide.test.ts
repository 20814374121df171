/**
 * shared/decide.ts beyond the default pack's verdicts: what a decision carries, hot policy swaps,
 * and SQL EXECUTE of statements prepared in earlier messages (adversarial).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRequest, PreparedTexts } from '../../shared/control-plane.ts';
import { StatementDecider } from '../../shared/decide.ts';
import { UNKNOWN_PREPARED_RULE } from '../../shared/decide-prepared.ts';
import { parsePolicy } from '../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { developer } from './policy/sessions.ts';

beforeAll(async () => {
  await loadSqlParser();
});

const request = (text: string, prepared?: PreparedTexts): DecisionRequest => ({
  session: developer,
  statement: { text, protocol: 'simple', ...(prepared && { prepared }) },
});

const denyOrders = parsePolicy(`
version: deny-orders-1
default: { action: allow }
rules:
  - id: no-orders
    match: { relations: [orders] }
    action: deny
    reason: orders are off limits
`);

describe('what a decision carries', () => {
  const decider = new StatementDecider();

  it('the parser fingerprint (same across literals and comments) and the kinds of the message', () => {
    const a = decider.decide(request('select * from orders where id = 1'));
    const b = decider.decide(request('SELECT * FROM orders /* x */ WHERE id = 42'));
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(a.kinds).toEqual(['select']);
    expect(
      decider.decide(request('with d as (delete from t where a = 1 returning *) select * from d')).kinds,
    ).toEqual(expect.arrayContaining(['select', 'delete']));
    expect(decider.decide(request('selec 1')).kinds).toEqual(['unknown']);
    expect(decider.decide(request('selec 1')).fingerprint).toBe('unparseable');
  });

  it('the approvers and timeout of a require_approval rule', () => {
    const decision = decider.decide(request('drop table orders'));
    expect(decision.action).toBe('require_approval');
    expect(decision.approval).toEqual({ approvers: 'reviewers', timeoutSeconds: 300 });
    expect(decider.decide(request('select 1')).approval).toBeUndefined();
  });

  it('the Slack channel a require_approval rule names, and none when it names none', () => {
    const policy = parsePolicy(`
version: channels
default: { action: allow }
rules:
  - { id: ddl, match: { kinds: [ddl, drop] }, action: require_approval, approvers: dba, channel: "#dba-approvals" }
  - { id: wipe, match: { facts: [no_where] }, action: require_approval, approvers: dba }
`);
    const decider = new StatementDecider(policy);
    expect(decider.decide(request('drop table orders')).approval).toEqual({
      approvers: 'dba',
      timeoutSeconds: 300,
      channel: '#dba-approvals',
    });
    expect(decider.decide(request('delete from orders')).approval).toEqual({
      approvers: 'dba',
      timeoutSeconds: 300,
    });
  });

  it('the approvers of a require_approval default action', () => {
    const policy = parsePolicy(`
version: hold-all
default: { action: require_approval, approvers: dba, timeoutSeconds: 60 }
rules: []
`);
    const decision = new StatementDecider(policy).decide(request('select 1'));
    expect(decision).toMatchObject({
      action: 'require_approval',
      ruleId: 'default',
      approval: { approvers: 'dba', timeoutSeconds: 60 },
    });
  });
});

describe('setPolicy', () => {
  it('never serves a decision of the old policy once the new one is set', () => {
    const decider = new StatementDecider();
    const text = 'select * from orders where id = 7';
    expect(decider.decide(request(text)).action).toBe('allow');
    decider.setPolicy(denyOrders);
    const after = decider.decide(request(text));
    expect(after).toMatchObject({ action: 'deny', ruleId: 'no-orders', policyVersion: 'deny-orders-1' });
    expect(decider.policyVersion).toBe('deny-orders-1');
  });

  it('keys cached decisions by policy version', () => {
    const decider = new StatementDecider(denyOrders);
    expect(decider.decide(request('select 1 from orders')).action).toBe('deny');
    // a different policy object under another version, swapped in: nothing of the old one remains
    const allowAll = parsePolicy('version: open\ndefault: { action: allow }\nrules: []\n');
    decider.setPolicy(allowAll);
    expect(decider.decide(request('select 1 from orders'))).toMatchObject({
      action: 'allow',
      policyVersion: 'open',
    });
  });
});

describe('SQL EXECUTE of a statement prepared in an earlier message', () => {
  const decider = new StatementDecider();

  it('reports the names a message prepares', () => {
    expect(decider.decide(request('PREPARE p AS SELECT * FROM orders WHERE id = $1')).prepares).toEqual([
      'p',
    ]);
  });

  it('is decided through the prepared body: PREPARE p AS DELETE FROM orders; EXECUTE p', () => {
    const prepare = 'PREPARE p AS DELETE FROM orders';
    expect(decider.decide(request(prepare)).action).toBe('require_approval');
    const decision = decider.decide(request('EXECUTE p', { p: [prepare] }));
    expect(decision).toMatchObject({ action: 'require_approval', ruleId: 'approve-writes-without-where' });
    expect(decision.reason).toMatch(/^EXECUTE p: /);
    expect(decision.approval).toEqual({ approvers: 'reviewers', timeoutSeconds: 300 });
    expect(decision.kinds).toEqual(expect.arrayContaining(['execute', 'delete']));
    // kept, so an approval of it shows and binds the prepared texts (proxy/approval-gate.ts)
    expect(decision.executes).toEqual(['p']);
  });

  it('denies EXECUTE of a name the proxy never saw prepared (fail closed)', () => {
    for (const text of [
      'EXECUTE p',
      'execute "P"(1)',
      'explain analyze execute p',
      'create table x as execute p',
    ]) {
      const decision = decider.decide(request(text, { q: ['PREPARE q AS SELECT 1'] }));
      expect(decision.action, text).toBe('deny');
      expect(decision.ruleId, text).toBe(UNKNOWN_PREPARED_RULE);
    }
  });

  it('applies the current policy, not the one in force at PREPARE', () => {
    const d = new StatementDecider();
    const prepare = 'PREPARE p AS DELETE FROM orders WHERE id = $1';
    expect(d.decide(request(prepare)).action).toBe('allow');
    expect(d.decide(request('EXECUTE p(1)', { p: [prepare] })).action).toBe('allow');
    d.setPolicy(denyOrders);
    expect(d.decide(request('EXECUTE p(1)', { p: [prepare] }))).toMatchObject({
      action: 'deny',
      ruleId: 'no-orders',
    });
  });

  it('takes the most restrictive of every text that prepared the name (a failed re-PREPARE cannot launder it)', () => {
    // PREPARE p AS DELETE … ran; a later PREPARE p AS SELECT 1 failed upstream (name taken)
    const texts = ['PREPARE p AS DELETE FROM orders', 'PREPARE p AS SELECT 1'];
    expect(decider.decide(request('EXECUTE p', { p: texts })).action).toBe('require_approval');
  });

  it('follows a prepared statement that reads masked columns', () => {
    const prepare = 'PREPARE s AS SELECT ssn FROM customers';
    const own = decider.decide(request(prepare));
    const decision = decider.decide(request('EXECUTE s', { s: [prepare] }));
    expect(decision.action).toBe(own.action);
    expect(decision.masks ?? []).toEqual(own.masks ?? []);
  });

  it('does not follow chains of prepared statements (and so cannot loop)', () => {
    const prepared = {
      p: ['PREPARE p AS SELECT 1; EXECUTE q'],
      q: ['PREPARE q AS SELECT 1; EXECUTE p'],
    };
    expect(decider.decide(request('EXECUTE p', prepared)).action).toBe('deny');
  });

  it('still resolves PREPARE and EXECUTE within one message without session state', () => {
    expect(decider.decide(request('PREPARE p AS DELETE FROM orders; EXECUTE p')).action).toBe(
      'require_approval',
    );
    expect(decider.decide(request('PREPARE p AS SELECT 1; EXECUTE p')).action).toBe('allow');
  });
});

describe('SQL EXECUTE names that are not data', () => {
  it('does not find inherited properties as prepared statements', () => {
    const decider = new StatementDecider();
    for (const name of ['constructor', '__proto__', 'toString']) {
      const decision = decider.decide(request(`EXECUTE "${name}"`, {}));
      expect(decision.ruleId, name).toBe(UNKNOWN_PREPARED_RULE);
    }
  });
});
