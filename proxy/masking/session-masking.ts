/**
 * A session's masking state, for the relay: which masks and detectors apply (every mask any
 * decision of the session carried, since a later statement such as FETCH or EXECUTE can return
 * columns its own text does not name), what Describe said about prepared statements and portals,
 * the result formats each Bind asked for, and the plan for each result.
 */
import type { Decision, DecisionDetectors, DecisionMask } from '../../shared/control-plane.ts';
import { parseBindResultFormats } from './bind-formats.ts';
import type { CatalogCache } from './catalog.ts';
import { type MaskingSettings, planResult, type RowPlan } from './mask-plan.ts';
import { type ResultColumn, withResultFormats } from './row-description.ts';

/** One Bind of a portal: the statement it runs and the result formats it asked for. */
export interface BoundPortal {
  statement: object | undefined;
  formats: number[];
  /** from a Describe of this portal (formats included) */
  columns?: ResultColumn[];
  /** a Describe of this portal is on its way */
  describing?: boolean;
  /** false when the portal was bound before masking began, so its Bind formats were not read */
  formatsKnown?: boolean;
}

function sameFormats(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const DDL_TAG = /^(CREATE|ALTER|DROP|COMMENT|SECURITY LABEL|GRANT|REVOKE|IMPORT FOREIGN SCHEMA)\b/;

export class SessionMasking {
  /** true once any decision of the session carried masks or detectors */
  active = false;
  private settings: MaskingSettings;
  private readonly described = new WeakMap<object, ResultColumn[]>();
  readonly portals = new Map<string, BoundPortal>();
  /** prepared statements whose results needed no plan (see knownPlainExecute) */
  private readonly plainStatements = new WeakMap<
    object,
    {
      columns: ResultColumn[];
      formats: number[];
      settings: MaskingSettings;
      generation: number;
      /** the catalog entries it was planned with are re-read after this (CatalogCache's TTL) */
      freshUntil: number;
    }
  >();
  /** the last RowDescription whose result needed no plan, and under which settings and catalog */
  private plain:
    | { body: Buffer; settings: MaskingSettings; generation: number; freshUntil: number }
    | undefined;

  constructor(
    readonly catalog: CatalogCache,
    key: Uint8Array,
  ) {
    this.settings = { masks: [], detectors: undefined, key };
  }

  /** Takes in a decision's masks and detectors; true when they added anything. */
  observe(decision: Decision): boolean {
    const masks = decision.masks;
    const detectors = decision.detectors;
    let changed = false;
    let merged: DecisionMask[] | undefined;
    if (masks && masks.length > 0) {
      for (const mask of masks) {
        if (this.settings.masks.some((m) => m.ruleId === mask.ruleId)) continue;
        merged ??= [...this.settings.masks];
        merged.push(mask);
      }
    }
    let mergedDetectors: DecisionDetectors | undefined;
    if (detectors && detectors.enabled.length > 0) {
      const current = this.settings.detectors;
      const extra = detectors.enabled.filter((d) => !current?.enabled.includes(d));
      if (!current || extra.length > 0)
        mergedDetectors = {
          enabled: [...(current?.enabled ?? []), ...extra],
          method: current?.method ?? detectors.method,
        };
    }
    if (merged || mergedDetectors) {
      // a new settings object (and masks array) so compiled patterns are cached per version
      this.settings = {
        masks: merged ?? this.settings.masks,
        detectors: mergedDetectors ?? this.settings.detectors,
        key: this.settings.key,
      };
      changed = true;
    }
    if (changed) this.active = true;
    return changed;
  }

  get detectors(): DecisionDetectors | undefined {
    return this.settings.detectors;
  }

  get key(): Uint8Array {
    return this.settings.key;
  }

  bind(portal: string, statement: object | undefined, body: Buffer): BoundPortal {
    const bound: BoundPortal = { statement, formats: parseBindResultFormats(body) };
    this.portals.set(portal, bound);
    return bound;
  }

  describedStatement(statement: object, columns: ResultColumn[]): void {
    this.described.set(statement, columns);
  }

  /** The columns an Execute of `portal` returns, with their formats; undefined when not described. */
  columnsOf(portal: BoundPortal): ResultColumn[] | undefined {
    if (portal.columns) return portal.columns;
    const columns = portal.statement && this.described.get(portal.statement);
    return columns && withResultFormats(columns, portal.formats);
  }

  /**
   * Relations whose columns, and user-defined types whose category, must be read from the catalog
   * before `columns` can be planned; undefined when nothing is missing.
   */
  missing(columns: readonly ResultColumn[]): { relations: number[]; types: number[] } | undefined {
    const relations =
      this.settings.masks.length === 0 ? [] : this.catalog.missing(columns.map((c) => c.tableOid));
    const types = this.catalog.missingTypes(columns.map((c) => c.typeOid));
    return relations.length === 0 && types.length === 0 ? undefined : { relations, types };
  }

  plan(columns: readonly ResultColumn[]): RowPlan | undefined {
    return planResult(
      columns,
      (oid, attnum) => this.catalog.column(oid, attnum),
      this.settings,
      (typeOid) => this.catalog.typeCategory(typeOid) === 'S',
    );
  }

  /**
   * Whether a RowDescription is the same as the last one that needed no plan, with nothing changed
   * since: a session repeating a statement then skips reading it again.
   */
  knownPlain(body: Buffer): boolean {
    const plain = this.plain;
    return (
      plain !== undefined &&
      plain.settings === this.settings &&
      plain.generation === this.catalog.generation &&
      this.catalog.clock() < plain.freshUntil &&
      plain.body.equals(body)
    );
  }

  /** `body` must be the caller's own copy (not a view into a read); `columns` what it describes. */
  rememberPlain(body: Buffer, columns: readonly ResultColumn[]): void {
    this.plain = {
      body,
      settings: this.settings,
      generation: this.catalog.generation,
      freshUntil: this.catalog.freshUntil(columns.map((c) => c.tableOid)),
    };
  }

  /**
   * Whether an Execute of `portal` needs no plan because its prepared statement's result needed
   * none before, with the same description, result formats, settings and catalog: a session that
   * runs one prepared statement over and over then plans it once (pgbench -M prepared, ORMs).
   */
  knownPlainExecute(portal: BoundPortal): boolean {
    const statement = portal.statement;
    if (portal.columns || !statement) return false;
    const plain = this.plainStatements.get(statement);
    return (
      plain !== undefined &&
      plain.settings === this.settings &&
      plain.generation === this.catalog.generation &&
      this.catalog.clock() < plain.freshUntil &&
      plain.columns === this.described.get(statement) &&
      sameFormats(plain.formats, portal.formats)
    );
  }

  /** An Execute of `portal` was planned and needed no plan. */
  rememberPlainExecute(portal: BoundPortal): void {
    const statement = portal.statement;
    const columns = statement && this.described.get(statement);
    if (portal.columns || !statement || !columns) return;
    this.plainStatements.set(statement, {
      columns,
      formats: portal.formats,
      settings: this.settings,
      generation: this.catalog.generation,
      freshUntil: this.catalog.freshUntil(columns.map((c) => c.tableOid)),
    });
  }

  /** After a command: DDL may have renamed or replaced what the cache knows. */
  afterCommand(tag: string): void {
    if (DDL_TAG.test(tag)) this.catalog.invalidate();
  }
}
