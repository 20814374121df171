/**
 * What the proxy expects the server to answer, in order. Every forwarded client message that
 * gets a reply pushes one entry; server messages complete them. Synthetic entries are the
 * proxy's own replies (a refused statement), emitted when they reach the head of the queue so
 * the client sees every reply in the order it sent the messages.
 */
import type { StatementRun } from './statement-run.ts';

export type Expectation =
  | { kind: 'query'; run: StatementRun }
  | { kind: 'execute'; run: StatementRun }
  | { kind: 'parse' }
  | { kind: 'bind' }
  | { kind: 'describe' }
  | { kind: 'close' }
  | { kind: 'sync' }
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

  hasSync(): boolean {
    for (let i = this.head; i < this.items.length; i++) if (this.items[i]!.kind === 'sync') return true;
    return false;
  }

  /** Removes and returns everything (the session is ending). */
  drain(): Expectation[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
