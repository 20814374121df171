/**
 * The values of a held execution as the reviewer sees them, and the hash that binds an approval to
 * their exact bytes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  approvalParams,
  MAX_PARAM_CHARS,
  MAX_SHOWN_PARAMS,
  NO_PARAMS_HASH,
  paramLines,
  paramsHash,
  type RawParam,
  renderParam,
  unshownParams,
} from '../../../shared/approvals/params.ts';
import type { DecisionMask } from '../../../shared/control-plane.ts';
import { loadSqlParser } from '../../../shared/sql/parser.ts';

beforeAll(() => loadSqlParser());

const text = (value: string | null, type = 0): RawParam => ({
  type,
  format: 0,
  bytes: value === null ? null : Buffer.from(value),
});
const binary = (type: number, bytes: number[]): RawParam => ({ type, format: 1, bytes: Buffer.from(bytes) });
const key = new Uint8Array(32).fill(7);
const SSN_MASK: DecisionMask[] = [{ ruleId: 'mask-ssn', columns: ['ssn'], method: 'partial' }];

describe('paramsHash', () => {
  it('changes with any byte, the format, the declared type, NULL versus empty, and the count', () => {
    const base = paramsHash([text('10'), text(null)]);
    const variants = [
      [text('11'), text(null)],
      [text('10'), text('')],
      [{ ...text('10'), format: 1 }, text(null)],
      [text('10', 23), text(null)],
      [text('10')],
      [text('10'), text(null), text(null)],
    ];
    const hashes = new Set([base, ...variants.map(paramsHash)]);
    expect(hashes.size).toBe(variants.length + 1);
    expect(paramsHash([text('10'), text(null)])).toBe(base);
    expect(paramsHash([])).toBe(NO_PARAMS_HASH);
    // values cannot shift across the boundary between two parameters
    expect(paramsHash([text('ab'), text('c')])).not.toBe(paramsHash([text('a'), text('bc')]));
  });
});

describe('renderParam', () => {
  it('shows text as sent and binary values of the common types decoded', () => {
    expect(renderParam(text("O'Brien"))).toEqual({ value: "O'Brien", format: 'text' });
    expect(renderParam(text(null))).toEqual({ value: null, format: 'text' });
    expect(renderParam(binary(23, [0, 0, 1, 0])).value).toBe('256');
    expect(renderParam(binary(20, [255, 255, 255, 255, 255, 255, 255, 254])).value).toBe('-2');
    expect(renderParam(binary(16, [1]))).toEqual({ value: 'true', format: 'binary', type: 'bool' });
    expect(renderParam(binary(701, [...Buffer.from([64, 9, 33, 251, 84, 68, 45, 24])])).value).toBe(
      String(Math.PI),
    );
    expect(renderParam(binary(2950, [...Array(16).keys()])).value).toBe(
      '00010203-0405-0607-0809-0a0b0c0d0e0f',
    );
    expect(renderParam(binary(3802, [1, ...Buffer.from('{"a":1}')])).value).toBe('{"a":1}');
  });

  it('shows bytes it cannot read as hex: unknown types, wrong lengths, invalid UTF-8', () => {
    expect(renderParam(binary(0, [0xde, 0xad]))).toEqual({ value: '\\xdead', format: 'binary' });
    expect(renderParam(binary(23, [1, 2])).value).toBe('\\x0102');
    expect(renderParam({ type: 0, format: 0, bytes: Buffer.from([0xff, 0x41]) }).value).toBe('\\xff41');
    expect(renderParam(binary(1186, [1])).type).toBe('oid 1186');
  });

  it('cuts long values', () => {
    const long = renderParam(text('x'.repeat(1000)));
    expect(long).toMatchObject({ truncated: true });
    expect(long.value).toHaveLength(MAX_PARAM_CHARS);
    // a large value is not decoded whole; a character cut at the end of what is read is no error
    const big = renderParam(text(`${'é'.repeat(MAX_PARAM_CHARS * 2)}x`.repeat(1000)));
    expect(big).toMatchObject({ format: 'text', truncated: true, value: 'é'.repeat(MAX_PARAM_CHARS) });
  });
});

describe('approvalParams', () => {
  it('hides a value that may land in a masked column, not even telling its length', () => {
    const shown = approvalParams(
      'update customers set ssn = $1, note = $2',
      [text('123-45-6789'.repeat(30)), text('hello')],
      { masks: SSN_MASK, key },
    );
    expect(shown.values).toEqual([
      { value: '***', format: 'text', masked: 'mask-ssn' },
      { value: 'hello', format: 'text' },
    ]);
    expect(shown.count).toBe(2);
  });

  it('hides every value of a text the parser rejects while masks apply', () => {
    const shown = approvalParams('update customers set ssn = = $1', [text('x')], { masks: SSN_MASK, key });
    expect(shown.values[0]?.masked).toBe('mask-ssn');
    expect(approvalParams('update customers set ssn = = $1', [text('x')], { key }).values[0]?.value).toBe(
      'x',
    );
  });

  it('masks what the content detectors find in the values it shows', () => {
    const shown = approvalParams(
      'select pg_notify($1, $2)',
      [text('card 4111 1111 1111 1111'), text('42', 23)],
      {
        detectors: { enabled: ['card'], method: 'partial' },
        key,
      },
    );
    expect(shown.values[0]).toMatchObject({ masked: 'card' });
    expect(shown.values[0]?.value).not.toContain('4111 1111 1111');
    expect(shown.values[0]?.value).toContain('1111');
    expect(shown.values[1]).toEqual({ value: '42', format: 'text', type: 'int4' });
  });

  it('shows at most MAX_SHOWN_PARAMS values, and hashes them all', () => {
    const many = Array.from({ length: MAX_SHOWN_PARAMS + 5 }, (_, i) => text(String(i)));
    const shown = approvalParams('select 1', many, { key });
    expect(shown.values).toHaveLength(MAX_SHOWN_PARAMS);
    expect(shown.count).toBe(MAX_SHOWN_PARAMS + 5);
    expect(shown.hash).toBe(paramsHash(many));
    expect(paramLines(shown).at(-1)).toBe('… and 5 more not shown');
  });
});

describe('paramLines', () => {
  it('quotes text as SQL literals and says what is binary, masked or cut', () => {
    expect(
      paramLines({
        count: 5,
        values: [
          { value: "O'Brien", format: 'text' },
          { value: null, format: 'text' },
          { value: '42', format: 'binary', type: 'int4' },
          { value: '***', format: 'text', masked: 'mask-ssn' },
          { value: 'abc', format: 'text', truncated: true },
        ],
      }),
    ).toEqual([
      "$1 = 'O''Brien'",
      '$2 = NULL',
      '$3 = 42 (binary int4)',
      '$4 = *** (masked: mask-ssn)',
      "$5 = 'abc…' (truncated)",
    ]);
  });
});

describe('unshownParams: values a reviewer could not be shown', () => {
  const key = new Uint8Array(32);
  it('names a value cut at the display limit, and a count past the values shown', () => {
    const whole = approvalParams('update t set a = $1', [text('x'.repeat(MAX_PARAM_CHARS))], { key });
    expect(unshownParams(whole)).toBeUndefined();
    const cut = approvalParams(
      'update t set a = $1, b = $2',
      [text('ok'), text('x'.repeat(MAX_PARAM_CHARS + 1))],
      {
        key,
      },
    );
    expect(unshownParams(cut)).toMatch(/value \$2 is longer than/);
    const many = approvalParams(
      'select 1',
      Array.from({ length: MAX_SHOWN_PARAMS + 1 }, () => text('1')),
      { key },
    );
    expect(unshownParams(many)).toMatch(/binds 101 values/);
  });
  it("a value a mask rule hides is the policy's choice, not a value cut short", () => {
    const masked = approvalParams('update customers set ssn = $1', [text('1'.repeat(500))], {
      masks: [{ ruleId: 'mask-ssn', columns: ['ssn'], method: 'partial' }],
      key,
    });
    expect(masked.values[0]?.masked).toBe('mask-ssn');
    expect(unshownParams(masked)).toBeUndefined();
  });
});
