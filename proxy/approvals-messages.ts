/**
 * What a held statement's client is told: the NoticeResponse when the hold starts, and the reason
 * of the refusal when the hold ends without an approval. The relay turns a deny decision into an
 * ErrorResponse "pgwarden: <reason>" with SQLSTATE 42501 (58000 for rule `no-decision`).
 */
import type { ApprovalView } from '../shared/approvals.ts';
import type { Decision } from '../shared/control-plane.ts';
import type { NoticeFields } from './wire/backend-writer.ts';

/** Local mode: a reviewer decides with the CLI (and in Slack when local mode posts there). */
export const localDecideHint = (id: string): string =>
  `a reviewer decides with: npm run -s pgwarden -- approvals approve ${id} (or: approvals deny ${id} --reason "...")`;

export const localSlackDecideHint = (id: string): string => `approve in Slack, or ${localDecideHint(id)}`;

/** The deployed proxy: reviewers decide in Slack, or with the CLI pointed at the deployed API. */
export const deployedDecideHint = (id: string): string =>
  `approve in Slack, or with the pgwarden CLI as a reviewer (PGWARDEN_API_URL set to the pgwarden API): approvals approve ${id}`;

export function heldNotice(
  approval: ApprovalView,
  hold: { approvers: string; timeoutSeconds: number },
  decision: Decision,
  decideHint: (id: string) => string,
): NoticeFields {
  const why = approval.reason || decision.reason || 'the policy requires approval';
  return {
    // A plain notice, as PostgreSQL's own informational notices: SQLSTATE 00000.
    severity: 'NOTICE',
    code: '00000',
    message: `pgwarden: statement held until a member of "${hold.approvers}" approves it (approval ${approval.id}); waiting up to ${hold.timeoutSeconds} s`,
    detail: `${why} (rule ${decision.ruleId})`,
    hint: decideHint(approval.id),
  };
}

export function deniedReason(approval: ApprovalView): string {
  const who = approval.decidedBy ?? 'a reviewer';
  const why = approval.denyReason?.trim() ? approval.denyReason.trim() : 'no reason given';
  return `denied by ${who}: ${why} (approval ${approval.id})`;
}

export function timedOutReason(
  approval: ApprovalView,
  hold: { approvers: string; timeoutSeconds: number },
): string {
  const until = approval.expiresAt ? ` before ${approval.expiresAt}` : '';
  return `approval ${approval.id} was not decided within ${hold.timeoutSeconds} s, so the statement did not run; once a member of "${hold.approvers}" approves it, run the same statement again${until} and it will pass (once)`;
}

export function expiredReason(approval: ApprovalView): string {
  return `approval ${approval.id} expired before anyone approved it, so the statement did not run; run it again to ask for a new approval`;
}

export function alreadyUsedReason(approval: ApprovalView): string {
  return `approval ${approval.id} has already been used by an earlier run of this statement; run it again to ask for a new approval`;
}

/** The cause goes to the proxy's log only: it may name internal addresses. */
export function unreachableReason(decision: Decision): string {
  return `pgwarden could not reach its approvals service, so the statement held by rule ${decision.ruleId} did not run; try again shortly`;
}

export function disconnectedReason(approval: ApprovalView | undefined): string {
  return approval === undefined
    ? 'the client disconnected before its statement could be held'
    : `the client disconnected while the statement waited for approval ${approval.id}`;
}

export function cancelledReason(approval: ApprovalView | undefined, decision: Decision): string {
  return approval === undefined
    ? `canceling statement due to user request (it needed approval under rule ${decision.ruleId})`
    : `canceling statement due to user request while it waited for approval ${approval.id}; the approval stays open: once it is approved, run the same statement again`;
}
