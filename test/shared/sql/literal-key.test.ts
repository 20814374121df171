import { beforeAll, describe, expect, it } from 'vitest';
import type { SessionContext } from '../../../shared/control-plane.ts';
import { DEFAULT_POLICY } from '../../../shared/policy/default-policy.ts';
import { evaluatePolicy } from '../../../shared/policy/evaluate.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { literalInsensitiveKey } from '../../../shared/sql/literal-key.ts';

beforeAll(async () => {
  await loadSqlParser();
});

const key = literalInsensitiveKey;

describe('literalInsensitiveKey', () => {
  it('ignores the values of plain numbers and strings', () => {
    expect(key('SELECT abalance FROM pgbench_accounts WHERE aid = 12345;')).toBe(
      key('SELECT abalance FROM pgbench_accounts WHERE aid = 7;'),
    );
    expect(key("select * from t where name = 'bob' and x > 1.5")).toBe(
      key("select * from t where name = 'it''s' and x > 20.25"),
    );
  });

  it('treats a typed literal like any other string (its value is ignored, its type kept)', () => {
    expect(key("select interval '1 day'")).toBe(key("select interval '2 days'"));
    expect(key("select interval '1 day'")).not.toBe(key("select date '2024-01-01'"));
  });

  it('keeps identifiers, keywords, operators and casts', () => {
    expect(key('select a from t1')).not.toBe(key('select a from t2'));
    expect(key('select a from t')).not.toBe(key('select b from t'));
    expect(key("select '1'::int")).not.toBe(key("select '1'::text"));
    expect(key('select 1')).not.toBe(key("select '1'"));
    expect(key('delete from t where a = 1')).not.toBe(key('delete from t'));
  });

  it.each([
    ['quoted identifiers', 'select "ssn" from customers'],
    ['dollar quoting', 'do $$ begin end $$'],
    ['parameters', 'select $1'],
    ['escape strings', "select E'\\x41'"],
    ['backslashes', "select 'a\\' from t"],
    ['line comments', 'select 1 -- drop table t'],
    ['block comments', 'select /* x */ 1'],
    ['prefixed strings', "select U&'d\\0061t'"],
    ['a type name glued to its literal', "select interval'1 day'"],
    ['bit strings', "select B'101'"],
    ['unterminated strings', "select 'abc"],
    ['exponents', 'select 1e5'],
    ['non-ASCII identifiers (é1 must not become é0)', 'select * from tablé1'],
    ['string continuation across lines', "select 'a'\n'b'"],
  ])('gives no key for %s', (_what, text) => {
    expect(key(text)).toBeUndefined();
  });

  it('never lets two texts with one key get different decisions (default pack)', () => {
    const session: SessionContext = {
      sessionId: 's',
      principal: {
        name: 'dev@example.com',
        issuer: 'https://issuer.example',
        subject: 'dev@example.com',
        groups: ['engineering'],
        actor: 'person',
      },
      role: 'developer',
      roles: ['developer'],
      database: 'app',
      applicationName: 'test',
    };
    const pairs: Array<[string, string]> = [
      ["select pg_read_file('/etc/passwd')", "select pg_read_file('x')"],
      ["select set_config('role', 'app_admin', false)", "select set_config('a', 'b', false)"],
      ['delete from orders where id = 1', 'delete from orders where id = 99'],
      ["copy orders to '/tmp/x'", "copy orders to '/tmp/y'"],
      ['select ssn from customers limit 1', 'select ssn from customers limit 500'],
      ["update customers set name = 'x' where id = 1", "update customers set name = 'y' where id = 2"],
      ['select 1 order by 1', 'select 1 order by 2'],
    ];
    for (const [a, b] of pairs) {
      expect(key(a), a).toBe(key(b));
      const da = evaluatePolicy(DEFAULT_POLICY, analyzeSql(a), session);
      const db = evaluatePolicy(DEFAULT_POLICY, analyzeSql(b), session);
      expect([db.action, db.ruleId], b).toEqual([da.action, da.ruleId]);
    }
  });
});
