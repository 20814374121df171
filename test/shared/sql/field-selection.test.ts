/**
 * Functions called in field-selection notation: PostgreSQL reads `(expr).f` and `t.f` as `f(expr)`
 * and `f(t)` when there is no field or column f. Each case here got past the policy once (see
 * test/proxy/attacks.integration.test.ts for what the server ran).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { one } from './helpers.ts';

beforeAll(loadSqlParser);

describe('field-selection notation', () => {
  it.each([
    ['(pid).pg_terminate_backend FROM pg_stat_activity', 'pg_terminate_backend'],
    ['(0).pg_cancel_backend', 'pg_cancel_backend'],
    ['a.pg_cancel_backend FROM pg_backend_pid() a', 'pg_cancel_backend'],
    ['w.pg_cancel_backend FROM (SELECT 1) w', 'pg_cancel_backend'],
    ['c.row_to_json FROM creds c', 'row_to_json'],
    ['creds.to_jsonb FROM public.creds', 'to_jsonb'],
    ['(c).record_out FROM creds c', 'record_out'],
  ])('SELECT %s calls %s', (tail, fn) => {
    expect(one(`SELECT ${tail}`).functions).toContain(fn);
  });

  it('a string run as SQL through field-selection notation is not confident', () => {
    const s = one("SELECT ($$SELECT to_tsvector(set_config('role', 'x', false))$$).ts_stat");
    expect(s.confident).toBe(false);
  });

  it('an ordinary qualified column of a table is not a function call', () => {
    expect(one('SELECT c.id, c.name FROM customers c').functions).toEqual([]);
  });
});

describe('dynamic SQL functions', () => {
  it.each([
    "SELECT ts_rewrite('a'::tsquery, 'SELECT a, b FROM rules')",
    "SELECT cursor_to_xml('cur', 10, false, false, '')",
  ])('%s is not confident', (sql) => {
    expect(one(sql).confident).toBe(false);
  });
});
