/**
 * The requester chose the statement and its values, so what a reviewer reads of them must be what
 * the server runs. Control characters (a terminal escape sequence, a carriage return) and Unicode
 * format characters (bidirectional overrides and isolates, zero-width characters, the BOM) change
 * how the text around them is shown or are not shown at all: a right-to-left override can make
 * `delete from orders -- ‮ 1 = di erehw` read as a DELETE with a WHERE ("Trojan Source"). They are
 * shown as escapes instead; line breaks and tabs are kept.
 */
const HIDDEN =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

/** How a hidden character is shown: `\x1b` for a control character, `\u{202e}` otherwise. */
function shown(char: string): string {
  const code = char.charCodeAt(0);
  return code <= 0x9f
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u{${code.toString(16).padStart(4, '0')}}`;
}

export function visibleText(text: string): string {
  return text.replace(HIDDEN, shown);
}

/** How many characters `char` takes once made visible (for length limits). */
export function visibleLength(char: string): number {
  HIDDEN.lastIndex = 0;
  return HIDDEN.test(char) ? shown(char).length : char.length;
}
