import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { columns, one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('DDL: kind and object type', () => {
  it.each([
    ['create table t (id int primary key)', 'table'],
    ['create temp table t (id int)', 'table'],
    ['create unlogged table t (like u including all)', 'table'],
    ['create table t as select * from u', 'table'],
    ['select * into t from u', 'table'],
    ['create materialized view mv as select 1', 'matview'],
    ['create view v as select 1', 'view'],
    ['create index concurrently i on t (a)', 'index'],
    ['create unique index on t ((lower(email)))', 'index'],
    ['alter table t add column c int', 'table'],
    ['alter index i rename to j', 'index'],
    ['alter table t rename column a to b', 'column'],
    ['create function f() returns int language sql as $$ select 1 $$', 'function'],
    ['create procedure p() language sql as $$ select 1 $$', 'procedure'],
    ['create function f() returns int begin atomic select 1; end', 'function'],
    ['alter function f() owner to bob', 'function'],
    ['create rule r as on insert to t do instead nothing', 'rule'],
    ['create trigger tr before insert on t for each row execute function f()', 'trigger'],
    ['create event trigger et on ddl_command_start execute function f()', 'event_trigger'],
    ['create role bob login', 'role'],
    ['alter role bob superuser', 'role'],
    ['create user alice', 'role'],
    ['create extension dblink', 'extension'],
    ['create schema s', 'schema'],
    ['create sequence s', 'sequence'],
    ["create type mood as enum ('ok')", 'type'],
    ['create domain d as int check (value > 0)', 'domain'],
    ['create database d', 'database'],
    ['create policy p on t using (owner = current_user)', 'policy'],
    ['create server s foreign data wrapper postgres_fdw', 'foreign_server'],
    ['create foreign table ft (a int) server s', 'foreign_table'],
    ["comment on table t is 'x'", 'comment'],
    ['create aggregate a (int) (sfunc = int4pl, stype = int)', 'aggregate'],
    ['create publication p for table t', 'publication'],
    ['alter table t set schema s', 'table'],
    ['alter table t owner to bob', 'table'],
    ['alter table t replica identity full', 'table'],
    ['refresh materialized view mv', undefined],
  ])('%s → %s', (sql, object) => {
    const s = one(sql);
    if (object === undefined) expect(s.kind).toBe('maintenance');
    else {
      expect(s.kind).toBe('ddl');
      expect(s.ddlObject).toBe(object);
    }
    expect(s.confident).toBe(true);
  });

  it('reports nested objects of CREATE SCHEMA', () => {
    const s = one('create schema s create table x (a int) create view y as select 1');
    expect(s.ddlObjects).toEqual(['schema', 'table', 'view']);
    expect(relations(s)).toEqual(['x:write', 'y:write']);
  });
});

describe('DDL: relations and functions', () => {
  it('writes the created relation and reads the query of CREATE TABLE AS', () => {
    expect(relations(one('create table t2 as select ssn from customers'))).toEqual([
      'customers:read',
      't2:write',
    ]);
    expect(relations(one('select ssn into t2 from customers'))).toEqual(['customers:read', 't2:write']);
  });

  it('finds functions in DEFAULT, CHECK, generated columns and partition bounds', () => {
    expect(one("create table t (a text default pg_read_file('/x'))").functions).toEqual(['pg_read_file']);
    expect(one('create table t (a int check (f(a) > 0))').functions).toEqual(['f']);
    expect(one('create table t (a text generated always as (g(b)) stored, b text)').functions).toEqual(['g']);
    expect(one("alter table t alter a set default pg_read_file('/x')").functions).toEqual(['pg_read_file']);
    expect(one('create table p1 partition of p for values from (f(1)) to (f(2))').functions).toEqual(['f']);
  });

  it('finds functions and columns in index expressions and predicates', () => {
    const s = one('create index on t ((pg_read_file(path))) where g(b)');
    expect(s.functions).toEqual(['pg_read_file', 'g']);
    expect(columns(s)).toEqual(['b@other=t', 'path@other=t']);
  });

  it('walks the actions of a rule and the condition of a trigger', () => {
    const rule = one('create rule r as on insert to t do also delete from audit');
    expect(rule.kinds).toEqual(['ddl', 'delete']);
    expect(rule.noWhere).toBe(true);
    expect(relations(rule)).toEqual(['audit:write', 't:write']);
    const trigger = one(
      'create trigger tr before update on t for each row when (new.a <> old.a) execute function f()',
    );
    expect(columns(trigger)).toEqual(['a@other=t']);
  });

  it('walks the body of a SQL-standard function', () => {
    const s = one('create function f() returns void begin atomic delete from t; end');
    expect(s.kinds).toContain('delete');
    expect(relations(s)).toContain('t:write');
  });

  it('sees a role switch in a function or role SET clause', () => {
    expect(
      one("create function f() returns int language sql set role = admin as 'select 1'").kinds,
    ).toContain('set_role');
    expect(one('alter role me set role = admin').kinds).toContain('set_role');
  });

  it('reads a view body without running it', () => {
    const s = one("create view v as select pg_read_file('/x'), ssn from customers");
    expect(relations(s)).toEqual(['customers:read', 'v:write']);
    expect(s.functions).toEqual(['pg_read_file']);
  });
});

describe('DROP, TRUNCATE, GRANT, REVOKE', () => {
  it('classifies DROP by object type and writes dropped relations', () => {
    const s = one('drop table if exists a, b.c cascade');
    expect(s.kind).toBe('drop');
    expect(s.ddlObject).toBe('table');
    expect(relations(s)).toEqual(['a:write', 'b.c:write']);
    expect(one('drop function f(int)').ddlObject).toBe('function');
    expect(one('drop index i').ddlObject).toBe('index');
    expect(one('drop schema s cascade').ddlObject).toBe('schema');
    expect(one('drop database d').ddlObject).toBe('database');
    expect(one('drop role bob').ddlObject).toBe('role');
    expect(one('drop owned by bob').ddlObject).toBe('owned');
  });

  it('classifies TRUNCATE, with or without ONLY', () => {
    const s = one('truncate only a, b.c restart identity');
    expect(s.kind).toBe('truncate');
    expect(relations(s)).toEqual(['a:write', 'b.c:write']);
    expect(one('TRUNCATE TABLE t').kind).toBe('truncate');
  });

  it('classifies GRANT and REVOKE', () => {
    const grant = one('grant select on t to bob');
    expect([grant.kind, grant.ddlObject]).toEqual(['grant', 'table']);
    expect(relations(grant)).toEqual(['t:write']);
    expect(one('revoke all on schema s from bob').kind).toBe('revoke');
    expect([one('grant admin to bob').kind, one('grant admin to bob').ddlObject]).toEqual(['grant', 'role']);
    expect(one('revoke admin from bob').kind).toBe('revoke');
    const defaults = one('alter default privileges grant select on tables to bob');
    expect([defaults.kind, defaults.ddlObject]).toEqual(['grant', 'default_privileges']);
  });
});
