/**
 * Result column identities from the catalog: RowDescription names a column by table OID and
 * attribute number; this resolves them to schema.table.column through pg_class, pg_namespace and
 * pg_attribute over a side connection, one cache per upstream database. View columns are followed
 * to what they show: a plain reference resolves to its base column (through views on views); a
 * computed column of a view is treated as derived from every column the view reads
 * (pg_depend), since the catalog does not say which of them the expression uses.
 */
import type { ColumnIdentity } from '../../shared/masking/model.ts';
import { relationsInTree, targetsWithWholeRow, viewTargets } from './node-tree.ts';
import type { Row } from './side-connection.ts';

export interface ResolvedColumn {
  /** the column as its relation (table or view) names it */
  identity: ColumnIdentity;
  /** for a view column that shows another column as it is: that column, and what it shows in turn */
  origins: ColumnIdentity[];
  /** for a computed view column: every column its view reads */
  derivedFrom: ColumnIdentity[];
  /** a view column whose definition could not be read: what it shows is unknown */
  opaque?: true;
}

export type CatalogQuery = (sql: string, params: Array<string | null>) => Promise<Row[]>;

const RELATIONS_SQL = `SELECT c.oid::pg_catalog.text, n.nspname, c.relname, c.relkind::pg_catalog.text,
       a.attnum::pg_catalog.text, a.attname
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.oid = ANY ($1::pg_catalog.oid[])`;

const VIEW_RULES_SQL = `SELECT r.ev_class::pg_catalog.text, r.ev_action::pg_catalog.text,
       (SELECT pg_catalog.string_agg(d.refobjid::pg_catalog.text || '.' || d.refobjsubid::pg_catalog.text, ',')
          FROM pg_catalog.pg_depend d
         WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)
  FROM pg_catalog.pg_rewrite r
 WHERE r.ev_class = ANY ($1::pg_catalog.oid[]) AND r.rulename = '_RETURN'`;

interface RawRelation {
  schema: string;
  name: string;
  kind: string;
  attnames: Map<number, string>;
  view?: {
    targets: Map<number, { table: number; column: number; wholeRow: boolean }> | undefined;
    depends: Array<[number, number]>;
  };
}

interface CachedRelation {
  loadedAt: number;
  /** undefined: no such relation (dropped) */
  columns: Map<number, ResolvedColumn> | undefined;
}

const TYPES_SQL = `SELECT t.oid::pg_catalog.text, t.typcategory::pg_catalog.text
  FROM pg_catalog.pg_type t WHERE t.oid = ANY ($1::pg_catalog.oid[])`;

/** Types with OIDs below this are built in (FirstNormalObjectId): masking knows them by OID. */
const FIRST_USER_OID = 16384;

const MAX_VIEW_DEPTH = 16;

export class CatalogCache {
  private readonly relations = new Map<number, CachedRelation>();
  /** pg_type.typcategory of user-defined types (citext, domains over text, …) */
  private readonly typeCategories = new Map<number, string>();
  private chain: Promise<void> = Promise.resolve();
  private generations = 0;

  constructor(
    private readonly query: CatalogQuery,
    private readonly now: () => number = Date.now,
    /** other sessions may rename columns: entries are re-read after this long */
    private readonly ttlMs = 30_000,
  ) {}

  /** Changes whenever the cache is invalidated. */
  get generation(): number {
    return this.generations;
  }

  /** The column, or undefined when its relation is not cached (or no longer exists). */
  column(tableOid: number, attnum: number): ResolvedColumn | undefined {
    return this.relations.get(tableOid)?.columns?.get(attnum);
  }

  /** The category of a user-defined type ('S' = string), once loaded. */
  typeCategory(typeOid: number): string | undefined {
    return this.typeCategories.get(typeOid);
  }

  /** User-defined type OIDs among `typeOids` whose category is not known yet. */
  missingTypes(typeOids: Iterable<number>): number[] {
    const out: number[] = [];
    for (const oid of typeOids)
      if (oid >= FIRST_USER_OID && !this.typeCategories.has(oid) && !out.includes(oid)) out.push(oid);
    return out;
  }

  /** OIDs among `oids` that must be loaded before their columns can be named. */
  missing(oids: Iterable<number>): number[] {
    const out: number[] = [];
    const now = this.now();
    for (const oid of oids) {
      if (oid === 0 || out.includes(oid)) continue;
      const cached = this.relations.get(oid);
      if (!cached || now - cached.loadedAt > this.ttlMs) out.push(oid);
    }
    return out;
  }

  /**
   * Until when what the cache knows of these relations may be used without reading them again
   * (the earliest expiry among them); compare with clock().
   */
  freshUntil(oids: Iterable<number>): number {
    let until = Number.POSITIVE_INFINITY;
    for (const oid of oids) {
      if (oid === 0) continue;
      const cached = this.relations.get(oid);
      if (!cached) return 0;
      until = Math.min(until, cached.loadedAt + this.ttlMs);
    }
    return until;
  }

  clock(): number {
    return this.now();
  }

  /** Forgets everything (after DDL). */
  invalidate(): void {
    this.relations.clear();
    this.generations++;
  }

  /** Loads `oids` (and whatever their views read) and type categories; concurrent loads are serialized. */
  load(oids: number[], typeOids: number[] = []): Promise<void> {
    const next = this.chain.then(async () => {
      await this.loadTypes(this.missingTypes(typeOids));
      await this.loadNow(this.missing(oids));
    });
    this.chain = next.catch(() => {});
    return next;
  }

  private async loadTypes(typeOids: number[]): Promise<void> {
    if (typeOids.length === 0) return;
    for (const oid of typeOids) this.typeCategories.set(oid, '');
    for (const [oid, category] of await this.query(TYPES_SQL, [`{${typeOids.join(',')}}`]))
      this.typeCategories.set(Number(oid), category ?? '');
  }

  private async loadNow(oids: number[]): Promise<void> {
    if (oids.length === 0) return;
    const generation = this.generations;
    const raw = new Map<number, RawRelation | undefined>();
    let pending = oids;
    for (let depth = 0; pending.length > 0; depth++) {
      if (depth > MAX_VIEW_DEPTH) throw new Error('views nest too deeply to resolve their columns');
      const batch = await this.fetch(pending);
      for (const [oid, relation] of batch) raw.set(oid, relation);
      const next = new Set<number>();
      for (const relation of batch.values()) {
        if (!relation?.view) continue;
        for (const [oid] of relation.view.depends) if (!raw.has(oid)) next.add(oid);
        for (const t of relation.view.targets?.values() ?? [])
          if (t.table !== 0 && !raw.has(t.table)) next.add(t.table);
      }
      pending = [...next];
    }
    if (generation !== this.generations) return; // invalidated meanwhile: the next lookup re-reads
    const loadedAt = this.now();
    const resolving = new Map<number, Map<number, ResolvedColumn> | undefined>();
    const resolve = (oid: number, stack: Set<number>): Map<number, ResolvedColumn> | undefined => {
      if (resolving.has(oid)) return resolving.get(oid);
      if (!raw.has(oid)) return this.relations.get(oid)?.columns;
      const relation = raw.get(oid);
      if (!relation) {
        resolving.set(oid, undefined);
        return undefined;
      }
      if (stack.has(oid)) throw new Error('views refer to each other in a cycle');
      stack.add(oid);
      const columns = new Map<number, ResolvedColumn>();
      const view = relation.view;
      // every column the view reads, with what those columns show in turn
      let reads: ColumnIdentity[] | undefined;
      const readsOf = (wholeRow: boolean): ColumnIdentity[] => {
        if (!view) return [];
        if (!wholeRow && reads) return reads;
        const out: ColumnIdentity[] = [];
        for (const [refOid, refCol] of view.depends) {
          const refColumns = resolve(refOid, stack);
          if (!refColumns) continue;
          // column 0 is the whole relation: only a whole-row reference reads all of it
          const picked = refCol === 0 ? (wholeRow ? [...refColumns.values()] : []) : [refColumns.get(refCol)];
          for (const c of picked) if (c) out.push(c.identity, ...c.origins, ...c.derivedFrom);
        }
        if (!wholeRow) reads = out;
        return out;
      };
      for (const [attnum, name] of relation.attnames) {
        const identity = { schema: relation.schema, table: relation.name, column: name };
        if (!view) {
          columns.set(attnum, { identity, origins: [], derivedFrom: [] });
          continue;
        }
        const target = view.targets?.get(attnum);
        if (target && target.table !== 0) {
          const base = resolve(target.table, stack)?.get(target.column);
          if (base) {
            columns.set(attnum, {
              identity,
              origins: [base.identity, ...base.origins],
              derivedFrom: base.derivedFrom,
            });
            continue;
          }
        }
        if (view.depends.length === 0 && !view.targets) {
          columns.set(attnum, { identity, origins: [], derivedFrom: [], opaque: true });
          continue;
        }
        // computed (or unreadable): derived from what the view reads, all of it when unsure
        const wholeRow = !view.targets || !target || target.wholeRow;
        columns.set(attnum, { identity, origins: [], derivedFrom: readsOf(wholeRow) });
      }
      stack.delete(oid);
      resolving.set(oid, columns);
      return columns;
    };
    for (const oid of raw.keys()) {
      const columns = resolve(oid, new Set());
      this.relations.set(oid, { loadedAt, columns });
    }
  }

  private async fetch(oids: number[]): Promise<Map<number, RawRelation | undefined>> {
    const out = new Map<number, RawRelation | undefined>(oids.map((oid) => [oid, undefined]));
    const list = `{${oids.join(',')}}`;
    for (const [oid, schema, name, kind, attnum, attname] of await this.query(RELATIONS_SQL, [list])) {
      const key = Number(oid);
      let relation = out.get(key);
      if (!relation) {
        relation = { schema: schema!, name: name!, kind: kind!, attnames: new Map() };
        out.set(key, relation);
      }
      if (attnum !== null && attnum !== undefined) relation.attnames.set(Number(attnum), attname!);
    }
    const views = [...out].filter(([, r]) => r && (r.kind === 'v' || r.kind === 'm')).map(([oid]) => oid);
    if (views.length > 0) {
      for (const [evClass, evAction, depends] of await this.query(VIEW_RULES_SQL, [`{${views.join(',')}}`])) {
        const relation = out.get(Number(evClass))!;
        const self = Number(evClass);
        relation.view = {
          targets: readTargets(evAction ?? ''),
          depends: [...readDepends(depends, self), ...readRelations(evAction ?? '', self)],
        };
      }
      // a view without a readable rule: every column derived from nothing known → opaque
      for (const oid of views) {
        const relation = out.get(oid)!;
        if (!relation.view) relation.view = { targets: undefined, depends: [] };
      }
    }
    return out;
  }
}

function readTargets(
  evAction: string,
): Map<number, { table: number; column: number; wholeRow: boolean }> | undefined {
  try {
    const wholeRow = targetsWithWholeRow(evAction);
    const map = new Map<number, { table: number; column: number; wholeRow: boolean }>();
    for (const t of viewTargets(evAction)) {
      if (!t.junk)
        map.set(t.resno, { table: t.origTable, column: t.origColumn, wholeRow: wholeRow.has(t.resno) });
    }
    return map;
  } catch {
    return undefined;
  }
}

/** The relations the view's query reads, as whole-relation dependencies ([oid, 0]). */
function readRelations(evAction: string, self: number): Array<[number, number]> {
  try {
    return relationsInTree(evAction)
      .filter((oid) => oid !== self)
      .map((oid) => [oid, 0]);
  } catch {
    return [];
  }
}

function readDepends(text: string | null | undefined, self: number): Array<[number, number]> {
  if (!text) return [];
  const out: Array<[number, number]> = [];
  for (const item of text.split(',')) {
    const [oid, sub] = item.split('.').map(Number) as [number, number];
    if (oid !== self) out.push([oid, sub]);
  }
  return out;
}
