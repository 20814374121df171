/**
 * The Slack side of an approval as Block Kit, pure: one renderer for every state, so the notifier's
 * first post and every later update (approved, denied, expired, executed) show the same facts.
 * Slack limits a section's text to 3000 characters and a modal to 100 blocks; the statement is
 * truncated in the message and shown whole (up to those limits) in the "View full text" modal.
 */
import { type ApprovalView, effectiveStatus } from '../approvals.ts';
import { paramLines } from './params.ts';
import type { SlackMessage } from './ports.ts';
import { visibleLength, visibleText } from './visible-text.ts';

export const APPROVE_ACTION = 'approval_approve';
export const DENY_ACTION = 'approval_deny';
export const VIEW_TEXT_ACTION = 'approval_view_text';
export const DENY_CALLBACK = 'approval_deny';
export const DENY_REASON_BLOCK = 'deny_reason';
export const DENY_REASON_INPUT = 'reason';

/** Characters of statement text shown in the channel message. */
export const MESSAGE_TEXT_LIMIT = 700;
const SECTION_LIMIT = 2900; // 3000 minus the code fence and escapes' headroom
const MODAL_TEXT_BLOCKS = 90;

/** Slack mrkdwn: &, < and > are control characters everywhere, code blocks included. */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** A fenced code block that the statement cannot close early, nor hide characters in. */
function codeBlock(text: string): string {
  return `\`\`\`${escapeMrkdwn(visibleText(text)).replaceAll('```', '`\u200b``')}\`\`\``;
}

/** Upper bound of a character's size once escaped (a backtick may gain a zero-width space). */
function escapedLength(char: string): number {
  if (char === '&') return 5;
  if (char === '<' || char === '>') return 4;
  return char === '`' ? 2 : visibleLength(char);
}

/** The longest prefix of at most `chars` characters whose escaped form fits in `escapedLimit`. */
function prefixFitting(text: string, chars: number, escapedLimit = SECTION_LIMIT): string {
  let size = 0;
  let end = 0;
  for (const char of text) {
    if (end + char.length > chars || size + escapedLength(char) > escapedLimit) break;
    size += escapedLength(char);
    end += char.length;
  }
  return text.slice(0, end);
}

function truncate(text: string, limit: number): { shown: string; truncated: boolean } {
  const head = prefixFitting(text, limit);
  if (head.length === text.length) return { shown: text, truncated: false };
  return { shown: `${head}…`, truncated: true };
}

function section(text: string) {
  return { type: 'section', text: { type: 'mrkdwn', text } };
}

function context(text: string) {
  return { type: 'context', elements: [{ type: 'mrkdwn', text }] };
}

function slackTime(iso: string): string {
  const seconds = Math.floor(Date.parse(iso) / 1000);
  // Rendered in each reader's time zone; the fallback is for clients that cannot.
  return `<!date^${seconds}^{date_short_pretty} {time_secs}|${iso}>`;
}

/** One line saying where the approval stands (the whole outcome when decided). */
export function outcomeLine(approval: ApprovalView, now: Date): string {
  const status = effectiveStatus(approval, now);
  const by = escapeMrkdwn(approval.decidedBy ?? 'someone');
  const decidedAt = approval.decidedAt ? ` at ${slackTime(approval.decidedAt)}` : '';
  switch (status) {
    case 'pending':
      return `:hourglass_flowing_sand: Waiting for ${approval.approvers.map((g) => `*${escapeMrkdwn(g)}*`).join(' or ')} until ${slackTime(approval.expiresAt)}`;
    case 'approved':
      return `:white_check_mark: Approved by *${by}*${decidedAt}; the statement may run once until ${slackTime(approval.expiresAt)}`;
    case 'denied': {
      const reason = approval.denyReason ? `: ${escapeMrkdwn(approval.denyReason)}` : ' (no reason given)';
      return `:no_entry: Denied by *${by}*${decidedAt}${reason}`;
    }
    case 'expired':
      return approval.decidedAt
        ? `:hourglass: Approved by *${by}*${decidedAt}, but expired unused`
        : ':hourglass: Expired without a decision';
    case 'consumed':
      return `:white_check_mark: Approved by *${by}*${decidedAt}; ${executionLine(approval)}`;
  }
}

function executionLine(approval: ApprovalView): string {
  const execution = approval.execution;
  if (execution === undefined) return 'released to the database';
  if (execution.error !== undefined) return `released; it failed: ${escapeMrkdwn(execution.error)}`;
  const tag = execution.commandTag ? `\`${escapeMrkdwn(execution.commandTag)}\`` : 'done';
  const rows =
    execution.rows === undefined ? '' : ` (${execution.rows} row${execution.rows === 1 ? '' : 's'} affected)`;
  return `executed: ${tag}${rows}`;
}

/** The channel message for `approval` in its current state (buttons only while pending). */
export function approvalMessage(approval: ApprovalView, now: Date): SlackMessage {
  const status = effectiveStatus(approval, now);
  const who = escapeMrkdwn(approval.principal);
  const actor = approval.actor === 'agent' ? ' (agent)' : '';
  const client = approval.applicationName ? escapeMrkdwn(approval.applicationName) : '(not set)';
  const { shown, truncated } = truncate(approval.text, MESSAGE_TEXT_LIMIT);

  const blocks: unknown[] = [
    section(
      `*${who}*${actor} wants to run a statement on *${escapeMrkdwn(approval.database)}* that needs approval`,
    ),
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Requested by*\n${who}${actor}` },
        { type: 'mrkdwn', text: `*Client*\n${client}` },
        { type: 'mrkdwn', text: `*Database*\n${escapeMrkdwn(approval.database)}` },
        { type: 'mrkdwn', text: `*Rule*\n${escapeMrkdwn(approval.ruleId)}` },
      ],
    },
    section(`*Why*\n${escapeMrkdwn(approval.reason)}`),
    section(codeBlock(shown)),
  ];
  if (truncated) {
    blocks.push(context(`Showing ${MESSAGE_TEXT_LIMIT} of ${approval.text.length} characters.`));
  }
  if (approval.params !== undefined && approval.params.count > 0) blocks.push(...paramsBlocks(approval));
  const actions: unknown[] = [];
  if (status === 'pending') {
    actions.push(
      {
        type: 'button',
        action_id: APPROVE_ACTION,
        text: { type: 'plain_text', text: 'Approve' },
        style: 'primary',
        value: approval.id,
        confirm: {
          title: { type: 'plain_text', text: 'Approve this statement?' },
          text: { type: 'mrkdwn', text: `It runs once on *${escapeMrkdwn(approval.database)}* as ${who}.` },
          confirm: { type: 'plain_text', text: 'Approve' },
          deny: { type: 'plain_text', text: 'Cancel' },
        },
      },
      {
        type: 'button',
        action_id: DENY_ACTION,
        text: { type: 'plain_text', text: 'Deny' },
        style: 'danger',
        value: approval.id,
      },
    );
  }
  if (truncated) {
    actions.push({
      type: 'button',
      action_id: VIEW_TEXT_ACTION,
      text: { type: 'plain_text', text: 'View full text' },
      value: approval.id,
    });
  }
  if (actions.length > 0) blocks.push({ type: 'actions', block_id: 'approval_actions', elements: actions });
  blocks.push(context(`${outcomeLine(approval, now)} · approval \`${approval.id}\``));

  const headline = {
    pending: 'Approval needed',
    approved: 'Approved',
    denied: 'Denied',
    expired: 'Expired',
    consumed: 'Approved and released',
  }[status];
  return {
    text: `${headline}: ${approval.principal} on ${approval.database} (${approval.ruleId}), approval ${approval.id}`,
    blocks,
  };
}

/**
 * The parameter values the one execution runs with (masked where a mask rule covers them): the
 * reviewer approves these values, not the statement in general.
 */
function paramsBlocks(approval: ApprovalView): unknown[] {
  const params = approval.params!;
  const lines = paramLines(params);
  let shown = '';
  let count = 0;
  for (const line of lines) {
    const next = shown === '' ? line : `${shown}\n${line}`;
    if (escapeMrkdwn(visibleText(next)).length + 40 > SECTION_LIMIT) break;
    shown = next;
    count++;
  }
  const blocks: unknown[] = [
    section(
      `*Parameters* (this approval runs the statement once, with exactly these values)\n${codeBlock(shown)}`,
    ),
  ];
  if (count < lines.length)
    blocks.push(
      context(`Showing ${count} of ${params.count} parameters; \`pgwarden approvals list\` shows more.`),
    );
  return blocks;
}

/** The deny dialog: an optional reason; private_metadata carries what the submission needs. */
export function denyModal(approval: ApprovalView, message: { channel: string; ts: string }): unknown {
  return {
    type: 'modal',
    callback_id: DENY_CALLBACK,
    private_metadata: JSON.stringify({ approvalId: approval.id, channel: message.channel, ts: message.ts }),
    title: { type: 'plain_text', text: 'Deny statement' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(
        `Deny ${escapeMrkdwn(approval.principal)}'s statement on *${escapeMrkdwn(approval.database)}*?\n${codeBlock(truncate(approval.text, 500).shown)}`,
      ),
      {
        type: 'input',
        block_id: DENY_REASON_BLOCK,
        optional: true,
        label: { type: 'plain_text', text: 'Reason (shown to the requester)' },
        element: {
          type: 'plain_text_input',
          action_id: DENY_REASON_INPUT,
          multiline: true,
          max_length: 500,
        },
      },
    ],
  };
}

/** The full statement in a read-only modal, split across sections of Slack's maximum size. */
export function fullTextModal(approval: ApprovalView): unknown {
  const chunks: string[] = [];
  for (let at = 0; at < approval.text.length && chunks.length < MODAL_TEXT_BLOCKS; ) {
    const chunk = prefixFitting(approval.text.slice(at), SECTION_LIMIT);
    chunks.push(chunk);
    at += chunk.length;
  }
  const shownChars = chunks.reduce((n, chunk) => n + chunk.length, 0);
  const blocks: unknown[] = chunks.map((chunk) => section(codeBlock(chunk)));
  if (shownChars < approval.text.length) {
    blocks.push(
      context(
        `Slack shows the first ${shownChars} of ${approval.text.length} characters; use \`pgwarden approvals\` for the rest.`,
      ),
    );
  }
  return {
    type: 'modal',
    title: { type: 'plain_text', text: 'Statement' },
    close: { type: 'plain_text', text: 'Close' },
    blocks: [
      context(
        `Approval \`${approval.id}\` · ${escapeMrkdwn(approval.principal)} on ${escapeMrkdwn(approval.database)}`,
      ),
      ...blocks,
    ],
  };
}
