/**
 * The audit reader against dynalite, over records written by the real store: every index answers
 * its question completely and in order, page by page, with nothing repeated or skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbAuditQuery } from '../../../functions/adapters/dynamodb-audit-query.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../../functions/adapters/dynamodb-audit-store.ts';
import {
  type AuditEventQuery,
  type AuditRecord,
  encodeAuditCursor,
  parseAuditQuery,
} from '../../../shared/audit-query.ts';
import type { StatementEvent } from '../../../shared/events.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';
import { sessionClosed, sessionOpened, statement } from '../../fakes/events.ts';

const tables = tableNames('q-');
const key = 'test-cursor-key';
const now = new Date('2025-03-04T12:00:00.000Z');
let db: LocalDynamoDb;
let reader: DynamoDbAuditQuery;
const written: StatementEvent[] = [];

/** 3 days × 6 sessions × 5 statements, two principals, every 7th statement refused or held. */
function workload(): StatementEvent[] {
  const events: StatementEvent[] = [];
  for (let day = 1; day <= 3; day += 1) {
    for (let s = 0; s < 6; s += 1) {
      const sessionId = `s-${day}-${s}`;
      for (let seq = 1; seq <= 5; seq += 1) {
        const n = events.length;
        events.push(
          statement(seq, {
            eventId: `e-${n}`,
            sessionId,
            principal: s % 2 === 0 ? 'ada@example.com' : 'bob@example.com',
            applicationName: s % 3 === 0 ? 'pgbench' : 'psql',
            // sessions run side by side: the same second in several sessions (ties on startedAt)
            startedAt: new Date(Date.UTC(2025, 2, day, 10, 0, seq)).toISOString(),
            text: n % 5 === 0 ? `SELECT * FROM Orders WHERE id = ${n}` : `select ${n}`,
            decision: n % 7 === 0 ? (n % 2 === 0 ? 'deny' : 'require_approval') : 'allow',
            ruleId: n % 7 === 0 ? 'rule-x' : 'default',
          }),
        );
      }
    }
  }
  return events;
}

beforeAll(async () => {
  db = await startDynamoDb();
  await ensureAuditTables(db.client, tables);
  const store = new DynamoDbAuditStore(db.client, tables);
  written.push(...workload());
  await store.put(written);
  await store.put([
    sessionOpened({ sessionId: 's-1-0' }),
    sessionClosed({ sessionId: 's-1-0', statements: 5 }),
  ]);
  await store.put([sessionOpened({ sessionId: 's-1-1' })]);
  reader = new DynamoDbAuditQuery(db.client, tables);
});
afterAll(async () => {
  await db.stop();
});

const byTime = (a: StatementEvent, b: StatementEvent) =>
  `${a.startedAt}#${a.sessionId}#${a.seq}`.localeCompare(`${b.startedAt}#${b.sessionId}#${b.seq}`);

/** Reads every page the way a client does: through the signed cursor. */
async function readAll(
  params: Record<string, string>,
  using = reader,
): Promise<{ events: AuditRecord[]; pages: number }> {
  const events: AuditRecord[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const query: AuditEventQuery = parseAuditQuery({ ...params, ...(cursor && { cursor }) }, now, key);
    const page = await using.statements(query);
    pages += 1;
    events.push(...page.events);
    cursor = page.next && encodeAuditCursor(query, page.next, key);
    expect(pages).toBeLessThan(200);
  } while (cursor !== undefined);
  return { events, pages };
}

const ids = (events: Array<{ eventId?: unknown }>) => events.map((e) => e.eventId);

describe('DynamoDbAuditQuery', () => {
  it('reads a session in statement order, page by page', async () => {
    const { events, pages } = await readAll({ session: 's-2-3', limit: '2' });
    expect(events.map((e) => e['seq'])).toEqual([1, 2, 3, 4, 5]);
    expect(pages).toBe(3);
  });

  it('reads a principal within a time range (since inclusive, until exclusive), ties on startedAt included', async () => {
    const since = '2025-03-02T10:00:02.000Z';
    const until = '2025-03-03T10:00:03.000Z';
    const { events } = await readAll({ principal: 'ada@example.com', since, until, limit: '1' });
    const expected = written
      .filter((e) => e.principal === 'ada@example.com' && e.startedAt >= since && e.startedAt < until)
      .sort(byTime);
    expect(expected.length).toBeGreaterThan(10);
    expect(new Set(ids(events)).size).toBe(events.length);
    expect(ids(events).sort()).toEqual(ids(expected).sort());
  });

  it("reads everyone's statements across days and day shards in time order", async () => {
    const { events } = await readAll({
      since: '2025-03-01T00:00:00Z',
      until: '2025-03-04T00:00:00Z',
      limit: '7',
    });
    expect(ids(events)).toEqual(ids([...written].sort(byTime)));
    expect(events[0]).not.toHaveProperty('timeKey');
    expect(events[0]).not.toHaveProperty('day');
    expect(events[0]).toMatchObject({
      type: 'statement',
      principal: expect.any(String),
      text: expect.any(String),
    });
  });

  it('reads refused and held statements from the sparse decision index', async () => {
    for (const decision of ['deny', 'require_approval'] as const) {
      const { events } = await readAll({ decision, since: '2025-03-01T00:00:00Z', limit: '3' });
      const expected = written.filter((e) => e.decision === decision).sort(byTime);
      expect(expected.length).toBeGreaterThan(0);
      expect(ids(events)).toEqual(ids(expected));
      expect(events.every((e) => e['ruleId'] === 'rule-x')).toBe(true);
    }
    const allowed = await readAll({ decision: 'allow', since: '2025-03-01T00:00:00Z', limit: '1000' });
    expect(allowed.events).toHaveLength(written.filter((e) => e.decision === 'allow').length);
  });

  it('filters by text, case-insensitively, after the key query', async () => {
    const { events } = await readAll({ text: 'from orders', since: '2025-03-01T00:00:00Z', limit: '4' });
    const expected = written.filter((e) => e.text.toLowerCase().includes('from orders')).sort(byTime);
    expect(ids(events)).toEqual(ids(expected));
  });

  it('combines filters: a principal, a decision and a text', async () => {
    const { events } = await readAll({ principal: 'bob@example.com', decision: 'require_approval' });
    expect(ids(events).sort()).toEqual(
      ids(
        written.filter((e) => e.principal === 'bob@example.com' && e.decision === 'require_approval'),
      ).sort(),
    );
  });

  it('stops a sparse search after a bounded read and says where to continue', async () => {
    const small = new DynamoDbAuditQuery(db.client, tables, { maxScanned: 10 });
    const first = await small.statements(
      parseAuditQuery({ text: 'from orders', since: '2025-03-01T00:00:00Z' }, now, key),
    );
    const total = written.filter((e) => e.text.includes('Orders')).length;
    // 10 items read: the first second of day 1 (6 sessions' seq 1 match) and a few more that do not
    expect(first.events).toHaveLength(6);
    expect(first.next).toBeDefined();
    expect(total).toBe(18);
    const { events, pages } = await readAll({ text: 'from orders', since: '2025-03-01T00:00:00Z' }, small);
    expect(pages).toBeGreaterThan(5);
    expect(ids(events)).toEqual(ids(written.filter((e) => e.text.includes('Orders')).sort(byTime)));
  });

  it('returns no cursor when the last page is exactly full', async () => {
    const page = await reader.statements(parseAuditQuery({ session: 's-3-5', limit: '5' }, now, key));
    expect(page.events).toHaveLength(5);
    expect(page.next).toBeUndefined();
  });

  it('answers the merged session record, open or closed', async () => {
    expect(await reader.session('s-1-0')).toMatchObject({
      sessionId: 's-1-0',
      principal: 'ada@example.com',
      openedAt: '2025-03-01T10:00:00.000Z',
      closedAt: '2025-03-01T10:05:00.000Z',
      durationMs: 300_000,
      statements: 5,
      endReason: 'client_terminate',
      state: 'closed',
      groups: ['engineering'],
    });
    expect(await reader.session('s-1-1')).toMatchObject({ state: 'open' });
    expect(await reader.session('nope')).toBeUndefined();
  });

  it('turns store failures into STORE_UNAVAILABLE', async () => {
    const broken = new DynamoDbAuditQuery(db.client, tableNames('missing-'));
    await expect(broken.statements(parseAuditQuery({ session: 'x' }, now, key))).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    await expect(broken.session('x')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});
