import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { columns, one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('SELECT: kind and relations', () => {
  it('classifies a pgbench-style select', () => {
    const s = one('SELECT abalance FROM pgbench_accounts WHERE aid = 42');
    expect(s.kind).toBe('select');
    expect(s.kinds).toEqual(['select']);
    expect(relations(s)).toEqual(['pgbench_accounts:read']);
    expect(columns(s)).toEqual(['abalance@select=pgbench_accounts', 'aid@where=pgbench_accounts']);
    expect(s.functions).toEqual([]);
    expect(s.confident).toBe(true);
    expect(s.hasWhere).toBeUndefined();
  });

  it('keeps the schema when the statement names one', () => {
    const s = one('select * from public.customers c join billing.invoices i on i.cid = c.id');
    expect(relations(s)).toEqual(['billing.invoices:read', 'public.customers:read']);
  });

  it('lower-cases unquoted names and keeps quoted ones as written', () => {
    expect(relations(one('SELECT * FROM Public.Customers'))).toEqual(['public.customers:read']);
    expect(relations(one('SELECT * FROM "Customers"'))).toEqual(['Customers:read']);
  });

  it('decodes unicode-escaped identifiers as PostgreSQL does', () => {
    expect(relations(one('select * from U&"cust\\006Fmers"'))).toEqual(['customers:read']);
  });

  it('reads TABLE and VALUES as selects', () => {
    expect(relations(one('TABLE customers'))).toEqual(['customers:read']);
    expect(one('VALUES (1), (2)').kind).toBe('select');
  });

  it('finds relations in subqueries, EXISTS, IN and scalar subqueries', () => {
    const s = one(
      'select (select max(total) from orders o where o.cid = c.id) from customers c ' +
        'where exists (select 1 from flags f where f.cid = c.id) and c.id in (select cid from vip)',
    );
    expect(relations(s)).toEqual(['customers:read', 'flags:read', 'orders:read', 'vip:read']);
  });

  it('finds relations in every arm of a set operation', () => {
    const s = one('select a from t union select b from u except select c from v');
    expect(relations(s)).toEqual(['t:read', 'u:read', 'v:read']);
    expect(columns(s)).toEqual(['a@select=t', 'b@select=u', 'c@select=v']);
  });

  it('does not report a CTE as a relation, but reports what the CTE reads', () => {
    const s = one('with recent as (select * from orders) select * from recent');
    expect(relations(s)).toEqual(['orders:read']);
  });

  it('sees the real table behind a CTE of the same name in a non-recursive WITH', () => {
    const s = one('with customers as (select * from customers) select ssn from customers');
    expect(relations(s)).toEqual(['customers:read']);
  });

  it('treats a schema-qualified name as a table even when a CTE has its name', () => {
    const s = one('with t as (select 1) select * from t, public.t');
    expect(relations(s)).toEqual(['public.t:read']);
  });

  it('resolves names in WITH RECURSIVE to the CTE itself', () => {
    const s = one(
      'with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r',
    );
    expect(relations(s)).toEqual([]);
  });

  it('finds relations behind LATERAL, TABLESAMPLE and ONLY', () => {
    const s = one(
      'select * from only accounts a tablesample system (10), lateral (select * from entries e where e.aid = a.id) x',
    );
    expect(relations(s)).toEqual(['accounts:read', 'entries:read']);
  });

  it('ignores FOR UPDATE OF, which names FROM items rather than new relations', () => {
    expect(relations(one('select * from t as x for update of x'))).toEqual(['t:read']);
  });
});

describe('SELECT: columns and where they are used', () => {
  it('labels each clause', () => {
    const s = one(
      'select distinct on (d) a, count(b) from t join u on t.k = u.k where w = 1 group by g having h > 0 ' +
        'window win as (partition by p) order by o limit 1',
    );
    const clauses = new Map(s.columns.map((c) => [c.name, c.clause]));
    expect(Object.fromEntries(clauses)).toEqual({
      d: 'distinct',
      a: 'select',
      b: 'select',
      k: 'join',
      w: 'where',
      g: 'group',
      h: 'having',
      p: 'window',
      o: 'order',
    });
  });

  it('resolves an alias to its table', () => {
    const s = one('select c.name from customers c where c.region = $1');
    expect(columns(s)).toEqual(['name@select=customers', 'region@where=customers']);
  });

  it('resolves a table-qualified and a schema-qualified column', () => {
    const s = one('select customers.ssn, public.customers.name from public.customers');
    expect(columns(s)).toEqual(['name@select=public.customers', 'ssn@select=public.customers']);
  });

  it('lists candidates for an unqualified column in a join', () => {
    const s = one('select ssn from customers c join orders o on o.cid = c.id');
    expect(columns(s, 'select')).toEqual(['ssn@select?customers|orders']);
  });

  it('lets a correlated column belong to an outer table', () => {
    const s = one('select id from customers c where exists (select 1 from orders where ssn = $1)');
    expect(columns(s, 'where')).toEqual(['ssn@where?orders|customers']);
  });

  it('marks columns of subqueries, CTEs and functions as opaque', () => {
    expect(columns(one('select s.x from (select ssn as x from customers) s'), 'select')).toEqual([
      'ssn@select=customers',
      'x@select~',
    ]);
    expect(columns(one('with c as (select ssn from customers) select ssn from c'), 'select')).toEqual([
      'ssn@select=customers',
      'ssn@select~',
    ]);
  });

  it('reports * and t.* as the column *', () => {
    expect(columns(one('select * from customers'))).toEqual(['*@select=customers']);
    expect(columns(one('select c.* from customers c join orders o using (id)'), 'select')).toEqual([
      '*@select=customers',
    ]);
  });

  it('reports a USING column against both sides', () => {
    expect(columns(one('select 1 from customers join orders using (cid)'))).toEqual([
      'cid@join?customers|orders',
    ]);
  });

  it('reports a whole-row reference as *', () => {
    const s = one('select row_to_json(c) from customers c');
    expect(columns(s)).toContain('*@select=customers');
    expect(s.functions).toEqual(['row_to_json']);
  });

  it('treats renamed columns (FROM t AS x(a, b)) as possibly any column of t', () => {
    expect(columns(one('select x from customers as c(x)'))).toEqual([
      '*@select=customers',
      'x@select=customers',
    ]);
  });

  it('marks a select-list item that is just a column as direct', () => {
    const s = one('select ssn, upper(name) from customers');
    expect(s.columns.find((c) => c.name === 'ssn')?.direct).toBe(true);
    expect(s.columns.find((c) => c.name === 'name')?.direct).toBeUndefined();
  });

  it('resolves a composite field access to its column', () => {
    expect(columns(one('select t.address.city from t'))).toEqual(['address@select=t']);
  });
});

describe('SELECT: functions', () => {
  it('lower-cases function names and keeps the schema when given', () => {
    expect(one('SELECT Now(), PG_CATALOG.Upper($1), "MyFunc"()').functions).toEqual([
      'now',
      'pg_catalog.upper',
      'myfunc',
    ]);
  });

  it.each([
    ['select list', "select pg_read_file('/etc/passwd')"],
    ['FROM', "select * from pg_read_file('/etc/passwd')"],
    ['ROWS FROM', "select * from rows from (generate_series(1, 2), pg_read_file('/x')) as r(a, b)"],
    ['LATERAL', 'select * from t, lateral pg_read_file(t.path) f'],
    ['WHERE', "select 1 from t where pg_read_file('/x') is not null"],
    ['ORDER BY', "select 1 order by pg_read_file('/x')"],
    ['GROUP BY', "select count(*) from t group by cube (pg_read_file('/x'))"],
    ['HAVING', "select count(*) from t having max(pg_read_file('/x')) > ''"],
    ['VALUES', "values (pg_read_file('/x'))"],
    ['subquery', "select (select pg_read_file('/x'))"],
    ['CTE', "with f as (select pg_read_file('/x')) select * from f"],
    ['set operation', "select 1 union select length(pg_read_file('/x'))"],
    ['CASE', "select case when true then pg_read_file('/x') end"],
    ['aggregate FILTER', "select count(*) filter (where pg_read_file('/x') <> '') from t"],
    ['window', "select sum(a) over (order by pg_read_file('/x')) from t"],
    ['LIMIT', "select 1 limit length(pg_read_file('/x'))"],
    ['TABLESAMPLE', "select * from t tablesample system (length(pg_read_file('/x')))"],
    ['array subscript', "select (array['a'])[length(pg_read_file('/x'))]"],
    ['XMLTABLE', "select * from xmltable('/a' passing xmlparse(document pg_read_file('/x')) columns a text)"],
    ['JSON_TABLE', "select * from json_table(pg_read_file('/x')::jsonb, '$' columns (a text path '$.a'))"],
  ])('finds a function called in %s', (_where, sql) => {
    expect(one(sql).functions).toContain('pg_read_file');
  });

  it('keeps pg_catalog.pg_read_file qualified', () => {
    expect(one("select pg_catalog.pg_read_file('/x')").functions).toEqual(['pg_catalog.pg_read_file']);
  });

  it('is not confident about functions that run SQL passed as a string', () => {
    for (const sql of [
      "select query_to_xml('delete from t', true, false, '')",
      "select table_to_xml('customers', true, false, '')",
      "select * from ts_stat('select to_tsvector(ssn) from customers')",
      "select dblink_exec('drop table t')",
    ]) {
      const s = one(sql);
      expect(s.confident, sql).toBe(false);
      expect(s.uncertainties[0]).toMatch(/string/);
    }
  });

  it('never reads literal values', () => {
    const a = one("select * from t where a = 'delete from t' and b = 1");
    const b = one('select * from t where a = $1 and b = 2');
    expect({ ...a, location: undefined }).toEqual({ ...b, location: undefined });
  });
});
