/**
 * The analysis leans on two tables derived from libpg-query's node types: which fields hold a bare
 * node of a fixed type, and which statement types exist. These tests re-derive both from
 * @pgsql/types so that upgrading libpg-query cannot silently leave a statement unclassified.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify } from '../../../shared/sql/classify.ts';
import { DDL_OBJECTS } from '../../../shared/sql/facts.ts';
import { TYPED_FIELDS } from '../../../shared/sql/node-fields.ts';

const require = createRequire(import.meta.url);
const typesDir = dirname(
  require.resolve('@pgsql/types/package.json', { paths: [dirname(require.resolve('libpg-query'))] }),
);
const typesSource = readFileSync(join(typesDir, 'types.d.ts'), 'utf8');
const enumsSource = readFileSync(join(typesDir, 'enums.d.ts'), 'utf8');

function interfaces(): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const m of typesSource.matchAll(/export interface (\w+) \{([^}]*)\}/g)) {
    const fields: Record<string, string> = {};
    for (const f of (m[2] ?? '').matchAll(/(\w+)\?: (\w+)(\[\])?;/g)) fields[f[1] as string] = f[2] as string;
    out.set(m[1] as string, fields);
  }
  return out;
}

describe('tables derived from the parser node types', () => {
  it('TYPED_FIELDS lists every field typed as a specific node', () => {
    const all = interfaces();
    const expected: Record<string, Record<string, string>> = {};
    for (const [name, fields] of all) {
      for (const [field, type] of Object.entries(fields)) {
        if (type === 'Node' || !all.has(type)) continue;
        expected[name] = { ...expected[name], [field]: type };
      }
    }
    expect(TYPED_FIELDS).toEqual(expected);
  });

  it('classifies every statement type PostgreSQL can send at the top level', () => {
    // not statements a client sends: PL/pgSQL and planner-only nodes
    const internal = new Set(['RawStmt', 'SetOperationStmt', 'ReturnStmt', 'PLAssignStmt']);
    const unclassified = [...interfaces().keys()]
      .filter((name) => name.endsWith('Stmt') && !internal.has(name))
      .filter((name) => classify(name, {}).kind === 'unknown');
    expect(unclassified).toEqual([]);
  });

  it('DDL_OBJECTS names every PostgreSQL object type', () => {
    const objectTypes = /export type ObjectType = ([^;]+);/.exec(enumsSource)?.[1] ?? '';
    const names = [...objectTypes.matchAll(/"OBJECT_(\w+)"/g)].map((m) => (m[1] as string).toLowerCase());
    expect(names.length).toBeGreaterThan(40);
    expect(names.filter((n) => !(DDL_OBJECTS as readonly string[]).includes(n))).toEqual([]);
  });
});
