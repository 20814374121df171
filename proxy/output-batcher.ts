/**
 * Collects the frames to forward from one read and writes them as few buffers as possible:
 * adjacent views of the same chunk are merged back into one view, so an unmodified chunk is
 * written exactly as it arrived.
 */
import type { Writable } from 'node:stream';

export class OutputBatcher {
  private pending: Buffer[] = [];

  constructor(private readonly target: Writable) {}

  add(bytes: Buffer): void {
    const last = this.pending[this.pending.length - 1];
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.length === bytes.byteOffset) {
      this.pending[this.pending.length - 1] = Buffer.from(
        last.buffer,
        last.byteOffset,
        last.length + bytes.length,
      );
    } else {
      this.pending.push(bytes);
    }
  }

  /** Writes what was collected; returns false when the target asks us to slow down. */
  flush(): boolean {
    const pending = this.pending;
    if (pending.length === 0) return true;
    this.pending = [];
    if (pending.length === 1) return this.target.write(pending[0]);
    return this.target.write(Buffer.concat(pending));
  }
}
