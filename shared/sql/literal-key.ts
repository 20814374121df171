/**
 * A cache key for a SQL text that ignores the values of its plain literals, so that
 * `... where aid = 1` and `... where aid = 2` share one analysis and one decision. Safe because
 * policies never read literal values (DESIGN.md): two texts that differ only inside literals have
 * the same statement structure. The scanner is deliberately conservative: anything it does not
 * fully understand (quoted identifiers, dollar quotes and parameters, escapes, comments, prefixed
 * strings, non-ASCII text, unusual numbers) yields no key, and the caller analyses the exact text.
 */

const IDENT_START = /[A-Za-z_]/;
const IDENT_PART = /[A-Za-z0-9_]/;
const DIGIT = /[0-9]/;

/** The text with every plain string literal replaced by '' and every plain number by 0, or undefined. */
export function literalInsensitiveKey(text: string): string | undefined {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c.charCodeAt(0) > 0x7e || c === '"' || c === '$' || c === '\\' || c === '`') return undefined;
    if ((c === '-' && text[i + 1] === '-') || (c === '/' && text[i + 1] === '*')) return undefined;
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < n && IDENT_PART.test(text[j]!)) j++;
      // E'..', U&'..', B'..', X'..', N'..' and type 'literal' forms: leave them to the parser.
      if (text[j] === "'" || text[j] === '&') return undefined;
      out += text.slice(i, j);
      i = j;
      continue;
    }
    if (DIGIT.test(c)) {
      if (i > 0 && (text[i - 1] === '.' || IDENT_PART.test(text[i - 1]!))) return undefined;
      let j = i + 1;
      while (j < n && DIGIT.test(text[j]!)) j++;
      if (text[j] === '.') {
        j++;
        if (!DIGIT.test(text[j] ?? '')) return undefined;
        while (j < n && DIGIT.test(text[j]!)) j++;
      }
      if (j < n && /[A-Za-z_.$'"]/.test(text[j]!)) return undefined;
      out += '0';
      i = j;
      continue;
    }
    if (c === "'") {
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined; // unterminated: the parser will say so
        if (text[j] === '\\') return undefined;
        if (text[j] === "'") {
          if (text[j + 1] === "'") {
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
      out += "''";
      i = j + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}
