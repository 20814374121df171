/**
 * The wire pieces of masking on raw bytes: DataRow rewriting (lengths recomputed, NULL kept,
 * untouched rows reported unchanged), RowDescription and Bind format reading, and the backend
 * scanner collecting rows only while asked, at every split point, with stop() and held partials.
 */
import { describe, expect, it } from 'vitest';
import { parseBindResultFormats } from '../../proxy/masking/bind-formats.ts';
import { DataRowRewriter } from '../../proxy/masking/data-row.ts';
import { parseRowDescription, withResultFormats } from '../../proxy/masking/row-description.ts';
import { BackendScanner } from '../../proxy/wire/backend-scanner.ts';
import { ProtocolViolation } from '../../proxy/wire/protocol-violation.ts';

function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(b.length + 4, 1);
  b.copy(out, 5);
  return out;
}

/** DataRow body from cells (null = SQL NULL). */
function dataRow(cells: Array<string | Buffer | null>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeInt16BE(cells.length, 0);
  for (const cell of cells) {
    const len = Buffer.alloc(4);
    if (cell === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
      continue;
    }
    const bytes = typeof cell === 'string' ? Buffer.from(cell) : cell;
    len.writeInt32BE(bytes.length, 0);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

function cellsOf(body: Buffer): Array<string | null> {
  const n = body.readInt16BE(0);
  const out: Array<string | null> = [];
  let i = 2;
  for (let c = 0; c < n; c++) {
    const len = body.readInt32BE(i);
    i += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', i, i + len));
      i += len;
    }
  }
  expect(i).toBe(body.length);
  return out;
}

describe('DataRowRewriter', () => {
  const stars = (cell: Buffer) =>
    Buffer.from('*'.repeat(Math.max(0, cell.length - 4)) + cell.toString().slice(-4));

  it('rewrites only the columns it is given, with lengths recomputed', () => {
    const rewriter = new DataRowRewriter([undefined, stars, undefined, () => Buffer.from('x')]);
    const out = rewriter.rewrite(dataRow(['1', '123-45-6789', 'Ann', 'long value here']))!;
    expect(cellsOf(out)).toEqual(['1', '*******6789', 'Ann', 'x']);
  });

  it('keeps NULL cells NULL without calling the rewriter', () => {
    let calls = 0;
    const rewriter = new DataRowRewriter([
      () => {
        calls++;
        return Buffer.from('?');
      },
      undefined,
    ]);
    expect(rewriter.rewrite(dataRow([null, 'b']))).toBeUndefined();
    expect(calls).toBe(0);
  });

  it('reports a row whose cells did not change as unchanged (the caller forwards its bytes)', () => {
    const rewriter = new DataRowRewriter([undefined, () => undefined]);
    expect(rewriter.rewrite(dataRow(['a', 'b']))).toBeUndefined();
  });

  it('can turn a value into NULL and an empty value into a longer one', () => {
    const rewriter = new DataRowRewriter([() => null, () => Buffer.from('filled'), undefined]);
    const out = rewriter.rewrite(dataRow(['secret', '', 'z']))!;
    expect(cellsOf(out)).toEqual([null, 'filled', 'z']);
  });

  it('copies binary cells byte for byte', () => {
    const binary = Buffer.from([0, 255, 0, 1, 0xc3]);
    const rewriter = new DataRowRewriter([undefined, () => Buffer.from('m')]);
    const out = rewriter.rewrite(dataRow([binary, 'v']))!;
    expect(out.subarray(6, 11).equals(binary)).toBe(true);
    expect(out.length).toBe(2 + 4 + 5 + 4 + 1);
  });

  it('refuses malformed rows rather than guessing', () => {
    const rewriter = new DataRowRewriter([() => Buffer.from('x')]);
    expect(() => rewriter.rewrite(dataRow(['a', 'b']))).toThrow(ProtocolViolation);
    const truncated = dataRow(['abcdef']).subarray(0, 8);
    expect(() => rewriter.rewrite(truncated)).toThrow(ProtocolViolation);
    expect(() => rewriter.rewrite(Buffer.concat([dataRow(['a']), Buffer.from([1])]))).toThrow(
      ProtocolViolation,
    );
  });

  it('is reusable across rows of one result', () => {
    const rewriter = new DataRowRewriter([stars, undefined]);
    for (let i = 0; i < 100; i++) {
      const out = rewriter.rewrite(dataRow([`4111-1111-1111-${1000 + i}`, null]))!;
      expect(cellsOf(out)).toEqual([`${'*'.repeat(15)}${1000 + i}`, null]);
    }
  });
});

describe('RowDescription and Bind formats', () => {
  function rowDescription(
    columns: Array<{ name: string; table: number; attnum: number; type: number; format: number }>,
  ) {
    const parts: Buffer[] = [Buffer.alloc(2)];
    parts[0]!.writeInt16BE(columns.length, 0);
    for (const c of columns) {
      const f = Buffer.alloc(18);
      f.writeUInt32BE(c.table, 0);
      f.writeInt16BE(c.attnum, 4);
      f.writeUInt32BE(c.type, 6);
      f.writeInt16BE(-1, 10);
      f.writeInt32BE(-1, 12);
      f.writeInt16BE(c.format, 16);
      parts.push(Buffer.from(`${c.name}\0`), f);
    }
    return Buffer.concat(parts);
  }

  it('reads table OID, attribute number, type and format per column', () => {
    const body = rowDescription([
      { name: 'x', table: 16390, attnum: 5, type: 25, format: 0 },
      { name: 'ünï', table: 0, attnum: 0, type: 23, format: 1 },
    ]);
    expect(parseRowDescription(body)).toEqual([
      { name: 'x', tableOid: 16390, attnum: 5, typeOid: 25, format: 0 },
      { name: 'ünï', tableOid: 0, attnum: 0, typeOid: 23, format: 1 },
    ]);
    expect(() => parseRowDescription(body.subarray(0, body.length - 3))).toThrow(ProtocolViolation);
  });

  it('applies Bind result formats like PostgreSQL: none, one for all, one per column', () => {
    const columns = parseRowDescription(
      rowDescription([
        { name: 'a', table: 1, attnum: 1, type: 25, format: 0 },
        { name: 'b', table: 1, attnum: 2, type: 25, format: 0 },
      ]),
    );
    expect(withResultFormats(columns, []).map((c) => c.format)).toEqual([0, 0]);
    expect(withResultFormats(columns, [1]).map((c) => c.format)).toEqual([1, 1]);
    expect(withResultFormats(columns, [0, 1]).map((c) => c.format)).toEqual([0, 1]);
  });

  it('reads the result formats at the end of a Bind, past parameters of any size and NULLs', () => {
    const body = Buffer.concat([
      Buffer.from('portal\0stmt\0'),
      Buffer.from([0, 1, 0, 1]), // one param format: binary
      Buffer.from([0, 3]), // three params
      Buffer.from([0, 0, 0, 3]),
      Buffer.from('abc'),
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // NULL
      Buffer.from([0, 0, 0, 0]), // empty
      Buffer.from([0, 2, 0, 1, 0, 0]), // result formats: binary, text
    ]);
    expect(parseBindResultFormats(body)).toEqual([1, 0]);
    expect(() => parseBindResultFormats(body.subarray(0, body.length - 1))).toThrow(ProtocolViolation);
  });
});

describe('BackendScanner while masking', () => {
  const row = dataRow(['1', '123-45-6789']);
  const stream = Buffer.concat([
    frame('T', Buffer.alloc(30, 7)),
    frame('D', row),
    frame('D', row),
    frame('C', 'SELECT 2\0'),
    frame('Z', 'I'),
  ]);

  function scan(chunks: Buffer[], collectRows: boolean) {
    const seen: Array<{ type: string; body?: string; end: number }> = [];
    let base = 0;
    let chunkBase = 0;
    const scanner = new BackendScanner((type, body, end) => {
      seen.push({ type: String.fromCharCode(type), body: body?.toString('hex'), end: chunkBase + end });
    });
    scanner.collect(0x54, true);
    scanner.collect(0x44, collectRows);
    const partials: Array<{ type: number; start: number } | undefined> = [];
    for (const chunk of chunks) {
      chunkBase = base;
      expect(scanner.scan(chunk)).toBe(chunk.length);
      const p = scanner.partialCollected();
      partials.push(p && { type: p.type, start: base + p.start });
      base += chunk.length;
    }
    return { seen, partials };
  }

  it('hands out DataRow bodies only while asked to, identically at every split point', () => {
    const whole = scan([stream], true);
    expect(whole.seen.map((m) => m.type)).toEqual(['T', 'D', 'D', 'C', 'Z']);
    expect(whole.seen[1]!.body).toBe(row.toString('hex'));
    expect(scan([stream], false).seen[1]!.body).toBeUndefined();
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(scan([stream.subarray(0, cut), stream.subarray(cut)], true).seen, `cut ${cut}`).toEqual(
        whole.seen,
      );
    }
  });

  it('tells where an incomplete collected message began, in stream offsets', () => {
    const firstRowStart = 5 + 30;
    for (let cut = firstRowStart + 1; cut < firstRowStart + 5 + row.length; cut++) {
      const { partials } = scan([stream.subarray(0, cut), stream.subarray(cut)], true);
      expect(partials[0], `cut ${cut}`).toEqual({ type: 0x44, start: firstRowStart });
    }
    // a row split over three reads is still reported from its first byte
    const three = scan(
      [
        stream.subarray(0, firstRowStart + 2),
        stream.subarray(firstRowStart + 2, firstRowStart + 9),
        stream.subarray(firstRowStart + 9),
      ],
      true,
    );
    expect(three.partials.slice(0, 2)).toEqual([
      { type: 0x44, start: firstRowStart },
      { type: 0x44, start: firstRowStart },
    ]);
    // rows not collected are not reported: they stream through
    expect(scan([stream.subarray(0, firstRowStart + 3)], false).partials[0]).toBeUndefined();
  });

  it('stops right after a message when asked, and resumes from there', () => {
    const types: string[] = [];
    const scanner = new BackendScanner((type) => {
      types.push(String.fromCharCode(type));
      if (type === 0x54) scanner.stop();
    });
    scanner.collect(0x54, true);
    const consumed = scanner.scan(stream);
    expect(consumed).toBe(5 + 30);
    expect(types).toEqual(['T']);
    expect(scanner.scan(stream.subarray(consumed))).toBe(stream.length - consumed);
    expect(types).toEqual(['T', 'D', 'D', 'C', 'Z']);
  });
});
