import { createHash } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { endsWithAdminTermination } from '../../proxy/audit-end-reason.ts';
import { captureBindParams } from '../../proxy/audit-params.ts';
import { errorResponse } from '../../proxy/wire/backend-writer.ts';

const sha256 = (bytes: string | Buffer) => createHash('sha256').update(bytes).digest('hex');
/** the body of a Bind message (without type byte and length) */
const bindBody = (config: Parameters<typeof serialize.bind>[0]) => serialize.bind(config).subarray(5);

describe('captureBindParams', () => {
  const binary = Buffer.from([0, 0, 0, 42]);
  const body = bindBody({
    portal: 'p1',
    statement: 's1',
    binary: false,
    values: ['text value', null, binary],
  });

  it('hashes each value by its bytes, keeps null, and marks binary parameters', () => {
    expect(captureBindParams(body, 'hashed')).toEqual({
      mode: 'hashed',
      values: [sha256('text value'), null, sha256(binary)],
      formats: ['text', 'text', 'binary'],
    });
  });

  it("'clear' keeps text as text and binary as base64; 'off' keeps nothing", () => {
    expect(captureBindParams(body, 'clear')).toEqual({
      mode: 'clear',
      values: ['text value', null, binary.toString('base64')],
      formats: ['text', 'text', 'binary'],
    });
    expect(captureBindParams(body, 'off')).toBeUndefined();
  });

  it('no parameters: nothing recorded, and no formats when all are text', () => {
    expect(captureBindParams(bindBody({ values: [] }), 'hashed')).toBeUndefined();
    expect(captureBindParams(bindBody({ values: ['a'] }), 'hashed')).toEqual({
      mode: 'hashed',
      values: [sha256('a')],
    });
  });

  it('rejects a truncated Bind instead of reading past it', () => {
    expect(() => captureBindParams(body.subarray(0, body.length - 8), 'hashed')).toThrow(/too short/);
  });
});

describe('endsWithAdminTermination', () => {
  const fatal = (code: string) =>
    errorResponse({
      severity: 'FATAL',
      code,
      message: 'terminating connection due to administrator command',
    });

  it('recognises FATAL 57P01 at the end of the last write, even after other messages', () => {
    expect(endsWithAdminTermination(fatal('57P01'))).toBe(true);
    expect(endsWithAdminTermination(Buffer.concat([Buffer.from('T\0\0\0\x06\0\0'), fatal('57P01')]))).toBe(
      true,
    );
  });

  it('is false for another error, or when the error is not the last message', () => {
    expect(endsWithAdminTermination(fatal('08006'))).toBe(false);
    expect(endsWithAdminTermination(Buffer.concat([fatal('57P01'), Buffer.from('Z\0\0\0\x05I')]))).toBe(
      false,
    );
    expect(endsWithAdminTermination(Buffer.alloc(0))).toBe(false);
  });
});
