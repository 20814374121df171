/**
 * Holds statements that need a reviewer's approval. For a `require_approval` decision it asks the
 * approvals API for an approval; a retry of a statement approved earlier comes back 'approved' at
 * once and runs. Otherwise the client is told (NoticeResponse) who must approve and the approval
 * id, and the gate long-polls the API until the approval is decided or the hold times out, while
 * the relay keeps the client's further messages paused. Approved → the statement runs; denied,
 * timed out, expired → a deny decision whose reason the client sees (SQLSTATE 42501). Anything the
 * gate cannot confirm fails closed: no answer from the API → deny with rule `no-decision` (58000).
 */

import type { ApprovalParams } from '../shared/approvals/params.ts';
import {
  type ApprovalsPort,
  type ApprovalView,
  type CreateApprovalRequest,
  MAX_WAIT_MS,
} from '../shared/approvals.ts';
import type { Decision, DecisionRequest } from '../shared/control-plane.ts';
import { isPgWardenError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';
import {
  alreadyUsedReason,
  cancelledReason,
  deniedReason,
  disconnectedReason,
  expiredReason,
  heldNotice,
  localDecideHint,
  timedOutReason,
  unreachableReason,
} from './approvals-messages.ts';
import type { HeldClient, StatementGate } from './statement-gate.ts';

/** Used until the policy sets them on the decision (shared/policy/model.ts has the same defaults). */
export const DEFAULT_APPROVERS = 'reviewers';
export const DEFAULT_HOLD_SECONDS = 300;

/** The approvals API as the gate uses it; a signal, when the client takes one, ends a request early. */
export interface ApprovalsApi extends Pick<ApprovalsPort, 'wait'> {
  request(request: CreateApprovalRequest, signal?: AbortSignal): Promise<ApprovalView>;
}

export interface ApprovalGateOptions {
  client: ApprovalsApi;
  /** a statement is released on this approval (the execution reporter follows it to its result) */
  onRelease?: (request: DecisionRequest, approval: ApprovalView) => void;
  logger?: Logger;
  /** the notice's hint on deciding without Slack; default: the local CLI command */
  decideHint?: (id: string) => string;
  /** caps every rule's hold (tests, or an operator who wants shorter holds); default: the rule's */
  maxHoldSeconds?: number;
  /** how long waits may keep failing (API briefly unreachable) before the hold fails closed */
  retryWindowMs?: number;
  retryDelayMs?: number;
  /** monotonic milliseconds */
  now?: () => number;
}

/**
 * A client that can end the hold: the relay's HeldClient may carry `signal`, aborted when the
 * connection closes (reason 'closed') or the client cancels the held statement with a CancelRequest
 * (reason 'cancelled'). Without it a hold runs until decided or timed out.
 */
type ClosableClient = HeldClient & { readonly signal?: AbortSignal };

/** ruleId of a hold the client cancelled (the relay answers it with 57014, query_canceled) */
export const CANCELLED_RULE_ID = 'client-cancelled';

/** Errors of a wait that may pass on their own; anything else ends the hold at once. */
const transientCodes = new Set(['CONTROL_PLANE_UNAVAILABLE', 'STORE_UNAVAILABLE', 'INTERNAL']);

export function createApprovalGate(options: ApprovalGateOptions): StatementGate {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? (() => performance.now());
  const decideHint = options.decideHint ?? localDecideHint;
  const retryWindowMs = options.retryWindowMs ?? 10_000;
  const retryDelayMs = options.retryDelayMs ?? 500;

  async function hold(
    request: DecisionRequest,
    decision: Decision,
    client: ClosableClient,
    params: ApprovalParams | undefined,
  ): Promise<Decision> {
    const signal = client.signal;
    const rule = {
      approvers: decision.approval?.approvers ?? DEFAULT_APPROVERS,
      timeoutSeconds: decision.approval?.timeoutSeconds ?? DEFAULT_HOLD_SECONDS,
    };
    const deny = (reason: string, ruleId = decision.ruleId): Decision => ({
      ...decision,
      action: 'deny',
      ruleId,
      reason,
    });
    /** The client cancelled or went away: a cancel leaves the approval open for a retry. */
    const gone = (approval: ApprovalView | undefined): Decision =>
      signal?.reason === 'cancelled'
        ? deny(cancelledReason(approval, decision), CANCELLED_RULE_ID)
        : deny(disconnectedReason(approval));
    const failClosed = (error: unknown, approvalId?: string): Decision => {
      logger.error('approvals API unavailable: statement refused', {
        error: String(error),
        approvalId,
        ruleId: decision.ruleId,
      });
      return deny(unreachableReason(decision), 'no-decision');
    };

    let approval: ApprovalView;
    try {
      approval = await options.client.request(
        {
          session: request.session,
          statement: {
            text: approvalText(request, decision),
            protocol: request.statement.protocol,
            ...(params && { params }),
          },
          decision: { ...decision, approval: rule },
        },
        signal,
      );
    } catch (error) {
      if (signal?.aborted) return gone(undefined);
      return failClosed(error);
    }
    if (approval.status === 'approved') {
      logger.info('statement runs on an earlier approval', { approvalId: approval.id });
      options.onRelease?.(request, approval);
      return released(decision, approval);
    }
    if (approval.status !== 'pending') return outcome(approval, rule, decision, deny);

    const holdSeconds = Math.min(
      approval.holdTimeoutSeconds || rule.timeoutSeconds,
      options.maxHoldSeconds ?? Number.POSITIVE_INFINITY,
    );
    const held = {
      approvers: approval.approvers.length > 0 ? approval.approvers.join('" or "') : rule.approvers,
      timeoutSeconds: holdSeconds,
    };
    client.notice(heldNotice(approval, held, decision, decideHint));
    logger.info('statement held for approval', {
      approvalId: approval.id,
      approvers: held.approvers,
      holdSeconds,
      principal: request.session.principal.name,
    });

    const deadline = now() + holdSeconds * 1000;
    let failingSince: number | undefined;
    while (approval.status === 'pending') {
      if (signal?.aborted) return gone(approval);
      const remaining = deadline - now();
      if (remaining <= 0) return deny(timedOutReason(approval, held));
      try {
        approval = await options.client.wait(approval.id, Math.min(remaining, MAX_WAIT_MS), signal);
        failingSince = undefined;
      } catch (error) {
        if (signal?.aborted) return gone(approval);
        const transient = !isPgWardenError(error) || transientCodes.has(error.code);
        failingSince ??= now();
        if (!transient || now() - failingSince >= retryWindowMs) return failClosed(error, approval.id);
        logger.warn('waiting for an approval failed; retrying', {
          approvalId: approval.id,
          error: String(error),
        });
        await delay(Math.min(retryDelayMs, Math.max(0, deadline - now())), signal);
      }
    }
    logger.info('approval hold ended', { approvalId: approval.id, status: approval.status });
    if (approval.status === 'approved') options.onRelease?.(request, approval);
    return outcome(approval, held, decision, deny);
  }

  return {
    admit(request, decision, client, params) {
      if (decision.action !== 'require_approval') return decision;
      return hold(request, decision, client, params);
    },
  };
}

function outcome(
  approval: ApprovalView,
  hold: { approvers: string; timeoutSeconds: number },
  decision: Decision,
  deny: (reason: string) => Decision,
): Decision {
  switch (approval.status) {
    case 'approved':
      return released(decision, approval);
    case 'denied':
      return deny(deniedReason(approval));
    case 'expired':
      return deny(expiredReason(approval));
    case 'consumed':
      return deny(alreadyUsedReason(approval));
    case 'pending':
      return deny(timedOutReason(approval, hold));
  }
}

/** The one execution the approval released: its records carry the approval's id. */
function released(decision: Decision, approval: ApprovalView): Decision {
  return {
    ...decision,
    action: 'allow',
    reason: `approved by ${approval.decidedBy ?? 'a reviewer'} (approval ${approval.id})`,
    approvalId: approval.id,
  };
}

/**
 * The text an approval shows and is bound to. SQL `EXECUTE name` runs what PREPAREd the name, not
 * its own text: the reviewer is shown every text that prepared each name it executes in this
 * session (the server runs one of them), and since the approval's hash covers them, an approval of
 * `EXECUTE name` cannot be used by a retry after the name was prepared again with other SQL.
 */
export function approvalText(request: DecisionRequest, decision: Decision): string {
  const { text, prepared } = request.statement;
  if (!decision.executes || decision.executes.length === 0 || !prepared) return text;
  const lines = [text];
  for (const name of decision.executes) {
    const texts = Object.hasOwn(prepared, name) ? (prepared[name] ?? []) : [];
    for (const body of texts) lines.push(`-- "${name}" was prepared in this session by:`, body);
  }
  return lines.join('\n');
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
