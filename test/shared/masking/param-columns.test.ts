/**
 * Which columns a statement's parameters may land in or be compared with: the basis for hiding a
 * held statement's values from the reviewer where a mask rule covers them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { paramColumns } from '../../../shared/masking/param-columns.ts';
import { loadSqlParser } from '../../../shared/sql/parser.ts';

beforeAll(() => loadSqlParser());

/** parameter number → the column names it meets (relation-qualified when known) */
function near(text: string): Record<number, string[]> {
  const found = paramColumns(text);
  if (!found) throw new Error('not parsed');
  const out: Record<number, string[]> = {};
  for (const [n, columns] of found)
    out[n] = [...new Set(columns.map((c) => (c.relation ? `${c.relation.name}.${c.name}` : c.name)))].sort();
  return out;
}

describe('paramColumns', () => {
  it('INSERT: each value lands in its target column, any column without a column list', () => {
    expect(near('insert into customers (name, ssn) values ($1, upper($2)), ($3, $4)')).toEqual({
      1: ['customers.name'],
      2: ['customers.ssn'],
      3: ['customers.name'],
      4: ['customers.ssn'],
    });
    expect(near('insert into customers values ($1, $2)')).toEqual({ 1: ['customers.*'], 2: ['customers.*'] });
    expect(near('insert into customers (ssn) select $1')).toEqual({ 1: ['customers.ssn'] });
    // a set operation may put any arm's value in any column
    expect(near('insert into customers (name, ssn) select $1, $2 union select $3, $4')[1]).toEqual([
      'customers.name',
      'customers.ssn',
    ]);
  });

  it('UPDATE and ON CONFLICT DO UPDATE: the assigned column; a multi-assignment shares its columns', () => {
    expect(near('update customers set ssn = $1, (a, b) = ($2, $3) where id = $4')).toEqual({
      1: ['customers.ssn'],
      2: ['customers.a', 'customers.b'],
      3: ['customers.a', 'customers.b'],
      4: ['id'],
    });
    expect(near('insert into c (id) values ($1) on conflict (id) do update set card_number = $2')).toEqual({
      1: ['c.id'],
      2: ['c.card_number'],
    });
  });

  it('an expression: every column anywhere in it, a subquery included', () => {
    expect(
      near('delete from orders where total > $1 and lower(email) = lower($2) and $3 in (ssn, pan)'),
    ).toEqual({
      1: ['total'],
      2: ['email'],
      3: ['pan', 'ssn'],
    });
    expect(near('delete from x where exists (select 1 from customers c where c.ssn = $1)')).toEqual({
      1: ['ssn'],
    });
    expect(near('merge into t using s on t.id = s.id when matched then update set v = $1')[1]).toContain(
      't.*',
    );
  });

  it('an output of a subquery, CTE or VALUES list may land in any column', () => {
    expect(
      near('update customers set ssn = v.x from (values ($1)) v(x) where customers.id = v.y')[1],
    ).toContain('*');
    expect(near('with v as (select $1 as x) insert into customers (ssn) select x from v')[1]).toContain('*');
    expect(near('delete from orders using (select $1::int as id) s where orders.id = s.id')[1]).toContain(
      '*',
    );
    // the statement's own select list goes back to the client
    expect(near('select $1, $2 union select $3, $4')).toEqual({ 1: [], 2: [], 3: [], 4: [] });
  });

  it('no column near it: a function argument of its own, a LIMIT', () => {
    expect(near('select pg_terminate_backend($1) limit $2')).toEqual({ 1: [], 2: [] });
  });

  it('knows nothing of text the parser rejects', () => {
    expect(paramColumns('update set where $1')).toBeUndefined();
  });
});
