/**
 * Catalog resolution without a server: the stored query tree of a view read for its columns'
 * origins, and the cache resolving tables, views, views on views, computed and whole-row view
 * columns, unknown relations, refresh after DDL and after its time to live.
 */
import { describe, expect, it } from 'vitest';
import { CatalogCache } from '../../proxy/masking/catalog.ts';
import { maskForColumn } from '../../proxy/masking/mask-plan.ts';
import { relationsInTree, targetsWithWholeRow, viewTargets } from '../../proxy/masking/node-tree.ts';

// pg_rewrite.ev_action of `create view v as select c.id, row_to_json(c) as doc, c.ssn as "a b\\(" from customers c`
// (PostgreSQL 18, shortened to the fields that matter; backslash escapes as outfuncs.c writes them)
const EV_ACTION =
  '({QUERY :commandType 1 :utilityStmt <> :cteList <> :rtable ({RANGETBLENTRY :alias {ALIAS :aliasname c :colnames <>} ' +
  ':eref {ALIAS :aliasname c :colnames ("id" "name" "ssn")} :rtekind 0 :relid 16392 :inh true :relkind r}) ' +
  ':jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList (' +
  '{TARGETENTRY :expr {VAR :varno 1 :varattno 1 :vartype 20 :varnullingrels (b) :varlevelsup 0 :location -1} ' +
  ':resno 1 :resname id :ressortgroupref 0 :resorigtbl 16392 :resorigcol 1 :resjunk false} ' +
  '{TARGETENTRY :expr {FUNCEXPR :funcid 3155 :args ({VAR :varno 1 :varattno 0 :vartype 16394 :varlevelsup 0 :location -1}) :location -1} ' +
  ':resno 2 :resname doc :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} ' +
  '{TARGETENTRY :expr {VAR :varno 1 :varattno 3 :vartype 25 :location -1} :resno 3 :resname a\\ b\\( :resorigtbl 16392 :resorigcol 3 :resjunk false}' +
  ') :sortClause <> :constvalue 4 [ 0 0 0 0 ]})';

describe('view query trees', () => {
  it('name each view column’s origin, and which columns read whole rows', () => {
    expect(viewTargets(EV_ACTION)).toEqual([
      { resno: 1, origTable: 16392, origColumn: 1, junk: false },
      { resno: 2, origTable: 0, origColumn: 0, junk: false },
      { resno: 3, origTable: 16392, origColumn: 3, junk: false },
    ]);
    expect([...targetsWithWholeRow(EV_ACTION)]).toEqual([2]);
    expect(relationsInTree(EV_ACTION)).toEqual([16392]);
  });

  it('reject what they cannot read', () => {
    expect(() => viewTargets('({QUERY :targetList (')).toThrow();
    expect(() => viewTargets('({NOTAQUERY})')).toThrow();
  });
});

type Row = Array<string | null>;

/** A fake catalog: relations (oid → schema, name, kind, columns) and view rules. */
function fakeCatalog(
  relations: Record<number, { schema: string; name: string; kind: string; columns: string[] }>,
  rules: Record<number, { action: string; depends: string }>,
) {
  const queries: string[][] = [];
  const query = async (sql: string, params: Array<string | null>): Promise<Row[]> => {
    const oids = String(params[0]).slice(1, -1).split(',').map(Number);
    queries.push(oids.map(String));
    if (sql.includes('pg_rewrite'))
      return oids.filter((o) => rules[o]).map((o) => [String(o), rules[o]!.action, rules[o]!.depends]);
    const rows: Row[] = [];
    for (const oid of oids) {
      const r = relations[oid];
      if (!r) continue;
      for (const [i, c] of r.columns.entries())
        rows.push([String(oid), r.schema, r.name, r.kind, String(i + 1), c]);
    }
    return rows;
  };
  return { query, queries };
}

const target = (resno: number, table: number, column: number, expr = '{VAR :varno 1 :varattno 1}') =>
  `{TARGETENTRY :expr ${expr} :resno ${resno} :resname x :resorigtbl ${table} :resorigcol ${column} :resjunk false}`;
const view = (targets: string[], relids: number[]) =>
  `({QUERY :rtable (${relids.map((r) => `{RANGETBLENTRY :rtekind 0 :relid ${r}}`).join(' ')}) :targetList (${targets.join(' ')})})`;

const MASKS = [{ ruleId: 'mask-ssn', columns: ['ssn'], method: 'partial' as const }];

describe('CatalogCache', () => {
  const relations = {
    100: { schema: 'public', name: 'customers', kind: 'r', columns: ['id', 'name', 'ssn'] },
    200: { schema: 'public', name: 'v1', kind: 'v', columns: ['id', 'tax_id', 'shout', 'doc'] },
    300: { schema: 'reporting', name: 'v2', kind: 'v', columns: ['tin'] },
    400: { schema: 'public', name: 'v3', kind: 'v', columns: ['n'] },
  };
  const rules = {
    200: {
      action: view(
        [
          target(1, 100, 1),
          target(2, 100, 3),
          target(3, 0, 0, '{FUNCEXPR :args ({VAR :varno 1 :varattno 3})}'),
          target(4, 0, 0, '{FUNCEXPR :args ({VAR :varno 1 :varattno 0})}'),
        ],
        [100],
      ),
      depends: '200.0,100.1,100.3',
    },
    300: { action: view([target(1, 200, 2)], [200]), depends: '200.2' },
    400: {
      action: view([target(1, 0, 0, '{FUNCEXPR :args ({VAR :varno 1 :varattno 2})}')], [100]),
      depends: '100.2',
    },
  };

  it('resolves tables, views on views, and computed and whole-row view columns', async () => {
    const { query, queries } = fakeCatalog(relations, rules);
    const cache = new CatalogCache(query);
    await cache.load([300, 400]);
    // the views' own tables and views were read as well, in as few queries as the nesting needs
    expect(queries.length).toBeLessThanOrEqual(6);
    const mask = (oid: number, attnum: number) => maskForColumn(MASKS, cache.column(oid, attnum)!);
    expect(cache.column(100, 3)?.identity).toEqual({ schema: 'public', table: 'customers', column: 'ssn' });
    expect(mask(100, 3)).toEqual({ method: 'partial', ruleId: 'mask-ssn' });
    expect(mask(100, 2)).toBeUndefined();
    // a view column that shows ssn, under another name, through a second view
    expect(mask(200, 2)).toEqual({ method: 'partial', ruleId: 'mask-ssn' });
    expect(mask(300, 1)).toEqual({ method: 'partial', ruleId: 'mask-ssn' });
    // computed from ssn, and a whole row holding it: redacted whole
    expect(mask(200, 3)?.method).toBe('redact');
    expect(mask(200, 4)?.method).toBe('redact');
    // plain columns of a view and a computed column over other columns stay as they are
    expect(mask(200, 1)).toBeUndefined();
    expect(mask(400, 1)).toBeUndefined();
  });

  it('knows a dropped relation as missing, re-reads after DDL and after its time to live', async () => {
    const { query, queries } = fakeCatalog(relations, rules);
    let now = 0;
    const cache = new CatalogCache(query, () => now, 1000);
    await cache.load([100, 999]);
    expect(cache.column(999, 1)).toBeUndefined();
    expect(cache.missing([100, 999, 0])).toEqual([]);
    now = 2000;
    expect(cache.missing([100])).toEqual([100]);
    await cache.load([100]);
    expect(cache.missing([100])).toEqual([]);
    cache.invalidate();
    expect(cache.missing([100])).toEqual([100]);
    expect(queries.length).toBe(2);
  });

  it('treats a view whose rule cannot be read as showing anything (redacted when masks apply)', async () => {
    const { query } = fakeCatalog(
      { 500: { schema: 'public', name: 'opaque', kind: 'v', columns: ['a'] } },
      {},
    );
    const cache = new CatalogCache(query);
    await cache.load([500]);
    expect(maskForColumn(MASKS, cache.column(500, 1)!)).toMatchObject({ method: 'redact' });
  });
});
