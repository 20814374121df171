/**
 * The keys connections are counted under: one host cannot step around the per-address limit by
 * writing its address another way, nor one person around the per-principal limit with another token.
 */
import { describe, expect, it } from 'vitest';
import { addressKey, ConnectionCounts, principalKey } from '../../proxy/connection-limits.ts';

describe('addressKey', () => {
  it('an IPv4 address and its IPv4-mapped IPv6 form count as one', () => {
    expect(addressKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::FFFF:127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
  });

  it('every spelling of addresses in one IPv6 /64 counts as one', () => {
    const key = addressKey('2001:db8:0:0::1');
    for (const spelling of [
      '2001:DB8::2:1',
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      '2001:db8:0:0:1::1',
      '2001:db8::ffff:1.2.3.4',
      '2001:db8::1%eth0',
      '2001:db8:0:0:abcd:ef01:2345:6789',
    ])
      expect(addressKey(spelling), spelling).toBe(key);
    expect(addressKey('2001:db8:0:1::1')).not.toBe(key);
  });

  it('many connections from one /64 under its different spellings hit the one limit', () => {
    const counts = new ConnectionCounts();
    const taken = ['2001:db8::1', '2001:DB8:0:0::2', '2001:db8:0000::3'].map((a) =>
      counts.tryAcquire(addressKey(a), 2),
    );
    expect(taken.map((t) => t !== undefined)).toEqual([true, true, false]);
  });
});

describe('principalKey', () => {
  it('two tokens of one person (with and without an email) are one principal; other issuers are others', () => {
    const withEmail = { issuer: 'https://a.example', subject: 'sub|1', email: 'ada@example.com' };
    const without = { issuer: 'https://a.example', subject: 'sub|1' };
    expect(principalKey(withEmail)).toBe(principalKey(without));
    expect(principalKey({ issuer: 'https://b.example', subject: 'sub|1' })).not.toBe(principalKey(without));
    // no separator an issuer or subject can forge: "a#b" + "c" is not "a" + "b#c"
    expect(principalKey({ issuer: 'https://a.example#x', subject: 'y' })).not.toBe(
      principalKey({ issuer: 'https://a.example', subject: 'x#y' }),
    );
  });
});
