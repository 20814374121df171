/**
 * Which cells of a result get rewritten, and how: the session's masks matched against each
 * column's catalog identity, and the content detectors over text-like columns. A result with
 * nothing to rewrite gets no plan, so its rows are forwarded without being decoded.
 */
import type { DecisionDetectors, DecisionMask } from '../../shared/control-plane.ts';
import { scanBytes } from '../../shared/masking/detectors.ts';
import { binaryMaskRefusal, isTextLikeType, maskCell } from '../../shared/masking/methods.ts';
import {
  type ColumnIdentity,
  type DetectorSettings,
  type MaskMethod,
  maskPlanFor,
  type ResolvedMask,
} from '../../shared/masking/model.ts';
import type { ResolvedColumn } from './catalog.ts';
import { type CellRewriter, DataRowRewriter } from './data-row.ts';
import type { ResultColumn } from './row-description.ts';

/** The audit counts of one masked column (never a value). */
export interface MaskedColumnCount {
  column: string;
  ruleId: string;
  method: MaskMethod;
  /** values rewritten (NULLs stay NULL and are not counted) */
  values: number;
  /** why the method differs from the rule's, e.g. a binary-format column masked as NULL */
  note?: string;
}

/** The audit counts of one detector (never a value). */
export interface DetectorCount {
  detector: string;
  /** the result column, or the channel (error, notice, notification, copy) */
  where: string;
  values: number;
}

export interface MaskingSettings {
  masks: readonly DecisionMask[];
  detectors: DecisionDetectors | undefined;
  key: Uint8Array;
}

export type ColumnLookup = (tableOid: number, attnum: number) => ResolvedColumn | undefined;

export const qualified = (c: ColumnIdentity): string => `${c.schema}.${c.table}.${c.column}`;

/** The mask a column gets: its own identity, what a view column shows, or what it is computed from. */
export function maskForColumn(
  masks: readonly DecisionMask[],
  resolved: ResolvedColumn,
): (ResolvedMask & { note?: string }) | undefined {
  const own = maskPlanFor(masks, resolved.identity);
  if (own) return own;
  for (const origin of resolved.origins) {
    const mask = maskPlanFor(masks, origin);
    if (mask) return mask;
  }
  for (const source of resolved.derivedFrom) {
    const mask = maskPlanFor(masks, source);
    // A computed view column cannot be masked by its source's method: it is redacted whole.
    if (mask) return { method: 'redact', ruleId: mask.ruleId, note: `computed from ${qualified(source)}` };
  }
  if (resolved.opaque && masks.length > 0)
    return { method: 'redact', ruleId: masks[0]!.ruleId, note: 'view definition unreadable' };
  return undefined;
}

export class RowPlan {
  readonly rewriter: DataRowRewriter;
  readonly maskedCounts: MaskedColumnCount[] = [];
  readonly detectorCounts = new Map<string, DetectorCount>();

  constructor(cellRewriters: Array<CellRewriter | undefined>) {
    this.rewriter = new DataRowRewriter(cellRewriters);
  }
}

/** The plan for a result, or undefined when no cell of it needs looking at. */
export function planResult(
  columns: readonly ResultColumn[],
  lookup: ColumnLookup,
  settings: MaskingSettings,
  /** a user-defined string type (citext, a domain over text): masked and scanned like text */
  isStringType: (typeOid: number) => boolean = () => false,
): RowPlan | undefined {
  const rewriters: Array<CellRewriter | undefined> = new Array(columns.length);
  let any = false;
  const counts: MaskedColumnCount[] = [];
  const detectorWork: Array<{ index: number; where: string }> = [];
  columns.forEach((column, index) => {
    const resolved = column.tableOid === 0 ? undefined : lookup(column.tableOid, column.attnum);
    const mask = resolved && maskForColumn(settings.masks, resolved);
    const textLike = isStringType(column.typeOid);
    if (mask && resolved) {
      let method = mask.method;
      let note = mask.note;
      const refusal = column.format === 1 ? binaryMaskRefusal(column.typeOid, method, textLike) : undefined;
      if (refusal !== undefined) {
        // no valid binary value of this type carries the method's output: NULL is always valid
        note = `binary format: ${refusal}; sent as NULL`;
        method = 'null';
      }
      const count: MaskedColumnCount = {
        column: qualified(resolved.identity),
        ruleId: mask.ruleId,
        method,
        values: 0,
        ...(note === undefined ? {} : { note }),
      };
      counts.push(count);
      const ctx = { typeOid: column.typeOid, key: settings.key, textLike };
      const format = column.format;
      rewriters[index] = (cell) => {
        count.values++;
        return maskCell(cell, format, method, ctx);
      };
      any = true;
      return;
    }
    const detectors = settings.detectors;
    if (detectors && detectors.enabled.length > 0 && (textLike || isTextLikeType(column.typeOid))) {
      detectorWork.push({ index, where: resolved ? qualified(resolved.identity) : column.name });
      any = true;
    }
  });
  if (!any) return undefined;
  const plan = new RowPlan(rewriters);
  plan.maskedCounts.push(...counts);
  const detectors = settings.detectors as DetectorSettings | undefined;
  for (const { index, where } of detectorWork) {
    rewriters[index] = (cell) => {
      const scan = scanBytes(cell, detectors!, settings.key);
      if (!scan) return undefined;
      for (const hit of scan.hits) countHit(plan.detectorCounts, hit.detector, where, hit.count);
      return scan.masked;
    };
  }
  return plan;
}

export function countHit(
  counts: Map<string, DetectorCount>,
  detector: string,
  where: string,
  n: number,
): void {
  const key = `${detector}\u0000${where}`;
  const existing = counts.get(key);
  if (existing) existing.values += n;
  else counts.set(key, { detector, where, values: n });
}
