import { describe, expect, it } from 'vitest';
import {
  binaryMaskRefusal,
  fakeText,
  isTextLikeType,
  luhnValid,
  maskCell,
  maskText,
  partialText,
  TYPE_OIDS,
} from '../../../shared/masking/methods.ts';
import type { MaskContext } from '../../../shared/masking/model.ts';

const key = new TextEncoder().encode('test-key');
const otherKey = new TextEncoder().encode('other-key');
const ctx = (typeOid: number, k = key): MaskContext => ({ typeOid, key: k });
const text = ctx(TYPE_OIDS.text);
const utf8 = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe('text values', () => {
  it('redacts to ***, and null is NULL', () => {
    expect(maskText('123-45-6789', 'redact', text)).toBe('***');
    expect(maskText('123-45-6789', 'null', text)).toBeNull();
  });

  it('partial shows the last four and keeps separators', () => {
    expect(partialText('4111 1111 1111 1111')).toBe('**** **** **** 1111');
    expect(partialText('4111-1111-1111-1111')).toBe('****-****-****-1111');
    expect(partialText('123-45-6789')).toBe('***-**-6789');
    expect(partialText('4111111111111111')).toBe('************1111');
  });

  it('partial shows nothing of short values, where four characters would be most of them', () => {
    expect(partialText('123')).toBe('***');
    expect(partialText('hunter2')).toBe('*******');
    expect(partialText('---')).toBe('***');
  });

  it('partial masks non-ASCII characters one for one', () => {
    expect(partialText('Zoë Ünïcødé 1234')).toBe('*** ******* 1234');
  });

  it('hash is a keyed, deterministic hex prefix: equal values stay joinable, keys differ', () => {
    const a = maskText('123-45-6789', 'hash', text);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(maskText('123-45-6789', 'hash', text)).toBe(a);
    expect(maskText('123-45-6788', 'hash', text)).not.toBe(a);
    expect(maskText('123-45-6789', 'hash', ctx(TYPE_OIDS.text, otherKey))).not.toBe(a);
  });

  it('fake keeps the shape: digits, letter case and separators, deterministically', () => {
    const fake = fakeText('Alice Smith, 555-123-4567', key);
    expect(fake).toMatch(/^[A-Z][a-z]{4} [A-Z][a-z]{4}, \d{3}-\d{3}-\d{4}$/);
    expect(fake).not.toBe('Alice Smith, 555-123-4567');
    expect(fakeText('Alice Smith, 555-123-4567', key)).toBe(fake);
  });

  it('fake card numbers are Luhn-valid, non-card digits need not be', () => {
    for (const card of ['4111 1111 1111 1111', '5500-0000-0000-0004', '378282246310005']) {
      const fake = fakeText(card, key);
      expect(fake.replace(/\d/g, '9')).toBe(card.replace(/\d/g, '9'));
      expect(luhnValid(fake)).toBe(true);
      expect(fake).not.toBe(card);
    }
  });

  it('varchar, bpchar and name are text; a catalog string type can be declared text-like', () => {
    for (const oid of [TYPE_OIDS.varchar, TYPE_OIDS.bpchar, TYPE_OIDS.name])
      expect(maskText('secret', 'redact', ctx(oid))).toBe('***');
    expect(maskText('secret', 'redact', ctx(99_999))).toBeNull();
    expect(maskText('secret', 'redact', { typeOid: 99_999, key, textLike: true })).toBe('***');
    expect(isTextLikeType(TYPE_OIDS.text)).toBe(true);
    expect(isTextLikeType(TYPE_OIDS.int4)).toBe(false);
  });
});

describe('typed values stay valid for their type', () => {
  it('json and jsonb become JSON strings', () => {
    for (const oid of [TYPE_OIDS.json, TYPE_OIDS.jsonb]) {
      for (const method of ['redact', 'partial', 'hash', 'fake'] as const) {
        const masked = maskText('{"ssn": "123-45-6789"}', method, ctx(oid)) as string;
        expect(typeof JSON.parse(masked)).toBe('string');
        expect(masked).not.toContain('123-45');
      }
    }
  });

  it('integers: redact is NULL, partial the last four digits, hash and fake in range', () => {
    const int4 = ctx(TYPE_OIDS.int4);
    expect(maskText('411111111', 'redact', int4)).toBeNull();
    expect(maskText('411111234', 'partial', int4)).toBe('1234');
    expect(maskText('1234', 'partial', int4)).toBeNull();
    for (const [oid, max] of [
      [TYPE_OIDS.int2, 32_767n],
      [TYPE_OIDS.int4, 2_147_483_647n],
      [TYPE_OIDS.int8, 9_223_372_036_854_775_807n],
    ] as const) {
      for (const value of ['32767', '-2147483648', '9223372036854775807', '7']) {
        for (const method of ['hash', 'fake'] as const) {
          const masked = maskText(value, method, ctx(oid)) as string;
          expect(masked).toMatch(/^-?\d+$/);
          const n = BigInt(masked);
          expect(n <= max && n >= -max - 1n).toBe(true);
        }
      }
    }
  });

  it('numeric and float keep a valid number shape', () => {
    expect(maskText('-1234.5678', 'fake', ctx(TYPE_OIDS.numeric))).toMatch(/^-[1-9]\d{3}\.\d{4}$/);
    expect(maskText('12345678.9', 'partial', ctx(TYPE_OIDS.numeric))).toBe('5678');
    expect(maskText('1.5e+30', 'fake', ctx(TYPE_OIDS.float4))).toMatch(/^1\.\de\+30$/);
    expect(maskText('NaN', 'fake', ctx(TYPE_OIDS.float8))).toBeNull();
    expect(Number(maskText('3.25', 'hash', ctx(TYPE_OIDS.float8)))).not.toBeNaN();
  });

  it('uuid: partial keeps the last four hex digits, hash is a keyed uuid', () => {
    const uuid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    expect(maskText(uuid, 'partial', ctx(TYPE_OIDS.uuid))).toBe('00000000-0000-0000-0000-000000000a11');
    const hashed = maskText(uuid, 'hash', ctx(TYPE_OIDS.uuid));
    expect(hashed).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(hashed).not.toBe(uuid);
    expect(maskText(uuid, 'redact', ctx(TYPE_OIDS.uuid))).toBeNull();
  });

  it('dates: partial keeps the year, hash and fake give a valid keyed date', () => {
    expect(maskText('1984-07-23', 'partial', ctx(TYPE_OIDS.date))).toBe('1984-01-01');
    expect(maskText('1984-07-23 10:11:12.5', 'partial', ctx(TYPE_OIDS.timestamp))).toBe(
      '1984-01-01 00:00:00',
    );
    expect(maskText('1984-07-23 10:11:12+02', 'fake', ctx(TYPE_OIDS.timestamptz))).toMatch(
      /^(19[4-9]\d|200[0-5])-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8]) 00:00:00\+00$/,
    );
    expect(maskText('infinity', 'fake', ctx(TYPE_OIDS.date))).toBeNull();
    expect(maskText('07/23/1984', 'partial', ctx(TYPE_OIDS.date))).toBeNull();
  });

  it('bytea: hash and fake give hex bytea; other types become NULL', () => {
    expect(maskText('\\x0102', 'fake', ctx(TYPE_OIDS.bytea))).toMatch(/^\\x[0-9a-f]{4}$/);
    expect(maskText('\\x0102', 'hash', ctx(TYPE_OIDS.bytea))).toMatch(/^\\x[0-9a-f]{32}$/);
    expect(maskText('t', 'fake', ctx(TYPE_OIDS.bool))).toBeNull();
  });
});

describe('DataRow cells', () => {
  it('text cells: the ASCII fast path equals the general one', () => {
    for (const value of ['4111 1111 1111 1111', '123-45-6789', 'ab', '']) {
      expect(str(maskCell(utf8(value), 0, 'partial', text))).toBe(partialText(value));
    }
    expect(str(maskCell(utf8('Zoë 12345678'), 0, 'partial', text))).toBe('*** ****5678');
    expect(maskCell(utf8('x'), 0, 'null', text)).toBeNull();
  });

  it('text cells: the byte fast paths of hash and fake equal maskText', () => {
    for (const value of [
      '123-45-6789',
      'Alice Smith',
      '4111 1111 1111 1111',
      'Zoë 1234',
      '',
      'x'.repeat(80),
    ]) {
      for (const method of ['hash', 'fake'] as const)
        expect(str(maskCell(utf8(value), 0, method, text)), `${method} ${value}`).toBe(
          maskText(value, method, text),
        );
    }
  });

  it('binary text-like cells are UTF-8 like text ones; jsonb keeps its version byte', () => {
    expect(str(maskCell(utf8('123-45-6789'), 1, 'partial', text))).toBe('***-**-6789');
    const jsonb = maskCell(new Uint8Array([1, ...utf8('"123-45-6789"')]), 1, 'redact', ctx(TYPE_OIDS.jsonb));
    expect(jsonb?.[0]).toBe(1);
    expect(str(jsonb?.subarray(1) ?? null)).toBe('"***"');
  });

  it('binary integers are rewritten as integers of the same width', () => {
    const cell = new Uint8Array(8);
    new DataView(cell.buffer).setBigInt64(0, 4111111111111111n);
    const masked = maskCell(cell, 1, 'partial', ctx(TYPE_OIDS.int8)) as Uint8Array;
    expect(masked.length).toBe(8);
    expect(new DataView(masked.buffer).getBigInt64(0)).toBe(1111n);
    const int4 = new Uint8Array(4);
    new DataView(int4.buffer).setInt32(0, 123456789);
    const fake = maskCell(int4, 1, 'fake', ctx(TYPE_OIDS.int4)) as Uint8Array;
    expect(fake.length).toBe(4);
    expect(new DataView(fake.buffer).getInt32(0)).not.toBe(123456789);
  });

  it('binary uuid and date cells stay 16 and 4 bytes', () => {
    const uuid = maskCell(new Uint8Array(16).fill(7), 1, 'hash', ctx(TYPE_OIDS.uuid));
    expect(uuid?.length).toBe(16);
    const date = new Uint8Array(4);
    new DataView(date.buffer).setInt32(0, -5640); // 1984-07-23
    const masked = maskCell(date, 1, 'partial', ctx(TYPE_OIDS.date)) as Uint8Array;
    expect(new DataView(masked.buffer).getInt32(0)).toBe(-5844); // 1984-01-01
  });

  it('numeric in binary is refused for methods that would need its binary form, never guessed', () => {
    expect(binaryMaskRefusal(TYPE_OIDS.numeric, 'partial')).toMatch(/numeric column in binary format/);
    expect(binaryMaskRefusal(TYPE_OIDS.numeric, 'redact')).toBeUndefined();
    expect(binaryMaskRefusal(TYPE_OIDS.numeric, 'null')).toBeUndefined();
    expect(binaryMaskRefusal(TYPE_OIDS.text, 'fake')).toBeUndefined();
    expect(() => maskCell(new Uint8Array(8), 1, 'hash', ctx(TYPE_OIDS.numeric))).toThrow(/binary/);
    expect(maskCell(new Uint8Array(8), 1, 'redact', ctx(TYPE_OIDS.numeric))).toBeNull();
  });
});
