import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { columns, one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('INSERT', () => {
  it('writes its target and reads its source', () => {
    const s = one('insert into archive (id, ssn) select id, ssn from customers where closed');
    expect(s.kind).toBe('insert');
    expect(relations(s)).toEqual(['archive:write', 'customers:read']);
    expect(columns(s, 'values')).toEqual(['id@values=archive', 'ssn@values=archive']);
    expect(columns(s, 'select')).toEqual(['id@select=customers', 'ssn@select=customers']);
    expect(s.hasWhere).toBeUndefined();
    expect(s.noWhere).toBe(false);
  });

  it('walks VALUES, ON CONFLICT and RETURNING', () => {
    const s = one(
      'insert into t as x (a, b) values (1, f(2)) on conflict (a) where a > 0 ' +
        'do update set b = excluded.b where x.b <> excluded.b returning x.*, g(a)',
    );
    expect(s.functions).toEqual(['f', 'g']);
    expect(columns(s, 'on_conflict')).toEqual(['a@on_conflict=t']);
    expect(columns(s, 'set')).toEqual(['b@set=t']);
    expect(columns(s, 'returning')).toEqual(['*@returning=t', 'a@returning=t']);
  });
});

describe('UPDATE', () => {
  it('records the target, the SET columns and the WHERE', () => {
    const s = one('update accounts set balance = balance - $1 where id = $2');
    expect(s.kind).toBe('update');
    expect(relations(s)).toEqual(['accounts:write']);
    expect(columns(s)).toEqual(['balance@set=accounts', 'id@where=accounts']);
    expect(s.hasWhere).toBe(true);
    expect(s.noWhere).toBe(false);
  });

  it('flags an UPDATE without WHERE', () => {
    const s = one('update accounts set balance = 0');
    expect(s.hasWhere).toBe(false);
    expect(s.noWhere).toBe(true);
  });

  it('reads the FROM list of UPDATE … FROM', () => {
    const s = one('update t set a = u.a from u where t.id = u.id returning t.*');
    expect(relations(s)).toEqual(['t:write', 'u:read']);
    expect(columns(s, 'where')).toEqual(['id@where=t', 'id@where=u']);
  });

  it('counts any WHERE, even WHERE true, as a WHERE (policies never read literals)', () => {
    expect(one('update t set a = 1 where true').hasWhere).toBe(true);
    expect(one('update t set a = 1 where 1 = 1').noWhere).toBe(false);
  });

  it('counts WHERE CURRENT OF as a WHERE', () => {
    expect(one('update t set a = 1 where current of c').hasWhere).toBe(true);
  });
});

describe('DELETE', () => {
  it('flags a DELETE without WHERE', () => {
    const s = one('DELETE FROM public.sessions');
    expect(s.kind).toBe('delete');
    expect(relations(s)).toEqual(['public.sessions:write']);
    expect(s.hasWhere).toBe(false);
    expect(s.noWhere).toBe(true);
  });

  it('reads the USING list', () => {
    const s = one('delete from t using u where t.a = u.a');
    expect(relations(s)).toEqual(['t:write', 'u:read']);
    expect(s.noWhere).toBe(false);
  });

  it('finds a DELETE without WHERE inside a subquery-free CTE', () => {
    const s = one('with gone as (delete from t returning *) select count(*) from gone');
    expect(s.kind).toBe('select');
    expect(s.kinds).toEqual(['select', 'delete']);
    expect(s.dataModifyingCte).toBe(true);
    expect(s.noWhere).toBe(true);
    expect(relations(s)).toEqual(['t:write']);
  });

  it('finds data-modifying CTEs of every kind', () => {
    for (const [sql, kind] of [
      ['with x as (insert into t values (1) returning *) select * from x', 'insert'],
      ['with x as (update t set a = 1 where b returning *) select * from x', 'update'],
      ['with x as (delete from t where b returning *) select * from x', 'delete'],
      [
        'with x as (merge into t using s on t.id = s.id when matched then delete returning t.*) select 1',
        'merge',
      ],
    ] as const) {
      const s = one(sql);
      expect(s.dataModifyingCte, sql).toBe(true);
      expect(s.kinds, sql).toContain(kind);
    }
  });

  it('does not call a read-only CTE data-modifying', () => {
    expect(one('with x as (select * from t) select * from x').dataModifyingCte).toBe(false);
  });
});

describe('MERGE', () => {
  it('writes the target, reads the source and labels the actions', () => {
    const s = one(
      'merge into t using s on t.id = s.id when matched and s.gone then delete ' +
        'when matched then update set a = s.a when not matched then insert (id, a) values (s.id, s.a)',
    );
    expect(s.kind).toBe('merge');
    expect(relations(s)).toEqual(['s:read', 't:write']);
    expect(columns(s, 'set')).toEqual(['a@set=s', 'a@set=t']);
    expect(columns(s, 'values')).toEqual(['a@values=s', 'a@values=t', 'id@values=s', 'id@values=t']);
    expect(columns(s, 'where')).toEqual(['gone@where=s']);
    expect(s.noWhere).toBe(false);
  });
});
