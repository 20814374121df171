import { describe, expect, it } from 'vitest';
import {
  APPROVE_ACTION,
  approvalMessage,
  DENY_ACTION,
  denyModal,
  fullTextModal,
  MESSAGE_TEXT_LIMIT,
  VIEW_TEXT_ACTION,
} from '../../../shared/approvals/slack-blocks.ts';
import {
  type ApprovalView,
  consumeApproval,
  decideApproval,
  newApproval,
} from '../../../shared/approvals.ts';
import { approvalRequest, reviewer } from '../../fakes/approvals.ts';

const now = new Date('2026-01-01T10:00:00.000Z');
const later = new Date('2026-01-01T10:01:00.000Z');

function approval(text?: string): ApprovalView {
  return newApproval(approvalRequest(text === undefined ? {} : { text }), {
    id: 'appr-42',
    now,
    defaultApprovers: ['reviewers'],
  });
}

type Block = {
  type: string;
  text?: { text: string };
  fields?: Array<{ text: string }>;
  elements?: Array<Record<string, unknown>>;
};

const blocksOf = (message: { blocks: unknown[] }) => message.blocks as Block[];
const allText = (message: { text: string; blocks: unknown[] }) => JSON.stringify(message.blocks);
const buttons = (message: { blocks: unknown[] }) =>
  blocksOf(message)
    .filter((b) => b.type === 'actions')
    .flatMap((b) => b.elements ?? []);

describe('the approval request message', () => {
  it('says who, from which client, on which database, the statement, and why', () => {
    const message = approvalMessage(approval(), now);
    const text = allText(message);
    expect(text).toContain('dev@example.com');
    expect(text).toContain('psql');
    expect(text).toContain('*Database*\\nshop');
    expect(text).toContain('delete from orders where id = 7');
    expect(text).toContain('deletes on orders need a reviewer');
    expect(text).toContain('deletes-need-approval');
    expect(text).toContain('appr-42');
    expect(message.text).toContain('Approval needed');
  });

  it('shows the parameter values the one execution runs with, masked ones masked, escaped', () => {
    const message = approvalMessage(
      newApproval(
        approvalRequest({
          text: 'update customers set ssn = $1, note = $2',
          protocol: 'extended',
          params: {
            count: 3,
            values: [
              { value: '***', format: 'text', masked: 'mask-ssn' },
              { value: '<@U0ADMIN> ``` & more', format: 'text' },
              { value: null, format: 'text' },
            ],
            hash: 'a'.repeat(64),
          },
        }),
        { id: 'appr-7', now, defaultApprovers: ['reviewers'] },
      ),
      now,
    );
    const section = blocksOf(message).find((b) => b.text?.text.startsWith('*Parameters*'))!;
    expect(section.text!.text).toContain('$1 = *** (masked: mask-ssn)');
    expect(section.text!.text).toContain("$2 = '&lt;@U0ADMIN&gt; `\u200b`` &amp; more'");
    expect(section.text!.text).toContain('$3 = NULL');
    expect(section.text!.text).toContain('exactly these values');
    // no parameters, no section
    expect(allText(approvalMessage(approval(), now))).not.toContain('*Parameters*');
  });

  it('has Approve and Deny buttons carrying the approval id, and no full-text button for a short statement', () => {
    const found = buttons(approvalMessage(approval(), now));
    expect(found.map((b) => [b['action_id'], b['value']])).toEqual([
      [APPROVE_ACTION, 'appr-42'],
      [DENY_ACTION, 'appr-42'],
    ]);
  });

  it('truncates a long statement and offers the full text in a modal', () => {
    const long = `delete from orders where id in (${Array.from({ length: 800 }, (_, i) => i).join(', ')})`;
    const message = approvalMessage(approval(long), now);
    const statement = blocksOf(message).find((b) => b.text?.text.startsWith('```'))!;
    expect(statement.text!.text.length).toBeLessThan(MESSAGE_TEXT_LIMIT + 20);
    expect(statement.text!.text).toContain('…');
    expect(buttons(message).map((b) => b['action_id'])).toContain(VIEW_TEXT_ACTION);

    const modal = fullTextModal(approval(long)) as { blocks: Block[] };
    const shown = modal.blocks
      .filter((b) => b.text?.text.startsWith('```'))
      .map((b) => b.text!.text.slice(3, -3))
      .join('');
    expect(shown).toBe(long);
    for (const block of modal.blocks) expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
  });

  it('keeps every section within Slack 3000 characters even when escaping grows the text', () => {
    const nasty = '<&>`'.repeat(3000);
    const modal = fullTextModal(approval(nasty)) as { blocks: Block[] };
    for (const block of modal.blocks) expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
    for (const block of blocksOf(approvalMessage(approval(nasty), now))) {
      expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
    }
  });

  it('cannot mention channels or users, or close the code block, from the statement or client name', () => {
    const request = approvalRequest({ text: "select '<!channel> <@U123>' ``` *bold*" });
    request.session.applicationName = '<!here|x>';
    const message = approvalMessage(newApproval(request, { id: 'a', now, defaultApprovers: ['r'] }), now);
    const text = allText(message);
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<!here');
    expect(text).not.toContain('<@U123>');
    expect(text).toContain('&lt;!channel&gt;');
    const statement = blocksOf(message).find((b) => b.text?.text.startsWith('```'))!.text!.text;
    expect(statement.slice(3, -3)).not.toContain('```');
  });
});

describe('the outcome', () => {
  it('shows who approved, without buttons', () => {
    const approved = decideApproval(approval(), reviewer(), { verdict: 'approve' }, later);
    const message = approvalMessage(approved, later);
    expect(buttons(message)).toEqual([]);
    expect(allText(message)).toContain('Approved by *rita@example.com*');
  });

  it('shows who denied and why', () => {
    const denied = decideApproval(
      approval(),
      reviewer(),
      { verdict: 'deny', reason: 'not during <business> hours' },
      later,
    );
    const text = allText(approvalMessage(denied, later));
    expect(text).toContain('Denied by *rita@example.com*');
    expect(text).toContain('not during &lt;business&gt; hours');
  });

  it('shows an expired approval', () => {
    const text = allText(approvalMessage(approval(), new Date('2026-01-01T12:00:00.000Z')));
    expect(text).toContain('Expired without a decision');
    expect(buttons(approvalMessage(approval(), new Date('2026-01-01T12:00:00.000Z')))).toEqual([]);
  });

  it('shows what the released statement did', () => {
    const approved = decideApproval(approval(), reviewer(), { verdict: 'approve' }, later);
    const consumed = consumeApproval(approved, later)!;
    expect(allText(approvalMessage(consumed, later))).toContain('released to the database');
    const executed = { ...consumed, execution: { at: later.toISOString(), commandTag: 'DELETE 3', rows: 3 } };
    expect(allText(approvalMessage(executed, later))).toContain('executed: `DELETE 3` (3 rows affected)');
    const failed = { ...consumed, execution: { at: later.toISOString(), error: 'deadlock detected' } };
    expect(allText(approvalMessage(failed, later))).toContain('it failed: deadlock detected');
  });
});

describe('the deny dialog', () => {
  it('carries the approval and message in its metadata and asks for an optional reason', () => {
    const modal = denyModal(approval(), { channel: 'C1', ts: '1.2' }) as {
      callback_id: string;
      private_metadata: string;
      blocks: Array<{ type: string; optional?: boolean; block_id?: string }>;
    };
    expect(modal.callback_id).toBe('approval_deny');
    expect(JSON.parse(modal.private_metadata)).toEqual({ approvalId: 'appr-42', channel: 'C1', ts: '1.2' });
    expect(modal.blocks.find((b) => b.type === 'input')).toMatchObject({
      optional: true,
      block_id: 'deny_reason',
    });
  });
});

describe('characters that hide or reorder what the reviewer reads (Trojan Source)', () => {
  // reads as `delete from orders where id = 1 --` in a bidi-aware renderer; runs as a DELETE of every row
  const trojan = 'delete from orders -- \u202e 1 = di erehw\u2066 \u2069';
  it('the statement shows bidirectional overrides, isolates and zero-width characters as escapes', () => {
    const message = approvalMessage({ ...approval(trojan), text: `${trojan}\u200b\ufeff` }, now);
    const shown = allText(message);
    expect(shown).not.toMatch(/[\u202e\u2066\u2069\u200b\ufeff]/);
    expect(shown).toContain('delete from orders -- \\\\u{202e} 1 = di erehw\\\\u{2066} \\\\u{2069}');
  });

  it('so do the parameter values and the full-text modal, and the limits count the escapes', () => {
    const withParams: ApprovalView = {
      ...approval('update t set note = $1'),
      params: { count: 1, values: [{ value: 'ok \u202e', format: 'text' }] },
    };
    expect(allText(approvalMessage(withParams, now))).not.toContain('\u202e');
    const long = approval('\u202e'.repeat(5000));
    const modal = JSON.stringify(fullTextModal(long));
    expect(modal).not.toContain('\u202e');
    for (const block of blocksOf(approvalMessage(long, now)) as Array<{ text?: { text: string } }>)
      expect(block.text?.text.length ?? 0).toBeLessThanOrEqual(3000);
  });
});
