/**
 * Local mode without Slack credentials: the approvals queue is consumed by this console notifier
 * instead of the Slack one. It prints each held statement to the terminal with the CLI commands
 * that decide it, and one line per later change (approved, denied, expired, executed). Same queue,
 * same poller, same partial-batch contract as the real notifier.
 */
import type { ApprovalView } from '../../shared/approvals.ts';
import type { SqsBatchResponse, SqsEvent } from './notifier-poller.ts';

export interface ConsoleNotifierOptions {
  /** the approval as of now (the approvals service in-process) */
  get(id: string): Promise<ApprovalView>;
  write(text: string): void;
  /** how a reviewer gets a token locally; shown with the commands */
  reviewerTokenCommand?: string;
}

const defaultTokenCommand = 'npm run -s token -- reviewer@example.com --groups reviewers';

/** A handler for the notifier poller that writes to the console instead of posting to Slack. */
export function createConsoleNotifier(options: ConsoleNotifierOptions) {
  /** what was last printed per approval, so a repeated or late message prints nothing new */
  const shown = new Map<string, string>();
  const tokenCommand = options.reviewerTokenCommand ?? defaultTokenCommand;

  function render(approval: ApprovalView): string | undefined {
    const state = `${approval.status}|${approval.execution ? 'ran' : ''}`;
    if (shown.get(approval.id) === state) return undefined;
    const first = !shown.has(approval.id);
    shown.set(approval.id, state);
    if (approval.status === 'pending') return first ? heldBanner(approval, tokenCommand) : undefined;
    return `pgwarden approval ${approval.id}: ${outcomeLine(approval)}\n`;
  }

  return async (event: SqsEvent): Promise<SqsBatchResponse> => {
    const batchItemFailures: SqsBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      try {
        const id = (JSON.parse(record.body) as { approvalId?: unknown }).approvalId;
        // Not an approval notification: nothing to show, and retrying would not change that.
        if (typeof id !== 'string') continue;
        const text = render(await options.get(id));
        if (text !== undefined) options.write(text);
      } catch {
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };
}

function heldBanner(a: ApprovalView, tokenCommand: string): string {
  const who = `${a.principal}${a.actor === 'agent' ? ' (AI agent)' : ''}${a.applicationName ? ` via ${a.applicationName}` : ''}`;
  const text = a.text.length > 800 ? `${a.text.slice(0, 800)}…` : a.text;
  return `
──── pgwarden: a statement is waiting for approval ────────────────────────
  approval  ${a.id}
  who       ${who}, database ${a.database}
  why       ${a.reason} (rule ${a.ruleId})
  approvers ${a.approvers.join(' or ')}; held up to ${a.holdTimeoutSeconds} s, decidable until ${a.expiresAt}
  statement ${text.replace(/\n/g, '\n            ')}

  approve:  PGWARDEN_TOKEN=$(${tokenCommand}) npm run -s pgwarden -- approvals approve ${a.id}
  deny:     PGWARDEN_TOKEN=$(${tokenCommand}) npm run -s pgwarden -- approvals deny ${a.id} --reason "..."
  (Slack: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET before npm start)
───────────────────────────────────────────────────────────────────────────
`;
}

function outcomeLine(a: ApprovalView): string {
  const by = a.decidedBy ? ` by ${a.decidedBy}` : '';
  if (a.execution) {
    const result = a.execution.error ? `failed: ${a.execution.error}` : (a.execution.commandTag ?? 'done');
    return `executed: ${result}`;
  }
  switch (a.status) {
    case 'approved':
      return `approved${by}`;
    case 'consumed':
      return `approved${by}; the statement was released`;
    case 'denied':
      return `denied${by}${a.denyReason ? `: ${a.denyReason}` : ''}`;
    case 'expired':
      return 'expired without a decision';
    default:
      return a.status;
  }
}
