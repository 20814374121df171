import { describe, expect, it } from 'vitest';
import {
  type ColumnPattern,
  columnMatches,
  compileColumn,
  compileQualified,
  functionMatches,
  type QualifiedPattern,
  relationMatches,
} from '../../../shared/policy/names.ts';

function q(text: string): QualifiedPattern {
  const p = compileQualified(text);
  if (!p) throw new Error(`bad pattern ${text}`);
  return p;
}

function col(text: string): ColumnPattern {
  const p = compileColumn(text);
  if (!p) throw new Error(`bad pattern ${text}`);
  return p;
}

describe('relation patterns', () => {
  it('match names case-insensitively', () => {
    expect(relationMatches(q('Customers'), { name: 'customers' }, 'surely')).toBe(true);
    expect(relationMatches(q('customers'), { name: 'CUSTOMERS' }, 'surely')).toBe(true);
    expect(relationMatches(q('customers'), { name: 'customer' }, 'may')).toBe(false);
  });

  it('match any schema when the pattern has none', () => {
    expect(relationMatches(q('customers'), { schema: 'billing', name: 'customers' }, 'surely')).toBe(true);
  });

  it('match a qualified name only in its schema', () => {
    expect(relationMatches(q('public.customers'), { schema: 'public', name: 'customers' }, 'surely')).toBe(
      true,
    );
    expect(relationMatches(q('public.customers'), { schema: 'billing', name: 'customers' }, 'may')).toBe(
      false,
    );
  });

  it('let an unqualified name in a statement MAY-match any schema, never SURELY', () => {
    expect(relationMatches(q('public.customers'), { name: 'customers' }, 'may')).toBe(true);
    expect(relationMatches(q('secret.customers'), { name: 'customers' }, 'may')).toBe(true);
    expect(relationMatches(q('public.customers'), { name: 'customers' }, 'surely')).toBe(false);
  });

  it('take * as a wildcard within a part, and nothing else as special', () => {
    expect(relationMatches(q('audit_*'), { name: 'audit_2024' }, 'surely')).toBe(true);
    expect(relationMatches(q('audit_*'), { name: 'xaudit_2024' }, 'surely')).toBe(false);
    expect(relationMatches(q('*.secrets'), { schema: 'hr', name: 'secrets' }, 'surely')).toBe(true);
    expect(relationMatches(q('a+b'), { name: 'aab' }, 'may')).toBe(false);
    expect(relationMatches(q('a+b'), { name: 'a+b' }, 'may')).toBe(true);
  });

  it('reject malformed patterns', () => {
    for (const bad of ['', 'a.', '.a', 'a.b.c', 'a b']) expect(compileQualified(bad), bad).toBeUndefined();
    for (const bad of ['', 'a..b', 'a.b.c.d']) expect(compileColumn(bad), bad).toBeUndefined();
  });
});

describe('function patterns', () => {
  it('match a call with or without a schema', () => {
    expect(functionMatches(q('pg_read_file'), 'pg_read_file', 'surely')).toBe(true);
    expect(functionMatches(q('pg_read_file'), 'pg_catalog.pg_read_file', 'surely')).toBe(true);
    expect(functionMatches(q('pg_catalog.pg_read_file'), 'pg_read_file', 'may')).toBe(true);
    expect(functionMatches(q('pg_catalog.pg_read_file'), 'public.pg_read_file', 'may')).toBe(false);
    expect(functionMatches(q('dblink*'), 'dblink_exec', 'may')).toBe(true);
    expect(
      functionMatches(q('pg_create_*_replication_slot'), 'pg_create_logical_replication_slot', 'may'),
    ).toBe(true);
  });
});

describe('column patterns', () => {
  it('match by name, any table, when unqualified', () => {
    expect(columnMatches(col('ssn'), { name: 'ssn', relation: { name: 'customers' } }, 'surely')).toBe(true);
    expect(columnMatches(col('SSN'), { name: 'ssn', opaque: true }, 'surely')).toBe(true);
    expect(columnMatches(col('ssn'), { name: 'name' }, 'may')).toBe(false);
  });

  it('take * (a star or whole-row reference) as possibly any column, surely none', () => {
    expect(columnMatches(col('ssn'), { name: '*', relation: { name: 'customers' } }, 'may')).toBe(true);
    expect(columnMatches(col('ssn'), { name: '*', relation: { name: 'customers' } }, 'surely')).toBe(false);
    expect(columnMatches(col('customers.*'), { name: '*', relation: { name: 'customers' } }, 'surely')).toBe(
      true,
    );
  });

  it('match a table-qualified pattern against the pinned table, the candidates or an opaque source', () => {
    const pattern = col('customers.ssn');
    expect(columnMatches(pattern, { name: 'ssn', relation: { name: 'customers' } }, 'surely')).toBe(true);
    expect(columnMatches(pattern, { name: 'ssn', relation: { name: 'staff' } }, 'may')).toBe(false);
    expect(
      columnMatches(pattern, { name: 'ssn', candidates: [{ name: 'staff' }, { name: 'customers' }] }, 'may'),
    ).toBe(true);
    expect(
      columnMatches(
        pattern,
        { name: 'ssn', candidates: [{ name: 'staff' }, { name: 'customers' }] },
        'surely',
      ),
    ).toBe(false);
    expect(columnMatches(pattern, { name: 'ssn', opaque: true }, 'may')).toBe(true);
    expect(columnMatches(pattern, { name: 'ssn', opaque: true }, 'surely')).toBe(false);
  });

  it('match a schema-qualified column pattern', () => {
    const pattern = col('public.customers.ssn');
    expect(
      columnMatches(pattern, { name: 'ssn', relation: { schema: 'public', name: 'customers' } }, 'surely'),
    ).toBe(true);
    expect(
      columnMatches(pattern, { name: 'ssn', relation: { schema: 'hr', name: 'customers' } }, 'may'),
    ).toBe(false);
    expect(columnMatches(pattern, { name: 'ssn', relation: { name: 'customers' } }, 'may')).toBe(true);
  });
});
