import { describe, expect, it } from 'vitest';
import { printable } from '../../scripts/cli/approvals.ts';

describe('approvals list output', () => {
  it('prints control characters a requester put in a statement or value as escapes', () => {
    // an escape sequence could clear the line and show the reviewer something else
    expect(printable("delete from t\u001b[2K\rselect 1\n  $1 = 'a\u0007b'\tc\u009b")).toBe(
      "delete from t\\x1b[2K\\x0dselect 1\n  $1 = 'a\\x07b'\tc\\x9b",
    );
  });
});

describe('printable: Unicode format characters', () => {
  it('shows bidirectional overrides and zero-width characters as escapes', () => {
    expect(printable('delete from t -- \u202e 1 = di erehw\u200b')).toBe(
      'delete from t -- \\u{202e} 1 = di erehw\\u{200b}',
    );
  });
});
