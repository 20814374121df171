/**
 * Tells the approvals API how a released statement ended ("executed: DELETE 3" in Slack). The gate
 * only knows that it let the statement go; its result reaches the audit trail later as a statement
 * event, which carries the approval's id. So the gate notes each release and the control plane's
 * ingest is watched for the first completed statement event of that approval (a portal resumed
 * after PortalSuspended has more), which is then reported. Best effort and off the statement
 * path: a report that fails is logged, never retried into the session.
 */
import type { ApprovalsPort, ApprovalView } from '../shared/approvals.ts';
import type { ControlPlane, DecisionRequest } from '../shared/control-plane.ts';
import type { AuditEvent, SerializedAuditEvent, StatementEvent } from '../shared/events.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';

/** Releases waiting for their statement event; a bound so sessions that never report cannot grow it. */
const MAX_PENDING = 10_000;

export class ApprovedRunReporter {
  /** approvals released whose statement has not been seen completed yet */
  private readonly pending = new Set<string>();

  constructor(
    private readonly port: Pick<ApprovalsPort, 'reportExecution'>,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** For the gate's `onRelease`. */
  readonly released = (_request: DecisionRequest, approval: ApprovalView): void => {
    if (this.pending.size >= MAX_PENDING) this.pending.clear();
    this.pending.add(approval.id);
  };

  /** The control plane with ingest watched for released statements' events. */
  watch(controlPlane: ControlPlane): ControlPlane {
    return {
      openSession: (request) => controlPlane.openSession(request),
      ...(controlPlane.checkSession && { checkSession: controlPlane.checkSession.bind(controlPlane) }),
      decide: (request) => controlPlane.decide(request),
      ...(controlPlane.currentPolicyVersion && {
        currentPolicyVersion: controlPlane.currentPolicyVersion.bind(controlPlane),
      }),
      ingest: async (events) => {
        await controlPlane.ingest(events);
        if (this.pending.size > 0) this.reportFrom(events);
      },
      ...(controlPlane.ingestSerialized && {
        ingestSerialized: async (events: readonly SerializedAuditEvent[]) => {
          await controlPlane.ingestSerialized!(events);
          // parsed only while a released statement awaits its result
          if (this.pending.size > 0)
            this.reportFrom(
              events.filter((e) => e.type === 'statement').map((e) => JSON.parse(e.line) as AuditEvent),
            );
        },
      }),
    };
  }

  private reportFrom(events: AuditEvent[]): void {
    for (const event of events) {
      // the record of intent comes first (outcome 'pending'); the result is in the final record
      if (event.type !== 'statement' || event.decision !== 'allow' || event.outcome === 'pending') continue;
      const id = event.approvalId;
      if (id === undefined || !this.pending.delete(id)) continue;
      this.port.reportExecution(id, report(event)).catch((error: unknown) => {
        this.logger.warn('could not report an approved statement’s result', {
          approvalId: id,
          error: String(error),
        });
      });
    }
  }
}

function report(event: StatementEvent) {
  return {
    ...(event.commandTag === undefined ? {} : { commandTag: event.commandTag }),
    ...(event.rows === undefined ? {} : { rows: event.rows }),
    ...(event.errorMessage === undefined
      ? {}
      : { error: `${event.sqlstate ? `${event.sqlstate}: ` : ''}${event.errorMessage}` }),
  };
}
