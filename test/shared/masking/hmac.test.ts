import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hmacSha256 } from '../../../shared/masking/hmac.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('hmacSha256', () => {
  it('equals node:crypto for every length around the block boundaries, and long keys', () => {
    for (const key of [randomBytes(1), randomBytes(32), randomBytes(64), randomBytes(100)]) {
      for (let length = 0; length <= 200; length++) {
        const input = randomBytes(length);
        expect(hex(hmacSha256(key, input))).toBe(createHmac('sha256', key).update(input).digest('hex'));
      }
    }
  });

  it('takes strings as UTF-8', () => {
    const key = new TextEncoder().encode('key');
    for (const text of ['', 'abc', 'Zoë Ünïcødé 🙂', 'x'.repeat(500)])
      expect(hex(hmacSha256(key, text))).toBe(createHmac('sha256', key).update(text, 'utf8').digest('hex'));
  });

  it('matches RFC 4231 test case 2', () => {
    const key = new TextEncoder().encode('Jefe');
    expect(hex(hmacSha256(key, 'what do ya want for nothing?'))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});
