/**
 * The parameter values of a held extended-protocol statement, as the approval carries them: shown to
 * the reviewer (Slack, CLI, API) so they approve exactly what will run, and bound by a hash of the
 * exact bytes so the approval releases that execution and no other.
 *
 * What the reviewer sees:
 * - text-format values as sent (invalid UTF-8 as `\x` hex); binary-format values decoded for the
 *   common types the client declared in its Parse (integers, floats, bool, uuid, text, json), else
 *   as `\x` hex; long values cut at MAX_PARAM_CHARS, at most MAX_SHOWN_PARAMS values;
 * - a value a mask rule may cover is not shown: the parameter may land in or be compared with a
 *   masked column (masking/param-columns.ts), or the text cannot be parsed while masks apply;
 * - in every value shown, what the content detectors find is masked as in results.
 */
import { createHash } from 'node:crypto';
import type { DecisionDetectors, DecisionMask } from '../control-plane.ts';
import { scanText } from '../masking/detectors.ts';
import { TYPE_OIDS } from '../masking/methods.ts';
import { type ParamColumn, paramColumns } from '../masking/param-columns.ts';
import { type ColumnPattern, columnMatches, compileColumn } from '../policy/names.ts';

/** One parameter as a reviewer sees it. */
export interface ApprovalParam {
  /** the value (see the module comment); null = SQL NULL; '***' when masked */
  value: string | null;
  format: 'text' | 'binary';
  /** the type the client declared for it in its Parse, when it declared one */
  type?: string;
  /** not shown because of this mask rule or content detector */
  masked?: string;
  /** the value is longer than what is shown */
  truncated?: true;
}

/** The parameters of one execution, as the approval request carries them. */
export interface ApprovalParams {
  /** how many parameters the execution has (values may show fewer: MAX_SHOWN_PARAMS) */
  count: number;
  values: ApprovalParam[];
  /** paramsHash() of the exact parameters */
  hash: string;
}

/** A parameter as the Bind message carries it. */
export interface RawParam {
  /** the type OID the Parse declared; 0 = left to the server */
  type: number;
  /** 0 = text, 1 = binary */
  format: number;
  /** null = SQL NULL */
  bytes: Uint8Array | null;
}

export const MAX_SHOWN_PARAMS = 100;
export const MAX_PARAM_CHARS = 200;
export const MASKED_PARAM = '***';

/**
 * SHA-256 (hex) over every parameter's declared type, format and exact bytes, length-prefixed: two
 * executions share it only when the server receives the same values read the same way.
 */
export function paramsHash(params: readonly RawParam[]): string {
  const hash = createHash('sha256').update('pgwarden-params-1\0');
  const head = Buffer.alloc(14);
  head.writeInt32BE(params.length, 0);
  hash.update(head.subarray(0, 4));
  for (const p of params) {
    head.writeUInt32BE(p.type >>> 0, 0);
    head.writeInt16BE(p.format, 4);
    head.writeInt32BE(p.bytes === null ? -1 : p.bytes.length, 6);
    hash.update(head.subarray(0, 10));
    if (p.bytes !== null) hash.update(p.bytes);
  }
  return hash.digest('hex');
}

/** The binding of a statement without parameters (the simple protocol, or none declared). */
export const NO_PARAMS_HASH = paramsHash([]);

export interface ParamMasking {
  masks?: readonly DecisionMask[];
  detectors?: DecisionDetectors;
  /** the session's masking key (hash and fake methods of the detectors) */
  key: Uint8Array;
}

/** What the approval request carries for `params` of the statement `text`. */
export function approvalParams(
  text: string,
  params: readonly RawParam[],
  masking: ParamMasking,
): ApprovalParams {
  const maskedBy = maskingRules(text, masking.masks);
  const values = params.slice(0, MAX_SHOWN_PARAMS).map((raw, i) => {
    const shown = renderParam(raw);
    const rule = maskedBy(i + 1);
    if (rule !== undefined && shown.value !== null) {
      const { truncated: _length, ...hidden } = shown; // not even its length is told
      return { ...hidden, value: MASKED_PARAM, masked: rule };
    }
    return detect(shown, raw, masking);
  });
  return { count: params.length, values, hash: paramsHash(params) };
}

/**
 * Why a reviewer could not be shown the values an approval would release, or undefined when every
 * value is shown whole (or hidden by a mask rule or detector, which is the policy's choice). A
 * value cut at MAX_PARAM_CHARS, or one past MAX_SHOWN_PARAMS, is shown nowhere (Slack, the CLI or
 * the API), while the approval's hash binds all of it: its tail could say anything.
 */
export function unshownParams(params: ApprovalParams): string | undefined {
  if (params.count > params.values.length)
    return `the statement binds ${params.count} values and a reviewer can be shown at most ${MAX_SHOWN_PARAMS}`;
  const cut = params.values.findIndex((p) => p.truncated && p.masked === undefined);
  if (cut >= 0)
    return `value $${cut + 1} is longer than the ${MAX_PARAM_CHARS} characters a reviewer can be shown`;
  return undefined;
}

/** Which mask rule hides parameter n (1-based), if any. */
function maskingRules(
  text: string,
  masks: readonly DecisionMask[] | undefined,
): (n: number) => string | undefined {
  if (!masks || masks.length === 0) return () => undefined;
  const columns = paramColumns(text);
  const compiled = masks.map((m) => ({
    ruleId: m.ruleId,
    // a pattern that does not compile cannot come from a validated policy: it then covers everything
    patterns: m.columns.map((c) => compileColumn(c) ?? (compileColumn('*') as ColumnPattern)),
  }));
  return (n) => {
    // unparseable text: where a value goes is unknown, so every value may be a masked one
    if (columns === undefined) return compiled[0]?.ruleId;
    const near: ParamColumn[] = columns.get(n) ?? [];
    for (const mask of compiled)
      for (const pattern of mask.patterns)
        if (near.some((column) => columnMatches(pattern, column, 'may'))) return mask.ruleId;
    return undefined;
  };
}

/** The content detectors over a value shown as text (hex and numbers cannot hold what they find). */
function detect(shown: ApprovalParam, raw: RawParam, masking: ParamMasking): ApprovalParam {
  const detectors = masking.detectors;
  if (!detectors || shown.value === null || !textual(raw)) return shown;
  const scan = scanText(shown.value, detectors, masking.key);
  if (!scan) return shown;
  return {
    ...shown,
    value: (scan.masked ?? MASKED_PARAM).slice(0, MAX_PARAM_CHARS),
    masked: [...new Set(scan.hits.map((h) => h.detector))].join(', '),
  };
}

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE_OIDS).map(([name, oid]) => [oid, name]));

function textual(raw: RawParam): boolean {
  return raw.format === 0 || TEXT_TYPES.has(raw.type);
}

const TEXT_TYPES = new Set<number>([
  TYPE_OIDS.text,
  TYPE_OIDS.varchar,
  TYPE_OIDS.bpchar,
  TYPE_OIDS.name,
  TYPE_OIDS.json,
  TYPE_OIDS.jsonb,
  TYPE_OIDS.unknown,
]);

/** A value as the reviewer reads it (before masking). */
export function renderParam(raw: RawParam): ApprovalParam {
  const format = raw.format === 1 ? 'binary' : 'text';
  const typeName = raw.type === 0 ? undefined : (TYPE_NAMES.get(raw.type) ?? `oid ${raw.type}`);
  const base = { format, ...(typeName && { type: typeName }) } as const;
  if (raw.bytes === null) return { ...base, value: null };
  const full = raw.format === 1 ? binaryText(raw.type, raw.bytes) : (decodeUtf8(raw.bytes) ?? hex(raw.bytes));
  const cut = full.length > MAX_PARAM_CHARS || raw.bytes.length > PREFIX_BYTES;
  return cut ? { ...base, value: full.slice(0, MAX_PARAM_CHARS), truncated: true } : { ...base, value: full };
}

/** Only what can be shown is decoded: a value may be as large as a message. */
const PREFIX_BYTES = MAX_PARAM_CHARS * 4;

function decodeUtf8(bytes: Uint8Array): string | undefined {
  const prefix = bytes.subarray(0, PREFIX_BYTES);
  try {
    // a fresh decoder: streaming keeps a character cut at the prefix's end from counting as invalid
    return new TextDecoder('utf-8', { fatal: true }).decode(prefix, { stream: prefix.length < bytes.length });
  } catch {
    return undefined;
  }
}

function hex(bytes: Uint8Array): string {
  // never more than needed for MAX_PARAM_CHARS characters
  return `\\x${Buffer.from(bytes.subarray(0, MAX_PARAM_CHARS)).toString('hex')}`;
}

/** PostgreSQL's binary send format of the common types; anything else (or a bad length) as hex. */
function binaryText(type: number, bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case TYPE_OIDS.bool:
      return b.length === 1 ? (b[0] === 0 ? 'false' : 'true') : hex(b);
    case TYPE_OIDS.int2:
      return b.length === 2 ? String(b.readInt16BE(0)) : hex(b);
    case TYPE_OIDS.int4:
      return b.length === 4 ? String(b.readInt32BE(0)) : hex(b);
    case TYPE_OIDS.oid:
      return b.length === 4 ? String(b.readUInt32BE(0)) : hex(b);
    case TYPE_OIDS.int8:
      return b.length === 8 ? String(b.readBigInt64BE(0)) : hex(b);
    case TYPE_OIDS.float4:
      return b.length === 4 ? String(b.readFloatBE(0)) : hex(b);
    case TYPE_OIDS.float8:
      return b.length === 8 ? String(b.readDoubleBE(0)) : hex(b);
    case TYPE_OIDS.uuid: {
      if (b.length !== 16) return hex(b);
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    case TYPE_OIDS.jsonb:
      return b.length > 0 && b[0] === 1 ? (decodeUtf8(b.subarray(1)) ?? hex(b)) : hex(b);
    default:
      return TEXT_TYPES.has(type) ? (decodeUtf8(b) ?? hex(b)) : hex(b);
  }
}

/**
 * The parameters as lines for people (Slack, the CLI): `$1 = 'text'`, `$2 = 42 (binary int4)`,
 * `$3 = *** (masked: mask-ssn)`, `$4 = NULL`; text values quoted as SQL literals.
 */
export function paramLines(params: { count: number; values: readonly ApprovalParam[] }): string[] {
  const lines = params.values.map((p, i) => {
    const notes: string[] = [];
    if (p.format === 'binary') notes.push(p.type ? `binary ${p.type}` : 'binary');
    else if (p.type) notes.push(p.type);
    if (p.masked) notes.push(`masked: ${p.masked}`);
    if (p.truncated) notes.push('truncated');
    const shown =
      p.value === null ? 'NULL' : p.masked && p.value === MASKED_PARAM ? MASKED_PARAM : literal(p);
    return `$${i + 1} = ${shown}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
  });
  const hidden = params.count - params.values.length;
  if (hidden > 0) lines.push(`… and ${hidden} more not shown`);
  return lines;
}

function literal(p: ApprovalParam): string {
  const value = p.value ?? '';
  // hex of bytes and numbers of a binary value read as they are; text is quoted as SQL would be
  if (p.format === 'binary' && !TEXT_TYPE_NAMES.has(p.type ?? '')) return value;
  return `'${value.replaceAll("'", "''")}${p.truncated ? '…' : ''}'`;
}

const TEXT_TYPE_NAMES = new Set(['text', 'varchar', 'bpchar', 'name', 'json', 'jsonb', 'unknown']);
