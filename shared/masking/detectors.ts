/**
 * Content detectors: the second net over every text value of every result (and notice and error
 * texts). They find card numbers, SSNs, emails, phone numbers, IBANs, AWS access keys, JWTs and PEM
 * private keys inside any text, mask each match in place and count the hits (never the values).
 *
 * Speed: nearly every value holds none of these, so a single loop over the bytes first looks for what
 * each detector needs (a run of ≥ 9 digits, '@', 'AKIA'/'ASIA', 'eyJ', '-----', two capitals and two
 * digits) and returns at once when nothing enabled can match. Only candidates are decoded and checked
 * properly (Luhn, SSN area rules, mod-97, JWT header JSON).
 */
import { maskPlainText, partialText } from './methods.ts';
import type { DetectorHit, DetectorName, DetectorScan, DetectorSettings } from './model.ts';

const DIGITS = 1; // card, ssn, phone
const AT = 2; // email
const AWS = 4;
const JWT = 8;
const PEM = 16;
const IBAN = 32;

const FAMILY: Record<DetectorName, number> = {
  card: DIGITS,
  ssn: DIGITS,
  phone: DIGITS,
  email: AT,
  aws_access_key: AWS,
  jwt: JWT,
  private_key: PEM,
  iban: IBAN,
};

interface Compiled {
  families: number;
  enabled: Set<DetectorName>;
}

const compiledSettings = new WeakMap<DetectorSettings, Compiled>();

function compile(settings: DetectorSettings): Compiled {
  let c = compiledSettings.get(settings);
  if (!c) {
    let families = 0;
    for (const name of settings.enabled) families |= FAMILY[name] ?? 0;
    c = { families, enabled: new Set(settings.enabled) };
    compiledSettings.set(settings, c);
  }
  return c;
}

/** Digit-run separators: space - . ( ) + / */
function isRunSeparator(c: number): boolean {
  return c === 32 || c === 45 || c === 46 || c === 40 || c === 41 || c === 43 || c === 47;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isUpper = (c: number) => c >= 65 && c <= 90;

/** Which detector families may match, from the raw UTF-8 bytes (ASCII is all they look for). */
function candidatesInBytes(b: Uint8Array, wanted: number): number {
  let found = 0;
  let runDigits = 0;
  const n = b.length;
  for (let i = 0; i < n; i++) {
    const c = b[i] as number;
    if (isDigit(c)) {
      if (++runDigits >= 9) found |= DIGITS;
      continue;
    }
    if (!isRunSeparator(c)) runDigits = 0;
    if (c === 64) found |= AT;
    else if (
      c === 65 &&
      i + 3 < n &&
      (b[i + 1] === 75 || b[i + 1] === 83) &&
      b[i + 2] === 73 &&
      b[i + 3] === 65
    )
      found |= AWS;
    else if (c === 101 && b[i + 1] === 121 && b[i + 2] === 74) found |= JWT;
    else if (c === 45 && b[i + 1] === 45 && b[i + 2] === 45 && b[i + 3] === 45 && b[i + 4] === 45)
      found |= PEM;
    else if (isUpper(c) && isUpper(b[i + 1] ?? 0) && isDigit(b[i + 2] ?? 0) && isDigit(b[i + 3] ?? 0))
      found |= IBAN;
  }
  return found & wanted;
}

function candidatesInText(s: string, wanted: number): number {
  let found = 0;
  let runDigits = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) {
      if (++runDigits >= 9) found |= DIGITS;
      continue;
    }
    if (!isRunSeparator(c)) runDigits = 0;
    if (c === 64) found |= AT;
    else if (c === 65 && s.startsWith('KIA', i + 1)) found |= AWS;
    else if (c === 65 && s.startsWith('SIA', i + 1)) found |= AWS;
    else if (c === 101 && s.startsWith('yJ', i + 1)) found |= JWT;
    else if (c === 45 && s.startsWith('----', i + 1)) found |= PEM;
    else if (
      isUpper(c) &&
      isUpper(s.charCodeAt(i + 1)) &&
      isDigit(s.charCodeAt(i + 2)) &&
      isDigit(s.charCodeAt(i + 3))
    )
      found |= IBAN;
  }
  return found & wanted;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** scanText over a UTF-8 cell; decodes only when the pre-check finds a candidate. */
export function scanBytes(
  cell: Uint8Array,
  settings: DetectorSettings,
  key: Uint8Array,
  options: ScanOptions = {},
): DetectorScan<Uint8Array> | undefined {
  const c = compile(settings);
  const families = candidatesInBytes(cell, c.families);
  if (families === 0) return undefined;
  const scan = scanCandidates(decoder.decode(cell), c, families, settings, key, options.json === true);
  if (!scan) return undefined;
  return { masked: scan.masked === null ? null : encoder.encode(scan.masked), hits: scan.hits };
}

/** undefined = no hit (the common case, found by a cheap pre-check). */
export function scanText(
  value: string,
  settings: DetectorSettings,
  key: Uint8Array,
  options: ScanOptions = {},
): DetectorScan<string> | undefined {
  const c = compile(settings);
  const families = candidatesInText(value, c.families);
  if (families === 0) return undefined;
  return scanCandidates(value, c, families, settings, key, options.json === true);
}

export interface ScanOptions {
  /**
   * the value is JSON text (a json or jsonb column; strip jsonb's binary version byte first): the
   * masked value stays valid JSON — a finding outside a string (a bare number) becomes a string, and
   * a result that would not parse becomes "***"
   */
  json?: boolean;
}

// ── the real checks ──────────────────────────────────────────────────────────────────────────────

interface Span {
  start: number;
  end: number;
  detector: DetectorName;
}

/** Detectors whose `partial` shows the last four characters; the rest are redacted whole. */
const PARTIAL_SHOWS_TAIL = new Set<DetectorName>(['card', 'ssn', 'phone', 'iban']);

function scanCandidates(
  value: string,
  c: Compiled,
  families: number,
  settings: DetectorSettings,
  key: Uint8Array,
  json: boolean,
): DetectorScan<string> | undefined {
  const spans: Span[] = [];
  const on = (name: DetectorName) => c.enabled.has(name);
  // strongest and longest first: a JWT or key block may contain anything
  if (families & PEM && on('private_key')) findPrivateKeys(value, spans);
  if (families & JWT && on('jwt')) findJwts(value, spans);
  if (families & AWS && on('aws_access_key')) findAwsKeys(value, spans);
  if (families & AT && on('email')) findEmails(value, spans);
  if (families & IBAN && on('iban')) findIbans(value, spans);
  if (families & DIGITS) findNumbers(value, spans, on('card'), on('ssn'), on('phone'));
  const kept = withoutOverlaps(spans);
  if (kept.length === 0) return undefined;
  const counts = new Map<DetectorName, number>();
  for (const s of kept) counts.set(s.detector, (counts.get(s.detector) ?? 0) + 1);
  const hits: DetectorHit[] = [...counts].map(([detector, count]) => ({ detector, count }));
  if (settings.method === 'null') return { masked: null, hits };
  const method = settings.method;
  let out = '';
  let at = 0;
  const strings = json ? new JsonStrings(value) : undefined;
  for (const s of kept) {
    const text = value.slice(s.start, s.end);
    const masked =
      method === 'partial'
        ? PARTIAL_SHOWS_TAIL.has(s.detector)
          ? partialText(text)
          : '***'
        : maskPlainText(text, method, key);
    out += value.slice(at, s.start) + (strings && !strings.inside(s.start) ? JSON.stringify(masked) : masked);
    at = s.end;
  }
  out += value.slice(at);
  if (json && !parsesAsJson(out)) out = '"***"';
  return { masked: out, hits };
}

/** Whether a position of JSON text is inside a string literal (positions asked in increasing order). */
class JsonStrings {
  private at = 0;
  private inString = false;
  constructor(private readonly text: string) {}

  inside(position: number): boolean {
    for (; this.at < position; this.at++) {
      const c = this.text.charCodeAt(this.at);
      if (this.inString && c === 92)
        this.at++; // a backslash escapes the next character
      else if (c === 34) this.inString = !this.inString;
    }
    return this.inString;
  }
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function withoutOverlaps(spans: Span[]): Span[] {
  const sorted = spans
    .map((s, order) => ({ s, order }))
    .sort((a, b) => a.s.start - b.s.start || a.order - b.order)
    .map((x) => x.s);
  const out: Span[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s.start < last.end) continue;
    out.push(s);
  }
  return out;
}

const isAlnum = (c: number) => isDigit(c) || isUpper(c) || (c >= 97 && c <= 122);

function findPrivateKeys(value: string, spans: Span[]): void {
  let from = 0;
  for (;;) {
    const start = value.indexOf('-----BEGIN ', from);
    if (start < 0) return;
    const headerEnd = value.indexOf('-----', start + 11);
    if (headerEnd < 0) return;
    const label = value.slice(start + 11, headerEnd);
    if (!label.endsWith('PRIVATE KEY')) {
      from = headerEnd + 5;
      continue;
    }
    const footer = `-----END ${label}-----`;
    const end = value.indexOf(footer, headerEnd);
    // no footer: everything after the header is key material
    const stop = end < 0 ? value.length : end + footer.length;
    spans.push({ start, end: stop, detector: 'private_key' });
    from = stop;
  }
}

const isBase64Url = (c: number) => isAlnum(c) || c === 45 || c === 95;

function findJwts(value: string, spans: Span[]): void {
  let from = 0;
  for (;;) {
    const start = value.indexOf('eyJ', from);
    if (start < 0) return;
    from = start + 3;
    if (start > 0 && isBase64Url(value.charCodeAt(start - 1))) continue;
    const dots: number[] = [];
    let i = start;
    for (; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c === 46) {
        if (dots.length === 2) break;
        dots.push(i);
      } else if (!isBase64Url(c)) break;
    }
    if (dots.length < 2) continue;
    const [d1, d2] = dots as [number, number];
    if (d2 === d1 + 1) continue; // empty payload
    if (!headerHasAlg(value.slice(start, d1))) continue;
    spans.push({ start, end: i, detector: 'jwt' });
    from = i;
  }
}

function headerHasAlg(part: string): boolean {
  try {
    const header: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return (
      header !== null && typeof header === 'object' && typeof (header as { alg?: unknown }).alg === 'string'
    );
  } catch {
    return false;
  }
}

function findAwsKeys(value: string, spans: Span[]): void {
  for (const prefix of ['AKIA', 'ASIA']) {
    let from = 0;
    for (;;) {
      const start = value.indexOf(prefix, from);
      if (start < 0) break;
      from = start + 4;
      if (start > 0 && isAlnum(value.charCodeAt(start - 1))) continue;
      let i = start + 4;
      while (i < value.length && (isUpper(value.charCodeAt(i)) || isDigit(value.charCodeAt(i)))) i++;
      if (i - start !== 20 || (i < value.length && isAlnum(value.charCodeAt(i)))) continue;
      spans.push({ start, end: i, detector: 'aws_access_key' });
    }
  }
}

const isLocalPart = (c: number) => isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
const isDomainPart = (c: number) => isAlnum(c) || c === 46 || c === 45;

function findEmails(value: string, spans: Span[]): void {
  let from = 0;
  for (;;) {
    const at = value.indexOf('@', from);
    if (at < 0) return;
    from = at + 1;
    let start = at;
    while (start > 0 && isLocalPart(value.charCodeAt(start - 1))) start--;
    let end = at + 1;
    while (end < value.length && isDomainPart(value.charCodeAt(end))) end++;
    while (end > at + 1 && (value.charCodeAt(end - 1) === 46 || value.charCodeAt(end - 1) === 45)) end--;
    if (start === at) continue;
    const domain = value.slice(at + 1, end);
    const dot = domain.lastIndexOf('.');
    if (dot <= 0) continue;
    const tld = domain.slice(dot + 1);
    if (tld.length < 2 || !/^[A-Za-z]+$/.test(tld)) continue;
    spans.push({ start, end, detector: 'email' });
    from = end;
  }
}

function findIbans(value: string, spans: Span[]): void {
  for (let i = 0; i + 4 <= value.length; i++) {
    const c = value.charCodeAt(i);
    if (!isUpper(c) || (i > 0 && isAlnum(value.charCodeAt(i - 1)))) continue;
    if (
      !isUpper(value.charCodeAt(i + 1)) ||
      !isDigit(value.charCodeAt(i + 2)) ||
      !isDigit(value.charCodeAt(i + 3))
    )
      continue;
    // gather [A-Z0-9], allowing single spaces between groups; remember each group end
    const ends: number[] = [];
    let j = i;
    let chars = 0;
    while (j < value.length && chars <= 34) {
      const d = value.charCodeAt(j);
      if (isUpper(d) || isDigit(d)) {
        chars++;
        j++;
        continue;
      }
      if (
        d === 32 &&
        j + 1 < value.length &&
        (isUpper(value.charCodeAt(j + 1)) || isDigit(value.charCodeAt(j + 1)))
      ) {
        ends.push(j);
        j++;
        continue;
      }
      break;
    }
    if (j < value.length && isAlnum(value.charCodeAt(j))) continue; // glued to a lowercase word
    ends.push(j);
    // the longest prefix ending at a group boundary that is a valid IBAN
    for (let k = ends.length - 1; k >= 0; k--) {
      const end = ends[k] as number;
      const compact = value.slice(i, end).replace(/ /g, '');
      if (compact.length >= 15 && compact.length <= 34 && ibanValid(compact)) {
        spans.push({ start: i, end, detector: 'iban' });
        i = end;
        break;
      }
    }
  }
}

/** ISO 13616: move the first four characters to the end, letters → 10..35, the number mod 97 is 1. */
export function ibanValid(compact: string): boolean {
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (isDigit(c)) remainder = (remainder * 10 + (c - 48)) % 97;
    else if (isUpper(c)) remainder = (remainder * 100 + (c - 55)) % 97;
    else return false;
  }
  return remainder === 1;
}

/**
 * Cards, SSNs and phone numbers: maximal runs of digits and separators, split into space-separated
 * tokens; each window of consecutive tokens is tried, longest first, so `4111 1111 1111 1111` is one
 * card and `123-45-6789 555-123-4567` two findings.
 */
function findNumbers(value: string, spans: Span[], card: boolean, ssn: boolean, phone: boolean): void {
  let i = 0;
  const n = value.length;
  while (i < n) {
    const c = value.charCodeAt(i);
    if (!isDigit(c) && c !== 43 && c !== 40) {
      i++;
      continue;
    }
    let end = i;
    let digits = 0;
    while (end < n) {
      const d = value.charCodeAt(end);
      if (isDigit(d)) digits++;
      else if (!isRunSeparator(d)) break;
      end++;
    }
    const last = trimEnd(value, i, end);
    // digits glued to letters (an order code, a hash) are not a number on their own
    const glued =
      (i > 0 && isAlnum(value.charCodeAt(i - 1))) || (last < n && isAlnum(value.charCodeAt(last)));
    if (digits >= 9 && !glued) numbersInRun(value, i, last, spans, card, ssn, phone);
    i = end + 1;
  }
}

function numbersInRun(
  value: string,
  start: number,
  end: number,
  spans: Span[],
  card: boolean,
  ssn: boolean,
  phone: boolean,
): void {
  // token boundaries (runs of spaces split tokens)
  const tokens: Array<[number, number]> = [];
  for (let i = start; i < end; ) {
    while (i < end && value.charCodeAt(i) === 32) i++;
    const s = i;
    while (i < end && value.charCodeAt(i) !== 32) i++;
    if (i > s) tokens.push([s, i]);
  }
  let t = 0;
  while (t < tokens.length) {
    let matched = false;
    for (let u = Math.min(tokens.length - 1, t + 5); u >= t; u--) {
      const s = trimStart(value, (tokens[t] as [number, number])[0]);
      const e = trimEnd(value, s, (tokens[u] as [number, number])[1]);
      const text = value.slice(s, e);
      const detector = classifyNumber(text, card, ssn, phone);
      if (detector) {
        spans.push({ start: s, end: e, detector });
        t = u + 1;
        matched = true;
        break;
      }
    }
    if (!matched) t++;
  }
}

/** Leading separators other than `+` and `(` are not part of a number. */
function trimStart(value: string, s: number): number {
  while (s < value.length) {
    const c = value.charCodeAt(s);
    if (isDigit(c) || c === 43 || c === 40) return s;
    s++;
  }
  return s;
}

function trimEnd(value: string, s: number, e: number): number {
  while (e > s && !isDigit(value.charCodeAt(e - 1))) e--;
  return e;
}

const SSN = /^(\d{3})([- ])(\d{2})\2(\d{4})$/;
const US_PHONE = /^(?:\+?1[-. ]?)?(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}$/;
const E164 = /^\+[1-9][0-9 ()-]{9,20}$/;
const CARD_SHAPE = /^\d+(?:[ -]\d+)*$/;

function classifyNumber(text: string, card: boolean, ssn: boolean, phone: boolean): DetectorName | undefined {
  if (ssn) {
    const m = SSN.exec(text);
    if (m) {
      const area = m[1] as string;
      if (area !== '000' && area !== '666' && area[0] !== '9' && m[3] !== '00' && m[4] !== '0000')
        return 'ssn';
    }
  }
  if (card && CARD_SHAPE.test(text)) {
    let digits = 0;
    for (let i = 0; i < text.length; i++) if (isDigit(text.charCodeAt(i))) digits++;
    if (digits >= 13 && digits <= 19 && luhn(text)) return 'card';
  }
  if (phone) {
    if (US_PHONE.test(text)) return 'phone';
    if (E164.test(text)) {
      let digits = 0;
      for (let i = 0; i < text.length; i++) if (isDigit(text.charCodeAt(i))) digits++;
      if (digits >= 10 && digits <= 15) return 'phone';
    }
  }
  return undefined;
}

function luhn(text: string): boolean {
  let sum = 0;
  let n = 0;
  for (let i = text.length - 1; i >= 0; i--) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) continue;
    let d = c - 48;
    if (n++ % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
