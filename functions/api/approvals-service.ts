/**
 * The approvals use cases: ask (or use an earlier approval of the same statement), wait, list,
 * decide, report the outcome. The HTTP routes, the Slack route and local mode's proxy all call one
 * instance, so a decision wakes the proxy's wait in the same process at once; waits served by other
 * processes (other Lambda instances) re-read the record at most every WAIT_RECHECK_MS.
 *
 * Every step is written to the audit trail; after every change the notifier is told (SQS) so the
 * Slack message shows the current state. Losing a notification never allows a statement, so a
 * queue failure is logged, not thrown.
 */

import type { ApprovalQueue, ApprovalStore } from '../../shared/approvals/ports.ts';
import {
  type ApprovalDecider,
  type ApprovalExecutionReport,
  type ApprovalsPort,
  type ApprovalView,
  type ApprovalWindows,
  approvalRetryKey,
  asOf,
  type CreateApprovalRequest,
  consumeApproval,
  DEFAULT_APPROVAL_WINDOWS,
  decideApproval,
  decisionRefusal,
  effectiveStatus,
  MAX_WAIT_MS,
  newApproval,
  type Verdict,
  WAIT_RECHECK_MS,
} from '../../shared/approvals.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { ApprovalEvent } from '../../shared/events.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import type { AuditStore } from '../../shared/ports.ts';

export interface ApprovalsServiceDeps {
  store: ApprovalStore;
  /** the audit trail (every step is recorded) */
  audit: AuditStore;
  /** absent: nothing is posted to Slack (decisions still work through the API and CLI) */
  queue?: ApprovalQueue;
  /** who may decide when the rule names no approver group (PGWARDEN_REVIEWER_GROUPS) */
  defaultApprovers: readonly string[];
  windows?: ApprovalWindows;
  now: () => Date;
  newId: () => string;
  logger?: Logger;
  /** cross-process re-read interval of a wait; default WAIT_RECHECK_MS */
  recheckMs?: number;
  /** which component records the steps this instance takes on its own (expiry); default 'api' */
  via?: 'api' | 'notifier';
}

export interface ApprovalsService extends ApprovalsPort {
  /** NOT_FOUND when there is no such approval; the status as of now */
  get(id: string): Promise<ApprovalView>;
  listPending(limit?: number): Promise<ApprovalView[]>;
  decide(id: string, who: ApprovalDecider, verdict: Verdict): Promise<ApprovalView>;
  /** Why `who` may not decide `id` now (undefined: they may); for Slack's deny dialog. */
  refusal(id: string, who: ApprovalDecider): Promise<string | undefined>;
  /** Marks a lapsed approval expired (and tells Slack); returns the current state. */
  settle(approval: ApprovalView): Promise<ApprovalView>;
  /** Records an attempt to decide that failed before the rules could apply (e.g. an unknown Slack user). */
  recordRefusal(id: string, by: string, via: ApprovalDecider['via'], reason: string): Promise<void>;
}

export function createApprovalsService(deps: ApprovalsServiceDeps): ApprovalsService {
  const logger = deps.logger ?? silentLogger;
  const windows = deps.windows ?? DEFAULT_APPROVAL_WINDOWS;
  const recheckMs = deps.recheckMs ?? WAIT_RECHECK_MS;
  const waiters = new Map<string, Set<() => void>>();
  /**
   * Per approval with a wait in progress: how many changes this process made. A change between a
   * wait's read and its sleep would otherwise go unnoticed until the next re-read.
   */
  const changes = new Map<string, { waits: number; count: number }>();

  function wake(id: string): void {
    const tracked = changes.get(id);
    if (tracked !== undefined) tracked.count += 1;
    const set = waiters.get(id);
    if (set === undefined) return;
    waiters.delete(id);
    for (const resolve of set) resolve();
  }

  /** Resolves when `id` changes in this process, after `ms`, or when `signal` aborts. */
  function changeOrTimeout(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = waiters.get(id);
      if (set === undefined) {
        set = new Set();
        waiters.set(id, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const current = waiters.get(id);
        current?.delete(done);
        if (current?.size === 0) waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }

  /** `by`: a display name for pgwarden's own steps, or the person who took the step */
  async function record(
    approval: ApprovalView,
    step: ApprovalEvent['step'],
    by: string | ApprovalDecider,
    via: ApprovalEvent['via'],
    message: string,
    reason?: string,
  ): Promise<void> {
    const event: ApprovalEvent = {
      type: 'approval',
      eventId: deps.newId(),
      at: deps.now().toISOString(),
      approvalId: approval.id,
      step,
      sessionId: approval.sessionId,
      principal: approval.principal,
      ...(approval.requesterIssuer === undefined ? {} : { issuer: approval.requesterIssuer }),
      ...(approval.requesterSubject === undefined ? {} : { subject: approval.requesterSubject }),
      ...(typeof by === 'string' ? { by } : { by: by.name, byIssuer: by.issuer, bySubject: by.subject }),
      via,
      database: approval.database,
      ruleId: approval.ruleId,
      fingerprint: approval.fingerprint,
      textHash: approval.textHash,
      ...(approval.paramsHash === undefined ? {} : { paramsHash: approval.paramsHash }),
      ...(reason === undefined ? {} : { reason }),
      message,
    };
    try {
      await deps.audit.put([event]);
    } catch (error) {
      // The state change already happened; the lost record is an operator's problem, loudly.
      logger.error('could not record an approval step in the audit trail', {
        approvalId: approval.id,
        step,
        error: String(error),
      });
    }
  }

  async function notify(id: string): Promise<void> {
    if (deps.queue === undefined) return;
    try {
      await deps.queue.enqueue({ approvalId: id });
    } catch (error) {
      logger.error('could not queue the Slack notification of an approval', {
        approvalId: id,
        error: String(error),
      });
    }
  }

  async function load(id: string): Promise<ApprovalView> {
    const approval = await deps.store.get(id);
    if (approval === undefined) throw new PgWardenError('NOT_FOUND', `there is no approval ${id}`);
    return approval;
  }

  async function settle(approval: ApprovalView): Promise<ApprovalView> {
    const now = deps.now();
    if (effectiveStatus(approval, now) !== 'expired' || approval.status === 'expired') return approval;
    const won = await deps.store.transition(approval.id, approval.status, { status: 'expired' });
    if (!won) return asOf(await load(approval.id), now);
    const expired: ApprovalView = { ...approval, status: 'expired' };
    const what =
      approval.status === 'approved' ? 'was approved but not used in time' : 'was not decided in time';
    await record(
      expired,
      'expired',
      'pgwarden',
      deps.via ?? 'api',
      `approval ${approval.id} expired: it ${what}`,
    );
    wake(approval.id);
    await notify(approval.id);
    return expired;
  }

  /**
   * Takes the one use of an approved approval. The returned view says 'approved' (the caller may
   * run the statement now); undefined when someone else took it or it lapsed.
   */
  async function consume(
    approval: ApprovalView,
    via: ApprovalEvent['via'],
  ): Promise<ApprovalView | undefined> {
    const now = deps.now();
    const consumed = consumeApproval(approval, now);
    if (consumed === undefined) return undefined;
    const won = await deps.store.transition(
      approval.id,
      'approved',
      { status: 'consumed', consumedAt: consumed.consumedAt },
      { unexpiredAt: now },
    );
    if (!won) return undefined;
    await record(
      consumed,
      'consumed',
      approval.principal,
      via,
      `approval ${approval.id} used: the statement was released`,
    );
    wake(approval.id);
    await notify(approval.id);
    return { ...consumed, status: 'approved' };
  }

  async function request(input: CreateApprovalRequest): Promise<ApprovalView> {
    const now = deps.now();
    const candidate = newApproval(input, {
      id: deps.newId(),
      now,
      defaultApprovers: deps.defaultApprovers,
      windows,
    });
    const earlier = await deps.store.findByRetryKey(approvalRetryKey(candidate));
    for (const found of earlier) {
      const current = await settle(found);
      if (current.status === 'approved') {
        const used = await consume(current, 'proxy');
        if (used !== undefined) return used;
      }
    }
    for (const found of earlier) {
      // A retry while the first request is still undecided waits on that one: one Slack message.
      const current = asOf(found, deps.now());
      if (current.status === 'pending') {
        await record(
          current,
          'reused',
          current.principal,
          'proxy',
          `approval ${current.id} asked for again by a retry`,
        );
        return current;
      }
    }
    await deps.store.create(candidate);
    await record(
      candidate,
      'requested',
      candidate.principal,
      'proxy',
      `${candidate.principal} asked to run a statement on ${candidate.database} (rule ${candidate.ruleId})`,
    );
    await notify(candidate.id);
    return candidate;
  }

  async function wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalView> {
    const budget = Math.max(0, Math.min(Number.isFinite(timeoutMs) ? timeoutMs : 0, MAX_WAIT_MS));
    const deadline = performance.now() + budget;
    const tracked = changes.get(id) ?? { waits: 0, count: 0 };
    changes.set(id, tracked);
    tracked.waits += 1;
    try {
      for (;;) {
        const seen = tracked.count;
        const current = await settle(await load(id));
        if (current.status === 'approved' && !signal?.aborted) {
          const used = await consume(current, 'proxy');
          if (used !== undefined) return used;
          continue; // someone else used it, or it lapsed: report what the record says now
        }
        if (current.status !== 'pending') return current;
        const remaining = deadline - performance.now();
        if (remaining <= 0 || signal?.aborted) return current;
        if (tracked.count === seen) await changeOrTimeout(id, Math.min(recheckMs, remaining), signal);
      }
    } finally {
      tracked.waits -= 1;
      if (tracked.waits === 0) changes.delete(id);
    }
  }

  async function decide(id: string, who: ApprovalDecider, verdict: Verdict): Promise<ApprovalView> {
    const current = await settle(await load(id));
    const now = deps.now();
    let decided: ApprovalView;
    try {
      decided = decideApproval(current, who, verdict, now, windows);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await record(
        current,
        'refused',
        who,
        who.via,
        `${who.name} could not ${verdict.verdict}: ${message}`,
        message,
      );
      throw error;
    }
    const won = await deps.store.transition(
      id,
      'pending',
      {
        status: decided.status,
        expiresAt: decided.expiresAt,
        decidedBy: decided.decidedBy,
        decidedByIssuer: decided.decidedByIssuer,
        decidedBySubject: decided.decidedBySubject,
        decidedAt: decided.decidedAt,
        decidedVia: decided.decidedVia,
        ...(decided.denyReason === undefined ? {} : { denyReason: decided.denyReason }),
      },
      { unexpiredAt: now },
    );
    if (!won) {
      // Someone decided first, or the deadline passed between the read and the write.
      const latest = await settle(await load(id));
      const refusal = decisionRefusal(latest, who, deps.now()) ?? `approval ${id} changed; try again`;
      await record(
        latest,
        'refused',
        who,
        who.via,
        `${who.name} could not ${verdict.verdict}: ${refusal}`,
        refusal,
      );
      throw new PgWardenError('FORBIDDEN', refusal);
    }
    const verb = decided.status === 'approved' ? 'approved' : 'denied';
    const because = decided.denyReason ? `: ${decided.denyReason}` : '';
    await record(
      decided,
      verb,
      who,
      who.via,
      `${who.name} ${verb} ${decided.principal}'s statement on ${decided.database}${because}`,
      decided.denyReason,
    );
    wake(id);
    await notify(id);
    return decided;
  }

  return {
    request,
    wait,
    decide,
    settle,
    async get(id) {
      return settle(await load(id));
    },
    async listPending(limit = 100) {
      const stored = await deps.store.listByStatus('pending', limit);
      const settled = await Promise.all(stored.map(settle));
      return settled.filter((approval) => approval.status === 'pending');
    },
    async recordRefusal(id, by, via, reason) {
      const approval = await deps.store.get(id);
      if (approval !== undefined)
        await record(approval, 'refused', by, via, `${by} could not decide: ${reason}`, reason);
    },
    async refusal(id, who) {
      return decisionRefusal(await settle(await load(id)), who, deps.now());
    },
    async reportExecution(id: string, report: ApprovalExecutionReport) {
      const approval = await load(id);
      const execution = { ...report, at: deps.now().toISOString() };
      if (!(await deps.store.setExecution(id, execution))) {
        throw new PgWardenError(
          'BAD_REQUEST',
          `approval ${id} is ${approval.status}, not consumed: nothing ran under it`,
        );
      }
      const outcome =
        report.error === undefined
          ? `${report.commandTag ?? 'done'}${report.rows === undefined ? '' : ` (${report.rows} rows)`}`
          : `failed: ${report.error}`;
      const updated: ApprovalView = { ...approval, execution };
      await record(
        updated,
        'executed',
        approval.principal,
        'proxy',
        `the approved statement ran: ${outcome}`,
      );
      await notify(id);
      return updated;
    },
  };
}
