/**
 * Collects the frames to forward from one read and writes them as few buffers as possible:
 * adjacent views of the same chunk are merged back into one view, so an unmodified chunk is
 * written exactly as it arrived.
 */
import type { Writable } from 'node:stream';

export class OutputBatcher {
  private pending: Buffer[] = [];
  /** the last pending piece as a view [base+start, base+end) of one chunk, merged lazily */
  private run: Buffer | undefined;
  private runEnd = 0;

  constructor(private readonly target: Writable) {}

  add(bytes: Buffer): void {
    const run = this.run;
    if (run && run.buffer === bytes.buffer && run.byteOffset + this.runEnd === bytes.byteOffset) {
      this.runEnd += bytes.length;
      return;
    }
    this.closeRun();
    this.run = bytes;
    this.runEnd = bytes.length;
  }

  private closeRun(): void {
    const run = this.run;
    if (!run) return;
    this.pending.push(
      this.runEnd === run.length ? run : Buffer.from(run.buffer, run.byteOffset, this.runEnd),
    );
    this.run = undefined;
  }

  /** Writes what was collected; returns false when the target asks us to slow down. */
  flush(): boolean {
    this.closeRun();
    const pending = this.pending;
    if (pending.length === 0) return true;
    this.pending = [];
    if (pending.length === 1) return this.target.write(pending[0]);
    return this.target.write(Buffer.concat(pending));
  }
}
