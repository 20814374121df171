import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, DEFAULT_POLICY_YAML } from '../../../shared/policy/default-policy.ts';
import { evaluatePolicy } from '../../../shared/policy/evaluate.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { admin, agent, developer } from './sessions.ts';

beforeAll(loadSqlParser);

describe('the default policy pack', () => {
  it('ships the same text as default-policy.yaml', () => {
    const file = readFileSync(new URL('../../../shared/policy/default-policy.yaml', import.meta.url), 'utf8');
    expect(DEFAULT_POLICY_YAML).toBe(file);
    expect(parsePolicy(file)).toEqual(DEFAULT_POLICY);
  });

  it('is versioned and ends in allow', () => {
    expect(DEFAULT_POLICY.version).toBe('default-1');
    expect(DEFAULT_POLICY.default).toEqual({ action: 'allow' });
  });

  it('holds schema changes and unqualified writes for reviewers for 300 s', () => {
    for (const sql of ['create table t (a int)', 'delete from t']) {
      expect(evaluatePolicy(DEFAULT_POLICY, analyzeSql(sql), developer)).toMatchObject({
        action: 'require_approval',
        approvers: 'reviewers',
        timeoutSeconds: 300,
      });
    }
  });

  it('treats agents like any other non-admin', () => {
    expect(evaluatePolicy(DEFAULT_POLICY, analyzeSql('drop table t'), agent).action).toBe('require_approval');
  });

  it('masks sensitive columns with the method of each rule, for admins too', () => {
    const d = evaluatePolicy(
      DEFAULT_POLICY,
      analyzeSql('select ssn, card_number, cvv from customers'),
      admin,
    );
    expect(d.action).toBe('mask');
    expect(d.masks.map((m) => [m.ruleId, m.method])).toEqual([
      ['mask-ssn', 'partial'],
      ['mask-card-numbers', 'partial'],
      ['mask-card-security-codes', 'redact'],
    ]);
  });

  it('allows admins what it holds or denies for others', () => {
    for (const sql of [
      'drop table t',
      'set role postgres',
      "copy t to program 'x'",
      'do $$ begin end $$',
      'selec',
    ]) {
      expect(evaluatePolicy(DEFAULT_POLICY, analyzeSql(sql), admin).action, sql).toBe('allow');
    }
  });
});
