import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('utility statements', () => {
  it.each([
    ['begin', 'transaction'],
    ['BEGIN TRANSACTION READ ONLY', 'transaction'],
    ['commit', 'transaction'],
    ['rollback', 'transaction'],
    ['savepoint a', 'transaction'],
    ['release savepoint a', 'transaction'],
    ["prepare transaction 'x'", 'transaction'],
    ['set constraints all deferred', 'transaction'],
    ['set search_path = public', 'set'],
    ['set local statement_timeout = 5', 'set'],
    ['set transaction read only', 'set'],
    ['set time zone utc', 'set'],
    ['reset search_path', 'reset'],
    ['reset all', 'reset'],
    ['show search_path', 'show'],
    ['show all', 'show'],
    ['set role admin', 'set_role'],
    ['SET LOCAL ROLE admin', 'set_role'],
    ['set session role admin', 'set_role'],
    ['set role none', 'set_role'],
    ['reset role', 'set_role'],
    ['set "ROLE" = admin', 'set_role'],
    ['set role to default', 'set_role'],
    ['set session authorization bob', 'set_session_authorization'],
    ['set session_authorization = bob', 'set_session_authorization'],
    ['reset session authorization', 'set_session_authorization'],
    ['alter system set work_mem = 1', 'alter_system'],
    ['alter system reset all', 'alter_system'],
    ['call p(1)', 'call'],
    ['do $$ begin null; end $$', 'do'],
    ['vacuum full t', 'vacuum'],
    ['vacuum (analyze) t', 'vacuum'],
    ['analyze t', 'analyze'],
    ['listen ch', 'listen'],
    ["notify ch, 'x'", 'notify'],
    ['unlisten *', 'unlisten'],
    ['lock table t in access exclusive mode', 'lock'],
    ['discard all', 'discard'],
    ["load 'auto_explain'", 'load'],
    ['declare c cursor for select 1', 'declare'],
    ['fetch 10 from c', 'fetch'],
    ['close c', 'close'],
    ['checkpoint', 'maintenance'],
    ['cluster t using i', 'maintenance'],
    ['reindex table t', 'maintenance'],
    ['deallocate all', 'deallocate'],
  ])('%s → %s', (sql, kind) => {
    expect(one(sql).kind).toBe(kind);
  });

  it('names the parameter of SET, RESET, SHOW and ALTER SYSTEM, lower-cased', () => {
    expect(one('SET Search_Path = x').setting).toBe('search_path');
    expect(one('reset all').setting).toBe('all');
    expect(one('show work_mem').setting).toBe('work_mem');
    expect(one('alter system set shared_preload_libraries = x').setting).toBe('shared_preload_libraries');
    expect(one('set "Role" = x').setting).toBe('role');
  });

  it('is not confident about DO blocks', () => {
    const s = one("do $body$ begin execute 'drop table t'; end $body$");
    expect(s.confident).toBe(false);
    expect(s.uncertainties).toEqual(['a DO block runs procedural code that cannot be analysed']);
  });

  it('finds the functions of CALL and its arguments', () => {
    expect(one("call cleanup(pg_read_file('/x'))").functions).toEqual(['cleanup', 'pg_read_file']);
  });

  it('writes the relations of LOCK and VACUUM, reads a cursor query', () => {
    expect(relations(one('lock table a, b'))).toEqual(['a:write', 'b:write']);
    expect(relations(one('vacuum analyze a (x)'))).toEqual(['a:write']);
    expect(relations(one('declare c cursor for select ssn from customers'))).toEqual(['customers:read']);
  });
});
