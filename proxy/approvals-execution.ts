/**
 * Tells the approvals API how a released statement ended ("executed: DELETE 3" in Slack). The gate
 * only knows that it let the statement go; its result reaches the audit trail later as a statement
 * event. So the gate notes each release (session + exact text → approval id) and the control
 * plane's ingest is watched for the matching statement event, which is then reported. Best effort
 * and off the statement path: a report that fails is logged, never retried into the session.
 */
import type { ApprovalsPort, ApprovalView } from '../shared/approvals.ts';
import type { ControlPlane, DecisionRequest } from '../shared/control-plane.ts';
import type { AuditEvent, SerializedAuditEvent, StatementEvent } from '../shared/events.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';

/** Releases waiting for their statement event; a bound so sessions that never report cannot grow it. */
const MAX_PENDING = 10_000;

export class ApprovedRunReporter {
  /** `${sessionId}\0${text}` → approval ids in release order */
  private readonly pending = new Map<string, string[]>();
  private size = 0;

  constructor(
    private readonly port: Pick<ApprovalsPort, 'reportExecution'>,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** For the gate's `onRelease`. */
  readonly released = (request: DecisionRequest, approval: ApprovalView): void => {
    if (this.size >= MAX_PENDING) {
      this.pending.clear();
      this.size = 0;
    }
    const key = keyOf(request.session.sessionId, request.statement.text);
    const ids = this.pending.get(key);
    if (ids) ids.push(approval.id);
    else this.pending.set(key, [approval.id]);
    this.size++;
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
        if (this.size > 0) this.reportFrom(events);
      },
      ...(controlPlane.ingestSerialized && {
        ingestSerialized: async (events: readonly SerializedAuditEvent[]) => {
          await controlPlane.ingestSerialized!(events);
          // parsed only while a released statement awaits its result
          if (this.size > 0)
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
      const id = this.take(keyOf(event.sessionId, event.text));
      if (id === undefined) continue;
      this.port.reportExecution(id, report(event)).catch((error: unknown) => {
        this.logger.warn('could not report an approved statement’s result', {
          approvalId: id,
          error: String(error),
        });
      });
    }
  }

  private take(key: string): string | undefined {
    const ids = this.pending.get(key);
    if (!ids) return undefined;
    const id = ids.shift();
    if (ids.length === 0) this.pending.delete(key);
    this.size--;
    return id;
  }
}

function keyOf(sessionId: string, text: string): string {
  return `${sessionId}\u0000${text}`;
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
