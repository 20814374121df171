/**
 * Walks the server → client byte stream message by message without buffering it: bodies of
 * DataRow, CopyData and every other message the proxy does not read are skipped by counting,
 * so a row of any size streams through. Only the bodies the proxy reads are collected, even when
 * they straddle chunks: always CommandComplete, ErrorResponse, ReadyForQuery and ParameterStatus, and, while
 * masking needs them, RowDescription, DataRow and the other channels detectors scan.
 */
import { MessageTooLarge, ProtocolViolation } from './protocol-violation.ts';

/** ParameterStatus too: the relay watches the settings the gateway pins (rare, so it costs nothing). */
const ALWAYS_COLLECTED = [0x43 /* C */, 0x45 /* E */, 0x5a /* Z */, 0x53 /* S */];
const MAX_COLLECTED_BYTES = 16 * 1024 * 1024;

/**
 * Called for every complete message. `end` is the offset in the current chunk just after the
 * message, so the caller can forward the chunk up to there before injecting its own bytes.
 * `body` is set only for collected message types.
 */
export type BackendMessageHandler = (type: number, body: Buffer | undefined, end: number) => void;

export class BackendScanner {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private type = 0;
  /** body bytes still to skip or collect for the current message */
  private remaining = 0;
  private collecting: Buffer[] | undefined;
  /** per message type: 0 skip, otherwise the largest body collected */
  private readonly limits = new Float64Array(256);
  /** offset, in the current chunk, of the first byte of the message in progress (< 0: an earlier chunk) */
  private start = 0;
  private stopRequested = false;
  /** length of the chunk scanned before the current one, to carry `start` over */
  private previousLength = 0;

  constructor(private readonly onMessage: BackendMessageHandler) {
    for (const type of ALWAYS_COLLECTED) this.limits[type] = MAX_COLLECTED_BYTES;
  }

  /** Collects (or stops collecting) bodies of `type`, up to `maxBytes` each; takes effect at the next message. */
  collect(type: number, on: boolean, maxBytes = MAX_COLLECTED_BYTES): void {
    if (ALWAYS_COLLECTED.includes(type)) return;
    this.limits[type] = on ? maxBytes : 0;
  }

  /** Makes scan() return right after the message being handled (called from the handler). */
  stop(): void {
    this.stopRequested = true;
  }

  /**
   * The type and start offset (relative to the chunk last scanned; negative when it began in an
   * earlier one) of a collected message that is still incomplete, so the caller can hold its bytes.
   */
  partialCollected(): { type: number; start: number } | undefined {
    if (this.headerFill > 0)
      return this.limits[this.header[0]!]! > 0 ? { type: this.header[0]!, start: this.start } : undefined;
    if (this.remaining > 0 && this.collecting) return { type: this.type, start: this.start };
    return undefined;
  }

  /** Whether the stream scanned so far ends inside a message (its header or body). */
  inMessage(): boolean {
    return this.headerFill > 0 || this.remaining > 0;
  }

  /** Scans `chunk`; returns how many bytes it consumed (fewer than all only after stop()). */
  scan(chunk: Buffer): number {
    let i = 0;
    const n = chunk.length;
    this.start -= this.previousLength;
    this.previousLength = n;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        if (this.collecting) this.collecting.push(chunk.subarray(i, i + take));
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) {
          this.finish(i);
          if (this.stopRequested) return this.stopped(i);
        }
        continue;
      }
      // Fast path: a whole header in this chunk.
      if (this.headerFill === 0 && n - i >= 5) {
        this.start = i;
        this.begin(chunk[i]!, chunk.readInt32BE(i + 1));
        i += 5;
        if (this.remaining === 0) {
          this.finish(i);
        } else if (this.collecting && n - i >= this.remaining) {
          // Whole collected body in this chunk: hand out a view, no copy.
          const body = chunk.subarray(i, i + this.remaining);
          i += this.remaining;
          this.remaining = 0;
          this.collecting = undefined;
          this.onMessage(this.type, body, i);
        } else continue;
        if (this.stopRequested) return this.stopped(i);
        continue;
      }
      if (this.headerFill === 0) this.start = i;
      const take = Math.min(5 - this.headerFill, n - i);
      chunk.copy(this.header, this.headerFill, i, i + take);
      this.headerFill += take;
      i += take;
      if (this.headerFill === 5) {
        this.headerFill = 0;
        this.begin(this.header[0]!, this.header.readInt32BE(1));
        if (this.remaining === 0) {
          this.finish(i);
          if (this.stopRequested) return this.stopped(i);
        }
      }
    }
    return n;
  }

  private stopped(i: number): number {
    this.stopRequested = false;
    this.previousLength = i;
    return i;
  }

  private begin(type: number, length: number): void {
    if (length < 4) throw new ProtocolViolation(`server sent an invalid message length ${length}`);
    this.type = type;
    this.remaining = length - 4;
    const limit = this.limits[type]!;
    if (limit > 0) {
      if (this.remaining > limit) throw new MessageTooLarge(tooLarge(type, this.remaining, limit));
      this.collecting = [];
    } else {
      this.collecting = undefined;
    }
  }

  private finish(end: number): void {
    const parts = this.collecting;
    this.collecting = undefined;
    const body = parts ? (parts.length === 1 ? parts[0]! : Buffer.concat(parts)) : undefined;
    this.onMessage(this.type, body, end);
  }
}

function tooLarge(type: number, bytes: number, limit: number): string {
  const what = type === 0x44 ? 'a row' : `a message of type "${String.fromCharCode(type)}"`;
  return `the server sent ${what} of ${bytes} bytes, more than the ${limit} bytes pgwarden holds whole to mask or scan it (PGWARDEN_MAX_MASKED_ROW_BYTES)`;
}
