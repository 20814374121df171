/**
 * The masking core's vocabulary, shared by the SQL side (which uses of a masked column can be masked
 * at all, shared/masking/sensitive-use.ts) and the wire side (which result columns to rewrite, and
 * how). Pure: no I/O; the HMAC key is passed in by the caller.
 *
 * How the wire side uses it (proxy/):
 * - RowDescription → for each column with a table OID, resolve {schema, table, column} through the
 *   catalog and call `maskPlanFor(decision.masks, identity)`; a column with a plan is rewritten in every
 *   DataRow with `maskCell` (text or binary format; check `binaryMaskRefusal` once per column first).
 * - every text-like cell, notice and error text can also go through `scanBytes` / `scanText`
 *   (decision.detectors) as the second net.
 */
import type { DecisionMask } from '../control-plane.ts';
import type { MaskMethod } from '../policy/model.ts';
import { type ColumnPattern, columnMatches, compileColumn } from '../policy/names.ts';

export type { MaskMethod } from '../policy/model.ts';
export { MASK_METHODS } from '../policy/model.ts';

/** A result column's real identity, as the catalog names it (pg_namespace, pg_class, pg_attribute). */
export interface ColumnIdentity {
  schema: string;
  table: string;
  column: string;
}

/** What to do with one result column. */
export interface ResolvedMask {
  method: MaskMethod;
  /** the mask rule that asked for it, for the audit record */
  ruleId: string;
}

/** What the methods need besides the value. */
export interface MaskContext {
  /** the column's declared type (RowDescription's type OID): the masked value stays valid for it */
  typeOid: number;
  /** HMAC key for `hash` and `fake`: the same key gives the same output, so masked values stay joinable */
  key: Uint8Array;
  /**
   * the catalog says the type is a string type (pg_type.typcategory 'S': citext, …) although its OID
   * is not a built-in text type: mask it like text instead of making it NULL
   */
  textLike?: boolean;
}

// ── content detectors ────────────────────────────────────────────────────────────────────────────

export const DETECTOR_NAMES = [
  /** payment card numbers: 13–19 digits, Luhn-valid, spaces or dashes allowed between digits */
  'card',
  /** US social security numbers ddd-dd-dddd (area 000, 666 and 9xx excluded) */
  'ssn',
  'email',
  /** E.164 (+ and 8–15 digits) and common US formats ((555) 123-4567, 555-123-4567, 555.123.4567) */
  'phone',
  /** IBANs, mod-97 checked */
  'iban',
  /** AWS access key ids (AKIA / ASIA + 16) */
  'aws_access_key',
  /** JWTs: three base64url parts whose header decodes to JSON with "alg" */
  'jwt',
  /** PEM private keys (-----BEGIN … PRIVATE KEY-----) */
  'private_key',
] as const;
export type DetectorName = (typeof DETECTOR_NAMES)[number];

/**
 * The detectors a policy turns on when it does not say (see shared/policy/model.ts `detectors`):
 * strong signals only. Emails and phone numbers are ordinary application data (the demo tables hold
 * emails), so masking them everywhere by content would hide most results; turn them on per policy.
 */
export const DEFAULT_DETECTORS: readonly DetectorName[] = [
  'card',
  'ssn',
  'iban',
  'aws_access_key',
  'jwt',
  'private_key',
];

/** How detected values are masked when the policy does not say. */
export const DEFAULT_DETECTOR_METHOD: MaskMethod = 'partial';

/** Detector settings as carried on a Decision (shared/control-plane.ts `Decision.detectors`). */
export interface DetectorSettings {
  enabled: readonly DetectorName[];
  method: MaskMethod;
}

/** One kind of finding in one value (never the clear value). */
export interface DetectorHit {
  detector: DetectorName;
  /** how many matches of that detector the value held */
  count: number;
}

export interface DetectorScan<T> {
  /** the value with every match masked; null when the method is `null` */
  masked: T | null;
  hits: DetectorHit[];
}

// ── mask plans ───────────────────────────────────────────────────────────────────────────────────

interface CompiledMask {
  ruleId: string;
  method: MaskMethod;
  patterns: ColumnPattern[];
}

const compiledMasks = new WeakMap<readonly DecisionMask[], CompiledMask[]>();

function compileMasks(masks: readonly DecisionMask[]): CompiledMask[] {
  let compiled = compiledMasks.get(masks);
  if (!compiled) {
    compiled = masks.map((m) => ({
      ruleId: m.ruleId,
      method: m.method,
      // an invalid pattern cannot come out of a validated policy; dropping it would unmask, so it
      // becomes a pattern that matches every column instead (fail closed)
      patterns: m.columns.map((text) => compileColumn(text) ?? (compileColumn('*') as ColumnPattern)),
    }));
    compiledMasks.set(masks, compiled);
  }
  return compiled;
}

/**
 * The mask for a result column, or undefined when none applies. Patterns are the policy's column
 * names (`column`, `table.column`, `schema.table.column`, `*` wildcards, case-insensitive); the first
 * mask (in policy order) with a matching pattern wins. Compiled once per masks array: keep the array
 * (the Decision's) rather than rebuilding it per row.
 */
export function maskPlanFor(
  masks: readonly DecisionMask[] | undefined,
  column: ColumnIdentity,
): ResolvedMask | undefined {
  if (!masks || masks.length === 0) return undefined;
  const fact = { name: column.column, relation: { schema: column.schema, name: column.table } };
  for (const mask of compileMasks(masks)) {
    // 'surely': the identity is exact (schema known), so a qualified pattern must really match
    if (mask.patterns.some((p) => columnMatches(p, fact, 'surely')))
      return { method: mask.method, ruleId: mask.ruleId };
  }
  return undefined;
}
