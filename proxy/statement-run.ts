/**
 * One statement on its way through the proxy: what was asked, what was decided, and what the
 * server answered. Becomes exactly one audit event when it ends.
 */
import type { Decision, SessionContext, StatementProtocol } from '../shared/control-plane.ts';
import type { StatementEvent } from '../shared/events.ts';

export class StatementRun {
  /** one clock read per statement: wall time is derived from the monotonic start */
  private readonly startedHr = performance.now();
  commandTag: string | undefined;
  rows: number | undefined;
  sqlstate: string | undefined;
  errorMessage: string | undefined;

  constructor(
    readonly text: string,
    readonly protocol: StatementProtocol,
    readonly decision: Decision,
    readonly preparedName?: string,
  ) {}

  completed(tag: string, rows: number | undefined): void {
    this.commandTag = tag;
    if (rows !== undefined) this.rows = (this.rows ?? 0) + rows;
  }

  failed(sqlstate: string | undefined, message: string | undefined): void {
    // The first error is the one that matters: later ones are consequences.
    if (this.sqlstate !== undefined) return;
    this.sqlstate = sqlstate;
    this.errorMessage = message;
  }

  toEvent(session: SessionContext, seq: number, eventId: string): StatementEvent {
    return {
      type: 'statement',
      eventId,
      sessionId: session.sessionId,
      seq,
      principal: session.principal.name,
      database: session.database,
      applicationName: session.applicationName,
      text: this.text,
      protocol: this.protocol,
      preparedName: this.preparedName,
      decision: this.decision.action,
      ruleId: this.decision.ruleId,
      startedAt: new Date(performance.timeOrigin + this.startedHr).toISOString(),
      durationMs: Math.round((performance.now() - this.startedHr) * 1000) / 1000,
      commandTag: this.commandTag,
      rows: this.rows,
      sqlstate: this.sqlstate,
      errorMessage: this.errorMessage,
    };
  }
}
