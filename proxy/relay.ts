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
import type net from 'node:net';
import type tls from 'node:tls';
import { serialize } from 'pg-protocol';
import type { ControlPlane, Decision, DecisionRequest, SessionContext } from '../shared/control-plane.ts';
import type { AuditEvent, SessionEndReason } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { endsWithAdminTermination } from './audit-end-reason.ts';
import { type AuditParamsMode, type CapturedParams, captureBindParams } from './audit-params.ts';
import type { SpoolRecord } from './audit-record.ts';
import { AuditUnavailable } from './audit-unavailable.ts';
import { type DescribeTarget, type Expectation, ExpectationQueue } from './expectations.ts';
import { type ChannelScan, scanCopyData, scanFields, scanNotification } from './masking/channels.ts';
import { countHit, type DetectorCount, type RowPlan } from './masking/mask-plan.ts';
import { parseRowDescription, type ResultColumn } from './masking/row-description.ts';
import type { BoundPortal, SessionMasking } from './masking/session-masking.ts';
import { OutputBatcher } from './output-batcher.ts';
import { PreparedMemory } from './prepared-memory.ts';
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
import { type Frame, FrameReader } from './wire/frame-reader.ts';
import { parseBind, parseExecute, parseParse, parseQuery, parseTarget } from './wire/frontend-fields.ts';
import { ProtocolViolation } from './wire/protocol-violation.ts';

/** A prepared statement the proxy let through, and what a portal bound to it runs. */
interface PreparedStatement {
  text: string;
  decision: Decision;
  statement: string;
}

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

/** the largest row (or other message) masking collects whole; a larger one closes the connection */
const MAX_MASKED_MESSAGE_BYTES = 256 * 1024 * 1024;

/** A backend message header: type byte and length (which counts itself). */
function messageHeader(type: number, bodyLength: number): Buffer {
  const header = Buffer.allocUnsafe(5);
  header[0] = type;
  header.writeInt32BE(bodyLength + 4, 1);
  return header;
}

const NOT_EXECUTED = 'not executed: an earlier message in the same pipeline failed';

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
  private readonly statements = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, PreparedStatement>();
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
  /** Bind parameters per portal, as the audit records them */
  private readonly portalParams = new Map<string, CapturedParams>();
  private readonly paramsMode: AuditParamsMode;
  private readonly identity: RunIdentity;
  /** bytes written to the client, and where the last statement's reply ended in that stream */
  private clientBytes = 0;
  private lastFinishPos = 0;
  /** the last write to the client, kept (not copied) to recognise an administrator's kill */
  private lastClientWrite: Buffer | undefined;
  /** CancelRequests that reached this session */
  private cancels = 0;
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

  constructor(private readonly o: RelayOptions) {
    this.clientReader = new FrameReader(o.maxMessageBytes);
    this.toUpstream = new OutputBatcher(o.upstream);
    this.scanner = new BackendScanner((type, body, end) => this.onBackendMessage(type, body, end));
    this.paramsMode = o.auditParams ?? 'hashed';
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
    const type = frame.type;
    switch (type) {
      case F_QUERY: {
        const text = parseQuery(frame.body);
        return this.decideThen(
          { session: this.o.session, statement: { text, protocol: 'simple', prepared: this.prepared.view } },
          (decision) => this.query(frame, text, decision),
        );
      }
      case F_PARSE: {
        const { name, text } = parseParse(frame.body);
        return this.decideThen(
          {
            session: this.o.session,
            statement: { text, protocol: 'extended', preparedName: name, prepared: this.prepared.view },
          },
          (decision) => this.parse(frame, name, text, decision),
        );
      }
      case F_BIND: {
        const { portal, statement } = parseBind(frame.body);
        const prepared = this.statements.get(statement);
        // A name pgwarden did not let through at Parse (SQL PREPARE, a Close the server skipped):
        // decided as SQL `EXECUTE name` would be, through what the session prepared under it.
        if (!prepared && statement !== '') return this.bindUnparsed(frame, portal, statement);
        // Parsed under a policy that has since been replaced (hot reload): decided again first.
        const current = this.o.controlPlane.currentPolicyVersion?.();
        if (prepared && current !== undefined && prepared.decision.policyVersion !== current)
          return this.bindRedecided(frame, portal, statement, prepared);
        this.bind(frame, portal, prepared);
        return undefined;
      }
      case F_EXECUTE: {
        const { portal } = parseExecute(frame.body);
        const bound = this.portals.get(portal);
        const run = bound
          ? new StatementRun(bound.text, 'extended', bound.decision, bound.statement)
          : new StatementRun(`<portal "${portal}" unknown to pgwarden>`, 'extended', {
              action: 'allow',
              ruleId: 'unknown-portal',
              policyVersion: '',
            });
        run.portalName = portal;
        run.params = this.portalParams.get(portal);
        return this.beginThen(
          run,
          () => this.forward(frame, { kind: 'execute', run, portal: this.maskedPortal(portal) }),
          (fields) => this.refuseExecute(run, fields),
        );
      }
      case F_DESCRIBE: {
        const target = parseTarget(frame.body);
        this.forward(frame, { kind: 'describe', target: this.describeTarget(target.kind, target.name) });
        return undefined;
      }
      case F_CLOSE: {
        const target = parseTarget(frame.body);
        if (target.kind === 'S') this.statements.delete(target.name);
        else {
          this.portals.delete(target.name);
          this.portalParams.delete(target.name);
          this.o.masking?.portals.delete(target.name);
        }
        this.forward(frame, { kind: 'close' });
        return undefined;
      }
      case F_SYNC:
        this.forward(frame, { kind: 'sync' });
        this.upstreamSkipping = false;
        return undefined;
      case F_TERMINATE:
        this.toUpstream.add(frame.raw);
        this.flushUpstream();
        this.end('client_terminate');
        return undefined;
      case F_FLUSH:
      case F_COPY_DATA:
      case F_COPY_DONE:
      case F_COPY_FAIL:
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

  /** Runs `then` with the decision, synchronously when the control plane answers synchronously. */
  private decideThen(
    request: DecisionRequest,
    then: (decision: Decision) => Promise<void> | undefined | void,
  ): Promise<void> | undefined {
    let answer: Decision | Promise<Decision>;
    try {
      answer = this.o.controlPlane.decide(request);
      const gate = this.o.gate;
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
        () => this.forward(frame, { kind: 'query', run }),
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
      substitute: errorResponse(fields),
    });
  }

  /**
   * Sent upstream instead of the client's Execute: a Parse that fails, so the server skips the rest
   * of the pipeline up to Sync exactly as after any error (like a refused Parse, it replaces the
   * unnamed prepared statement).
   */
  private refuseExecute(run: StatementRun, fields: NoticeFields): void {
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.forwardBytes(serialize.parse({ name: '', text: REFUSED_SQL }), {
      kind: 'parse',
      substitute: errorResponse(fields),
    });
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
    if (decision.action === 'allow') {
      this.observeMasks(decision);
      this.statements.set(name, { text, decision, statement: name });
      this.prepared.remember(name, text);
      if (decision.prepares) for (const p of decision.prepares) this.prepared.remember(p, text);
      this.forward(frame, { kind: 'parse' });
      return;
    }
    this.statements.delete(name);
    const run = new StatementRun(text, 'extended', decision, name);
    this.startRun(run);
    const fields = refusalFields(decision);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.forwardBytes(serialize.parse({ name: '', text: REFUSED_SQL }), {
      kind: 'parse',
      substitute: errorResponse(fields),
    });
  }

  private bind(frame: Frame, portal: string, prepared: PreparedStatement | undefined): void {
    if (prepared) this.portals.set(portal, prepared);
    else this.portals.delete(portal);
    const params = captureBindParams(frame.body, this.paramsMode);
    if (params) this.portalParams.set(portal, params);
    else if (this.portalParams.size > 0) this.portalParams.delete(portal);
    if (this.o.masking?.active) this.o.masking.bind(portal, prepared, frame.body);
    this.forward(frame, { kind: 'bind' });
  }

  /** Bind of a name pgwarden did not Parse: decided as `EXECUTE name` (see prepared-memory.ts). */
  private bindUnparsed(frame: Frame, portal: string, name: string): Promise<void> | undefined {
    const text = `EXECUTE "${name.replaceAll('"', '""')}"`;
    const request: DecisionRequest = {
      session: this.o.session,
      statement: { text, protocol: 'extended', prepared: this.prepared.view },
    };
    return this.decideThen(request, (decision) => {
      if (decision.action !== 'allow') return this.refuseBind(portal, name, text, decision);
      const texts = Object.hasOwn(this.prepared.texts, name) ? this.prepared.texts[name] : undefined;
      this.bind(frame, portal, { text: texts?.at(-1) ?? text, decision, statement: name });
    });
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
    return this.decideThen(request, (decision) => {
      if (decision.action !== 'allow') return this.refuseBind(portal, name, prepared.text, decision);
      prepared.decision = decision; // the same object: masking may know the statement by it
      this.bind(frame, portal, prepared);
    });
  }

  private refuseBind(portal: string, name: string, text: string, decision: Decision): void {
    this.portals.delete(portal);
    const run = new StatementRun(text, 'extended', decision, name);
    this.startRun(run);
    const fields = refusalFields(decision);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    // a Bind the server must fail, so it skips to Sync as on any error
    this.forwardBytes(failingBind(portal), { kind: 'bind', substitute: errorResponse(fields) });
  }

  private forward(frame: Frame, expectation: Expectation): void {
    this.forwardBytes(frame.raw, expectation);
  }

  private forwardBytes(bytes: Buffer, expectation: Expectation): void {
    this.toUpstream.add(bytes);
    if ('substitute' in expectation && expectation.substitute) this.refusalsInFlight = true;
    if (this.upstreamSkipping && expectation.kind !== 'sync') {
      // The server is discarding messages until Sync: this one will get no reply.
      if (expectation.kind === 'execute') this.notExecuted(expectation.run);
      return;
    }
    this.expected.push(expectation);
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
      this.protocolFailure(error);
      return;
    }
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
        this.complete('parse', type);
        break;
      case 0x32 /* 2 BindComplete */:
        this.complete('bind', type);
        break;
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
      default:
        // CopyDone, CopyInResponse, ParameterDescription, ParameterStatus, … pass as they are.
        return;
    }
    // The proxy's own replies first: an Execute queued behind one becomes the head only then, and
    // must have its masking plan before its rows, which may follow in this very read.
    this.emitSynthetic(end);
    if (this.o.masking?.active && !this.planHead()) this.scanner.stop();
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
    // that statement's failure); later executions in the pipeline simply did not run.
    this.expected.shift();
    let attributed = false;
    if (head.kind === 'execute') {
      head.run.failed(fields.code, fields.message);
      this.finishRun(head.run);
      attributed = true;
    }
    for (let next = this.expected.peek(); next && next.kind !== 'sync'; next = this.expected.peek()) {
      if (next.kind === 'synthetic' && next.endsCycle) break;
      this.expected.shift();
      if (next.kind !== 'execute') continue;
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
      if (type !== 0x45) this.scanner.collect(type, detect, MAX_MASKED_MESSAGE_BYTES);
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
      portal = { statement: this.portals.get(name), formats: [], formatsKnown: false };
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
    this.scanner.collect(0x44 /* D */, plan !== undefined, MAX_MASKED_MESSAGE_BYTES);
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
    return !(holding && this.expected.length === 0);
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
          code: '08P01',
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
