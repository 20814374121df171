/**
 * The forwarding phase of a session: client messages go upstream once the control plane has
 * decided them; server messages stream back while the proxy follows the conversation closely
 * enough to know when each statement ends and how (tag, rows, error) for the audit trail.
 *
 * Hot path: a chunk of whole, allowed messages is written upstream as the same bytes; server
 * chunks are forwarded as received unless the proxy must insert its own reply between them.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { serialize } from 'pg-protocol';
import type { ControlPlane, Decision, DecisionRequest, SessionContext } from '../shared/control-plane.ts';
import type { AuditEvent, SessionEndReason } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { type Expectation, ExpectationQueue } from './expectations.ts';
import { OutputBatcher } from './output-batcher.ts';
import type { HeldClient, StatementGate } from './statement-gate.ts';
import { StatementRun } from './statement-run.ts';
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

const NOT_EXECUTED = 'not executed: an earlier message in the same pipeline failed';

/**
 * Sent upstream in place of a refused statement: a syntax error, so the server fails it at once,
 * with no side effect, and applies its usual error semantics (the transaction block is aborted,
 * an extended-protocol pipeline is skipped up to Sync).
 */
const REFUSED_SQL = 'pgwarden refused this statement';

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
  private readonly heldClient: HeldClient = { notice: (fields) => this.sendNotice(fields) };

  constructor(private readonly o: RelayOptions) {
    this.clientReader = new FrameReader(o.maxMessageBytes);
    this.toUpstream = new OutputBatcher(o.upstream);
    this.scanner = new BackendScanner((type, body, end) => this.onBackendMessage(type, body, end));
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
          { session: this.o.session, statement: { text, protocol: 'simple' } },
          (decision) => this.query(frame, text, decision),
        );
      }
      case F_PARSE: {
        const { name, text } = parseParse(frame.body);
        return this.decideThen(
          { session: this.o.session, statement: { text, protocol: 'extended', preparedName: name } },
          (decision) => this.parse(frame, name, text, decision),
        );
      }
      case F_BIND: {
        const { portal, statement } = parseBind(frame.body);
        const prepared = this.statements.get(statement);
        if (prepared) this.portals.set(portal, prepared);
        else this.portals.delete(portal);
        this.forward(frame, { kind: 'bind' });
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
        this.forward(frame, { kind: 'execute', run });
        return undefined;
      }
      case F_DESCRIBE:
        parseTarget(frame.body);
        this.forward(frame, { kind: 'describe' });
        return undefined;
      case F_CLOSE: {
        const target = parseTarget(frame.body);
        if (target.kind === 'S') this.statements.delete(target.name);
        else this.portals.delete(target.name);
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
    then: (decision: Decision) => void,
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
      then(this.noDecision(error));
      return undefined;
    }
    if (!isPromise(answer)) {
      then(answer);
      return undefined;
    }
    return answer.then(then, (error) => then(this.noDecision(error)));
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

  private query(frame: Frame, text: string, decision: Decision): void {
    const run = new StatementRun(text, 'simple', decision);
    if (decision.action === 'allow') {
      this.forward(frame, { kind: 'query', run });
      return;
    }
    const fields = refusalFields(decision);
    run.failed(fields.code, fields.message);
    this.forwardBytes(serialize.query(REFUSED_SQL), {
      kind: 'query',
      run,
      substitute: errorResponse(fields),
    });
  }

  private parse(frame: Frame, name: string, text: string, decision: Decision): void {
    if (decision.action === 'allow') {
      this.statements.set(name, { text, decision, statement: name });
      this.forward(frame, { kind: 'parse' });
      return;
    }
    this.statements.delete(name);
    const run = new StatementRun(text, 'extended', decision, name);
    const fields = refusalFields(decision);
    run.failed(fields.code, fields.message);
    this.finishRun(run);
    this.forwardBytes(serialize.parse({ name: '', text: REFUSED_SQL }), {
      kind: 'parse',
      substitute: errorResponse(fields),
    });
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
    const held = this.heldBack;
    this.heldBack = undefined;
    const chunk = held ? Buffer.concat([held, read]) : read;
    this.currentChunk = chunk;
    this.chunkBase = held ? held.length : 0;
    this.forwardedUpTo = 0;
    this.lastMessageEnd = 0;
    try {
      this.scanner.scan(read);
    } catch (error) {
      this.protocolFailure(error);
      return;
    }
    let upTo = chunk.length;
    if (this.refusalsInFlight) {
      // A refused statement's ErrorResponse must be swapped whole: keep a partial message back.
      if (this.expected.hasSubstitute()) {
        if (this.lastMessageEnd < upTo)
          this.heldBack = chunk.subarray(Math.max(this.lastMessageEnd, this.forwardedUpTo));
        upTo = Math.max(this.lastMessageEnd, this.forwardedUpTo);
      } else {
        this.refusalsInFlight = false;
      }
    }
    if (this.forwardedUpTo < upTo)
      this.writeClient(
        this.forwardedUpTo === 0 && upTo === chunk.length ? chunk : chunk.subarray(this.forwardedUpTo, upTo),
      );
    this.currentChunk = undefined;
  }

  private onBackendMessage(type: number, body: Buffer | undefined, readEnd: number): void {
    const end = readEnd + this.chunkBase;
    this.lastMessageEnd = end;
    switch (type) {
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
          const head = this.expected.peek();
          const { tag, rows } = parseCommandComplete(body!);
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
          const head = this.expected.peek();
          if (head?.kind === 'execute') {
            this.expected.shift();
            if (type === 0x73) head.run.completed('SUSPENDED', undefined);
            this.finishRun(head.run);
          } else if (head?.kind !== 'query') this.desync(String.fromCharCode(type), head);
          break;
        }
      case 0x45 /* E ErrorResponse */:
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
        this.complete('describe', type);
        break;
      case 0x54 /* T RowDescription */:
        // Ends a Describe; inside a simple query it heads a result set.
        if (this.expected.peek()?.kind === 'describe') this.expected.shift();
        break;
      default:
        // DataRow, CopyData/Done, Copy*Response, ParameterDescription, and the messages that may
        // arrive at any time (NoticeResponse, NotificationResponse, ParameterStatus).
        return;
    }
    this.emitSynthetic(end);
  }

  private complete(kind: Expectation['kind'], type: number): void {
    const head = this.expected.peek();
    if (head?.kind === kind) this.expected.shift();
    else this.desync(String.fromCharCode(type), head);
  }

  private onServerError(body: Buffer, end: number): void {
    const fields = parseErrorFields(body);
    const head = this.expected.peek();
    if ((head?.kind === 'query' || head?.kind === 'parse') && head.substitute) {
      this.replaceServerMessage(end - 5 - body.length, end, head.substitute);
      head.substitute = undefined;
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

  /** Sends `replacement` instead of the server's message at [start, end) of the current chunk. */
  private replaceServerMessage(start: number, end: number, replacement: Buffer): void {
    const chunk = this.currentChunk;
    if (!chunk || start < this.forwardedUpTo) {
      // The message began in an earlier chunk, already forwarded: that cannot be undone.
      throw new ProtocolViolation('cannot replace a server error that spans reads');
    }
    if (start > this.forwardedUpTo) this.writeClient(chunk.subarray(this.forwardedUpTo, start));
    this.writeClient(replacement);
    this.forwardedUpTo = end;
  }

  /** Writes synthetic replies that have reached the head, after the server bytes before `end`. */
  private emitSynthetic(end: number): void {
    let head = this.expected.peek();
    if (head?.kind !== 'synthetic') return;
    const chunk = this.currentChunk;
    if (chunk && end > this.forwardedUpTo) {
      this.writeClient(chunk.subarray(this.forwardedUpTo, end));
      this.forwardedUpTo = end;
    }
    while (head?.kind === 'synthetic') {
      this.expected.shift();
      this.writeClient(head.reply());
      head = this.expected.peek();
    }
  }

  private writeClient(bytes: Buffer): void {
    if (!this.o.client.write(bytes)) {
      this.clientFull = true;
      this.updateFlow();
    }
  }

  private desync(message: string, head: Expectation | undefined): void {
    throw new ProtocolViolation(`server sent ${message} while pgwarden expected ${head?.kind ?? 'nothing'}`);
  }

  // ---- flow control, audit, end ---------------------------------------------------------

  /** Backpressure both ways: a full side pauses the side that feeds it. */
  private updateFlow(): void {
    if (this.ended) return;
    if (this.awaitingDecision || this.upstreamFull) this.o.client.pause();
    else this.o.client.resume();
    if (this.clientFull) this.o.upstream.pause();
    else this.o.upstream.resume();
  }

  private finishRun(run: StatementRun): void {
    this.seq++;
    this.o.audit.record(run.toEvent(this.o.session, this.seq, this.o.newId()));
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

  end(reason: SessionEndReason): void {
    if (this.ended) return;
    this.ended = true;
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
  const code = decision.ruleId === 'no-decision' ? '58000' : '42501';
  return { severity: 'ERROR', code, message: `pgwarden: ${why}`, detail: `rule: ${decision.ruleId}` };
}
