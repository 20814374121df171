import { describe, expect, it } from 'vitest';
import { describeApproval, printable } from '../../scripts/cli/approvals.ts';
import { newApproval } from '../../shared/approvals.ts';
import { approvalRequest } from '../fakes/approvals.ts';

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

describe('approvals list: the statement', () => {
  it('is printed whole, since Slack sends the reviewer here for the rest of a long one', () => {
    const text = `update t set note = '${'x'.repeat(1000)}'; delete from orders`;
    const approval = newApproval(approvalRequest({ text }), {
      id: 'appr-1',
      now: new Date('2026-01-01T00:00:00Z'),
      defaultApprovers: ['reviewers'],
    });
    expect(describeApproval(approval)).toContain('delete from orders');
  });
});
