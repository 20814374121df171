/**
 * The forwarding phase of a session: client messages go upstream once the control plane has
 * decided them; server messages stream back while the proxy follows the conversation closely
 * enough to know when each statement ends and how (tag, rows, error) for the audit trail.
 *
 * Hot path: a chunk of whole, allowed messages is written upstream as the same bytes; server
 * chunks are forwarded as received unless the proxy must insert its own reply between them.
 *
 * Masking (proxy/masking/): once a decision carries masks or detectors, every RowDescription is
 * read and its columns named through the catalog (reads wait, upstream paused, while it is being
 * read); a result with columns to mask or scan has its DataRows collected one at a time, held back
 * while incomplete, and rewritten; every other row still goes out inside the chunk it came in.
 */

import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { unshownParams } from '../shared/approvals/params.ts';
import type { ControlPlane, Decision, DecisionRequest, SessionContext } from '../shared/control-plane.ts';
import type { AuditEvent, SessionEndReason } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { heldBindParams } from './approval-params.ts';
import { endsWithAdminTermination } from './audit-end-reason.ts';
import { type AuditParamsMode, captureBindParams } from './audit-params.ts';
import type { SpoolRecord } from './audit-record.ts';
import { AuditUnavailable } from './audit-unavailable.ts';
import { type DescribeTarget, type Expectation, ExpectationQueue } from './expectations.ts';
import { type ChannelScan, scanCopyData, scanFields, scanNotification } from './masking/channels.ts';
import { countHit, type DetectorCount, type RowPlan } from './masking/mask-plan.ts';
import { parseRowDescription, type ResultColumn } from './masking/row-description.ts';
import type { BoundPortal, SessionMasking } from './masking/session-masking.ts';
import { defaultLimits, type ProxyLimits } from './options.ts';
import { OutputBatcher } from './output-batcher.ts';
import { PipelineGuard } from './pipeline-guard.ts';
import { PreparedMemory } from './prepared-memory.ts';
import {
  dropEndedPortals,
  type Portal,
  type PreparedStatement,
  type Settling,
  settle,
  sqlPrepared,
  whenSettled,
} from './session-objects.ts';
import { pinBreach } from './session-pins.ts';
import type { HeldClient, StatementGate } from './statement-gate.ts';
import { type RunIdentity, StatementRun } from './statement-run.ts';
import { parseCommandComplete, parseErrorFields } from './wire/backend-fields.ts';
import { BackendScanner } from './wire/backend-scanner.ts';
import {
  errorResponse,
  type NoticeFields,
  noticeResponse,
  readyForQuery,
  type TransactionStatus,
} from './wire/backend-writer.ts';
import { StatementTextRefused } from './wire/client-text.ts';
import { type Frame, FrameReader } from './wire/frame-reader.ts';
import {
  parseBind,
  parseExecute,
  parseParamTypes,
  parseParse,
  parseQuery,
  parseTarget,
} from './wire/frontend-fields.ts';
import { ProtocolViolation } from './wire/protocol-violation.ts';

export interface AuditSink {
  record(event: AuditEvent): void;
  /**
   * Sinks that keep statement records durably (the spool, proxy/audit-trail.ts) take them
   * serialized, each statement's fixed fields once. begin(): the record of intent, before the
   * statement is forwarded; it returns a promise when the relay must wait (durable spool write,
   * strict store) and throws or rejects when the record cannot be kept: the statement is then
   * refused, never run unrecorded. Without `statements`, completed records go to record().
   */
  statements?: {
    begin(intent: SpoolRecord): void | Promise<void>;
    completed(record: SpoolRecord): void;
  };
}

type Socket = net.Socket | tls.TLSSocket;

export interface RelayOptions {
  client: Socket;
  upstream: Socket;
  session: SessionContext;
  controlPlane: ControlPlane;
  /** runs after each decision and before forwarding: approval holds, strict audit */
  gate?: StatementGate;
  audit: AuditSink;
  maxMessageBytes: number;
  logger: Logger;
  newId: () => string;
  onEnd: (reason: SessionEndReason, statements: number) => void;
  /** masking of results and the content detectors (proxy/masking/); absent: rows pass as they are */
  masking?: SessionMasking;
  /** the database login the gateway used, for the audit records */
  upstreamUser?: string;
  /** how Bind parameters are recorded; default 'hashed' */
  auditParams?: AuditParamsMode;
  /** statement and masked-row size bounds; default: options.ts defaultLimits */
  limits?: Partial<Pick<ProxyLimits, 'maxStatementBytes' | 'maxMaskedRowBytes'>>;
}

// Frontend message types
const F_QUERY = 0x51; // Q
const F_PARSE = 0x50; // P
const F_BIND = 0x42; // B
const F_EXECUTE = 0x45; // E
const F_DESCRIBE = 0x44; // D
const F_CLOSE = 0x43; // C
const F_SYNC = 0x53; // S
const F_FLUSH = 0x48; // H
const F_TERMINATE = 0x58; // X
const F_COPY_DATA = 0x64; // d
const F_COPY_DONE = 0x63; // c
const F_COPY_FAIL = 0x66; // f
const F_FUNCTION_CALL = 0x46; // F

/** Sent upstream while the relay waits for a reply the server would otherwise keep buffered. */
const FLUSH = Buffer.from([F_FLUSH, 0, 0, 0, 4]);

/** A backend message header: type byte and length (which counts itself). */
function messageHeader(type: number, bodyLength: number): Buffer {
  const header = Buffer.allocUnsafe(5);
  header[0] = type;
  header.writeInt32BE(bodyLength + 4, 1);
  return header;
}

const NOT_EXECUTED = 'not executed: an earlier message in the same pipeline failed';

/** PostgreSQL ends a session that sends anything but CopyData, CopyDone, CopyFail, Sync or Flush here. */
const OUTSIDE_COPY_IN =
  'a message other than CopyData, CopyDone or CopyFail was sent during COPY FROM STDIN, before the copy ended';

/** how long a session pgwarden ended waits for its client to read the FATAL before the socket goes */
const TERMINATED_CLIENT_GRACE_MS = 5_000;

/**
 * Sent upstream in place of a refused statement: a syntax error, so the server fails it at once,
 * with no side effect, and applies its usual error semantics (the transaction block is aborted,
 * an extended-protocol pipeline is skipped up to Sync).
 */
const REFUSED_SQL = 'pgwarden refused this statement';

/**
 * Sent upstream in place of a refused Bind: two parameter format codes for zero parameters, which
 * the server rejects while reading the message, whatever statement the name holds (a client may
 * itself prepare one under any name, so an unlikely name alone would not do).
 */
function failingBind(portal: string): Buffer {
  const names = Buffer.from(`${portal}\0pgwarden refused this statement\0`);
  const counts = Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0]); // 2 formats (text), 0 params, 0 result formats
  const head = Buffer.alloc(5);
  head[0] = 0x42; // B
  head.writeInt32BE(4 + names.length + counts.length, 1);
  return Buffer.concat([head, names, counts]);
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

export class Relay {
  private readonly clientReader: FrameReader;
  private readonly toUpstream: OutputBatcher;
  private readonly scanner: BackendScanner;
  private readonly expected = new ExpectationQueue();
  /** the session's prepared statements and portals as the server holds them (session-objects.ts) */
  private readonly statements = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, Portal>();
  /** counts the Syncs and Queries forwarded: replies to messages before the last one may be awaited */
  private epoch = 0;
  /** a Parse kept back until its Bind is decided (a statement that needs approval) */
  private deferredParse: PreparedStatement | undefined;
  /** for SQL EXECUTE in later messages: what each prepared-statement name may run */
  private readonly prepared = new PreparedMemory();
  private txStatus: TransactionStatus = 'I';
  /** after a server error in the extended protocol: the server ignores everything until Sync */
  private upstreamSkipping = false;
  private awaitingDecision = false;
  private upstreamFull = false;
  private clientFull = false;
  private currentChunk: Buffer | undefined;
  private forwardedUpTo = 0;
  /** offset of the current read within currentChunk (held-back bytes come first) */
  private chunkBase = 0;
  private lastMessageEnd = 0;
  /** bytes of an incomplete server message kept back while a refused statement's error may come */
  private heldBack: Buffer | undefined;
  private refusalsInFlight = false;
  private seq = 0;
  private ended = false;
  private readonly paramsMode: AuditParamsMode;
  private readonly identity: RunIdentity;
  /** bytes written to the client, and where the last statement's reply ended in that stream */
  private clientBytes = 0;
  private lastFinishPos = 0;
  /** the last write to the client, kept (not copied) to recognise an administrator's kill */
  private lastClientWrite: Buffer | undefined;
  /** CancelRequests that reached this session */
  private cancels = 0;
  /** the masking key when the session has no masking (approval values' detectors) */
  private ownKey: Uint8Array | undefined;
  /** the statement being held, once a gate asked for its signal (an approval hold) */
  private holding: AbortController | undefined;
  private readonly heldClient: HeldClient = (() => {
    const relay = this;
    return {
      notice: (fields: NoticeFields) => relay.sendNotice(fields),
      /** one signal per held statement, made only when a gate asks for it */
      get signal(): AbortSignal {
        relay.holding ??= new AbortController();
        return relay.holding.signal;
      },
    };
  })();
  /** the plan of the result being streamed: its rows are collected and rewritten */
  private rowPlan: RowPlan | undefined;
  /** the Execute whose plan was made last (made once, when it reaches the head of the queue) */
  private plannedExecute: Expectation | undefined;
  /** server reads waiting while the catalog names a result's columns (upstream is paused) */
  private readonly backlog: Buffer[] = [];
  private blocked = false;
  private resuming = false;
  /** rewritten rows and the server bytes between them, written once per read */
  private maskOut: Buffer[] = [];
  private maskOutBytes = 0;
  /** the result a RowDescription announced, planned once the catalog names its columns */
  private pendingResult: { columns: ResultColumn[]; run: StatementRun | undefined; body: Buffer } | undefined;
  /** the statement a result's masking counts go to */
  private planRun: StatementRun | undefined;
  /** the message in progress at the end of the last read was held back whole (not forwarded) */
  private partialHeld = false;
  /** message types held back whole while incomplete, since masking may rewrite or drop them */
  private readonly heldTypes = new Uint8Array(256);
  /** prepared statements a client Describe will describe */
  private readonly describing = new WeakSet<object>();
  /** the COPY TO STDOUT in progress is in text format (detectors scan its rows) */
  private copyOutText = false;
  /** the longest Query or Parse text the proxy parses; a longer one is refused (54000) */
  private readonly maxStatementBytes: number;
  /** the largest row (or other message) masking collects whole; a larger one ends the session (54000) */
  private readonly maxMaskedRowBytes: number;
  /** pipelined text that a moved pin could make the server read differently (pipeline-guard.ts) */
  private readonly guard: PipelineGuard;
  /** client messages the guard holds until every statement in flight has been answered */
  private drainWaiters: Array<() => void> = [];
  /**
   * COPY FROM STDIN, where the server waits for the client: the statement the server answered
   * CopyInResponse for and how many COPYs it began (a Query may run several); the last forwarded
   * message that gets a reply, and the CopyDones and CopyFails forwarded after it.
   */
  private copyIn: Expectation | undefined;
  private copyInsBegun = 0;
  private lastForwarded: Expectation | undefined;
  private copyEndsSince = 0;

  constructor(private readonly o: RelayOptions) {
    this.clientReader = new FrameReader(o.maxMessageBytes);
    this.toUpstream = new OutputBatcher(o.upstream);
    this.scanner = new BackendScanner((type, body, end) => this.onBackendMessage(type, body, end));
    this.paramsMode = o.auditParams ?? 'hashed';
    this.maxStatementBytes = o.limits?.maxStatementBytes ?? defaultLimits.maxStatementBytes;
    this.maxMaskedRowBytes = o.limits?.maxMaskedRowBytes ?? defaultLimits.maxMaskedRowBytes;
    this.guard = new PipelineGuard(o.upstreamUser);
    this.identity = { session: o.session, upstreamUser: o.upstreamUser };
  }

  start(clientLeftover: Buffer, upstreamLeftover: Buffer): void {
    const { client, upstream } = this.o;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    client.on('drain', () => {
      this.clientFull = false;
      this.updateFlow();
    });
    upstream.on('drain', () => {
      this.upstreamFull = false;
      this.updateFlow();
    });
    client.on('error', (error) => this.o.logger.warn('client socket error', { error: error.message }));
    upstream.on('error', (error) => this.o.logger.warn('upstream socket error', { error: error.message }));
    client.on('close', () => this.end('network_loss'));
    upstream.on('close', () => this.end('upstream_closed'));
    // A side that closed while the session was set up has emitted 'close' already: without this,
    // the relay and its upstream connection would wait for it forever.
    if (client.destroyed || upstream.destroyed) {
      this.end(client.destroyed ? 'network_loss' : 'upstream_closed');
      return;
    }
    if (upstreamLeftover.length > 0) this.onUpstreamData(upstreamLeftover);
    if (clientLeftover.length > 0) this.onClientData(clientLeftover);
    // The setup phase left the client socket paused so no byte was lost in between.
    this.updateFlow();
  }

  // ---- client → upstream ----------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.ended) return;
    try {
      this.clientReader.push(chunk);
    } catch (error) {
      this.protocolFailure(error);
      return;
    }
    if (!this.awaitingDecision) this.processClient();
  }

  private processClient(): void {
    try {
      for (let frame = this.clientReader.next(); frame; frame = this.clientReader.next()) {
        const pending = this.handleClientFrame(frame);
        if (pending) {
          this.flushUpstream();
          this.awaitingDecision = true;
          this.updateFlow();
          pending.then(
            () => {
              this.awaitingDecision = false;
              this.updateFlow();
              if (!this.ended) this.processClient();
            },
            (error) => this.protocolFailure(error),
          );
          return;
        }
        if (this.ended) return;
      }
      this.flushUpstream();
    } catch (error) {
      this.protocolFailure(error);
    }
  }

  private handleClientFrame(frame: Frame): Promise<void> | undefined {
    const guarded = this.guard.before(frame, this.upstreamSkipping);
    if (guarded === 'wait')
      return this.whenDrained().then(() => promiseOrUndefined(this.handleClientFrame(frame)));
    if (guarded === 'check') this.checkPins();
    const type = frame.type;
    // a Parse kept back goes first, unless this is the Bind that decides it
    if (this.deferredParse !== undefined && !this.bindsDeferred(frame)) this.sendDeferredParse();
    switch (type) {
      case F_QUERY: {
        const text = this.statementText(() => parseQuery(frame.body, this.maxStatementBytes));
        if (text === undefined) return undefined;
        return this.decideThen(
          { session: this.o.session, statement: { text, protocol: 'simple', prepared: this.prepared.view } },
          (decision) => this.query(frame, text, decision),
        );
      }
      case F_PARSE: {
        const parsed = this.statementText(() => parseParse(frame.body, this.maxStatementBytes));
        if (parsed === undefined) return undefined;
        const { name, text } = parsed;
        // Not held here: a statement that needs approval is held at its Bind, with its values.
        return this.decideThen(
          {
            session: this.o.session,
            statement: { text, protocol: 'extended', preparedName: name, prepared: this.prepared.view },
          },
          (decision) => this.parse(frame, name, text, decision),
          false,
        );
      }
      case F_BIND: {
        const { portal, statement: name } = parseBind(frame.body);
        const prepared = this.statements.get(name);
        if (!prepared) {
          this.refuseUnknown(frame, 'statement', name, portal);
          return undefined;
        }
        if (this.awaitsServer(prepared)) return this.afterServer(prepared, frame);
        // SQL PREPARE: decided as SQL `EXECUTE name` would be, through what prepared the name.
        if (prepared.sql) return this.bindUnparsed(frame, portal, prepared);
        // Parsed under a policy that has since been replaced (hot reload): decided again first.
        const current = this.o.controlPlane.currentPolicyVersion?.();
        if (current !== undefined && prepared.decision.policyVersion !== current)
          return this.bindRedecided(frame, portal, name, prepared);
        return this.bindDecided(frame, portal, prepared, prepared.decision);
      }
      case F_EXECUTE: {
        const { portal: name } = parseExecute(frame.body);
        const portal = this.portals.get(name);
        if (!portal) {
          this.refuseUnknown(frame, 'portal', name);
          return undefined;
        }
        if (this.awaitsServer(portal)) return this.afterServer(portal, frame);
        return this.execute(frame, name, portal);
      }
      case F_DESCRIBE: {
        const target = parseTarget(frame.body);
        const known = target.kind === 'S' ? this.statements.get(target.name) : this.portals.get(target.name);
        if (!known) {
          this.refuseUnknown(frame, target.kind === 'S' ? 'statement' : 'portal', target.name);
          return undefined;
        }
        if (this.awaitsServer(known)) return this.afterServer(known, frame);
        this.forward(frame, { kind: 'describe', target: this.describeTarget(target.kind, target.name) });
        return undefined;
      }
      case F_CLOSE: {
        // Closing what does not exist is no error in PostgreSQL, and only ever removes: passed on.
        const target = parseTarget(frame.body);
        if (target.kind === 'S') this.statements.delete(target.name);
        else {
          this.portals.delete(target.name);
          this.o.masking?.portals.delete(target.name);
        }
        this.forward(frame, { kind: 'close' });
        return undefined;
      }
      case F_SYNC:
        if (this.awaitsCopyInput()) {
          // in COPY FROM STDIN the server ignores a Sync: no ReadyForQuery will answer it
          this.toUpstream.add(frame.raw);
          return undefined;
        }
        this.forward(frame, { kind: 'sync', epoch: ++this.epoch, copyEnds: this.copyEndsSince });
        this.upstreamSkipping = false;
        return undefined;
      case F_TERMINATE:
        this.toUpstream.add(frame.raw);
        this.flushUpstream();
        this.end('client_terminate');
        return undefined;
      case F_COPY_DONE:
      case F_COPY_FAIL:
        this.copyEndsSince++;
        this.toUpstream.add(frame.raw);
        return undefined;
      case F_FLUSH:
      case F_COPY_DATA:
        this.toUpstream.add(frame.raw);
        return undefined;
      case F_FUNCTION_CALL:
        // The fastpath interface calls a function by OID with no SQL to inspect: refuse it.
        this.refuse(
          {
            severity: 'ERROR',
            code: '0A000',
            message: 'pgwarden does not allow the fastpath function call interface; use SQL instead',
          },
          true,
        );
        return undefined;
      default:
        throw new ProtocolViolation(`unexpected message type "${String.fromCharCode(type)}" from the client`);
    }
  }

  /** A Query's or Parse's text, or undefined when it was refused before any parser saw it. */
  private statementText<T>(read: () => T): T | undefined {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof StatementTextRefused)) throw error;
      const decision: Decision = {
        action: 'deny',
        ruleId: error.ruleId,
        reason: error.message,
        policyVersion: '',
      };
      const fields: NoticeFields = {
        severity: 'ERROR',
        code: error.sqlstate,
        message: `pgwarden: ${error.message}`,
        detail: `rule: ${error.ruleId}`,
      };
      if (error.statementName !== undefined) {
        this.refuseParse(error.statementName, error.preview, decision, fields);
      } else {
        const run = new StatementRun(error.preview, 'simple', decision);
        this.startRun(run);
        this.refuseQuery(run, fields);
      }
      return undefined;
    }
  }

  /** Sends the guard's check of the pins ahead of the message being handled; its replies are dropped. */
  private checkPins(): void {
    this.toUpstream.add(this.guard.checkMessages());
    for (let i = 0; i < 5; i++) this.expected.push({ kind: 'pin_check' });
    this.refusalsInFlight = true; // its replies are held back until whole, then dropped
  }

  /**
   * Resolves once every statement sent so far has been answered (ReadyForQuery). Rejects when the
   * server waits in COPY FROM STDIN for input the client sends only after the held message: the
   * wait would never end, and the server would end the session on that message anyway.
   */
  private whenDrained(): Promise<void> {
    if (this.expected.length === 0) {
      this.guard.verified();
      return Promise.resolve();
    }
    if (this.awaitsCopyInput()) return Promise.reject(new ProtocolViolation(OUTSIDE_COPY_IN));
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * The server is in COPY FROM STDIN and has been sent nothing that ends it: after its statement
   * only CopyData, Sync or Flush (which the server ignores there), fewer CopyDones and CopyFails
   * than the COPYs it began.
   */
  private awaitsCopyInput(): boolean {
    const head = this.expected.peek();
    return (
      head !== undefined &&
      head === this.copyIn &&
      head === this.lastForwarded &&
      this.copyInsBegun > this.copyEndsSince
    );
  }

  /**
   * CopyInResponse: a COPY FROM STDIN began. Syncs sent before its input ends get no reply; a
   * message the guard holds may now wait forever.
   */
  private copyInBegun(end: number): void {
    const head = this.expected.peek();
    if (head !== this.copyIn) {
      this.copyIn = head;
      this.copyInsBegun = 0;
    }
    this.copyInsBegun++;
    this.expected.dropSyncsIgnoredByCopy(this.copyInsBegun - 1);
    if (this.drainWaiters.length === 0 || !this.awaitsCopyInput()) return;
    this.forwardServerBytes(end);
    this.currentChunk = undefined;
    this.scanner.stop();
    this.protocolFailure(new ProtocolViolation(OUTSIDE_COPY_IN));
  }

  /**
   * Runs `then` with the decision, synchronously when the control plane answers synchronously.
   * `gated`: the gate (approval holds) sees it first; not for Parse and Bind, whose
   * require_approval is held at the Bind with the values it binds (holdBind).
   */
  private decideThen(
    request: DecisionRequest,
    then: (decision: Decision) => Promise<void> | undefined | void,
    gated = true,
  ): Promise<void> | undefined {
    let answer: Decision | Promise<Decision>;
    try {
      answer = this.o.controlPlane.decide(request);
      // the server skips everything up to Sync after an error: nothing to hold (or approve) for it
      const gate = gated && !this.upstreamSkipping ? this.o.gate : undefined;
      if (gate) {
        answer = isPromise(answer)
          ? answer.then((decision) => gate.admit(request, decision, this.heldClient))
          : gate.admit(request, answer, this.heldClient);
      }
    } catch (error) {
      return promiseOrUndefined(then(this.noDecision(error)));
    }
    if (!isPromise(answer)) {
      this.holding = undefined;
      return promiseOrUndefined(then(answer));
    }
    return answer.then(
      (decision) => {
        this.holding = undefined;
        return then(decision);
      },
      (error) => {
        this.holding = undefined;
        return then(this.noDecision(error));
      },
    ) as Promise<void>;
  }

  /** Fail closed: without a decision the statement does not run. */
  private noDecision(error: unknown): Decision {
    this.o.logger.error('no decision from the control plane', { error: String(error) });
    return {
      action: 'deny',
      ruleId: 'no-decision',
      reason: 'pgwarden could not reach its policy service, so the statement was not run; try again shortly',
      policyVersion: '',
    };
  }

  private query(frame: Frame, text: string, decision: Decision): Promise<void> | undefined {
    const run = new StatementRun(text, 'simple', decision);
    if (decision.action === 'allow') {
      this.observeMasks(decision);
      if (decision.prepares) for (const p of decision.prepares) this.prepared.remember(p, text);
      return this.beginThen(
        run,
        () => {
          this.sqlChangesNames(decision, text);
          this.forward(frame, { kind: 'query', run, epoch: this.queryEpoch() });
        },
        (fields) => this.refuseQuery(run, fields),
      );
    }
    this.startRun(run);
    this.refuseQuery(run, refusalFields(decision));
    return undefined;
  }

  private refuseQuery(run: StatementRun, fields: NoticeFields): void {
    run.failed(fields.code, fields.message);
    this.forwardBytes(serialize.query(REFUSED_SQL), {
      kind: 'query',
      run,
      epoch: this.queryEpoch(),
      substitute: errorResponse(fields),
    });
  }

  /**
   * A Query message begins: the server drops the unnamed statement and portal first (simple Query
   * uses them), and ends the extended protocol's implicit transaction.
   */
  private queryEpoch(): number {
    if (this.statements.size > 0) this.statements.delete('');
    if (this.portals.size > 0) this.portals.delete('');
    return ++this.epoch;
  }

  /**
   * What SQL run by an allowed statement changes among the names the proxy tracks: a PREPARE
   * (re)defines a statement name, to be decided at Bind through every text that prepared it; CLOSE
   * and DISCARD drop portals, and so do ROLLBACK TO SAVEPOINT (the portals bound since the
   * savepoint) and COMMIT / ROLLBACK AND CHAIN (all, though the session never goes idle), after
   * which DECLARE may reuse a name with other SQL whose rows an Execute would then mask by what the
   * proxy knew of the old portal. The analysis does not tell those transaction statements apart, so
   * every transaction statement drops them. The proxy forgets before the server does, so it can
   * only refuse more, never run what it did not decide.
   */
  private sqlChangesNames(decision: Decision, text: string): void {
    if (decision.prepares)
      for (const name of decision.prepares)
        this.statements.set(name, sqlPrepared(name, text, decision, this.epoch));
    const kinds = decision.kinds;
    if (kinds && this.portals.size > 0 && kinds.some(dropsPortals)) this.portals.clear();
  }

  /**
   * Sent upstream instead of a client message the proxy refuses after the server may have seen the
   * messages before it (an Execute, a Bind, a Describe): a Bind the server fails while reading it,
   * with no effect on its statements, so it skips the rest of the pipeline up to Sync exactly as
   * after any error. The client gets `fields` in place of the server's error.
   */
  private refuseInPipeline(fields: NoticeFields, portal = ''): void {
    this.forwardBytes(failingBind(portal), { kind: 'bind', substitute: errorResponse(fields) });
  }

  private refuseExecute(run: StatementRun, fields: NoticeFields): void {
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.refuseInPipeline(fields);
  }

  /**
   * Writes the statement's record of intent, then runs `go` (forwarding), synchronously when the
   * audit sink answers synchronously; when the record cannot be kept, `refuse` runs instead.
   */
  private beginThen(
    run: StatementRun,
    go: () => void,
    refuse: (fields: NoticeFields) => void,
  ): Promise<void> | undefined {
    this.startRun(run);
    const audit = this.o.audit;
    const serialized = audit.statements;
    if (!serialized) {
      go();
      return undefined;
    }
    let answer: void | Promise<void>;
    try {
      answer = serialized.begin(run.intentRecord(this.identity));
    } catch (error) {
      this.auditRefused(run, error, refuse);
      return undefined;
    }
    if (!isPromise<void>(answer)) {
      go();
      return undefined;
    }
    return answer.then(
      () => (this.ended ? this.closedBeforeForwarding(run) : go()),
      (error: unknown) =>
        this.ended ? this.closedBeforeForwarding(run) : this.auditRefused(run, error, refuse),
    );
  }

  private auditRefused(run: StatementRun, error: unknown, refuse: (fields: NoticeFields) => void): void {
    run.refusedByAudit = true;
    const known = error instanceof AuditUnavailable;
    if (!known) this.o.logger.error('audit record not written', { error: String(error) });
    refuse({
      severity: 'ERROR',
      code: known ? error.sqlstate : '58000',
      message: known ? error.message : 'pgwarden could not record this statement, so it was not run',
    });
  }

  private closedBeforeForwarding(run: StatementRun): void {
    run.failed(undefined, 'the connection closed before the statement was forwarded');
    this.finishRun(run);
  }

  private startRun(run: StatementRun): void {
    run.seq = ++this.seq;
    run.eventId = this.o.newId();
    run.cancelsAtStart = this.cancels;
  }

  private parse(frame: Frame, name: string, text: string, decision: Decision): void {
    if (decision.action === 'allow' || decision.action === 'require_approval') {
      this.observeMasks(decision);
      const statement: PreparedStatement = {
        text,
        decision,
        statement: name,
        settled: false,
        epoch: this.epoch,
      };
      this.statements.set(name, statement);
      this.prepared.remember(name, text);
      if (decision.prepares) for (const p of decision.prepares) this.prepared.remember(p, text);
      if (decision.action === 'allow') {
        this.forward(frame, { kind: 'parse', statement });
        return;
      }
      // held at its Bind: nothing of it reaches the server until then (see PreparedStatement.deferred)
      statement.paramTypes = parseParamTypes(frame.body);
      statement.deferred = Buffer.from(frame.raw);
      this.deferredParse = statement;
      return;
    }
    this.refuseParse(name, text, decision, refusalFields(decision));
  }

  private refuseParse(name: string, text: string, decision: Decision, fields: NoticeFields): void {
    // The failing Parse sent instead replaces the unnamed statement; the name is gone for the proxy
    // too, whatever the server still holds under it, so a later Bind of it is refused.
    this.statements.delete(name);
    this.statements.delete('');
    const run = new StatementRun(text, 'extended', decision, name);
    this.startRun(run);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.forwardBytes(serialize.parse({ name: '', text: REFUSED_SQL }), {
      kind: 'parse',
      substitute: errorResponse(fields),
    });
  }

  /** Whether `frame` is the Bind of the statement whose Parse is kept back. */
  private bindsDeferred(frame: Frame): boolean {
    return frame.type === F_BIND && parseBind(frame.body).statement === this.deferredParse?.statement;
  }

  /** Sends the Parse kept back, in its place in the pipeline. */
  private sendDeferredParse(): void {
    const statement = this.deferredParse;
    if (!statement?.deferred) return;
    this.deferredParse = undefined;
    const bytes = statement.deferred;
    statement.deferred = undefined;
    statement.epoch = this.epoch;
    this.forwardBytes(bytes, { kind: 'parse', statement });
  }

  /** A Bind decided `decision` (the statement's own, or one decided again): bound, held or refused. */
  private bindDecided(
    frame: Frame,
    portal: string,
    prepared: PreparedStatement,
    decision: Decision,
    text = prepared.text,
  ): Promise<void> | undefined {
    if (decision.action === 'allow') this.bind(frame, portal, prepared, decision, text);
    else if (decision.action === 'require_approval')
      return this.holdBind(frame, portal, prepared, decision, text);
    else this.refuseBind(portal, prepared.statement, text, decision);
    return undefined;
  }

  /**
   * A Bind of a statement that needs approval is held here, where the values it binds are known:
   * the approval request shows them and is bound to their exact bytes, and on approval the portal
   * is created for one execution. Held at the Bind, not at the Execute, because a portal that
   * exists on the server can be run by other means than Execute (SQL FETCH or MOVE of its name, a
   * function fetching from a cursor of that name): before the approval it does not exist. A Parse
   * sent in the same pipeline is kept back too, so no lock on its tables is held while a reviewer
   * decides.
   */
  private holdBind(
    frame: Frame,
    portal: string,
    prepared: PreparedStatement,
    decision: Decision,
    text: string,
  ): Promise<void> | undefined {
    const gate = this.o.gate;
    if (this.upstreamSkipping || !gate) {
      // skipping: the server ignores this Bind anyway (no approval is asked for nothing); no gate:
      // nobody can approve, so the statement is refused as needing approval
      this.refuseBind(portal, prepared.statement, text, decision);
      return undefined;
    }
    const masking = this.o.masking;
    const params = heldBindParams(frame.body, text, prepared.paramTypes, {
      masks: decision.masks,
      detectors: decision.detectors,
      key: masking?.key ?? this.fallbackKey(),
    });
    const unshown = unshownParams(params);
    if (unshown !== undefined) {
      // one approval releases the values the reviewer saw: these cannot all be seen
      this.refuseBind(portal, prepared.statement, text, {
        ...decision,
        action: 'deny',
        reason: `this statement needs approval, and ${unshown}, so nobody could approve what would run; bind shorter values (or fewer), or ask an admin`,
      });
      return undefined;
    }
    const request: DecisionRequest = {
      session: this.o.session,
      // with the prepared texts: the approval of a Parse of SQL EXECUTE shows what that runs
      statement: {
        text,
        protocol: 'extended',
        preparedName: prepared.statement,
        prepared: this.prepared.view,
      },
    };
    const decided = (outcome: Decision): void => {
      this.holding = undefined;
      if (this.ended) return;
      if (outcome.action === 'allow') this.bind(frame, portal, prepared, outcome, text);
      else this.refuseBind(portal, prepared.statement, text, outcome);
    };
    let answer: Decision | Promise<Decision>;
    try {
      answer = gate.admit(request, decision, this.heldClient, params);
    } catch (error) {
      answer = this.noDecision(error);
    }
    if (!isPromise(answer)) {
      decided(answer);
      return undefined;
    }
    return answer.then(decided, (error: unknown) => decided(this.noDecision(error)));
  }

  /** Without session masking (embedding, tests): a key of its own for the detectors' hash and fake. */
  private fallbackKey(): Uint8Array {
    this.ownKey ??= randomBytes(32);
    return this.ownKey;
  }

  private bind(
    frame: Frame,
    name: string,
    prepared: PreparedStatement,
    decision: Decision,
    text: string,
  ): void {
    this.sendDeferredParse();
    const portal: Portal = { statement: prepared, text, decision, settled: false, epoch: this.epoch };
    if (decision.approvalId !== undefined)
      portal.approved = {
        approvalId: decision.approvalId,
        state: 'released',
        settled: true,
        epoch: this.epoch,
      };
    const params = captureBindParams(frame.body, this.paramsMode);
    if (params) portal.params = params;
    this.portals.set(name, portal);
    if (this.o.masking?.active) this.o.masking.bind(name, prepared, frame.body);
    this.forward(frame, { kind: 'bind', portal, name });
  }

  /**
   * Bind of a name SQL PREPARE prepared: decided as `EXECUTE name` (see prepared-memory.ts). A
   * statement that needs approval is held with the text that prepared the name, when only one did:
   * with several, the reviewer could not be shown what runs, so it is refused.
   */
  private bindUnparsed(frame: Frame, portal: string, prepared: PreparedStatement): Promise<void> | undefined {
    const name = prepared.statement;
    const text = `EXECUTE "${name.replaceAll('"', '""')}"`;
    const request: DecisionRequest = {
      session: this.o.session,
      statement: { text, protocol: 'extended', prepared: this.prepared.view },
    };
    return this.decideThen(
      request,
      (decision) => {
        const texts = Object.hasOwn(this.prepared.texts, name) ? (this.prepared.texts[name] ?? []) : [];
        if (decision.action === 'require_approval' && texts.length !== 1)
          return this.refuseBind(portal, name, text, {
            ...decision,
            action: 'deny',
            reason: `"${name}" was prepared ${texts.length} times in this session, so a reviewer could not be shown which statement runs; PREPARE it under a new name`,
          });
        return this.bindDecided(frame, portal, prepared, decision, texts.at(-1) ?? text);
      },
      false,
    );
  }

  /** Bind of a statement Parsed under an older policy: its text is decided under the current one. */
  private bindRedecided(
    frame: Frame,
    portal: string,
    name: string,
    prepared: PreparedStatement,
  ): Promise<void> | undefined {
    const request: DecisionRequest = {
      session: this.o.session,
      statement: {
        text: prepared.text,
        protocol: 'extended',
        preparedName: name,
        prepared: this.prepared.view,
      },
    };
    return this.decideThen(
      request,
      (decision) => {
        prepared.decision = decision; // the same object: masking may know the statement by it
        return this.bindDecided(frame, portal, prepared, decision);
      },
      false,
    );
  }

  private refuseBind(portal: string, name: string, text: string, decision: Decision): void {
    this.sendDeferredParse(); // the client's Parse is answered as it would be; its Bind fails
    this.portals.delete(portal);
    const run = new StatementRun(text, 'extended', decision, name);
    this.startRun(run);
    const fields = refusalFields(decision);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    // a Bind the server must fail, so it skips to Sync as on any error
    this.refuseInPipeline(fields, portal);
  }

  /**
   * An Execute of a portal the proxy let through. A portal an approval released runs once: its
   * first Execute, and the Executes that go on after PortalSuspended (the same execution, its
   * remaining rows). Another Execute once it has completed is refused: a new execution needs a new
   * Bind, and so a new approval.
   */
  private execute(frame: Frame, name: string, portal: Portal): Promise<void> | undefined {
    const approved = portal.approved;
    if (approved?.state === 'running') return this.afterServer(approved, frame);
    if (approved?.state === 'done') {
      this.refuseRerun(name, portal, approved.approvalId);
      return undefined;
    }
    const run = new StatementRun(portal.text, 'extended', portal.decision, portal.statement.statement);
    run.portalName = name;
    run.params = portal.params;
    if (approved) {
      approved.state = 'running';
      approved.settled = false;
      run.onFinish = (ended) => {
        approved.state =
          ended.commandTag === 'SUSPENDED' && ended.sqlstate === undefined ? 'suspended' : 'done';
        settle(approved);
      };
    }
    return this.beginThen(
      run,
      () => {
        this.sqlChangesNames(portal.decision, portal.text);
        this.forward(frame, { kind: 'execute', run, portal: this.maskedPortal(name) });
      },
      (fields) => this.refuseExecute(run, fields),
    );
  }

  private refuseRerun(name: string, portal: Portal, approvalId: string): void {
    const decision: Decision = {
      ...portal.decision,
      action: 'deny',
      reason: `portal "${name}" already ran the one execution approval ${approvalId} released; to run the statement again, Bind it again (that asks for a new approval)`,
    };
    const run = new StatementRun(portal.text, 'extended', decision, portal.statement.statement);
    run.portalName = name;
    run.params = portal.params;
    this.startRun(run);
    this.refuseExecute(run, refusalFields(decision));
  }

  /**
   * A Bind of a statement, or an Execute or Describe of a portal, that the proxy has no record of:
   * never created, refused, failed or skipped by the server, closed, or gone with its transaction.
   */
  private refuseUnknown(frame: Frame, what: 'statement' | 'portal', name: string, portal = ''): void {
    const shown = name === '' ? `unnamed ${what}` : `${what} "${name}"`;
    const fields: NoticeFields = {
      severity: 'ERROR',
      code: what === 'statement' ? '26000' : '34000',
      message: `pgwarden: ${shown} does not exist in this session as far as pgwarden knows (it was never prepared through pgwarden, was refused, failed or was closed), so it cannot run`,
    };
    if (frame.type === F_DESCRIBE) {
      this.refuseInPipeline(fields);
      return;
    }
    if (frame.type === F_BIND) this.portals.delete(portal);
    const decision: Decision = {
      action: 'deny',
      ruleId: what === 'statement' ? 'unknown-statement' : 'unknown-portal',
      reason: fields.message,
      policyVersion: '',
    };
    const run = new StatementRun(
      `<${shown} unknown to pgwarden>`,
      'extended',
      decision,
      what === 'statement' ? name : undefined,
    );
    if (what === 'portal') run.portalName = name;
    this.startRun(run);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.refuseInPipeline(fields, portal);
  }

  /** `item` was forwarded before the last Sync or Query and the server has not answered it yet. */
  private awaitsServer(item: Settling): boolean {
    return !item.settled && item.epoch < this.epoch;
  }

  /** Handles `frame` again once the server has answered for `item` (the client is paused meanwhile). */
  private afterServer(item: Settling, frame: Frame): Promise<void> {
    this.toUpstream.add(FLUSH); // the server sends what it owes without waiting for a Sync
    this.flushUpstream();
    return whenSettled(item).then(() => (this.ended ? undefined : this.handleClientFrame(frame)));
  }

  private forward(frame: Frame, expectation: Expectation): void {
    this.forwardBytes(frame.raw, expectation);
  }

  private forwardBytes(bytes: Buffer, expectation: Expectation): void {
    this.toUpstream.add(bytes);
    if (expectation.kind !== 'sync') {
      this.lastForwarded = expectation;
      this.copyEndsSince = 0;
    }
    if ('substitute' in expectation && expectation.substitute) this.refusalsInFlight = true;
    if (this.upstreamSkipping && expectation.kind !== 'sync') {
      // The server is discarding messages until Sync: this one will get no reply.
      this.skipped(expectation);
      return;
    }
    this.expected.push(expectation);
  }

  /** A message the server skipped (an earlier one failed): it ran nothing and created nothing. */
  private skipped(expectation: Expectation): void {
    switch (expectation.kind) {
      case 'execute':
      case 'query':
        this.notExecuted(expectation.run);
        return;
      case 'parse':
        if (expectation.statement)
          this.unrecord(this.statements, expectation.statement.statement, expectation.statement);
        return;
      case 'bind':
        if (expectation.portal) this.unrecord(this.portals, expectation.name ?? '', expectation.portal);
        return;
      default:
        return;
    }
  }

  /** The server failed or skipped what created `item`: it does not exist (for the proxy either). */
  private unrecord<T extends Settling>(records: Map<string, T>, name: string, item: T): void {
    if (records.get(name) === item) records.delete(name);
    settle(item);
  }

  /** Queues the proxy's own error reply; with ReadyForQuery when it answers a whole cycle. */
  private refuse(fields: NoticeFields, endsCycle: boolean): void {
    const error = errorResponse(fields);
    this.expected.push({
      kind: 'synthetic',
      endsCycle,
      reply: () => (endsCycle ? Buffer.concat([error, readyForQuery(this.txStatus)]) : error),
    });
    if (this.expected.length === 1) this.emitSynthetic(0);
  }

  /** A NoticeResponse of the proxy's own, queued behind the replies still owed to the client. */
  private sendNotice(fields: NoticeFields): void {
    if (this.ended) return;
    this.expected.push({ kind: 'synthetic', endsCycle: false, reply: () => noticeResponse(fields) });
    if (this.expected.length === 1) this.emitSynthetic(0);
  }

  private flushUpstream(): void {
    if (!this.toUpstream.flush()) {
      this.upstreamFull = true;
      this.updateFlow();
    }
  }

  // ---- upstream → client ----------------------------------------------------------------

  private onUpstreamData(read: Buffer): void {
    if (this.ended) return;
    if (this.blocked || (this.backlog.length > 0 && !this.resuming)) {
      // the catalog is naming a result's columns: reads wait, in order, until it has
      this.backlog.push(read);
      return;
    }
    try {
      if (this.o.masking?.active && !this.planHead()) {
        this.backlog.unshift(read);
        return;
      }
    } catch (error) {
      this.protocolFailure(error);
      return;
    }
    const held = this.heldBack;
    this.heldBack = undefined;
    const chunk = held ? Buffer.concat([held, read]) : read;
    this.currentChunk = chunk;
    this.chunkBase = held ? held.length : 0;
    this.forwardedUpTo = 0;
    this.lastMessageEnd = 0;
    let consumed: number;
    try {
      consumed = this.scanner.scan(read);
    } catch (error) {
      // the messages before the bad one are whole: they go out, then the FATAL
      this.forwardServerBytes(this.lastMessageEnd);
      this.currentChunk = undefined;
      this.protocolFailure(error);
      return;
    }
    if (this.ended) return; // a ParameterStatus broke a pin: nothing after it goes out
    // Scanning stops early when a result must wait for the catalog: the rest is read again later.
    if (consumed < read.length) this.backlog.unshift(read.subarray(consumed));
    let upTo = this.chunkBase + consumed;
    if (this.refusalsInFlight) {
      // A refused statement's ErrorResponse must be swapped whole: keep a partial message back.
      if (this.expected.hasSubstitute()) {
        if (this.lastMessageEnd < upTo)
          this.heldBack = chunk.subarray(Math.max(this.lastMessageEnd, this.forwardedUpTo), upTo);
        upTo = Math.max(this.lastMessageEnd, this.forwardedUpTo);
      } else {
        this.refusalsInFlight = false;
      }
    }
    this.partialHeld = false;
    if (this.o.masking?.active) {
      // A message masking may rewrite or drop is written only once it is whole (its body is
      // being collected by the scanner, so nothing is lost by not forwarding its first bytes).
      const partial = this.scanner.partialCollected();
      if (partial && this.heldTypes[partial.type] === 1) {
        const start = this.chunkBase + partial.start;
        if (start < upTo) {
          upTo = Math.max(this.forwardedUpTo, start);
          this.partialHeld = true;
        }
      }
    }
    if (this.forwardedUpTo < upTo)
      this.writeOut(
        this.forwardedUpTo === 0 && upTo === chunk.length ? chunk : chunk.subarray(this.forwardedUpTo, upTo),
      );
    this.flushOut();
    this.currentChunk = undefined;
  }

  private onBackendMessage(type: number, body: Buffer | undefined, readEnd: number): void {
    const end = readEnd + this.chunkBase;
    this.lastMessageEnd = end;
    if (this.expected.peek()?.kind === 'pin_check' && this.pinCheckReply(type, body, end)) {
      if (this.ended) return;
      if (this.o.masking?.active && !this.planHead()) this.scanner.stop();
      this.emitSynthetic(end);
      return;
    }
    switch (type) {
      case 0x44 /* D DataRow */:
        // collected only while the current result has a plan
        if (body) {
          const message = this.rowPlan?.rewriter.rewriteMessage(body);
          if (message) this.replaceHeld(body, end, message);
          else this.passHeld(type, body, end, undefined);
        }
        return;
      case 0x5a /* Z ReadyForQuery */:
        {
          this.txStatus = String.fromCharCode(body![0]!) as TransactionStatus;
          const head = this.expected.shift();
          if (head?.kind === 'query') this.finishRun(head.run);
          else if (head?.kind !== 'sync') this.desync('ReadyForQuery', head);
          if (this.expected.length === 0) this.drained();
          // out of any transaction: the portals bound before this Sync or Query are gone
          if (
            this.txStatus === 'I' &&
            this.portals.size > 0 &&
            (head?.kind === 'query' || head?.kind === 'sync')
          )
            dropEndedPortals(this.portals, head.epoch);
          break;
        }
      case 0x43 /* C CommandComplete */:
        {
          this.endResult();
          const head = this.expected.peek();
          const { tag, rows } = parseCommandComplete(body!);
          this.o.masking?.afterCommand(tag);
          if (head?.kind === 'query') head.run.completed(tag, rows);
          else if (head?.kind === 'execute') {
            this.expected.shift();
            head.run.completed(tag, rows);
            this.finishRun(head.run);
          } else this.desync('CommandComplete', head);
          break;
        }
      case 0x73 /* s PortalSuspended */:
      case 0x49 /* I EmptyQueryResponse */:
        {
          this.endResult();
          const head = this.expected.peek();
          if (head?.kind === 'execute') {
            this.expected.shift();
            if (type === 0x73) head.run.completed('SUSPENDED', undefined);
            this.finishRun(head.run);
          } else if (head?.kind !== 'query') this.desync(String.fromCharCode(type), head);
          break;
        }
      case 0x45 /* E ErrorResponse */:
        this.endResult();
        this.onServerError(body!, end);
        break;
      case 0x31 /* 1 ParseComplete */:
        {
          const head = this.expected.peek();
          this.complete('parse', type);
          if (head?.kind === 'parse' && head.statement) settle(head.statement);
          break;
        }
      case 0x32 /* 2 BindComplete */:
        {
          const head = this.expected.peek();
          this.complete('bind', type);
          if (head?.kind === 'bind' && head.portal) settle(head.portal);
          break;
        }
      case 0x33 /* 3 CloseComplete */:
        this.complete('close', type);
        break;
      case 0x6e /* n NoData */:
        {
          const head = this.expected.peek();
          this.complete('describe', type);
          if (head?.kind === 'describe' && body) this.described(head, [], type, body, end);
          else if (body) this.passHeld(type, body, end, undefined);
        }
        break;
      case 0x54 /* T RowDescription */:
        {
          // Ends a Describe; inside a simple query it heads a result set.
          const head = this.expected.peek();
          if (head?.kind === 'describe') {
            this.expected.shift();
            if (body) this.described(head, parseRowDescription(body), type, body, end);
          } else if (body) {
            if (!this.o.masking?.knownPlain(body))
              this.pendingResult = {
                columns: parseRowDescription(body),
                run: head?.kind === 'query' || head?.kind === 'execute' ? head.run : undefined,
                body: Buffer.from(body),
              };
            this.passHeld(type, body, end, undefined);
          }
        }
        break;
      case 0x4e /* N NoticeResponse */:
      case 0x41 /* A NotificationResponse */:
      case 0x64 /* d CopyData */:
      case 0x48 /* H CopyOutResponse */:
        if (body) this.scanChannel(type, body, end);
        return;
      case 0x53 /* S ParameterStatus */:
        this.watchParameterStatus(body!, end);
        return;
      case 0x47 /* G CopyInResponse */:
        this.copyInBegun(end);
        return;
      default:
        // CopyDone, CopyInResponse, ParameterDescription, … pass as they are.
        return;
    }
    // The proxy's own replies first: an Execute queued behind one becomes the head only then, and
    // must have its masking plan before its rows, which may follow in this very read.
    this.emitSynthetic(end);
    if (this.o.masking?.active && !this.planHead()) this.scanner.stop();
  }

  /**
   * A setting the gateway pins (client_encoding, standard_conforming_strings) or the session's
   * identity changed on the server (a function, a stored setting, anything not foreseen): the
   * session ends here, before a byte the server sent after this message reaches the client.
   */
  private watchParameterStatus(body: Buffer, end: number): void {
    const why = pinBreach(body, this.o.upstreamUser);
    if (why !== undefined) this.endForBrokenPin(why, end - 5 - body.length);
  }

  /**
   * A reply to the guard's check: dropped, or (an error) the pins moved inside the pipeline and the
   * server now skips everything up to Sync. False: not the check's (a notice), it passes.
   */
  private pinCheckReply(type: number, body: Buffer | undefined, end: number): boolean {
    const start = end - 5 - (body?.length ?? 0);
    if (type === 0x45 /* E */) {
      // Only the check's own division by zero says a pin moved. Any other error (the transaction
      // was already aborted, a cancel) means it did not run: the server now skips the rest of the
      // cycle as on any error, so the client gets that error as it would have without the check.
      if (parseErrorFields(body!).code !== '22012') return false;
      this.endForBrokenPin(
        "a setting pgwarden pins (client_encoding, standard_conforming_strings) or the session's role changed on the server in the middle of a pipeline",
        start,
      );
      return true;
    }
    if (type !== 0x31 && type !== 0x32 && type !== 0x43 && type !== 0x33) return false;
    this.expected.shift();
    this.replaceServerMessage(start, end, []);
    return true;
  }

  /** Ends the session before the server message that starts at `start` (or anything after it) goes out. */
  private endForBrokenPin(why: string, start: number): void {
    this.o.logger.warn('session ended: a pinned setting changed on the server', {
      sessionId: this.o.session.sessionId,
      why,
    });
    this.forwardServerBytes(start);
    this.currentChunk = undefined;
    this.scanner.stop();
    this.o.client.end(
      errorResponse({ severity: 'FATAL', code: '42501', message: `pgwarden ended the session: ${why}` }),
    );
    this.end('pinned_setting_changed');
  }

  /** Writes the current read's server bytes up to `upTo` (whole messages) and what is queued before them. */
  private forwardServerBytes(upTo: number): void {
    const chunk = this.currentChunk;
    if (chunk && upTo > this.forwardedUpTo) {
      this.writeOut(chunk.subarray(this.forwardedUpTo, upTo));
      this.forwardedUpTo = upTo;
    }
    this.flushOut();
  }

  private drained(): void {
    this.guard.verified();
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private complete(kind: Expectation['kind'], type: number): void {
    const head = this.expected.peek();
    if (head?.kind === kind) this.expected.shift();
    else this.desync(String.fromCharCode(type), head);
  }

  private onServerError(body: Buffer, end: number): void {
    const fields = parseErrorFields(body);
    const head = this.expected.peek();
    if ((head?.kind === 'query' || head?.kind === 'parse' || head?.kind === 'bind') && head.substitute) {
      this.replaceServerMessage(end - 5 - body.length, end, [head.substitute]);
      head.substitute = undefined;
    } else if (this.o.masking?.active) {
      this.scanChannel(0x45, body, end);
    }
    if (!head || head.kind === 'sync' || head.kind === 'synthetic') return; // FATAL, or an error at Sync
    if (head.kind === 'query') {
      head.run.failed(fields.code, fields.message);
      return;
    }
    // Extended protocol: this message failed and the server skips everything up to Sync. The
    // error belongs to the first statement execution it prevented (a Parse or Bind error is
    // that statement's failure); later executions in the pipeline simply did not run. Nothing
    // the failed and skipped messages would have created exists.
    this.expected.shift();
    let attributed = false;
    if (head.kind === 'execute') {
      head.run.failed(fields.code, fields.message);
      this.finishRun(head.run);
      attributed = true;
    } else this.skipped(head);
    for (let next = this.expected.peek(); next && next.kind !== 'sync'; next = this.expected.peek()) {
      if (next.kind === 'synthetic' && next.endsCycle) break;
      this.expected.shift();
      if (next.kind !== 'execute') {
        this.skipped(next);
        continue;
      }
      if (attributed) this.notExecuted(next.run);
      else {
        next.run.failed(fields.code, fields.message);
        this.finishRun(next.run);
        attributed = true;
      }
    }
    if (!this.expected.hasSync()) this.upstreamSkipping = true;
  }

  /**
   * Sends `replacement` (nothing when empty) instead of the server's message at [start, end) of the
   * current chunk. The message must not have been forwarded in part: it starts in this chunk after
   * what was forwarded, or it was held back whole (masking) from an earlier read.
   */
  private replaceServerMessage(start: number, end: number, replacement: Buffer[]): void {
    const chunk = this.currentChunk;
    if (chunk && start >= this.forwardedUpTo) {
      if (start > this.forwardedUpTo) this.writeOut(chunk.subarray(this.forwardedUpTo, start));
    } else if (!(chunk && this.partialHeld && start < 0)) {
      // The message began in an earlier chunk, already forwarded: that cannot be undone.
      throw new ProtocolViolation('cannot replace a server message that spans reads');
    }
    for (const part of replacement) this.writeOut(part);
    this.forwardedUpTo = end;
  }

  /**
   * A message masking collected whole: forwarded as it came (`replacement` undefined), with a new
   * body, or dropped (null). A message held back from earlier reads is written out again here.
   */
  private passHeld(type: number, body: Buffer, end: number, replacement: Buffer | null | undefined): void {
    const start = end - 5 - body.length;
    if (replacement === undefined) {
      // untouched: it goes out with the surrounding bytes, unless it was held back in an earlier read
      if (start >= this.forwardedUpTo || !(this.partialHeld && start < 0)) return;
      replacement = body;
    }
    this.replaceServerMessage(
      start,
      end,
      replacement === null ? [] : [messageHeader(type, replacement.length), replacement],
    );
  }

  /** A held message replaced by a whole new message (header included). */
  private replaceHeld(body: Buffer, end: number, message: Buffer): void {
    this.replaceServerMessage(end - 5 - body.length, end, [message]);
  }

  /** Writes synthetic replies that have reached the head, after the server bytes before `end`. */
  private emitSynthetic(end: number): void {
    let head = this.expected.peek();
    if (head?.kind !== 'synthetic') return;
    const chunk = this.currentChunk;
    if (chunk && end > this.forwardedUpTo) {
      this.writeOut(chunk.subarray(this.forwardedUpTo, end));
      this.forwardedUpTo = end;
    }
    while (head?.kind === 'synthetic') {
      this.expected.shift();
      this.writeOut(head.reply());
      head = this.expected.peek();
    }
  }

  /** Client output of one server read is gathered and written once (rewritten rows come in pieces). */
  private writeOut(bytes: Buffer): void {
    if (!this.currentChunk) {
      this.writeClient(bytes);
      return;
    }
    this.maskOut.push(bytes);
    this.maskOutBytes += bytes.length;
  }

  private flushOut(): void {
    const out = this.maskOut;
    if (out.length === 0) return;
    const total = this.maskOutBytes;
    this.maskOut = [];
    this.maskOutBytes = 0;
    this.writeClient(out.length === 1 ? out[0]! : Buffer.concat(out, total));
  }

  private writeClient(bytes: Buffer): void {
    this.clientBytes += bytes.length;
    this.lastClientWrite = bytes;
    if (!this.o.client.write(bytes)) {
      this.clientFull = true;
      this.updateFlow();
    }
  }

  private desync(message: string, head: Expectation | undefined): void {
    throw new ProtocolViolation(`server sent ${message} while pgwarden expected ${head?.kind ?? 'nothing'}`);
  }

  // ---- masking (proxy/masking/) -----------------------------------------------------------

  /** Takes in a decision's masks and detectors; from the first, every RowDescription is read. */
  private observeMasks(decision: Decision): void {
    const masking = this.o.masking;
    if (!masking?.observe(decision)) return;
    const detect = masking.detectors !== undefined;
    for (const type of [0x54 /* T */, 0x6e /* n */]) {
      this.scanner.collect(type, true);
      this.heldTypes[type] = 1;
    }
    for (const type of [0x4e /* N */, 0x41 /* A */, 0x64 /* d */, 0x48 /* H */, 0x45 /* E */]) {
      if (type !== 0x45) this.scanner.collect(type, detect, this.maxMaskedRowBytes);
      this.heldTypes[type] = detect ? 1 : 0;
    }
    this.heldTypes[0x44 /* D */] = 1;
  }

  /** What a client Describe is about, so its RowDescription can be remembered for later Executes. */
  private describeTarget(kind: 'S' | 'P', name: string): DescribeTarget | undefined {
    const masking = this.o.masking;
    if (!masking?.active) return undefined;
    if (kind === 'S') {
      const statement = this.statements.get(name);
      if (!statement) return undefined;
      this.describing.add(statement);
      return { statement };
    }
    const portal = masking.portals.get(name);
    if (!portal) return undefined;
    portal.describing = true;
    return { portal };
  }

  /**
   * The portal an Execute runs, as masking knows it. When nothing has told (or will tell) its
   * columns, the proxy asks the server itself with a Describe whose reply it keeps to itself.
   */
  private maskedPortal(name: string): BoundPortal | undefined {
    const masking = this.o.masking;
    if (!masking?.active) return undefined;
    let portal = masking.portals.get(name);
    if (!portal) {
      // bound before masking began: formats unknown, a Describe of the portal tells them
      portal = { statement: this.portals.get(name)?.statement, formats: [], formatsKnown: false };
      masking.portals.set(name, portal);
    }
    const statement = portal.statement;
    const known =
      portal.describing ||
      masking.knownPlainExecute(portal) ||
      masking.columnsOf(portal) !== undefined ||
      (statement !== undefined && this.describing.has(statement) && portal.formatsKnown !== false);
    if (!known) {
      portal.describing = true;
      this.forwardBytes(serialize.describe({ type: 'P', name }), {
        kind: 'describe',
        target: { portal },
        swallow: true,
      });
    }
    return portal;
  }

  /** A Describe's reply: remembered for the Executes that follow; dropped when the proxy asked. */
  private described(
    head: Extract<Expectation, { kind: 'describe' }>,
    columns: ResultColumn[],
    type: number,
    body: Buffer,
    end: number,
  ): void {
    const target = head.target;
    if (target && 'statement' in target) this.o.masking?.describedStatement(target.statement, columns);
    else if (target) target.portal.columns = columns;
    this.passHeld(type, body, end, head.swallow ? null : undefined);
  }

  /**
   * Makes the plan for the result that comes next: after a RowDescription of a simple query, or
   * when an Execute reaches the head of the queue. False when the catalog must be read first (the
   * relay then stops reading the server until it has been).
   */
  private planHead(): boolean {
    const masking = this.o.masking!;
    const pending = this.pendingResult;
    if (pending) {
      if (!this.ensureCatalog(pending.columns)) return false;
      this.pendingResult = undefined;
      const plan = masking.plan(pending.columns);
      if (!plan) masking.rememberPlain(pending.body, pending.columns);
      this.setPlan(plan, pending.run);
      return true;
    }
    const head = this.expected.peek();
    if (head?.kind !== 'execute' || head === this.plannedExecute) return true;
    const portal = head.portal;
    if (!portal) {
      this.plannedExecute = head;
      return true;
    }
    if (masking.knownPlainExecute(portal)) {
      this.plannedExecute = head;
      this.setPlan(undefined, head.run);
      return true;
    }
    const columns = masking.columnsOf(portal);
    if (!columns) {
      // Its Describe failed, so the Execute fails too; should rows come anyway, they are not passed.
      throw new ProtocolViolation('pgwarden does not know the columns of a portal whose rows it must check');
    }
    if (!this.ensureCatalog(columns)) return false;
    this.plannedExecute = head;
    const plan = masking.plan(columns);
    if (!plan) masking.rememberPlainExecute(portal);
    this.setPlan(plan, head.run);
    return true;
  }

  private ensureCatalog(columns: ResultColumn[]): boolean {
    const masking = this.o.masking!;
    const missing = masking.missing(columns);
    if (!missing) return true;
    this.blocked = true;
    this.updateFlow();
    masking.catalog.load(missing.relations, missing.types).then(
      () => {
        this.blocked = false;
        this.resume();
      },
      (error) => {
        this.o.logger.error('catalog lookup for masking failed', { error: String(error) });
        this.protocolFailure(
          new ProtocolViolation('pgwarden could not read the catalog to mask this result; try again shortly'),
        );
      },
    );
    return false;
  }

  /** Replays the reads that waited for the catalog. */
  private resume(): void {
    if (this.ended) return;
    this.resuming = true;
    try {
      while (!this.blocked && !this.ended && this.backlog.length > 0)
        this.onUpstreamData(this.backlog.shift()!);
    } finally {
      this.resuming = false;
    }
    this.updateFlow();
  }

  private setPlan(plan: RowPlan | undefined, run: StatementRun | undefined): void {
    this.rowPlan = plan;
    this.planRun = run;
    this.scanner.collect(0x44 /* D */, plan !== undefined, this.maxMaskedRowBytes);
  }

  /** The result ended: its counts go to the statement's audit record. */
  private endResult(): void {
    const plan = this.rowPlan;
    if (!plan) return;
    this.planRun?.recordMasking(plan.maskedCounts, [...plan.detectorCounts.values()]);
    this.setPlan(undefined, undefined);
  }

  /** Content detectors over notices, errors, notifications and COPY rows. */
  private scanChannel(type: number, body: Buffer, end: number): void {
    const scan = this.detectIn(type, body);
    // a message held back whole goes out now, as it came or rewritten
    this.passHeld(type, body, end, scan?.body);
  }

  private detectIn(type: number, body: Buffer): ChannelScan | undefined {
    const masking = this.o.masking;
    const detectors = masking?.detectors;
    if (!masking || !detectors) return undefined;
    if (type === 0x48 /* H CopyOutResponse */) {
      this.copyOutText = body[0] === 0;
      return undefined;
    }
    let scan: ChannelScan | undefined;
    let where: string;
    if (type === 0x45 || type === 0x4e) {
      scan = scanFields(body, detectors, masking.key);
      where = type === 0x45 ? 'error' : 'notice';
    } else if (type === 0x41) {
      scan = scanNotification(body, detectors, masking.key);
      where = 'notification';
    } else {
      if (!this.copyOutText) return undefined;
      scan = scanCopyData(body, detectors, masking.key);
      where = 'copy';
    }
    if (!scan) return undefined;
    const head = this.expected.peek();
    const run = head?.kind === 'query' || head?.kind === 'execute' ? head.run : undefined;
    const counts = new Map<string, DetectorCount>();
    for (const hit of scan.hits) countHit(counts, hit.detector, where, hit.count);
    run?.recordMasking([], [...counts.values()]);
    return scan;
  }

  // ---- flow control, audit, end ---------------------------------------------------------

  /** Backpressure both ways: a full side pauses the side that feeds it. */
  private updateFlow(): void {
    if (this.ended) return;
    if (this.awaitingDecision || this.upstreamFull) this.o.client.pause();
    else this.o.client.resume();
    if (this.clientFull || this.blocked) this.o.upstream.pause();
    else this.o.upstream.resume();
  }

  private finishRun(run: StatementRun): void {
    if (run.seq === 0) this.startRun(run);
    if (this.currentChunk) {
      // Statements end in order in the reply stream: this one's bytes end at the current message.
      const position =
        this.clientBytes + this.maskOutBytes + Math.max(0, this.lastMessageEnd - this.forwardedUpTo);
      run.bytesToClient = Math.max(0, position - this.lastFinishPos);
      this.lastFinishPos = position;
    }
    if (this.cancels > run.cancelsAtStart) run.cancelled = true;
    run.onFinish?.(run);
    const audit = this.o.audit;
    if (audit.statements) audit.statements.completed(run.completedRecord(this.identity));
    else audit.record(run.toEvent(this.identity));
  }

  /**
   * A CancelRequest for this session arrived: the statements in flight count as cancelled. Returns
   * whether the server has anything of this session to cancel: not when the only statement was
   * held for approval and never forwarded. Cancelling upstream then would stop whatever the client
   * sends next, once the cancel's own connection reaches the server.
   */
  cancelRequested(): boolean {
    this.cancels++;
    const holding = this.holding;
    // a statement held for approval stops waiting and fails with 57014, like a cancelled query
    holding?.abort('cancelled');
    return !(holding && !this.expected.hasRunning());
  }

  private notExecuted(run: StatementRun): void {
    run.failed(undefined, NOT_EXECUTED);
    this.finishRun(run);
  }

  private protocolFailure(error: unknown): void {
    if (this.ended) return;
    const violation = error instanceof ProtocolViolation;
    this.o.logger.warn(violation ? 'protocol violation' : 'relay failure', { error: String(error) });
    const fields: NoticeFields = violation
      ? {
          severity: 'FATAL',
          code: (error as ProtocolViolation).sqlstate,
          message: `pgwarden closed the connection: ${(error as Error).message}`,
        }
      : {
          severity: 'FATAL',
          code: 'XX000',
          message: 'pgwarden closed the connection after an internal error',
        };
    this.o.client.end(errorResponse(fields));
    this.end('protocol_error');
  }

  /**
   * Ends the session on pgwarden's own authority (proxy/session-lifetime.ts). The FATAL saying why
   * goes out only between two server messages: never inside one the client is still receiving.
   */
  terminate(fields: NoticeFields, reason: SessionEndReason): void {
    if (this.ended) return;
    if (!this.scanner.inMessage() || this.partialHeld || this.heldBack !== undefined)
      this.o.client.write(errorResponse(fields));
    this.end(reason);
    // a client that stopped reading must not keep the socket (and what is queued for it) alive
    setTimeout(() => this.o.client.destroy(), TERMINATED_CLIENT_GRACE_MS).unref();
  }

  end(closedBecause: SessionEndReason): void {
    if (this.ended) return;
    this.ended = true;
    // a held statement of a connection that is gone must not use up its approval
    this.holding?.abort('closed');
    const adminKill =
      (closedBecause === 'upstream_closed' || closedBecause === 'network_loss') &&
      this.lastClientWrite !== undefined &&
      endsWithAdminTermination(this.lastClientWrite);
    const reason: SessionEndReason = adminKill ? 'admin_kill' : closedBecause;
    for (const item of this.expected.drain()) {
      if (item.kind === 'query' || item.kind === 'execute') {
        item.run.failed(undefined, 'the connection closed before the statement completed');
        this.finishRun(item.run);
      }
    }
    if (reason === 'client_terminate') this.o.upstream.end();
    else this.o.upstream.destroy();
    if (reason !== 'protocol_error') this.o.client.end();
    this.o.onEnd(reason, this.seq);
  }
}

/** Statement kinds after which the server may hold none of the portals bound before (sqlChangesNames). */
function dropsPortals(kind: string): boolean {
  return kind === 'close' || kind === 'discard' || kind === 'transaction';
}

function promiseOrUndefined(value: Promise<void> | undefined | void): Promise<void> | undefined {
  return isPromise<void>(value) ? value : undefined;
}

function refusalFields(decision: Decision): NoticeFields {
  const why = decision.reason ?? 'the statement is not allowed by policy';
  if (decision.action === 'require_approval') {
    return {
      severity: 'ERROR',
      code: '42501',
      message: `pgwarden: this statement requires approval: ${why}`,
      detail: `rule: ${decision.ruleId}`,
    };
  }
  const code =
    decision.ruleId === 'no-decision' ? '58000' : decision.ruleId === 'client-cancelled' ? '57014' : '42501';
  return { severity: 'ERROR', code, message: `pgwarden: ${why}`, detail: `rule: ${decision.ruleId}` };
}
