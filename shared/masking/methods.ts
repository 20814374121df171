/**
 * Masking methods over one value. The masked value is always valid for the column's declared type,
 * or NULL, so RowDescription never changes and no client fails to decode a row:
 *
 * | type (OID)                         | redact  | partial                    | hash                    | fake                          |
 * |------------------------------------|---------|----------------------------|-------------------------|-------------------------------|
 * | text, varchar, bpchar, name, (ctx.textLike) | `***` | last 4 shown if ≥ 8 letters/digits, separators kept | 16 hex of HMAC-SHA256 | same shape (digit→digit, letter→letter), Luhn-valid for card numbers |
 * | json, jsonb                        | `"***"` | the text rule, as a JSON string | JSON string of the hash | JSON string of the fake     |
 * | int2, int4, int8, oid              | NULL    | last 4 digits (≥ 8 digits) else NULL | HMAC-derived integer in range | same digit count, in range |
 * | numeric                            | NULL    | last 4 integer digits (≥ 8) else NULL | HMAC-derived integer  | digits replaced, same shape |
 * | float4, float8                     | NULL    | NULL                        | HMAC-derived integer    | mantissa digits replaced      |
 * | uuid                               | NULL    | all but the last 4 hex digits zeroed | HMAC-derived uuid | HMAC-derived uuid            |
 * | bytea                              | NULL    | NULL                        | 16 HMAC bytes           | HMAC bytes of the same length |
 * | date, timestamp, timestamptz       | NULL    | January 1st of the same year | HMAC-derived date 1940–2005 | HMAC-derived date 1940–2005 |
 * | anything else                      | NULL    | NULL                        | NULL                    | NULL                          |
 *
 * `null` is NULL for every type. Hash and fake are deterministic for a key, so equal values stay
 * equal (joinable, countable) without being revealed. Dates and timestamps are read in ISO DateStyle
 * (PostgreSQL's default); another style, or infinity, masks to NULL.
 *
 * Binary format: text-like types are UTF-8 either way; the types above have their binary forms
 * handled; numeric in binary is refused for partial, hash and fake (binaryMaskRefusal) rather than
 * guessed at. Every NULL is valid in binary as well.
 */
import { PgWardenError } from '../errors.ts';
import { hmacSha256 } from './hmac.ts';
import type { MaskContext, MaskMethod } from './model.ts';

/** PostgreSQL's built-in type OIDs (pg_type.dat) that masking treats specially. */
export const TYPE_OIDS = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

type Category = 'text' | 'json' | 'jsonb' | 'int' | 'numeric' | 'float' | 'uuid' | 'bytea' | 'date' | 'other';

const CATEGORY = new Map<number, Category>([
  [TYPE_OIDS.text, 'text'],
  [TYPE_OIDS.varchar, 'text'],
  [TYPE_OIDS.bpchar, 'text'],
  [TYPE_OIDS.name, 'text'],
  [TYPE_OIDS.unknown, 'text'],
  [TYPE_OIDS.json, 'json'],
  [TYPE_OIDS.jsonb, 'jsonb'],
  [TYPE_OIDS.int2, 'int'],
  [TYPE_OIDS.int4, 'int'],
  [TYPE_OIDS.int8, 'int'],
  [TYPE_OIDS.oid, 'int'],
  [TYPE_OIDS.numeric, 'numeric'],
  [TYPE_OIDS.float4, 'float'],
  [TYPE_OIDS.float8, 'float'],
  [TYPE_OIDS.uuid, 'uuid'],
  [TYPE_OIDS.bytea, 'bytea'],
  [TYPE_OIDS.date, 'date'],
  [TYPE_OIDS.timestamp, 'date'],
  [TYPE_OIDS.timestamptz, 'date'],
]);

function categoryOf(ctx: Pick<MaskContext, 'typeOid' | 'textLike'>): Category {
  return CATEGORY.get(ctx.typeOid) ?? (ctx.textLike ? 'text' : 'other');
}

/** Text-like types whose values the content detectors scan (text, varchar, bpchar, name, json, jsonb). */
export function isTextLikeType(typeOid: number): boolean {
  const c = CATEGORY.get(typeOid);
  return c === 'text' || c === 'json' || c === 'jsonb';
}

const INT_MAX: Record<number, bigint> = {
  [TYPE_OIDS.int2]: 32_767n,
  [TYPE_OIDS.int4]: 2_147_483_647n,
  [TYPE_OIDS.int8]: 9_223_372_036_854_775_807n,
  [TYPE_OIDS.oid]: 4_294_967_295n,
};

// ── the text format ──────────────────────────────────────────────────────────────────────────────

/** Masks one value in PostgreSQL's text format; null = SQL NULL. Always valid for ctx.typeOid. */
export function maskText(value: string, method: MaskMethod, ctx: MaskContext): string | null {
  if (method === 'null') return null;
  switch (categoryOf(ctx)) {
    case 'text':
      return maskPlainText(value, method, ctx.key);
    case 'json':
    case 'jsonb':
      return JSON.stringify(maskPlainText(value, method, ctx.key));
    case 'int':
      return maskInteger(value, method, ctx);
    case 'numeric':
      return maskNumeric(value, method, ctx.key, false);
    case 'float':
      return maskNumeric(value, method, ctx.key, true);
    case 'uuid':
      return maskUuid(value, method, ctx.key);
    case 'bytea':
      return maskByteaText(value, method, ctx.key);
    case 'date':
      return maskDateText(value, method, ctx);
    case 'other':
      return null;
  }
}

const REDACTED = '***';

/** The text rule: also what detectors use for the spans they find. */
export function maskPlainText(value: string, method: Exclude<MaskMethod, 'null'>, key: Uint8Array): string {
  switch (method) {
    case 'redact':
      return REDACTED;
    case 'partial':
      return partialText(value);
    case 'hash':
      return hmacHex(key, value, 16);
    case 'fake':
      return fakeText(value, key);
  }
}

/** ASCII letters and digits (and any non-ASCII character) are masked; everything else is a separator. */
function isMaskable(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code > 127
  );
}

const PARTIAL_SHOWN = 4;
/** Fewer letters and digits than this and nothing is shown: the last 4 of a 5-digit code is most of it. */
const PARTIAL_MIN = 8;

/** `4111 1111 1111 1111` → `**** **** **** 1111`, `123-45-6789` → `***-**-6789`. */
export function partialText(value: string): string {
  let maskable = 0;
  for (let i = 0; i < value.length; i++) if (isMaskable(value.charCodeAt(i))) maskable++;
  if (maskable === 0) return REDACTED;
  const shown = maskable >= PARTIAL_MIN ? PARTIAL_SHOWN : 0;
  let out = '';
  let seen = 0;
  for (const ch of value) {
    // iterate by code point so a surrogate pair becomes one `*`
    const code = ch.charCodeAt(0);
    if (!isMaskable(code)) out += ch;
    else out += seen++ >= maskable - shown ? ch : '*';
  }
  return out;
}

/** Same shape: digits → digits, letters → letters of the same case, separators kept; Luhn-valid cards. */
export function fakeText(value: string, key: Uint8Array): string {
  const stream = keystream(key, value, value.length);
  let out = '';
  let i = 0;
  const digits: number[] = [];
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    const r = stream[i++ % stream.length] as number;
    if (code >= 48 && code <= 57) {
      const d = r % 10;
      digits.push(out.length);
      out += String(d);
    } else if (code >= 65 && code <= 90) out += String.fromCharCode(65 + (r % 26));
    else if (code >= 97 && code <= 122) out += String.fromCharCode(97 + (r % 26));
    else if (code > 127) out += String.fromCharCode(97 + (r % 26));
    else out += ch;
  }
  if (digits.length >= 13 && digits.length <= 19 && looksLikeCardNumber(value))
    return withLuhnCheck(out, digits);
  return out;
}

/** Only digits, spaces and dashes, with a valid Luhn check digit: then the fake is Luhn-valid too. */
function looksLikeCardNumber(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || c === 32 || c === 45)) return false;
  }
  return luhnValid(value);
}

export function luhnValid(value: string): boolean {
  let sum = 0;
  let n = 0;
  for (let i = value.length - 1; i >= 0; i--) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) continue;
    let d = c - 48;
    if (n++ % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return n > 0 && sum % 10 === 0;
}

/** Rewrites the last digit (at digitPositions' last entry) so that the digits pass the Luhn check. */
function withLuhnCheck(text: string, digitPositions: number[]): string {
  const last = digitPositions[digitPositions.length - 1] as number;
  let sum = 0;
  let n = 1; // the check digit itself is position 0 from the right
  for (let k = digitPositions.length - 2; k >= 0; k--) {
    let d = text.charCodeAt(digitPositions[k] as number) - 48;
    if (n++ % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  const check = (10 - (sum % 10)) % 10;
  return `${text.slice(0, last)}${check}${text.slice(last + 1)}`;
}

function maskInteger(value: string, method: MaskMethod, ctx: MaskContext): string | null {
  const max = INT_MAX[ctx.typeOid] ?? (INT_MAX[TYPE_OIDS.int8] as bigint);
  const negative = value.startsWith('-');
  const digits = negative ? value.slice(1) : value;
  if (!/^[0-9]+$/.test(digits)) return null;
  switch (method) {
    case 'redact':
    case 'null':
      return null;
    case 'partial':
      return digits.length >= PARTIAL_MIN
        ? `${negative ? '-' : ''}${BigInt(digits.slice(-PARTIAL_SHOWN))}`
        : null;
    case 'hash':
      return String(hmacBigInt(ctx.key, value) % (max + 1n));
    case 'fake': {
      const fake = fakeDigits(digits, ctx.key, value);
      const n = BigInt(fake) % (max + 1n);
      return `${negative && n > 0n ? '-' : ''}${n}`;
    }
  }
}

/** Digits replaced by keyed digits, the first one non-zero when there are several. */
function fakeDigits(digits: string, key: Uint8Array, seed: string): string {
  const stream = keystream(key, seed, digits.length);
  let out = '';
  for (let i = 0; i < digits.length; i++) {
    const r = stream[i] as number;
    out += i === 0 && digits.length > 1 ? String(1 + (r % 9)) : String(r % 10);
  }
  return out;
}

function maskNumeric(value: string, method: MaskMethod, key: Uint8Array, float: boolean): string | null {
  if (!/^-?[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?$/i.test(value) || !/[0-9]/.test(value)) return null; // NaN, Infinity
  switch (method) {
    case 'redact':
    case 'null':
      return null;
    case 'partial': {
      if (float) return null;
      const integer = value.replace(/^-/, '').split('.')[0] ?? '';
      return integer.length >= PARTIAL_MIN
        ? `${value.startsWith('-') ? '-' : ''}${BigInt(integer.slice(-PARTIAL_SHOWN))}`
        : null;
    }
    case 'hash':
      return String(hmacBigInt(key, value) % (float ? 1_000_000_000_000_000n : 1_000_000_000_000_000_000n));
    case 'fake': {
      // replace mantissa digits only; the exponent (and so the magnitude) stays
      const e = value.search(/e/i);
      const mantissa = e < 0 ? value : value.slice(0, e);
      const exponent = e < 0 ? '' : value.slice(e);
      const stream = keystream(key, value, mantissa.length);
      let out = '';
      let first = true;
      for (let i = 0; i < mantissa.length; i++) {
        const c = mantissa.charCodeAt(i);
        if (c < 48 || c > 57) {
          out += mantissa[i];
          continue;
        }
        const r = stream[i] as number;
        // a leading non-zero digit stays non-zero (no new leading zeros); with an exponent it stays
        // as it was so float4's range is never exceeded
        if (first && c !== 48) out += exponent ? mantissa[i] : String(1 + (r % 9));
        else out += String(r % 10);
        first = false;
      }
      return out + exponent;
    }
  }
}

const UUID_TEXT = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function maskUuid(value: string, method: MaskMethod, key: Uint8Array): string | null {
  if (!UUID_TEXT.test(value)) return null;
  switch (method) {
    case 'redact':
    case 'null':
      return null;
    case 'partial': {
      const hex = value.replace(/-/g, '').toLowerCase();
      return uuidText(`${'0'.repeat(28)}${hex.slice(-4)}`);
    }
    case 'hash':
    case 'fake':
      return uuidText(hmacHex(key, value.replace(/-/g, '').toLowerCase(), 32));
  }
}

function uuidText(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function maskByteaText(value: string, method: MaskMethod, key: Uint8Array): string | null {
  switch (method) {
    case 'redact':
    case 'null':
    case 'partial':
      return null;
    case 'hash':
      return `\\x${hmacHex(key, value, 32)}`;
    case 'fake': {
      // hex output (bytea_output = hex, the default): keyed bytes of the same length
      const length = /^\\x([0-9a-f]{2})*$/i.test(value) ? (value.length - 2) / 2 : 16;
      return `\\x${toHex(keystream(key, value, length))}`;
    }
  }
}

const ISO_DATE = /^(\d{4,})-(\d{2})-(\d{2})/;

function maskDateText(value: string, method: MaskMethod, ctx: MaskContext): string | null {
  const iso = ISO_DATE.exec(value);
  if (!iso || value.endsWith(' BC')) return null;
  let date: string;
  switch (method) {
    case 'redact':
    case 'null':
      return null;
    case 'partial':
      date = `${iso[1]}-01-01`;
      break;
    case 'hash':
    case 'fake':
      date = fakeDate(hmacBigInt(ctx.key, value));
      break;
  }
  if (ctx.typeOid === TYPE_OIDS.date) return date;
  return ctx.typeOid === TYPE_OIDS.timestamptz ? `${date} 00:00:00+00` : `${date} 00:00:00`;
}

/** A keyed date from 1940-01-01 to 2005-12-28 (days 1 to 28, so every month has it). */
function fakeDate(n: bigint): string {
  const year = 1940 + Number(n % 66n);
  const month = 1 + Number((n / 66n) % 12n);
  const day = 1 + Number((n / 792n) % 28n);
  return `${year}-${pad2(month)}-${pad2(day)}`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

// ── DataRow cells ────────────────────────────────────────────────────────────────────────────────

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REDACTED_BYTES = encoder.encode(REDACTED);

/**
 * Masks one DataRow cell from its raw bytes; format 0 = text (UTF-8), 1 = binary. null = SQL NULL
 * (write length -1). For binary, call binaryMaskRefusal(typeOid, method) once per column first:
 * a refused combination throws here.
 */
export function maskCell(
  cell: Uint8Array,
  format: number,
  method: MaskMethod,
  ctx: MaskContext,
): Uint8Array | null {
  if (method === 'null') return null;
  const category = categoryOf(ctx);
  if (format === 0) {
    // the default pack's fast paths: no decoding
    if (category === 'text') {
      if (method === 'redact') return REDACTED_BYTES;
      if (method === 'partial')
        return partialAsciiBytes(cell) ?? encoder.encode(partialText(decoder.decode(cell)));
      // the HMAC of the UTF-8 bytes is the HMAC of the text: no decoding either
      if (method === 'hash') return hexBytes(hmacSha256(ctx.key, cell), 8);
      if (method === 'fake') {
        const fake = fakeAsciiBytes(cell, ctx.key);
        if (fake) return fake;
      }
    }
    const masked = maskText(decoder.decode(cell), method, ctx);
    return masked === null ? null : encoder.encode(masked);
  }
  return maskBinary(cell, method, ctx);
}

/** partialText over ASCII bytes without decoding; undefined when the cell is not ASCII. */
function partialAsciiBytes(cell: Uint8Array): Uint8Array | undefined {
  let maskable = 0;
  for (let i = 0; i < cell.length; i++) {
    const b = cell[i] as number;
    if (b > 127) return undefined;
    if (isMaskable(b)) maskable++;
  }
  if (maskable === 0) return REDACTED_BYTES;
  const shown = maskable >= PARTIAL_MIN ? PARTIAL_SHOWN : 0;
  const out = new Uint8Array(cell.length);
  let seen = 0;
  for (let i = 0; i < cell.length; i++) {
    const b = cell[i] as number;
    out[i] = isMaskable(b) && seen++ < maskable - shown ? 42 : b;
  }
  return out;
}

const HEX_DIGITS = new TextEncoder().encode('0123456789abcdef');

/** The first `count` bytes as lower-case hex ASCII. */
function hexBytes(bytes: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count * 2);
  for (let i = 0; i < count; i++) {
    const b = bytes[i] as number;
    out[i * 2] = HEX_DIGITS[b >>> 4] as number;
    out[i * 2 + 1] = HEX_DIGITS[b & 15] as number;
  }
  return out;
}

/**
 * fakeText over ASCII bytes without decoding; undefined when the cell is not ASCII or may be a card
 * number (13–19 digits: the Luhn fix-up is left to fakeText).
 */
function fakeAsciiBytes(cell: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  let digits = 0;
  for (let i = 0; i < cell.length; i++) {
    const b = cell[i] as number;
    if (b > 127) return undefined;
    if (b >= 48 && b <= 57) digits++;
  }
  if (digits >= 13 && digits <= 19) return undefined;
  const stream = keystream(key, cell, cell.length);
  const out = new Uint8Array(cell.length);
  for (let i = 0; i < cell.length; i++) {
    const b = cell[i] as number;
    const r = stream[i % stream.length] as number;
    if (b >= 48 && b <= 57) out[i] = 48 + (r % 10);
    else if (b >= 65 && b <= 90) out[i] = 65 + (r % 26);
    else if (b >= 97 && b <= 122) out[i] = 97 + (r % 26);
    else out[i] = b;
  }
  return out;
}

/** undefined when `method` can be applied to binary values of the type; else why not (for the client). */
export function binaryMaskRefusal(typeOid: number, method: MaskMethod, textLike = false): string | undefined {
  if (method === 'null') return undefined;
  const category = categoryOf({ typeOid, textLike });
  if (category === 'numeric' && method !== 'redact')
    return `pgwarden cannot apply the "${method}" mask to a numeric column in binary format; request text format for it`;
  return undefined;
}

function maskBinary(cell: Uint8Array, method: MaskMethod, ctx: MaskContext): Uint8Array | null {
  const refusal = binaryMaskRefusal(ctx.typeOid, method, ctx.textLike);
  if (refusal) throw new PgWardenError('INTERNAL', refusal);
  const category = categoryOf(ctx);
  switch (category) {
    case 'text':
    case 'json':
      return maskCell(cell, 0, method, ctx);
    case 'jsonb': {
      // version byte 1, then the JSON text
      const masked = maskText(decoder.decode(cell.subarray(1)), method, ctx);
      return masked === null ? null : concatVersion(encoder.encode(masked));
    }
    case 'int': {
      const text = readBinaryInt(cell, ctx.typeOid);
      const masked = text === undefined ? null : maskText(text, method, ctx);
      return masked === null ? null : writeBinaryInt(BigInt(masked), ctx.typeOid);
    }
    case 'float': {
      const view = new DataView(cell.buffer, cell.byteOffset, cell.byteLength);
      const value = cell.length === 4 ? view.getFloat32(0) : view.getFloat64(0);
      if (!Number.isFinite(value)) return null;
      const masked = maskText(String(value), method, ctx);
      if (masked === null) return null;
      const out = new Uint8Array(cell.length);
      const outView = new DataView(out.buffer);
      if (cell.length === 4) outView.setFloat32(0, Number(masked));
      else outView.setFloat64(0, Number(masked));
      return out;
    }
    case 'uuid': {
      if (cell.length !== 16) return null;
      const masked = maskText(uuidText(toHex(cell)), method, ctx);
      return masked === null ? null : fromHex(masked.replace(/-/g, ''));
    }
    case 'bytea': {
      if (method === 'hash') return keystream(ctx.key, cell, 16);
      if (method === 'fake') return keystream(ctx.key, cell, cell.length);
      return null;
    }
    case 'date':
      return maskBinaryDate(cell, method, ctx);
    case 'numeric': // redact (binaryMaskRefusal refused the others)
    case 'other':
      return null;
  }
}

function concatVersion(json: Uint8Array): Uint8Array {
  const out = new Uint8Array(json.length + 1);
  out[0] = 1;
  out.set(json, 1);
  return out;
}

function readBinaryInt(cell: Uint8Array, typeOid: number): string | undefined {
  const view = new DataView(cell.buffer, cell.byteOffset, cell.byteLength);
  if (cell.length === 2) return String(view.getInt16(0));
  if (cell.length === 4) return String(typeOid === TYPE_OIDS.oid ? view.getUint32(0) : view.getInt32(0));
  if (cell.length === 8) return String(view.getBigInt64(0));
  return undefined;
}

function writeBinaryInt(value: bigint, typeOid: number): Uint8Array {
  const size = typeOid === TYPE_OIDS.int2 ? 2 : typeOid === TYPE_OIDS.int8 ? 8 : 4;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  if (size === 2) view.setInt16(0, Number(value));
  else if (size === 8) view.setBigInt64(0, value);
  else if (typeOid === TYPE_OIDS.oid) view.setUint32(0, Number(value));
  else view.setInt32(0, Number(value));
  return out;
}

const DAY_MS = 86_400_000;
const EPOCH_2000_MS = Date.UTC(2000, 0, 1);

/** date: int32 days since 2000-01-01; timestamp(tz): int64 microseconds since then. */
function maskBinaryDate(cell: Uint8Array, method: MaskMethod, ctx: MaskContext): Uint8Array | null {
  const view = new DataView(cell.buffer, cell.byteOffset, cell.byteLength);
  const isDate = ctx.typeOid === TYPE_OIDS.date;
  if (cell.length !== (isDate ? 4 : 8)) return null;
  let ms: number;
  if (isDate) {
    const days = view.getInt32(0);
    if (days === 0x7fffffff || days === -0x80000000) return null; // ±infinity
    ms = EPOCH_2000_MS + days * DAY_MS;
  } else {
    const micros = view.getBigInt64(0);
    if (micros === 0x7fffffffffffffffn || micros === -0x8000000000000000n) return null;
    ms = EPOCH_2000_MS + Number(micros / 1000n);
  }
  const iso = new Date(ms).toISOString().slice(0, 10);
  if (iso.startsWith('-') || iso.startsWith('+')) return null;
  const masked = maskDateText(iso, method, { ...ctx, typeOid: TYPE_OIDS.date });
  if (masked === null) return null;
  const outMs = Date.parse(`${masked}T00:00:00Z`);
  const out = new Uint8Array(isDate ? 4 : 8);
  const outView = new DataView(out.buffer);
  if (isDate) outView.setInt32(0, Math.round((outMs - EPOCH_2000_MS) / DAY_MS));
  else outView.setBigInt64(0, BigInt(outMs - EPOCH_2000_MS) * 1000n);
  return out;
}

// ── keyed material ───────────────────────────────────────────────────────────────────────────────

function hmac(key: Uint8Array, input: string | Uint8Array, counter = 0): Uint8Array {
  if (counter === 0) return hmacSha256(key, input);
  // further blocks of the keystream: a counter prefix NUL-delimited so it cannot meet a value
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const prefix = new TextEncoder().encode(`\u0000${counter}\u0000`);
  const joined = new Uint8Array(prefix.length + bytes.length);
  joined.set(prefix);
  joined.set(bytes, prefix.length);
  return hmacSha256(key, joined);
}

/** At least `length` keyed bytes for the input (HMAC-SHA256 in counter mode). */
export function keystream(key: Uint8Array, input: string | Uint8Array, length: number): Uint8Array {
  const first = hmac(key, input);
  if (length <= first.length) return first.subarray(0, length);
  const out = new Uint8Array(length);
  out.set(first);
  for (let offset = first.length, counter = 1; offset < length; offset += 32, counter++)
    out.set(hmac(key, input, counter).subarray(0, Math.min(32, length - offset)), offset);
  return out;
}

export function hmacHex(key: Uint8Array, input: string | Uint8Array, hexChars: number): string {
  return toHex(hmac(key, input)).slice(0, hexChars);
}

function hmacBigInt(key: Uint8Array, input: string): bigint {
  const digest = hmac(key, input);
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0);
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
