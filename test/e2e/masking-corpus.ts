/**
 * The adversarial corpus: queries that try to get a clear ssn or card number out of the demo
 * `customers` table. Each must come back masked or be refused (42501, naming the column). `expect`
 * pins the outcome where the design fixes it; every bypass ever found stays here.
 */
export interface CorpusQuery {
  sql: string;
  expect: 'masked' | 'refused' | 'either';
  /** the outcome must hold for the extended protocol too (some texts only make sense as simple) */
  simpleOnly?: boolean;
}

export const MASKING_CORPUS: CorpusQuery[] = [
  // plain references, aliases and star: masked by column identity
  { sql: 'select ssn from customers where id = 1', expect: 'masked' },
  { sql: 'select ssn as x from customers where id = 1', expect: 'masked' },
  { sql: 'select "ssn" as "Tax Id", credit_card as cc from public.customers where id < 4', expect: 'masked' },
  { sql: 'select * from customers where id = 1', expect: 'masked' },
  { sql: 'select c.* from customers c where c.id = 2', expect: 'masked' },
  { sql: 'table customers limit 3', expect: 'masked' },
  { sql: 'select (ssn) from customers limit 2', expect: 'masked' },
  { sql: 'select customers.credit_card from customers limit 2', expect: 'masked' },
  { sql: 'select s2 from customers as t(i, n, e, p, s2) limit 2', expect: 'masked' },
  { sql: 'select ssn from only customers order by id limit 2', expect: 'masked' },
  { sql: 'select ssn, credit_card from customers order by ssn limit 3', expect: 'masked' },
  { sql: 'select distinct ssn from customers limit 3', expect: 'either' },
  {
    sql: 'select c.ssn, o.amount from customers c join orders o on o.customer_id = c.id limit 3',
    expect: 'masked',
  },
  { sql: 'select * from customers c1 join customers c2 using (id) limit 1', expect: 'masked' },
  { sql: 'select ssn from customers where ssn like $$1%$$ limit 1', expect: 'either' },
  { sql: 'select id from customers where credit_card = $$4111111111111111$$', expect: 'either' },
  { sql: 'select ssn from customers where id in (select customer_id from orders) limit 2', expect: 'masked' },
  { sql: 'select ssn from customers tablesample system (50) limit 1', expect: 'masked' },
  { sql: 'select ssn from customers order by id offset 3 limit 1', expect: 'masked' },
  // subqueries, CTEs, lateral, set operations
  { sql: 'select x from (select ssn as x from customers) s limit 3', expect: 'either' },
  { sql: 'with t as (select ssn from customers) select ssn from t limit 2', expect: 'either' },
  { sql: 'with t(a) as (select credit_card from customers) select a from t limit 2', expect: 'either' },
  { sql: 'select x.s from customers c, lateral (select c.ssn as s) x limit 1', expect: 'either' },
  { sql: 'select (select ssn from customers where id = 1) as s', expect: 'either' },
  { sql: 'select ssn from customers union all select ssn from customers limit 2', expect: 'either' },
  { sql: 'select credit_card from customers union select $$x$$ limit 2', expect: 'either' },
  { sql: 'values ((select ssn from customers limit 1))', expect: 'either' },
  // expressions, casts, functions: refused
  { sql: 'select upper(ssn) from customers limit 1', expect: 'refused' },
  { sql: "select ssn || '' from customers limit 1", expect: 'refused' },
  {
    sql: 'select substr(credit_card, 1, 4) || substr(credit_card, 5) from customers limit 1',
    expect: 'refused',
  },
  { sql: 'select ssn::text from customers limit 1', expect: 'refused' },
  { sql: 'select cast(credit_card as varchar(30)) from customers limit 1', expect: 'refused' },
  { sql: 'select credit_card::numeric from customers limit 1', expect: 'refused' },
  { sql: "select format('%s', ssn) from customers limit 1", expect: 'refused' },
  { sql: 'select concat(ssn) from customers limit 1', expect: 'refused' },
  { sql: "select coalesce(ssn, '') from customers limit 1", expect: 'refused' },
  { sql: 'select case when true then credit_card end from customers limit 1', expect: 'refused' },
  { sql: 'select ssn collate "C" from customers limit 1', expect: 'either' },
  { sql: 'select md5(ssn) from customers limit 1', expect: 'refused' },
  { sql: 'select reverse(credit_card) from customers limit 1', expect: 'refused' },
  { sql: 'select translate(ssn, $$-$$, $$$$) from customers limit 1', expect: 'refused' },
  { sql: 'select xmlelement(name x, ssn) from customers limit 1', expect: 'refused' },
  // aggregates, arrays, JSON, whole rows
  { sql: "select string_agg(ssn, ',') from customers", expect: 'refused' },
  { sql: 'select array_agg(credit_card) from customers', expect: 'refused' },
  { sql: 'select min(ssn), max(credit_card) from customers', expect: 'refused' },
  { sql: 'select array[ssn] from customers limit 1', expect: 'refused' },
  { sql: "select json_build_object('s', ssn) from customers limit 1", expect: 'refused' },
  { sql: 'select row_to_json(c) from customers c limit 1', expect: 'refused' },
  { sql: 'select to_jsonb(c.*) from customers c limit 1', expect: 'refused' },
  { sql: 'select c from customers c limit 1', expect: 'refused' },
  { sql: 'select json_agg(c) from customers c', expect: 'refused' },
  { sql: 'select (c).ssn from (select c from customers c) t limit 1', expect: 'refused' },
  { sql: 'select ssn, count(*) from customers group by ssn limit 2', expect: 'either' },
  // views (created by the test): a view column is what it shows
  { sql: 'select * from corpus_ids where id = 1', expect: 'masked' },
  { sql: 'select tax_id from corpus_ids limit 2', expect: 'masked' },
  { sql: 'select tin from corpus_ids_2 limit 2', expect: 'masked' },
  { sql: 'select doc from corpus_rows limit 1', expect: 'masked' },
  { sql: 'select shout from corpus_ids limit 1', expect: 'masked' },
  { sql: 'select * from corpus_mv limit 2', expect: 'masked' },
  // COPY
  { sql: 'copy customers to stdout', expect: 'refused', simpleOnly: true },
  { sql: 'copy (select ssn from customers) to stdout', expect: 'refused', simpleOnly: true },
  { sql: 'copy customers (id, name) to stdout', expect: 'either', simpleOnly: true },
];

/** Run by the test as a superuser before the corpus: the views the corpus reads. */
export function corpusViewsSql(grantee: string): string {
  return `
    create view corpus_ids as select id, ssn as tax_id, upper(name) || ssn as shout, credit_card from customers;
    create view corpus_ids_2 as select tax_id as tin from corpus_ids;
    create view corpus_rows as select c.id, row_to_json(c) as doc from customers c;
    create materialized view corpus_mv as select id, credit_card as pan_like from customers;
    grant select on corpus_ids, corpus_ids_2, corpus_rows, corpus_mv to ${grantee};
  `;
}
