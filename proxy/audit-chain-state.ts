/**
 * The proxy's side of the per-session hash chain (shared/audit-chain.ts): each session's last link,
 * kept in memory by the process that runs the session, one SHA-256 per completed record.
 *
 * The session_closed record anchors the chain (chainLength, chainHead). It must come after the
 * session's last completed record: a statement whose intent was still being written when the
 * client went away completes after the relay has ended the session, so a close that arrives while
 * intents are in flight waits for them (at most `closeWaitMs`, then it is written as it stands).
 *
 * After a crash: a session's chain ends where its records in the spool end. A restarted process
 * never continues a chain it did not start (the session is gone with the old process's sockets);
 * the spool's records ship as written, and such a session has no close: verification reports it
 * as not anchored (open), not as broken.
 */
import { genesisHash, linkHash } from '../shared/audit-chain.ts';
import type { SessionClosedEvent } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { type SpoolRecord, spoolRecord } from './audit-record.ts';

interface SessionChain {
  length: number;
  head: string;
  /** intents produced whose completed record has not come yet */
  inFlight: number;
  pendingClose?: { event: SessionClosedEvent; timer: NodeJS.Timeout };
  /** the close was written; the entry stays a while so a late record is seen as late */
  closed?: boolean;
}

export interface AuditChainsOptions {
  /** appends a record to the spool (nobody waits for it) */
  append: (record: SpoolRecord) => void;
  logger: Logger;
  closeWaitMs?: number;
}

export class AuditChains {
  private readonly sessions = new Map<string, SessionChain>();
  private readonly closeWaitMs: number;

  constructor(private readonly o: AuditChainsOptions) {
    this.closeWaitMs = o.closeWaitMs ?? 10_000;
  }

  private chainOf(sessionId: string): SessionChain {
    let chain = this.sessions.get(sessionId);
    if (chain === undefined) {
      chain = { length: 0, head: genesisHash(sessionId), inFlight: 0 };
      this.sessions.set(sessionId, chain);
    }
    return chain;
  }

  /** A record of intent is about to be written. */
  begun(intent: SpoolRecord): void {
    if (intent.chain) this.chainOf(intent.chain.sessionId).inFlight++;
  }

  /** A completed statement record: linked to its session's chain and appended. */
  completed(record: SpoolRecord): void {
    const part = record.chain;
    if (part?.tail === undefined) {
      this.o.append(record);
      return;
    }
    const chain = this.chainOf(part.sessionId);
    const index = chain.length + 1;
    const hash = linkHash(index, chain.head, part.headHash, part.tail);
    const line = `${record.line.slice(0, -1)},"chainIndex":${index},"prevHash":"${chain.head}","recordHash":"${hash}"}`;
    if (chain.closed) {
      // The close was already written (it waited its time): this record comes after the anchor.
      this.o.logger.warn('audit chain: a statement completed after its session was closed', {
        sessionId: part.sessionId,
        chainIndex: index,
      });
    }
    chain.length = index;
    chain.head = hash;
    this.o.append({ type: record.type, key: record.key, line });
    if (part.afterIntent && chain.inFlight > 0) chain.inFlight--;
    if (chain.pendingClose && chain.inFlight === 0) this.writeClose(part.sessionId, chain);
  }

  /** The session ended: its close carries the chain's anchor, now or once its last intents complete. */
  closed(event: SessionClosedEvent): void {
    const chain = this.chainOf(event.sessionId);
    if (chain.inFlight === 0) {
      this.writeClose(event.sessionId, chain, event);
      return;
    }
    const timer = setTimeout(() => this.writeClose(event.sessionId, chain), this.closeWaitMs);
    timer.unref();
    chain.pendingClose = { event, timer };
  }

  /** Shutdown: closes still waiting are written as they stand. */
  flush(): void {
    for (const [sessionId, chain] of [...this.sessions]) {
      if (chain.pendingClose) this.writeClose(sessionId, chain);
    }
  }

  /** sessions whose chain is open (for tests and diagnostics) */
  get open(): number {
    let n = 0;
    for (const chain of this.sessions.values()) if (!chain.closed) n++;
    return n;
  }

  private writeClose(sessionId: string, chain: SessionChain, event = chain.pendingClose?.event): void {
    if (chain.pendingClose) clearTimeout(chain.pendingClose.timer);
    chain.pendingClose = undefined;
    if (event === undefined || chain.closed) return;
    chain.closed = true;
    setTimeout(() => this.sessions.delete(sessionId), this.closeWaitMs).unref();
    if (chain.inFlight > 0) {
      this.o.logger.warn('audit chain: session closed with statements still in flight', {
        sessionId,
        inFlight: chain.inFlight,
      });
    }
    const anchored: SessionClosedEvent = { ...event, chainLength: chain.length, chainHead: chain.head };
    this.o.append(spoolRecord(anchored));
    // A second place the anchor is kept: the proxy's own log stream, which the API cannot write.
    this.o.logger.info('audit chain closed', {
      sessionId,
      chainLength: chain.length,
      chainHead: chain.head,
    });
  }
}
