/** proxy/wire/startup.ts: the first packet, decoded as strictly as the server decodes it. */
import { describe, expect, it } from 'vitest';
import { ProtocolViolation } from '../../../proxy/wire/protocol-violation.ts';
import { InvalidStartupLength, readStartupPacket } from '../../../proxy/wire/startup.ts';

/** A protocol 3.0 startup packet around `body` (name\0value\0…, terminator included by the caller). */
function packet(body: Buffer | string): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const out = Buffer.alloc(8 + payload.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(3 << 16, 4);
  payload.copy(out, 8);
  return out;
}

function violation(data: Buffer): ProtocolViolation {
  try {
    readStartupPacket(data, 10_000);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolViolation);
    return error as ProtocolViolation;
  }
  throw new Error('expected the packet to be refused');
}

describe('readStartupPacket', () => {
  it('decodes names and values in order', () => {
    const read = readStartupPacket(packet('user\0alice\0database\0app\0\0'), 10_000);
    expect(read?.packet).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      parameters: new Map([
        ['user', 'alice'],
        ['database', 'app'],
      ]),
    });
  });

  it('waits for the whole packet', () => {
    const whole = packet('user\0alice\0\0');
    for (let i = 0; i < whole.length; i++) expect(readStartupPacket(whole.subarray(0, i), 10_000)).toBeNull();
  });

  it('refuses a parameter given twice (the server would keep the last)', () => {
    expect(violation(packet('user\0alice\0application_name\0a\0application_name\0b\0\0')).message).toMatch(
      /twice/,
    );
    expect(violation(packet('user\0alice\0user\0postgres\0\0')).message).toMatch(/twice/);
  });

  it('refuses bytes after the terminator and a missing terminator', () => {
    expect(violation(packet('user\0alice\0\0role\0x\0\0')).message).toMatch(/terminator/);
    expect(violation(packet('user\0alice\0')).message).toMatch(/terminator/);
  });

  it('refuses a name or value that is not terminated', () => {
    expect(violation(packet('user\0alice')).message).toMatch(/not terminated/);
    expect(violation(packet('user')).message).toMatch(/not terminated/);
  });

  it('refuses bytes that are not UTF-8 with 22021', () => {
    const error = violation(packet(Buffer.from([...Buffer.from('application_name\0'), 0xc0, 0x27, 0, 0])));
    expect(error.sqlstate).toBe('22021');
  });

  it('refuses a packet longer than the limit before it is buffered', () => {
    const head = Buffer.alloc(8);
    head.writeInt32BE(10_001, 0);
    head.writeInt32BE(3 << 16, 4);
    expect(violation(head).message).toMatch(/length/);
    // plausible: the client is told why (08P01), not cut off
    expect(violation(head)).not.toBeInstanceOf(InvalidStartupLength);
  });

  it('marks lengths no message can have, to be closed without an answer as the server does', () => {
    const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    // node-postgres's Terminate ahead of its SSLRequest: 'X' read as a length of 1.4 GiB
    expect(violation(Buffer.concat([Buffer.from('X\0\0\0\x04', 'latin1'), ssl]))).toBeInstanceOf(
      InvalidStartupLength,
    );
    const short = Buffer.from(ssl);
    short.writeInt32BE(4, 0);
    expect(violation(short)).toBeInstanceOf(InvalidStartupLength);
  });
});
