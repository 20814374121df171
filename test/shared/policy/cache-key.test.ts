import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../../shared/policy/default-policy.ts';
import { decisionCacheKey, evaluatePolicy } from '../../../shared/policy/evaluate.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { developer, session } from './sessions.ts';

beforeAll(loadSqlParser);

const key = (sql: string, who = developer, version = 'v1') => decisionCacheKey(analyzeSql(sql), who, version);

describe('decisionCacheKey', () => {
  it('is the same across literal values, comments, whitespace and keyword case', () => {
    const k = key('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    expect(k).toMatch(/^[\w-]{43}$/);
    expect(key('select abalance from pgbench_accounts where aid = 987654')).toBe(k);
    expect(key('select /* hi */ abalance\n  from pgbench_accounts -- x\n where aid = $1')).toBe(k);
    expect(key("select abalance from pgbench_accounts where aid = 'delete from t'")).toBe(k);
  });

  it('differs where the parser fingerprint does not: schemas, digits, aliases', () => {
    expect(key('select * from a.t')).not.toBe(key('select * from b.t'));
    expect(key('select * from customers_2023')).not.toBe(key('select * from customers_2024'));
    expect(key('select x.ssn from customers x, staff y')).not.toBe(
      key('select x.ssn from customers y, staff x'),
    );
  });

  it('differs by principal, groups, roles, database and policy version', () => {
    const sql = 'select 1';
    const k = key(sql);
    expect(key(sql, session({ name: 'other@example.com' }))).not.toBe(k);
    expect(key(sql, session({ groups: ['agents'] }))).not.toBe(k);
    expect(key(sql, session({ role: 'admin', roles: ['admin'] }))).not.toBe(k);
    expect(key(sql, session({ roles: ['developer', 'dba'] }))).not.toBe(k);
    expect(key(sql, session({ database: 'prod' }))).not.toBe(k);
    expect(key(sql, developer, 'v2')).not.toBe(k);
    // what the policy never reads does not split the cache
    expect(key(sql, session({ sessionId: 'other', applicationName: 'cursor' }))).toBe(k);
  });

  it('keys the same decision for the same key', () => {
    const texts = [
      'delete from t where id = 1',
      'DELETE FROM t WHERE id = 2 -- again',
      'delete from t where id = $1',
    ];
    const keys = new Set(texts.map((t) => key(t)));
    const decisions = texts.map((t) => evaluatePolicy(DEFAULT_POLICY, analyzeSql(t), developer));
    expect(keys.size).toBe(1);
    expect(new Set(decisions.map((d) => JSON.stringify(d))).size).toBe(1);
  });

  it('separates an unparseable message from an empty one', () => {
    expect(key('selec 1')).toBe(key('selec 2'));
    expect(key('selec 1')).not.toBe(key(''));
  });
});
