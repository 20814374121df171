/**
 * What the proxy expects the server to answer, in order. Every forwarded client message that
 * gets a reply pushes one entry; server messages complete them. Synthetic entries are the
 * proxy's own replies (a refused statement), emitted when they reach the head of the queue so
 * the client sees every reply in the order it sent the messages.
 */
import type { BoundPortal } from './masking/session-masking.ts';
import type { Portal, PreparedStatement } from './session-objects.ts';
import type { StatementRun } from './statement-run.ts';

/** What a Describe describes, when masking needs to remember its RowDescription. */
export type DescribeTarget = { statement: object } | { portal: BoundPortal };

/**
 * `substitute`: the client's message was refused and replaced upstream by one that fails, so the
 * server itself aborts the transaction and skips the rest of the pipeline exactly as it does on any
 * error; the server's ErrorResponse is then swapped for the proxy's own.
 */
export type Expectation =
  /** `epoch`: the relay's epoch this Query began (session-objects.ts) */
  | { kind: 'query'; run: StatementRun; epoch: number; substitute?: Buffer }
  /** `portal`: set while masking is active, so its rows are masked by what Bind and Describe said */
  | { kind: 'execute'; run: StatementRun; portal?: BoundPortal }
  /** `statement` / `portal`: the record the server's reply confirms (or, on an error, removes) */
  | { kind: 'parse'; substitute?: Buffer; statement?: PreparedStatement }
  | { kind: 'bind'; substitute?: Buffer; portal?: Portal; name?: string }
  /** `swallow`: the proxy sent this Describe itself (masking), so its reply is not forwarded */
  | { kind: 'describe'; target?: DescribeTarget; swallow?: boolean }
  | { kind: 'close' }
  /** `copyEnds`: CopyDones and CopyFails forwarded between the last message with a reply and this Sync */
  | { kind: 'sync'; epoch: number; copyEnds: number }
  /** one reply to the proxy's own check of the pins inside a pipeline (pipeline-guard.ts): dropped */
  | { kind: 'pin_check' }
  /** bytes the proxy answers itself; `endsCycle` marks a reply that ends with ReadyForQuery */
  | { kind: 'synthetic'; reply: () => Buffer; endsCycle: boolean };

/** A FIFO with an index instead of Array.shift, so long pipelines stay O(1) per message. */
export class ExpectationQueue {
  private items: Expectation[] = [];
  private head = 0;

  push(item: Expectation): void {
    this.items.push(item);
  }

  peek(): Expectation | undefined {
    return this.items[this.head];
  }

  shift(): Expectation | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined as never;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Whether a refused statement's error, or a reply the proxy drops, is still to come. */
  hasSubstitute(): boolean {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i]!;
      if ((item.kind === 'query' || item.kind === 'parse' || item.kind === 'bind') && item.substitute)
        return true;
      if (item.kind === 'pin_check') return true;
    }
    return false;
  }

  /** Whether a statement is in flight on the server (something a cancel could stop). */
  hasRunning(): boolean {
    for (let i = this.head; i < this.items.length; i++) {
      const kind = this.items[i]!.kind;
      if (kind === 'query' || kind === 'execute') return true;
    }
    return false;
  }

  hasSync(): boolean {
    for (let i = this.head; i < this.items.length; i++) if (this.items[i]!.kind === 'sync') return true;
    return false;
  }

  /**
   * The statement at the head began its `copyEnds + 1`-th COPY FROM STDIN: the Syncs sent right
   * after it with that many copy ends before them reach the server in COPY mode, which ignores
   * them, so no ReadyForQuery will answer them.
   */
  dropSyncsIgnoredByCopy(copyEnds: number): void {
    for (let i = this.head + 1; i < this.items.length; ) {
      const item = this.items[i]!;
      if (item.kind === 'sync' && item.copyEnds === copyEnds) this.items.splice(i, 1);
      else if (item.kind === 'sync' || item.kind === 'synthetic') i++;
      else return;
    }
  }

  /** Removes and returns everything (the session is ending). */
  drain(): Expectation[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
