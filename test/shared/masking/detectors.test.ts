import { describe, expect, it } from 'vitest';
import { ibanValid, scanBytes, scanText } from '../../../shared/masking/detectors.ts';
import { DETECTOR_NAMES, type DetectorName, type DetectorSettings } from '../../../shared/masking/model.ts';

const key = new TextEncoder().encode('test-key');
const all: DetectorSettings = { enabled: DETECTOR_NAMES, method: 'partial' };
const only = (name: DetectorName, method: DetectorSettings['method'] = 'redact'): DetectorSettings => ({
  enabled: [name],
  method,
});
const hitsOf = (value: string, settings = all) =>
  scanText(value, settings, key)?.hits.map((h) => `${h.detector}:${h.count}`) ?? [];

const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';

describe('true positives', () => {
  it.each([
    ['card', 'paid with 4111 1111 1111 1111 today', 'paid with **** **** **** 1111 today'],
    ['card', '5500-0000-0000-0004', '****-****-****-0004'],
    ['card', 'amex 378282246310005', 'amex ***********0005'],
    ['ssn', 'SSN: 123-45-6789.', 'SSN: ***-**-6789.'],
    ['ssn', '123 45 6789', '*** ** 6789'],
    ['phone', 'call (555) 123-4567', 'call (***) ***-4567'],
    ['phone', 'call 555-123-4567 now', 'call ***-***-4567 now'],
    ['phone', '+44 20 7946 0958', '+** ** **** 0958'],
    ['phone', '+14155552671', '+*******2671'],
    ['iban', 'IBAN GB82 WEST 1234 5698 7654 32', 'IBAN **** **** **** **** **54 32'],
    ['iban', 'DE89370400440532013000', '******************3000'],
  ] as const)('%s in %j', (detector, value, masked) => {
    const scan = scanText(value, { enabled: [detector], method: 'partial' }, key);
    expect(scan?.hits).toEqual([{ detector, count: 1 }]);
    expect(scan?.masked).toBe(masked);
  });

  it('emails, AWS keys, JWTs and private keys are redacted whole', () => {
    expect(scanText('mail alice.smith+x@example.co.uk.', all, key)?.masked).toBe('mail ***.');
    expect(scanText('key=AKIAIOSFODNN7EXAMPLE;', all, key)?.masked).toBe('key=***;');
    expect(scanText('ASIAY34FZKBOKMUTVV7A', all, key)?.hits).toEqual([
      { detector: 'aws_access_key', count: 1 },
    ]);
    expect(scanText(`Bearer ${JWT}`, all, key)?.masked).toBe('Bearer ***');
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----';
    expect(scanText(`k: ${pem} end`, all, key)?.masked).toBe('k: *** end');
    expect(hitsOf('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk')).toEqual(['private_key:1']);
  });

  it('counts several findings in one value and masks each', () => {
    const scan = scanText('ssn 123-45-6789, card 4111111111111111, ssn 234-56-7890', all, key);
    expect(scan?.hits).toEqual([
      { detector: 'ssn', count: 2 },
      { detector: 'card', count: 1 },
    ]);
    expect(scan?.masked).toBe('ssn ***-**-6789, card ************1111, ssn ***-**-7890');
  });

  it('masks with the policy method: hash keyed and deterministic, null makes the value NULL', () => {
    const hashed = scanText('ssn 123-45-6789', only('ssn', 'hash'), key)?.masked;
    expect(hashed).toMatch(/^ssn [0-9a-f]{16}$/);
    expect(scanText('ssn 123-45-6789', only('ssn', 'hash'), key)?.masked).toBe(hashed);
    expect(scanText('ssn 123-45-6789', only('ssn', 'null'), key)).toEqual({
      masked: null,
      hits: [{ detector: 'ssn', count: 1 }],
    });
    expect(scanText('4111 1111 1111 1111', only('card', 'fake'), key)?.masked).toMatch(
      /^\d{4} \d{4} \d{4} \d{4}$/,
    );
  });
});

describe('near misses are not findings', () => {
  it.each([
    ['a non-Luhn 16-digit number', '4111 1111 1111 1112'],
    ['12 digits', '411111111111'],
    ['20 digits', '41111111111111111111'],
    ['digits glued to letters', 'order4111111111111111x'],
    ['SSN area 000', '000-12-3456'],
    ['SSN area 666', '666-12-3456'],
    ['SSN area 9xx', '912-12-3456'],
    ['SSN group 00', '123-00-4567'],
    ['SSN serial 0000', '123-45-0000'],
    ['SSN with mixed separators', '123-45 6789'],
    ['bare 9 digits', 'id 123456789'],
    ['a bare 10-digit number', 'ref 5551234567'],
    ['an IBAN with a bad check', 'GB82 WEST 1234 5698 7654 33'],
    ['AKIA too short', 'AKIAIOSFODNN7EXAMPL'],
    ['AKIA inside a word', 'XAKIAIOSFODNN7EXAMPLE'],
    ['a JWT-like string whose header has no alg', 'eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.abc'],
    ['a JWT-like string that is not JSON', 'eyJhbGciOiJIUzI1.eyJzdWIiOiIxIn0.abc'],
    ['a public key', '-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----'],
    ['an @ without a domain', 'user@localhost'],
    ['a date and a time', '2024-01-31 12:34:56.789012+00'],
    ['a version string', 'PostgreSQL 18.1.5 on x86_64'],
    ['plain prose', 'The quick brown fox jumps over the lazy dog.'],
  ])('%s', (_name, value) => {
    expect(scanText(value, all, key)).toBeUndefined();
  });

  it('detectors that are not enabled find nothing', () => {
    expect(
      scanText('alice@example.com (555) 123-4567', { enabled: ['card', 'ssn'], method: 'redact' }, key),
    ).toBeUndefined();
    expect(scanText('4111 1111 1111 1111', { enabled: [], method: 'redact' }, key)).toBeUndefined();
  });
});

describe('bytes', () => {
  const utf8 = (s: string) => new TextEncoder().encode(s);

  it('scans UTF-8 cells and returns UTF-8', () => {
    const scan = scanBytes(utf8('Zoë: 123-45-6789'), all, key);
    expect(scan?.masked && new TextDecoder().decode(scan.masked)).toBe('Zoë: ***-**-6789');
    expect(scanBytes(utf8('Zoë Ünïcødé'), all, key)).toBeUndefined();
  });

  it('agrees with scanText on every case above', () => {
    for (const value of [
      '4111 1111 1111 1111',
      'AKIAIOSFODNN7EXAMPLE',
      JWT,
      'GB82WEST12345698765432',
      'x@y.io',
      'plain',
    ]) {
      const text = scanText(value, all, key);
      const bytes = scanBytes(utf8(value), all, key);
      expect(bytes?.hits).toEqual(text?.hits);
      expect(bytes?.masked && new TextDecoder().decode(bytes.masked)).toEqual(text?.masked);
    }
  });
});

describe('JSON values', () => {
  const json = { json: true };

  it('stay valid JSON: findings in strings are masked in place, bare numbers become strings', () => {
    expect(scanText('{"card": "4111 1111 1111 1111", "n": 1}', all, key, json)?.masked).toBe(
      '{"card": "**** **** **** 1111", "n": 1}',
    );
    expect(scanText('{"card": 4111111111111111}', all, key, json)?.masked).toBe(
      '{"card": "************1111"}',
    );
    expect(scanText('["a\\"b 123-45-6789"]', all, key, json)?.masked).toBe('["a\\"b ***-**-6789"]');
  });

  it('fall back to "***" when masking in place would break the JSON', () => {
    const unterminated = '{"k": "-----BEGIN PRIVATE KEY-----\\nMIIE"}';
    const scan = scanText(unterminated, all, key, json);
    expect(scan?.masked).toBe('"***"');
    expect(scan?.hits).toEqual([{ detector: 'private_key', count: 1 }]);
  });

  it('without the option, text is text', () => {
    expect(scanText('{"card": 4111111111111111}', all, key)?.masked).toBe('{"card": ************1111}');
  });
});

describe('iban check', () => {
  it('is ISO 13616 mod 97', () => {
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('NL91ABNA0417164300')).toBe(true);
    expect(ibanValid('GB82WEST12345698765433')).toBe(false);
  });
});
