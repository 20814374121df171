/**
 * One statement on its way through the proxy: what was asked, what was decided, and what the
 * server answered. Becomes one audit record, written twice under the same key: as an intent
 * (outcome 'pending') before the statement is forwarded, and complete when it ends.
 */
import type { Decision, SessionContext, StatementProtocol } from '../shared/control-plane.ts';
import type {
  DetectorHitRecord,
  MaskedColumnRecord,
  StatementEvent,
  StatementOutcome,
} from '../shared/events.ts';
import type { CapturedParams } from './audit-params.ts';
import { type SpoolRecord, statementKey } from './audit-record.ts';
import { isoTime } from './iso-time.ts';

type TailField =
  | 'outcome'
  | 'durationMs'
  | 'commandTag'
  | 'rows'
  | 'sqlstate'
  | 'errorMessage'
  | 'bytesToClient'
  | 'cancelled'
  | 'masked'
  | 'detected';
type StatementHead = Omit<StatementEvent, TailField>;
type StatementTail = Pick<StatementEvent, TailField> & { outcome: StatementOutcome; durationMs: number };

/** Who the records are about, beyond the decision context: fixed for the session. */
export interface RunIdentity {
  session: SessionContext;
  upstreamUser?: string;
}

export class StatementRun {
  /** one clock read per statement: wall time is derived from the monotonic start */
  private readonly startedHr = performance.now();
  private startedAt: string | undefined;
  /** the serialized head (see record()), kept from the intent for the completed record */
  private headJson: string | undefined;
  commandTag: string | undefined;
  rows: number | undefined;
  sqlstate: string | undefined;
  errorMessage: string | undefined;
  /** assigned by the relay when the statement starts, so intent and final record share the key */
  seq = 0;
  eventId = '';
  portalName: string | undefined;
  params: CapturedParams | undefined;
  bytesToClient: number | undefined;
  masked: MaskedColumnRecord[] | undefined;
  detected: DetectorHitRecord[] | undefined;
  cancelled = false;
  /** refused by pgwarden itself after an allow (the audit record could not be written) */
  refusedByAudit = false;
  /** session cancel counter when the statement started: a later value means it was cancelled */
  cancelsAtStart = 0;
  /** called by the relay when the statement has ended (an approved portal's execution follows it) */
  onFinish: ((run: StatementRun) => void) | undefined;

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

  /** Adds one result's masking counts (a statement may return several results). */
  recordMasking(masked: readonly MaskedColumnRecord[], detected: readonly DetectorHitRecord[]): void {
    for (const m of masked) {
      this.masked ??= [];
      const same = this.masked.find(
        (x) => x.column === m.column && x.ruleId === m.ruleId && x.method === m.method,
      );
      if (same) same.values += m.values;
      else this.masked.push({ ...m });
    }
    for (const d of detected) {
      this.detected ??= [];
      const same = this.detected.find((x) => x.detector === d.detector && x.where === d.where);
      if (same) same.values += d.values;
      else this.detected.push({ ...d });
    }
  }

  failed(sqlstate: string | undefined, message: string | undefined): void {
    // The first error is the one that matters: later ones are consequences.
    if (this.sqlstate !== undefined) return;
    this.sqlstate = sqlstate;
    this.errorMessage = message;
  }

  private outcome(): StatementOutcome {
    if (this.decision.action !== 'allow' || this.refusedByAudit) return 'refused';
    return this.sqlstate !== undefined || this.errorMessage !== undefined ? 'error' : 'ok';
  }

  /** The completed record as an object, for sinks without a spool (the intent is spool-only). */
  toEvent(who: RunIdentity): StatementEvent {
    return this.event(who, this.outcome(), this.elapsedMs());
  }

  /** milliseconds since the statement started, to the microsecond */
  private elapsedMs(): number {
    return Math.round((performance.now() - this.startedHr) * 1000) / 1000;
  }

  /** the intent and the final record carry the same start time: formatted once */
  private startedAtIso(): string {
    this.startedAt ??= isoTime(performance.timeOrigin + this.startedHr);
    return this.startedAt;
  }

  /**
   * The record of intent, serialized for the spool. The fields fixed once the statement starts are
   * serialized here, once; the completed record reuses them (completedRecord).
   */
  intentRecord(who: RunIdentity): SpoolRecord {
    return this.record(who, this.tail('pending', 0));
  }

  /** The completed record, serialized: the intent's fixed part plus what the statement did. */
  completedRecord(who: RunIdentity): SpoolRecord {
    return this.record(who, this.tail(this.outcome(), this.elapsedMs()));
  }

  private record(who: RunIdentity, tail: StatementTail): SpoolRecord {
    // head: `{...fixed fields` without the closing brace; tail: `{...}` whose brace is replaced by a comma
    this.headJson ??= JSON.stringify(this.head(who)).slice(0, -1);
    return {
      type: 'statement',
      key: statementKey(who.session.sessionId, this.seq),
      line: `${this.headJson},${JSON.stringify(tail).slice(1)}`,
    };
  }

  /**
   * The head with the tail's fields added in place: spreading both into a new literal
   * (`{ ...head, ...tail }`) made V8 fall back to a dictionary, 19 µs per event instead of 0.5.
   */
  private event(who: RunIdentity, outcome: StatementOutcome, durationMs: number): StatementEvent {
    return Object.assign(this.head(who), this.tail(outcome, durationMs));
  }

  /** What the intent and the completed record share: known before the statement is forwarded. */
  private head(who: RunIdentity): StatementHead {
    const { session } = who;
    const decision = this.decision;
    const params = this.params;
    return {
      type: 'statement',
      eventId: this.eventId,
      sessionId: session.sessionId,
      seq: this.seq,
      principal: session.principal.name,
      issuer: session.principal.issuer,
      subject: session.principal.subject,
      actor: session.principal.actor,
      database: session.database,
      applicationName: session.applicationName,
      upstreamUser: who.upstreamUser,
      text: this.text,
      protocol: this.protocol,
      preparedName: this.preparedName,
      portalName: this.portalName,
      approvalId: decision.approvalId,
      params: params?.values,
      paramsMode: params?.mode,
      paramFormats: params?.formats,
      decision: decision.action,
      ruleId: decision.ruleId,
      policyVersion: decision.policyVersion || undefined,
      fingerprint: decision.fingerprint,
      kinds: decision.kinds,
      startedAt: this.startedAtIso(),
    };
  }

  /** What the statement did (nothing yet in the intent). Always has outcome and durationMs. */
  private tail(outcome: StatementOutcome, durationMs: number): StatementTail {
    const pending = outcome === 'pending';
    return {
      outcome,
      durationMs,
      commandTag: pending ? undefined : this.commandTag,
      rows: pending ? undefined : this.rows,
      sqlstate: pending ? undefined : this.sqlstate,
      errorMessage: pending ? undefined : this.errorMessage,
      bytesToClient: pending ? undefined : this.bytesToClient,
      cancelled: this.cancelled || undefined,
      masked: pending ? undefined : this.masked,
      detected: pending ? undefined : this.detected,
    };
  }
}
