import { describe, expect, it } from 'vitest';
import { FrameReader } from '../../../proxy/wire/frame-reader.ts';

function frame(type: string, body: string | Buffer): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(b.length + 4, 1);
  b.copy(out, 5);
  return out;
}

const stream = Buffer.concat([
  frame('Q', 'select 1\0'),
  frame('S', ''),
  frame('d', Buffer.alloc(300, 7)),
  frame('X', ''),
]);

function readAll(reader: FrameReader, chunks: Buffer[]): string[] {
  const seen: string[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let f = reader.next(); f; f = reader.next()) {
      seen.push(`${String.fromCharCode(f.type)}:${f.body.length}:${f.raw.length}`);
    }
  }
  return seen;
}

describe('FrameReader', () => {
  const expected = ['Q:9:14', 'S:0:5', 'd:300:305', 'X:0:5'];

  it('splits a stream into frames whatever the chunk boundaries (every split point)', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const seen = readAll(new FrameReader(1024), [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(seen, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('handles one byte at a time', () => {
    const chunks = [...stream].map((b) => Buffer.from([b]));
    expect(readAll(new FrameReader(1024), chunks)).toEqual(expected);
  });

  it('returns views of the received chunk when frames are whole (no copy)', () => {
    const reader = new FrameReader(1024);
    reader.push(stream);
    const first = reader.next()!;
    expect(first.raw.buffer).toBe(stream.buffer);
    expect(first.raw.byteOffset).toBe(stream.byteOffset);
  });

  it('rejects lengths below 4 and above the limit', () => {
    const bad = Buffer.from([0x51, 0, 0, 0, 3]);
    const reader = new FrameReader(1024);
    reader.push(bad);
    expect(() => reader.next()).toThrow(/invalid message length 3/);
    const big = new FrameReader(100);
    big.push(frame('Q', Buffer.alloc(200)));
    expect(() => big.next()).toThrow(/exceeds the limit/);
  });
});
