/**
 * One statement on its way through the proxy: what was asked, what was decided, and what the
 * server answered. Becomes one audit record, written twice under the same key: as an intent
 * (outcome 'pending') before the statement is forwarded, and complete when it ends.
 */
import { cappedText, MAX_MESSAGE_BYTES, MAX_TEXT_BYTES, sha256Hex } from '../shared/audit-chain.ts';
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
  | 'errorMessageBytes'
  | 'errorMessageTruncated'
  | 'bytesToClient'
  | 'cancelled'
  | 'masked'
  | 'detected';
type ChainField = 'headHash' | 'chainIndex' | 'prevHash' | 'recordHash';
type StatementHead = Omit<StatementEvent, TailField | ChainField>;
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
  /** SHA-256 of the head (shared/audit-chain.ts), computed with headJson */
  private headHash = '';
  /** the record of intent was produced: the audit sink counts it as in flight until completion */
  private intentWritten = false;
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
   * serialized and hashed here, once; the completed record reuses them (completedRecord).
   */
  intentRecord(who: RunIdentity): SpoolRecord {
    this.intentWritten = true;
    return this.record(who, JSON.stringify(this.tail('pending', 0)), false);
  }

  /**
   * The completed record, serialized: the intent's fixed part plus what the statement did. Its
   * chain link (chainIndex, prevHash, recordHash) is added by the audit sink, which knows the
   * session's previous link (proxy/audit-chain-state.ts).
   */
  completedRecord(who: RunIdentity): SpoolRecord {
    return this.record(who, JSON.stringify(this.tail(this.outcome(), this.elapsedMs())), true);
  }

  private record(who: RunIdentity, tailJson: string, completed: boolean): SpoolRecord {
    // head: `{...fixed fields` without the closing brace; tail: `{...}` whose brace is replaced by a
    // comma. Both are serialized with their keys in sorted order, so they are the canonical form
    // the chain hashes (shared/audit-chain.ts) without a second serialization.
    if (this.headJson === undefined) {
      const json = JSON.stringify(this.head(who));
      this.headHash = sha256Hex(json);
      this.headJson = json.slice(0, -1);
    }
    const sessionId = who.session.sessionId;
    return {
      type: 'statement',
      key: statementKey(sessionId, this.seq),
      line: `${this.headJson},"headHash":"${this.headHash}",${tailJson.slice(1)}`,
      chain: completed
        ? { sessionId, headHash: this.headHash, tail: tailJson, afterIntent: this.intentWritten }
        : { sessionId, headHash: this.headHash },
    };
  }

  /**
   * The head with the tail's fields added in place: spreading both into a new literal
   * (`{ ...head, ...tail }`) made V8 fall back to a dictionary, 19 µs per event instead of 0.5.
   */
  private event(who: RunIdentity, outcome: StatementOutcome, durationMs: number): StatementEvent {
    const head = this.head(who);
    // Without a spool there is no chain and the store computes headHash from the record itself
    // (dynamodb-audit-store.ts): hashing it here too cost a serialization and a SHA-256 per statement.
    if (this.headJson === undefined) return Object.assign(head, this.tail(outcome, durationMs));
    return Object.assign(head, { headHash: this.headHash }, this.tail(outcome, durationMs));
  }

  /**
   * What the intent and the completed record share: known before the statement is forwarded. The
   * keys are in sorted order (canonical JSON, see record()); test/proxy/statement-run.test.ts checks it.
   */
  private head(who: RunIdentity): StatementHead {
    const { session } = who;
    const decision = this.decision;
    const params = this.params;
    const text = cappedText('text', this.text, MAX_TEXT_BYTES);
    return {
      actor: session.principal.actor,
      applicationName: session.applicationName,
      approvalId: decision.approvalId,
      database: session.database,
      decision: decision.action,
      eventId: this.eventId,
      fingerprint: decision.fingerprint,
      issuer: session.principal.issuer,
      kinds: decision.kinds,
      paramFormats: params?.formats,
      params: params?.values,
      paramsMode: params?.mode,
      policyVersion: decision.policyVersion || undefined,
      portalName: this.portalName,
      preparedName: this.preparedName,
      principal: session.principal.name,
      protocol: this.protocol,
      ruleId: decision.ruleId,
      seq: this.seq,
      sessionId: session.sessionId,
      startedAt: this.startedAtIso(),
      subject: session.principal.subject,
      text: text['text'] as string,
      textBytes: text['textBytes'] as number | undefined,
      textTruncated: text['textTruncated'] as true | undefined,
      type: 'statement',
      upstreamUser: who.upstreamUser,
    };
  }

  /** What the statement did (nothing yet in the intent). Always has outcome and durationMs; keys sorted. */
  private tail(outcome: StatementOutcome, durationMs: number): StatementTail {
    const pending = outcome === 'pending';
    const message =
      pending || this.errorMessage === undefined
        ? undefined
        : cappedText('errorMessage', this.errorMessage, MAX_MESSAGE_BYTES);
    return {
      bytesToClient: pending ? undefined : this.bytesToClient,
      cancelled: this.cancelled || undefined,
      commandTag: pending ? undefined : this.commandTag,
      detected: pending || this.detected === undefined ? undefined : this.detected.map(sortedHit),
      durationMs,
      errorMessage: message?.['errorMessage'] as string | undefined,
      errorMessageBytes: message?.['errorMessageBytes'] as number | undefined,
      errorMessageTruncated: message?.['errorMessageTruncated'] as true | undefined,
      masked: pending || this.masked === undefined ? undefined : this.masked.map(sortedMask),
      outcome,
      rows: pending ? undefined : this.rows,
      sqlstate: pending ? undefined : this.sqlstate,
    };
  }
}

/** The record's nested objects in canonical (sorted) key order. */
function sortedMask(m: MaskedColumnRecord): MaskedColumnRecord {
  return { column: m.column, method: m.method, note: m.note, ruleId: m.ruleId, values: m.values };
}

function sortedHit(d: DetectorHitRecord): DetectorHitRecord {
  return { detector: d.detector, values: d.values, where: d.where };
}
