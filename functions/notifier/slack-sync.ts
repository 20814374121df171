/**
 * Makes Slack show an approval's current state: the first time, post the Block Kit message to the
 * channel and remember where it is; afterwards, update that message (approved, denied, expired,
 * executed). Idempotent, so SQS redeliveries and out-of-order notifications do no harm.
 */

import type { ApprovalQueue, ApprovalStore, SlackApi } from '../../shared/approvals/ports.ts';
import { approvalMessage } from '../../shared/approvals/slack-blocks.ts';
import { type ApprovalView, asOf } from '../../shared/approvals.ts';
import type { ApprovalEvent } from '../../shared/events.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import type { AuditStore } from '../../shared/ports.ts';

export interface SlackSyncDeps {
  store: ApprovalStore;
  slack: SlackApi;
  /** PGWARDEN_SLACK_CHANNEL: where approval requests are posted unless their rule names a channel */
  channel: string;
  /** when given, a lapsed approval is marked expired (audited) before it is shown */
  approvals?: { settle(approval: ApprovalView): Promise<ApprovalView> };
  /** when given, the first post is recorded in the audit trail */
  audit?: AuditStore;
  /**
   * when given, a pending approval is looked at again when it lapses (a delayed notification, in
   * steps of at most 15 minutes), so its Slack message shows "expired" without anyone clicking
   */
  queue?: Pick<ApprovalQueue, 'enqueueLater'>;
  now?: () => Date;
  newId?: () => string;
  logger?: Logger;
}

export type SlackSync = (approvalId: string) => Promise<void>;

export function createSlackSync(deps: SlackSyncDeps): SlackSync {
  const now = deps.now ?? (() => new Date());
  const logger = deps.logger ?? silentLogger;

  return async (approvalId) => {
    const stored = await deps.store.get(approvalId);
    if (stored === undefined) {
      // Deleted by TTL or never created: there is nothing to show, and retrying will not change that.
      logger.warn('notification for an unknown approval dropped', { approvalId });
      return;
    }
    const approval = deps.approvals ? await deps.approvals.settle(stored) : asOf(stored, now());
    const message = approvalMessage(approval, now());
    if (approval.slack !== undefined) {
      await deps.slack.updateMessage(approval.slack.channel, approval.slack.ts, message);
      await lookAgainAtExpiry(approval);
      return;
    }
    // the rule's channel when it names one (a team's own approvals channel), else the default
    const posted = await deps.slack.postMessage(approval.channel ?? deps.channel, message);
    if (!(await deps.store.setSlackMessage(approvalId, posted))) {
      // A concurrent notification posted first; later updates go to that message, so bring this
      // one up to date now: both then show the same state.
      const latest = await deps.store.get(approvalId);
      if (latest !== undefined)
        await deps.slack.updateMessage(
          posted.channel,
          posted.ts,
          approvalMessage(asOf(latest, now()), now()),
        );
      return;
    }
    await recordPosted(approval, posted);
    await lookAgainAtExpiry(approval);
  };

  async function lookAgainAtExpiry(approval: ApprovalView): Promise<void> {
    const enqueueLater = deps.queue?.enqueueLater;
    if (enqueueLater === undefined || approval.status !== 'pending') return;
    // One second past the deadline, so the next look finds it lapsed rather than due.
    const seconds = Math.ceil((Date.parse(approval.expiresAt) - now().getTime()) / 1000) + 1;
    await enqueueLater.call(deps.queue, { approvalId: approval.id }, Math.max(1, seconds));
  }

  async function recordPosted(
    approval: ApprovalView,
    posted: { channel: string; ts: string },
  ): Promise<void> {
    if (deps.audit === undefined) return;
    const event: ApprovalEvent = {
      type: 'approval',
      eventId: deps.newId?.() ?? crypto.randomUUID(),
      at: now().toISOString(),
      approvalId: approval.id,
      step: 'notified',
      sessionId: approval.sessionId,
      principal: approval.principal,
      by: 'pgwarden',
      via: 'notifier',
      database: approval.database,
      ruleId: approval.ruleId,
      fingerprint: approval.fingerprint,
      textHash: approval.textHash,
      ...(approval.paramsHash === undefined ? {} : { paramsHash: approval.paramsHash }),
      message: `approval ${approval.id} posted to Slack channel ${posted.channel} (message ${posted.ts})`,
    };
    await deps.audit.put([event]).catch((error: unknown) =>
      logger.error('could not record the Slack post in the audit trail', {
        approvalId: approval.id,
        error: String(error),
      }),
    );
  }
}
