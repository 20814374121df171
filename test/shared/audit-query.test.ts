import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chooseIndex,
  decodeAuditCursor,
  encodeAuditCursor,
  matchesAuditQuery,
  parseAuditQuery,
  parseTimeBound,
} from '../../shared/audit-query.ts';
import { statement } from '../fakes/events.ts';

const now = new Date('2025-03-04T12:00:00.000Z');
const key = 'cursor-key-1';
const parse = (params: Record<string, string>) => parseAuditQuery(params, now, key);
const bad = (params: Record<string, string>) => {
  try {
    parse(params);
  } catch (error) {
    return error as { code: string; message: string };
  }
  throw new Error('accepted');
};

describe('parseAuditQuery', () => {
  it('chooses the index from the filters', () => {
    expect(parse({ session: 's', principal: 'p' }).index).toBe('session');
    expect(parse({ principal: 'p', decision: 'deny' }).index).toBe('principal');
    expect(parse({ decision: 'require_approval' }).index).toBe('decision');
    expect(parse({ decision: 'allow' }).index).toBe('day');
    expect(chooseIndex({})).toBe('day');
  });

  it('defaults to the last 7 days (and a little past now) without principal or session', () => {
    expect(parse({})).toMatchObject({
      since: '2025-02-25T12:05:00.000Z',
      until: '2025-03-04T12:05:00.000Z',
      limit: 100,
    });
    expect(parse({ principal: 'p' })).toMatchObject({
      since: '1970-01-01T00:00:00.000Z',
      until: '9999-12-31T23:59:59.999Z',
    });
  });

  it('takes ISO times and durations back from now', () => {
    expect(parse({ since: '1h', until: '30m' })).toMatchObject({
      since: '2025-03-04T11:00:00.000Z',
      until: '2025-03-04T11:30:00.000Z',
    });
    expect(parse({ since: '2025-03-01', until: '2025-03-02T01:00:00+01:00' })).toMatchObject({
      since: '2025-03-01T00:00:00.000Z',
      until: '2025-03-02T00:00:00.000Z',
    });
    expect(parseTimeBound('2w', now)).toBe('2025-02-18T12:00:00.000Z');
  });

  it('refuses what it cannot use, with a 400 and a reason', () => {
    for (const [params, pattern] of [
      [{ decision: 'maybe' }, /decision must be one of/],
      [{ limit: '0' }, /limit/],
      [{ limit: '1001' }, /limit/],
      [{ limit: '5.5' }, /limit/],
      [{ since: 'yesterday' }, /ISO-8601/],
      [{ since: '2025-13-45' }, /not a usable time/],
      [{ since: '2h', until: '3h' }, /before until/],
      [{ since: '2020-01-01T00:00:00Z' }, /at most 366 days/],
      [{ principals: 'x' }, /unknown parameter principals/],
      [{ text: '' }, /text must be/],
      [{ text: 'x'.repeat(1001) }, /text must be/],
    ] as const) {
      const error = bad(params);
      expect(error.code, JSON.stringify(params)).toBe('BAD_REQUEST');
      expect(error.message).toMatch(pattern);
    }
  });
});

describe('matchesAuditQuery', () => {
  const record = { ...statement(1, { text: 'SELECT * FROM Orders', decision: 'deny' }) } as Record<
    string,
    unknown
  >;
  const window = { since: '2025-03-01T00:00:00Z', until: '2025-03-02T00:00:00Z' };

  it('applies every filter, text case-insensitively', () => {
    expect(matchesAuditQuery(record, parse({ ...window, text: 'from orders' }))).toBe(true);
    expect(matchesAuditQuery(record, parse({ ...window, text: 'from customers' }))).toBe(false);
    expect(matchesAuditQuery(record, parse({ ...window, decision: 'deny' }))).toBe(true);
    expect(matchesAuditQuery(record, parse({ ...window, decision: 'allow' }))).toBe(false);
    expect(matchesAuditQuery(record, parse({ principal: 'ada@example.com' }))).toBe(true);
    expect(matchesAuditQuery(record, parse({ principal: 'ADA@example.com' }))).toBe(false);
    expect(matchesAuditQuery({ ...record, type: 'auth_failed' }, parse({ ...window }))).toBe(false);
  });

  it('keeps since inclusive and until exclusive', () => {
    const at = record['startedAt'] as string;
    expect(matchesAuditQuery(record, parse({ since: at, until: '2025-03-02T00:00:00Z' }))).toBe(true);
    expect(matchesAuditQuery(record, parse({ since: '2025-02-28T00:00:00Z', until: at }))).toBe(false);
  });
});

describe('the page cursor', () => {
  const after = { sessionId: 'sess-1', sk: 'STMT#000000000007', startedAt: '2025-03-01T10:00:07.000Z' };
  const query = parse({ principal: 'ada@example.com', since: '2025-03-01T00:00:00Z' });
  const cursor = encodeAuditCursor(query, after, key);

  it("continues the same query, in the first page's window, even when the request says otherwise", () => {
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const next = parse({ principal: 'ada@example.com', since: '1h', cursor });
    expect(next.after).toEqual(after);
    expect(next.since).toBe('2025-03-01T00:00:00.000Z');
  });

  it('is refused with other filters, another key, or any edit', () => {
    const [body, signature] = cursor.split('.') as [string, string];
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    const forgedBody = Buffer.from(
      JSON.stringify({ ...payload, a: ['other', 'STMT#000000000001', after.startedAt] }),
    ).toString('base64url');
    const reSigned = `${forgedBody}.${createHmac('sha256', 'guessed-key').update(forgedBody).digest('base64url')}`;
    for (const [params, what] of [
      [{ principal: 'bob@example.com', cursor }, 'another principal'],
      [{ principal: 'ada@example.com', text: 'x', cursor }, 'an added filter'],
      [{ cursor }, 'another index'],
      [{ principal: 'ada@example.com', cursor: `${forgedBody}.${signature}` }, 'an edited position'],
      [{ principal: 'ada@example.com', cursor: reSigned }, 'signed with another key'],
      [{ principal: 'ada@example.com', cursor: `${cursor}x` }, 'a changed signature'],
      [{ principal: 'ada@example.com', cursor: body }, 'no signature'],
      [{ principal: 'ada@example.com', cursor: 'not a cursor' }, 'garbage'],
      [{ principal: 'ada@example.com', cursor: `${cursor}.${signature}` }, 'an extra part'],
    ] as const) {
      expect(bad(params).code, what).toBe('BAD_REQUEST');
    }
    expect(() =>
      parseAuditQuery({ principal: 'ada@example.com', cursor }, now, 'another-deployment'),
    ).toThrow(/cursor is not valid/);
  });

  it('is refused when a signed position does not belong to the session asked for', () => {
    const sessionQuery = parse({ session: 'sess-1' });
    const wrong = encodeAuditCursor(sessionQuery, { ...after, sessionId: 'sess-2' }, key);
    expect(() => decodeAuditCursor(wrong, sessionQuery, key)).toThrow(/cursor is not valid/);
  });

  it('refuses a signed position that is not a statement key', () => {
    const odd = encodeAuditCursor(query, { ...after, sk: 'APPROVAL#x' }, key);
    expect(() => decodeAuditCursor(odd, query, key)).toThrow(/cursor is not valid/);
  });
});
