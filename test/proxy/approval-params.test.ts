/** The values of a held Bind, read from the raw message. */
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { bindParams } from '../../proxy/approval-params.ts';
import { parseParamTypes } from '../../proxy/wire/frontend-fields.ts';
import { ProtocolViolation } from '../../proxy/wire/protocol-violation.ts';

const body = (message: Buffer) => message.subarray(5);

/** A Bind with explicit parameter format codes. */
function bind(formats: number[], values: Array<Buffer | null>): Buffer {
  const parts: Buffer[] = [Buffer.from('p\0s\0')];
  const head = Buffer.alloc(2 + 2 * formats.length);
  head.writeInt16BE(formats.length);
  for (const [i, f] of formats.entries()) head.writeInt16BE(f, 2 + 2 * i);
  parts.push(head);
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length);
  parts.push(count);
  for (const v of values) {
    const length = Buffer.alloc(4);
    length.writeInt32BE(v === null ? -1 : v.length);
    parts.push(length, ...(v === null ? [] : [v]));
  }
  parts.push(Buffer.from([0, 0]));
  return Buffer.concat(parts);
}

describe('bindParams', () => {
  it('reads each value with its format and the type its Parse declared', () => {
    expect(bindParams(body(serialize.bind({ values: ['a', null, Buffer.from([1])] })), [25])).toEqual([
      { type: 25, format: 0, bytes: Buffer.from('a') },
      { type: 0, format: 0, bytes: null },
      { type: 0, format: 1, bytes: Buffer.from([1]) },
    ]);
    // one format code applies to every value
    expect(bindParams(bind([1], [Buffer.from([0]), Buffer.from([1])])).map((p) => p.format)).toEqual([1, 1]);
    expect(bindParams(bind([], [Buffer.from('x')]))[0]?.format).toBe(0);
  });

  it('refuses a malformed Bind rather than guess what the reviewer should see', () => {
    expect(() => bindParams(bind([0, 0], [Buffer.from('x')]))).toThrow(ProtocolViolation);
    const cut = bind([], [Buffer.from('abcdef')]);
    expect(() => bindParams(cut.subarray(0, cut.length - 5))).toThrow(ProtocolViolation);
    expect(() => bindParams(Buffer.from('p'))).toThrow(ProtocolViolation);
  });
});

describe('parseParamTypes', () => {
  it('reads the type OIDs a Parse declares', () => {
    expect(parseParamTypes(body(serialize.parse({ text: 'select $1, $2', types: [23, 0] })))).toEqual([
      23, 0,
    ]);
    expect(parseParamTypes(body(serialize.parse({ text: 'select 1' })))).toEqual([]);
    expect(() => parseParamTypes(Buffer.from('s\0select 1\0'))).toThrow(ProtocolViolation);
  });
});
