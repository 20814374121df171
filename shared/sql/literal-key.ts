/**
 * A cache key for a SQL text that ignores the values of its plain literals, so that
 * `... where aid = 1` and `... where aid = 2` share one analysis and one decision. Safe because
 * policies never read literal values (DESIGN.md): two texts that differ only inside literals have
 * the same statement structure. The scanner is deliberately conservative: anything it does not
 * fully understand (quoted identifiers, dollar quotes and parameters, escapes, comments, prefixed
 * strings, non-ASCII text, unusual numbers) yields no key, and the caller analyses the exact text.
 *
 * It runs for every simple-protocol statement, so it classifies characters by code through a
 * table and copies unchanged stretches of the text as slices rather than character by character.
 */

const IDENT_START = 1; // [A-Za-z_]
const IDENT_PART = 2; // [A-Za-z0-9_]
const DIGIT = 4; // [0-9]
/** what may not follow a number for it to be a plain one: [A-Za-z_.$'"] */
const NOT_AFTER_NUMBER = 8;

const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z_]/.test(ch)) CLASS[c]! |= IDENT_START | IDENT_PART | NOT_AFTER_NUMBER;
  if (/[0-9]/.test(ch)) CLASS[c]! |= IDENT_PART | DIGIT;
  if (/[.$'"]/.test(ch)) CLASS[c]! |= NOT_AFTER_NUMBER;
}

const QUOTE = 0x27; // '
const DOUBLE_QUOTE = 0x22;
const DOLLAR = 0x24;
const BACKSLASH = 0x5c;
const BACKTICK = 0x60;
const MINUS = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const AMPERSAND = 0x26;
const DOT = 0x2e;

/** Character class bits of the code unit at `i`; 0 past the end and for non-ASCII. */
function classAt(text: string, i: number): number {
  const c = text.charCodeAt(i); // NaN past the end
  return c < 128 ? CLASS[c]! : 0;
}

/** The text with every plain string literal replaced by '' and every plain number by 0, or undefined. */
export function literalInsensitiveKey(text: string): string | undefined {
  let out = '';
  /** start of the stretch of text copied unchanged since the last replaced literal */
  let copyFrom = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c > 0x7e || c === DOUBLE_QUOTE || c === DOLLAR || c === BACKSLASH || c === BACKTICK) return undefined;
    if ((c === MINUS && text.charCodeAt(i + 1) === MINUS) || (c === SLASH && text.charCodeAt(i + 1) === STAR))
      return undefined;
    const cls = CLASS[c]!;
    if (cls & IDENT_START) {
      let j = i + 1;
      while (j < n && classAt(text, j) & IDENT_PART) j++;
      // E'..', U&'..', B'..', X'..', N'..' and type 'literal' forms: leave them to the parser.
      const next = text.charCodeAt(j);
      if (next === QUOTE || next === AMPERSAND) return undefined;
      i = j;
      continue;
    }
    if (cls & DIGIT) {
      if (i > 0 && (text.charCodeAt(i - 1) === DOT || classAt(text, i - 1) & IDENT_PART)) return undefined;
      let j = i + 1;
      while (j < n && classAt(text, j) & DIGIT) j++;
      if (text.charCodeAt(j) === DOT) {
        j++;
        if (!(classAt(text, j) & DIGIT)) return undefined;
        while (j < n && classAt(text, j) & DIGIT) j++;
      }
      if (j < n && classAt(text, j) & NOT_AFTER_NUMBER) return undefined;
      out += `${text.slice(copyFrom, i)}0`;
      i = j;
      copyFrom = j;
      continue;
    }
    if (c === QUOTE) {
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined; // unterminated: the parser will say so
        const q = text.charCodeAt(j);
        if (q === BACKSLASH) return undefined;
        if (q === QUOTE) {
          if (text.charCodeAt(j + 1) === QUOTE) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      // adjacent string constants separated only by whitespace with a newline are concatenated
      // by PostgreSQL; keep the key exact in that rare case
      if (/^\s*\n\s*'/.test(text.slice(j + 1, j + 64))) return undefined;
      out += `${text.slice(copyFrom, i)}''`;
      i = j + 1;
      copyFrom = i;
      continue;
    }
    i++;
  }
  return copyFrom === 0 ? text : out + text.slice(copyFrom);
}
