/**
 * The SQL side's promise, checked against a real PostgreSQL: every corpus statement the default pack
 * allows returns clear masked values only in result columns whose RowDescription names their real
 * column (table OID + attribute number) — the column the wire side then masks by identity. And the
 * refused ones are refused for a reason: run unfiltered, they would return a clear value without one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalPostgres, startLocalPostgres } from '../../../scripts/local/postgres.ts';
import { StatementDecider } from '../../../shared/decide.ts';
import { maskPlanFor } from '../../../shared/masking/model.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { developer } from '../policy/sessions.ts';
import { MASKED, MASKING_CORPUS } from './corpus.ts';

const SSN = '123-45-6789';
const CARD = '4111 1111 1111 1111';

const SCHEMA = `
  create schema other;
  create table customers (id int primary key, name text, ssn text, credit_card text, pan text, email text);
  create table other.customers (like customers);
  create table orders (id int, customer_id int);
  create table accounts (id int, ssn text);
  create table cards (id int, card_number text);
  create table blocked (ssn text);
  create table notes (id int primary key, body text);
  create table old_customers (ssn text);
  create view v_customers as select id, ssn as tax_id from customers;
  insert into customers values (1, 'Ann', '${SSN}', '${CARD}', '${CARD}', 'ann@example.com');
  insert into orders values (1, 1);
  insert into accounts values (1, '${SSN}');
  insert into cards values (1, '${CARD}');
  insert into blocked values ('${SSN}');
  insert into notes values (1, 'n');
`;

let postgres: LocalPostgres;
let client: pg.Client;
let dir: string;
const identities = new Map<string, { schema: string; table: string; column: string }>();

beforeAll(async () => {
  await loadSqlParser();
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-masking-'));
  postgres = await startLocalPostgres({ dataDir: dir });
  client = new pg.Client({
    host: postgres.host,
    port: postgres.port,
    user: postgres.superuser.user,
    password: postgres.superuser.password,
    database: 'postgres',
  });
  await client.connect();
  await client.query(SCHEMA);
  const { rows } = await client.query<{
    oid: number;
    attnum: number;
    schema: string;
    table: string;
    column: string;
  }>(
    `select c.oid::int, a.attnum::int, n.nspname as schema, c.relname as table, a.attname as column
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in ('public', 'other') and a.attnum > 0`,
  );
  for (const r of rows) identities.set(`${r.oid}/${r.attnum}`, r);
}, 60_000);

afterAll(async () => {
  await client?.end();
  await postgres?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const decider = new StatementDecider();
const decide = (text: string) =>
  decider.decide({ session: developer, statement: { text, protocol: 'simple' } });

/** Runs a statement in a rolled-back transaction; its rows and column identities. */
async function run(text: string): Promise<pg.QueryResult | undefined> {
  await client.query('begin');
  try {
    const params = text.includes('$1') ? [text.includes('json_populate') ? '{}' : SSN] : undefined;
    return await client.query(text, params);
  } catch {
    return undefined; // not runnable as is (PREPARE with a parameter, a missing function): nothing to check
  } finally {
    await client.query('rollback');
  }
}

/** Result cells holding a clear masked value, with whether the wire side could mask them. */
function clearCells(result: pg.QueryResult, masks: Parameters<typeof maskPlanFor>[0]) {
  const out: Array<{ column: string; maskable: boolean }> = [];
  for (const row of result.rows as Array<Record<string, unknown>>) {
    for (const field of result.fields) {
      const value = JSON.stringify(row[field.name] ?? null);
      if (!value.includes(SSN) && !value.includes(CARD)) continue;
      const identity = identities.get(`${field.tableID}/${field.columnID}`);
      out.push({
        column: field.name,
        maskable: identity !== undefined && maskPlanFor(masks, identity) !== undefined,
      });
    }
  }
  return out;
}

describe('allowed corpus statements return clear values only in columns masked by identity', () => {
  const allowed = Object.values(MASKING_CORPUS)
    .flat()
    .filter(([, expected]) => expected === MASKED)
    .map(([sql]) => sql);

  let withClearValues = 0;

  it.each(allowed)('%s', async (sql) => {
    const decision = decide(sql);
    expect(decision.action).toBe('allow');
    const result = await run(sql);
    if (!result?.fields) return;
    const cells = clearCells(result, decision.masks);
    if (cells.length > 0) withClearValues++;
    for (const cell of cells) expect(cell, sql).toEqual({ column: cell.column, maskable: true });
  });
  it('ran enough of them against real data to mean something', () => {
    expect(withClearValues).toBeGreaterThanOrEqual(15);
  });
});

describe('refused corpus statements would leak a clear value without identity', () => {
  it.each([
    'select upper(ssn) from customers',
    "select ssn || '' from customers",
    'select ssn::varchar from customers',
    'select c from customers c',
    'select row_to_json(c) from customers c',
    "select string_agg(ssn, ',') from customers",
    'select ssn from customers union select name from customers',
    'select (select ssn from customers limit 1)',
    'select x from (select ssn as x from customers union select null) u',
    'select array_agg(credit_card) from customers',
  ])('%s', async (sql) => {
    expect(decide(sql).action).toBe('deny');
    const result = (await run(sql)) as pg.QueryResult;
    const cells = clearCells(result, decide('select 1').masks);
    expect(cells.length).toBeGreaterThan(0);
    expect(cells.every((c) => !c.maskable)).toBe(true);
  });
});
