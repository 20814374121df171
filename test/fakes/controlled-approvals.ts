/**
 * A stand-in of the approvals API for wire tests: approvals stay pending until the test decides
 * them, and waits answer the moment it does. `answers` scripts the next requests instead (approved
 * or denied at once). Every request is kept, so a test can check what the reviewer was shown.
 */
import type { ApprovalsApi } from '../../proxy/approval-gate.ts';
import type { ApprovalView, CreateApprovalRequest } from '../../shared/approvals.ts';
import { waitFor } from '../fixtures/wait-for.ts';

export type ScriptedAnswer = 'approve' | 'deny' | 'pending';

export class ControlledApprovals implements ApprovalsApi {
  readonly requests: CreateApprovalRequest[] = [];
  readonly approvals = new Map<string, ApprovalView>();
  /** the signal of every wait, in order: aborted when the held client cancels or goes away */
  readonly waitSignals: Array<AbortSignal | undefined> = [];
  /** the answer to the next request, instead of a new pending approval */
  nextRequest: ApprovalView | Error | undefined;
  /** answers to the next requests, in order (after nextRequest); empty: pending */
  readonly answers: ScriptedAnswer[] = [];
  private readonly waiters = new Map<string, Array<() => void>>();

  async request(body: CreateApprovalRequest): Promise<ApprovalView> {
    this.requests.push(body);
    const scripted = this.nextRequest;
    this.nextRequest = undefined;
    if (scripted instanceof Error) throw scripted;
    if (scripted) return scripted;
    const id = `appr-${this.requests.length}`;
    const approval: ApprovalView = {
      id,
      status: 'pending',
      principal: body.session.principal.name,
      sessionId: body.session.sessionId,
      database: body.session.database,
      applicationName: body.session.applicationName,
      text: body.statement.text,
      fingerprint: body.decision.fingerprint ?? '',
      textHash: '',
      ...(body.statement.params && { paramsHash: body.statement.params.hash }),
      ruleId: body.decision.ruleId,
      reason: body.decision.reason ?? '',
      approvers: [body.decision.approval?.approvers ?? 'reviewers'],
      requestedAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      holdTimeoutSeconds: body.decision.approval?.timeoutSeconds ?? 300,
    };
    const answer = this.answers.shift() ?? 'pending';
    if (answer === 'approve') approval.status = 'approved';
    if (answer === 'deny') approval.status = 'denied';
    if (answer !== 'pending') approval.decidedBy = 'rita@example.com';
    this.approvals.set(id, approval);
    return approval;
  }

  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalView> {
    this.waitSignals.push(signal);
    return new Promise((resolve) => {
      const answer = () => {
        clearTimeout(timer);
        resolve(this.approvals.get(id)!);
      };
      const timer = setTimeout(answer, timeoutMs);
      signal?.addEventListener('abort', answer, { once: true });
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), answer]);
    });
  }

  /** a request body as the proxy sends it, for scripting answers */
  requestLike(text: string): CreateApprovalRequest {
    return {
      session: {
        sessionId: 'earlier',
        principal: {
          name: 'alice@example.com',
          issuer: 'https://issuer.example',
          subject: 'alice@example.com',
          groups: ['engineering'],
          actor: 'person',
        },
        role: 'developer',
        roles: ['developer'],
        database: 'app',
        applicationName: 'psql',
      },
      statement: { text, protocol: 'simple' },
      decision: { action: 'require_approval', ruleId: 'approve-writes-without-where', policyVersion: 'v' },
    };
  }

  decide(id: string, change: Partial<ApprovalView>): void {
    this.approvals.set(id, { ...this.approvals.get(id)!, ...change });
    for (const wake of this.waiters.get(id) ?? []) wake();
    this.waiters.delete(id);
  }

  /** the id of the n-th approval asked for, once the proxy has asked */
  async held(n: number): Promise<string> {
    await waitFor(() => this.requests.length >= n, 10_000);
    return `appr-${n}`;
  }
}
