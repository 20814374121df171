/**
 * Splits a byte stream into whole protocol frames (1-byte type, int32 length that counts itself,
 * body). Frames are returned as views into the received chunks, so a chunk holding whole
 * messages is never copied; only a frame that straddles chunks is assembled, once, when its last
 * byte has arrived (no repeated concatenation for large messages).
 */
import { ProtocolViolation } from './protocol-violation.ts';

export interface Frame {
  type: number;
  /** the message body, without type and length */
  body: Buffer;
  /** the whole frame as received (type, length, body), for forwarding untouched */
  raw: Buffer;
}

const EMPTY = Buffer.alloc(0);

export class FrameReader {
  private buffer: Buffer = EMPTY;
  private offset = 0;
  /** chunks of one frame that is still incomplete, and how many bytes they hold */
  private parts: Buffer[] = [];
  private partsLength = 0;
  private needed = 0;

  constructor(private readonly maxFrameBytes: number) {}

  push(chunk: Buffer): void {
    if (this.needed > 0) {
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.partsLength >= this.needed) {
        this.buffer = Buffer.concat(this.parts, this.partsLength);
        this.offset = 0;
        this.parts = [];
        this.partsLength = 0;
        this.needed = 0;
      }
      return;
    }
    if (this.offset >= this.buffer.length) {
      this.buffer = chunk;
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk]);
    }
    this.offset = 0;
  }

  /** Bytes received and not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffer.length - this.offset + this.partsLength;
  }

  next(): Frame | null {
    if (this.needed > 0) return null;
    const available = this.buffer.length - this.offset;
    if (available < 5) return null;
    const start = this.offset;
    const length = this.buffer.readInt32BE(start + 1);
    if (length < 4) throw new ProtocolViolation(`invalid message length ${length}`);
    if (length > this.maxFrameBytes) {
      throw new ProtocolViolation(`message of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
    }
    const total = length + 1;
    if (available < total) {
      // Park the partial frame; it is assembled once, when complete.
      this.parts = [this.buffer.subarray(start)];
      this.partsLength = available;
      this.needed = total;
      this.buffer = EMPTY;
      this.offset = 0;
      return null;
    }
    this.offset = start + total;
    const raw = this.buffer.subarray(start, start + total);
    return { type: raw[0]!, body: raw.subarray(5), raw };
  }

  /** Takes whatever is buffered (e.g. bytes that arrived before a TLS upgrade must be refused). */
  drain(): Buffer {
    const rest = Buffer.concat([this.buffer.subarray(this.offset), ...this.parts]);
    this.buffer = EMPTY;
    this.offset = 0;
    this.parts = [];
    this.partsLength = 0;
    this.needed = 0;
    return rest;
  }
}
