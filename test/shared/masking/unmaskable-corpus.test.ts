/**
 * The adversarial SQL corpus of masking: statements trying to get a clear masked value (ssn,
 * credit_card, …) out of the default pack. Each one is either allowed with masks (the wire masks the
 * column by identity: PostgreSQL reports its table OID and attribute number in RowDescription, as
 * checked against PostgreSQL 18 for aliases, subqueries, CTEs, RETURNING, cursors and DISTINCT) or
 * refused with 42501 naming the column. Every bypass ever found stays here.
 *
 * Not decidable from SQL text (covered by the wire side and the detectors, see sensitive-use.ts):
 * a view exposing ssn under another name used in an expression, and a user function returning rows
 * read from customers.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementDecider } from '../../../shared/decide.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { admin, developer } from '../policy/sessions.ts';
import { MASKED, MASKING_CORPUS } from './corpus.ts';

beforeAll(loadSqlParser);

describe('masking corpus (default pack, developer)', () => {
  const decider = new StatementDecider();
  for (const [category, cases] of Object.entries(MASKING_CORPUS)) {
    describe(category, () => {
      it.each(cases)('%s → %s', (sql, expected, column) => {
        const decision = decider.decide({ session: developer, statement: { text: sql, protocol: 'simple' } });
        if (expected === MASKED) {
          expect(decision.action, decision.reason).toBe('allow');
          expect(decision.masks?.map((m) => m.ruleId)).toContain('mask-ssn');
        } else {
          expect(decision.action).toBe('deny');
          expect(decision.ruleId).toMatch(/^mask-/);
          expect(decision.reason).toContain(`"${column}"`);
        }
      });
    });
  }
});

describe('masking decisions', () => {
  const decider = new StatementDecider();
  const decide = (text: string, session = developer) =>
    decider.decide({ session, statement: { text, protocol: 'simple' } });

  it('carries every mask of the session, in policy order, even when the SQL names no masked column', () => {
    const decision = decide('select * from v_customers');
    expect(decision.action).toBe('allow');
    expect(decision.masks?.map((m) => m.ruleId)).toEqual([
      'mask-ssn',
      'mask-card-numbers',
      'mask-card-security-codes',
      'mask-secrets',
    ]);
    expect(decision.masks?.[0]).toEqual({
      ruleId: 'mask-ssn',
      columns: ['ssn', 'social_security_number'],
      method: 'partial',
    });
  });

  it('carries the default detectors', () => {
    expect(decide('select 1').detectors).toEqual({
      enabled: ['card', 'ssn', 'iban', 'aws_access_key', 'jwt', 'private_key'],
      method: 'partial',
    });
  });

  it('masks for admins as well, and refuses them unmaskable uses', () => {
    expect(decide('select ssn from customers', admin).masks?.length).toBe(4);
    expect(decide('select upper(ssn) from customers', admin).action).toBe('deny');
  });

  it('keeps the masks on a statement held for approval, so it runs masked once approved', () => {
    const decision = decide('select ssn from customers; drop table t');
    expect(decision.action).toBe('require_approval');
    expect(decision.masks?.length).toBe(4);
  });

  it('names the column, the rule and the reason', () => {
    const decision = decide('select upper(ssn) from customers');
    expect(decision.reason).toBe(
      '"ssn" may be the masked column ssn (rule "mask-ssn"), used inside an expression, function call, cast or aggregate, whose result cannot be masked; select the column itself to get it masked',
    );
  });

  it('a deny of the policy stays a deny', () => {
    expect(decide("select pg_read_file('x'), upper(ssn) from customers").ruleId).toBe(
      'deny-server-file-functions',
    );
  });
});
