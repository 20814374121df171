import { describe, expect, it } from 'vitest';
import { BackendScanner } from '../../../proxy/wire/backend-scanner.ts';

function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(b.length + 4, 1);
  b.copy(out, 5);
  return out;
}

const stream = Buffer.concat([
  frame('T', Buffer.alloc(20, 1)),
  frame('D', Buffer.alloc(1000, 2)),
  frame('N', 'notice\0'),
  frame('C', 'SELECT 1\0'),
  frame('E', 'SERROR\0C42501\0Mnope\0\0'),
  frame('Z', 'I'),
]);

function scanInChunks(chunks: Buffer[]): { events: string[]; ends: number[] } {
  const events: string[] = [];
  const ends: number[] = [];
  let base = 0;
  let chunkBase = 0;
  const scanner = new BackendScanner((type, body, end) => {
    events.push(`${String.fromCharCode(type)}${body ? `=${body.toString('latin1')}` : ''}`);
    ends.push(chunkBase + end);
  });
  for (const chunk of chunks) {
    chunkBase = base;
    scanner.scan(chunk);
    base += chunk.length;
  }
  return { events, ends };
}

describe('BackendScanner', () => {
  const whole = scanInChunks([stream]);

  it('reports each message once, with the bodies it collects', () => {
    expect(whole.events).toEqual(['T', 'D', 'N', 'C=SELECT 1\0', 'E=SERROR\0C42501\0Mnope\0\0', 'Z=I']);
    expect(whole.ends.at(-1)).toBe(stream.length);
  });

  it('gives the same messages and end offsets for every split point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(scanInChunks([stream.subarray(0, cut), stream.subarray(cut)]), `cut ${cut}`).toEqual(whole);
    }
  });

  it('gives the same result one byte at a time', () => {
    expect(scanInChunks([...stream].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it('rejects a length below 4', () => {
    const scanner = new BackendScanner(() => {});
    expect(() => scanner.scan(Buffer.from([0x44, 0, 0, 0, 2]))).toThrow(/invalid message length/);
  });
});
