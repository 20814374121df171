/**
 * DataRow (D) rewriting on raw bytes. A row is Int16 column count, then per column an Int32
 * length (-1 = NULL) and that many bytes. Only the cells a rewriter is given for are looked at;
 * the others are copied byte for byte, and a row in which nothing changed is reported unchanged
 * so the caller forwards the original bytes.
 */
import { ProtocolViolation } from '../wire/protocol-violation.ts';

/**
 * Rewrites one cell: returns the new cell bytes, `null` for SQL NULL, or `undefined` to keep the
 * cell as it is. Never called for a NULL cell (NULL stays NULL).
 */
export type CellRewriter = (cell: Buffer, column: number) => Uint8Array | null | undefined;

/** Reusable per result: `rewriters[i]` for the columns to look at, undefined elsewhere. */
export class DataRowRewriter {
  private readonly starts: Int32Array;
  private readonly lengths: Int32Array;
  private readonly replaced: Array<Uint8Array | null | undefined>;

  constructor(private readonly rewriters: ReadonlyArray<CellRewriter | undefined>) {
    const n = rewriters.length;
    this.starts = new Int32Array(n);
    this.lengths = new Int32Array(n);
    this.replaced = new Array(n);
  }

  /** The new body of the DataRow, or undefined when no cell changed. */
  rewrite(body: Buffer): Buffer | undefined {
    return this.rewriteWith(body, 0);
  }

  /** The whole new DataRow message (type and length included), or undefined when no cell changed. */
  rewriteMessage(body: Buffer): Buffer | undefined {
    return this.rewriteWith(body, 5);
  }

  private rewriteWith(body: Buffer, headerBytes: number): Buffer | undefined {
    if (body.length < 2) throw new ProtocolViolation('DataRow is too short');
    const count = body.readInt16BE(0);
    const rewriters = this.rewriters;
    if (count !== rewriters.length)
      throw new ProtocolViolation(`DataRow has ${count} columns, its RowDescription ${rewriters.length}`);
    const { starts, lengths, replaced } = this;
    let i = 2;
    let changed = false;
    let newLength = body.length;
    for (let c = 0; c < count; c++) {
      if (i + 4 > body.length) throw new ProtocolViolation('DataRow is truncated');
      const length = body.readInt32BE(i);
      i += 4;
      starts[c] = i;
      lengths[c] = length;
      if (length > 0) i += length;
      if (i > body.length || length < -1) throw new ProtocolViolation('DataRow is truncated');
      const rewriter = rewriters[c];
      if (rewriter === undefined || length < 0) {
        replaced[c] = undefined;
        continue;
      }
      const out = rewriter(body.subarray(i - length, i), c);
      replaced[c] = out;
      if (out === undefined) continue;
      changed = true;
      newLength += (out === null ? 0 : out.length) - length;
    }
    if (i !== body.length) throw new ProtocolViolation('DataRow has trailing bytes');
    if (!changed) return undefined;
    return this.build(body, count, newLength, headerBytes);
  }

  private build(body: Buffer, count: number, newLength: number, headerBytes: number): Buffer {
    const { starts, lengths, replaced } = this;
    const out = Buffer.allocUnsafe(headerBytes + newLength);
    if (headerBytes > 0) {
      out[0] = 0x44; // D
      out.writeInt32BE(newLength + 4, 1);
    }
    out.writeInt16BE(count, headerBytes);
    let o = headerBytes + 2;
    // Copies runs of untouched cells (length word and bytes) in one go.
    let runFrom = 2;
    for (let c = 0; c < count; c++) {
      const cell = replaced[c];
      if (cell === undefined) continue;
      const cellHeader = starts[c]! - 4;
      o += body.copy(out, o, runFrom, cellHeader);
      if (cell === null) {
        out.writeInt32BE(-1, o);
        o += 4;
      } else {
        out.writeInt32BE(cell.length, o);
        o += 4;
        out.set(cell, o);
        o += cell.length;
      }
      runFrom = starts[c]! + Math.max(lengths[c]!, 0);
      replaced[c] = undefined;
    }
    o += body.copy(out, o, runFrom, body.length);
    if (o !== headerBytes + newLength) throw new Error('DataRow rewrite length mismatch');
    return out;
  }
}
