/**
 * Walks the server → client byte stream message by message without buffering it: bodies of
 * DataRow, CopyData and every other message the proxy does not read are skipped by counting,
 * so a row of any size streams through. Only the small bodies the proxy reads (CommandComplete,
 * ErrorResponse, ReadyForQuery) are collected, even when they straddle chunks.
 */
import { ProtocolViolation } from './protocol-violation.ts';

const COLLECTED = new Set([0x43 /* C */, 0x45 /* E */, 0x5a /* Z */]);
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

  constructor(private readonly onMessage: BackendMessageHandler) {}

  scan(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, n - i);
        if (this.collecting) this.collecting.push(chunk.subarray(i, i + take));
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.finish(i);
        continue;
      }
      // Fast path: a whole header in this chunk.
      if (this.headerFill === 0 && n - i >= 5) {
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
        }
        continue;
      }
      const take = Math.min(5 - this.headerFill, n - i);
      chunk.copy(this.header, this.headerFill, i, i + take);
      this.headerFill += take;
      i += take;
      if (this.headerFill === 5) {
        this.headerFill = 0;
        this.begin(this.header[0]!, this.header.readInt32BE(1));
        if (this.remaining === 0) this.finish(i);
      }
    }
  }

  private begin(type: number, length: number): void {
    if (length < 4) throw new ProtocolViolation(`server sent an invalid message length ${length}`);
    this.type = type;
    this.remaining = length - 4;
    if (COLLECTED.has(type)) {
      if (this.remaining > MAX_COLLECTED_BYTES) throw new ProtocolViolation('server message too large');
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
