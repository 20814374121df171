import { DescribeTableCommand, GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditConflictError,
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../../functions/adapters/dynamodb-audit-store.ts';
import {
  canonicalJson,
  genesisHash,
  headHashOf,
  linkHash,
  splitStatement,
} from '../../../shared/audit-chain.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import type { StatementEvent } from '../../../shared/events.ts';
import { type LocalDynamoDb, queryPartition, startDynamoDb } from '../../fakes/dynamodb.ts';
import { authFailed, sessionClosed, sessionOpened, statement } from '../../fakes/events.ts';

const tables = tableNames('test-');
let db: LocalDynamoDb;
let store: DynamoDbAuditStore;

beforeAll(async () => {
  db = await startDynamoDb();
  await ensureAuditTables(db.client, tables);
  store = new DynamoDbAuditStore(db.client, tables);
});
afterAll(async () => {
  await db.stop();
});

async function sessionItem(sessionId: string) {
  const { Item } = await db.client.send(
    new GetItemCommand({
      TableName: tables.sessions,
      Key: { sessionId: { S: sessionId } },
      ConsistentRead: true,
    }),
  );
  return Item;
}

describe('tableNames', () => {
  it('prefixes both tables', () => {
    expect(tableNames('pgwarden-')).toEqual({ sessions: 'pgwarden-sessions', events: 'pgwarden-events' });
  });
});

describe('ensureAuditTables', () => {
  it('creates both tables with the principal, day and decision indexes, and can run again', async () => {
    await ensureAuditTables(db.client, tables);
    const sessions = await db.client.send(new DescribeTableCommand({ TableName: tables.sessions }));
    const events = await db.client.send(new DescribeTableCommand({ TableName: tables.events }));
    expect(sessions.Table?.TableStatus).toBe('ACTIVE');
    expect(events.Table?.KeySchema?.map((k) => k.AttributeName)).toEqual(['sessionId', 'sk']);
    expect(events.Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName).sort()).toEqual([
      'by_day',
      'by_decision',
      'by_principal',
    ]);
  });

  it('turns an unreachable endpoint into STORE_UNAVAILABLE', async () => {
    const down = await startDynamoDb();
    await down.stop();
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const client = new DynamoDBClient({
      endpoint: down.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    await expect(ensureAuditTables(client, tables)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    client.destroy();
  });
});

describe('DynamoDbAuditStore', () => {
  it('stores more than 25 statements, in seq order, and a re-sent batch adds nothing', async () => {
    // Out of order on purpose: the sort key, not arrival, orders the session.
    const events = Array.from({ length: 60 }, (_, i) => statement(60 - i, { sessionId: 'sess-many' }));
    await store.put(events);
    await store.put(events);
    const items = await queryPartition(db.client, tables.events, 'sess-many');
    expect(items).toHaveLength(60);
    expect(items.map((item) => Number(item['seq']?.N))).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(items[0]?.['sk']?.S).toBe('STMT#000000000001');
    expect(items[0]?.['text']?.S).toBe('select 1');
    expect(items[0]?.['eventId']?.S).toBe('evt-stmt-1');
  });

  it('keeps one copy when a batch names the same event twice', async () => {
    const event = statement(1, { sessionId: 'sess-dup' });
    await store.put([event, event, statement(2, { sessionId: 'sess-dup' })]);
    expect(await queryPartition(db.client, tables.events, 'sess-dup')).toHaveLength(2);
  });

  it('orders statements numerically past 9 (zero-padded sort key)', async () => {
    await store.put([statement(10, { sessionId: 'sess-pad' }), statement(9, { sessionId: 'sess-pad' })]);
    const items = await queryPartition(db.client, tables.events, 'sess-pad');
    expect(items.map((item) => item['sk']?.S)).toEqual(['STMT#000000000009', 'STMT#000000000010']);
  });

  it('writes a session item on open and updates the same item on close', async () => {
    await store.put([sessionOpened({ sessionId: 'sess-life', upstreamUser: undefined })]);
    const opened = await sessionItem('sess-life');
    expect(opened?.['principal']?.S).toBe('ada@example.com');
    expect(opened?.['openedAt']?.S).toBe('2025-03-01T10:00:00.000Z');
    expect(opened?.['groups']?.L).toEqual([{ S: 'engineering' }]);
    expect(opened?.['upstreamUser']).toBeUndefined();
    expect(opened?.['closedAt']).toBeUndefined();

    await store.put([sessionClosed({ sessionId: 'sess-life' })]);
    const closed = await sessionItem('sess-life');
    expect(closed?.['openedAt']?.S).toBe('2025-03-01T10:00:00.000Z');
    expect(closed?.['role']?.S).toBe('developer');
    expect(closed?.['closedAt']?.S).toBe('2025-03-01T10:05:00.000Z');
    expect(closed?.['endReason']?.S).toBe('client_terminate');
    expect(closed?.['statements']?.N).toBe('3');
  });

  it('keeps the opened fields when the close arrives first', async () => {
    await store.put([sessionClosed({ sessionId: 'sess-late' })]);
    await store.put([sessionOpened({ sessionId: 'sess-late' })]);
    const item = await sessionItem('sess-late');
    expect(item?.['closedAt']?.S).toBeDefined();
    expect(item?.['openedAt']?.S).toBeDefined();
  });

  it('files failed logins by day, findable without a session', async () => {
    await store.put([authFailed({ eventId: 'f-1' }), authFailed({ eventId: 'f-2' })]);
    await store.put([authFailed({ eventId: 'f-1' })]);
    const items = await queryPartition(db.client, tables.events, 'AUTHFAIL#2025-03-01');
    expect(items.map((item) => item['sk']?.S)).toEqual([
      '2025-03-01T09:59:00.000Z#f-1',
      '2025-03-01T09:59:00.000Z#f-2',
    ]);
    expect(items[0]?.['code']?.S).toBe('AUTH_TOKEN_EXPIRED');
    expect(items[0]?.['applicationName']?.S).toBe('');
  });

  it("finds a principal's statements through by_principal", async () => {
    await store.put([statement(1, { sessionId: 'sess-gsi', principal: 'grace@example.com' })]);
    const { Items } = await db.client.send(
      new QueryCommand({
        TableName: tables.events,
        IndexName: 'by_principal',
        KeyConditionExpression: 'principal = :p',
        ExpressionAttributeValues: { ':p': { S: 'grace@example.com' } },
      }),
    );
    expect(Items?.map((item) => item['sessionId']?.S)).toEqual(['sess-gsi']);
  });

  it('truncates a statement too large for one item and says so', async () => {
    const text = `select '${'x'.repeat(600_000)}'`;
    await store.put([statement(1, { sessionId: 'sess-big', text })]);
    const [item] = await queryPartition(db.client, tables.events, 'sess-big');
    expect(item?.['textTruncated']?.BOOL).toBe(true);
    expect(item?.['textBytes']?.N).toBe(String(text.length));
    expect(item?.['text']?.S?.length).toBeLessThan(text.length);
  });

  it('turns SDK errors into STORE_UNAVAILABLE', async () => {
    const broken = new DynamoDbAuditStore(db.client, {
      sessions: 'missing-sessions',
      events: 'missing-events',
    });
    const error = await broken.put([statement(1)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgWardenError);
    expect((error as PgWardenError).code).toBe('STORE_UNAVAILABLE');
    await expect(broken.put([sessionOpened()])).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});

describe('DynamoDbAuditStore layout for the query indexes', () => {
  it('gives a statement its time key, day shard, and a decision partition only when not allowed', async () => {
    await store.put([
      statement(1, { sessionId: 'sess-keys' }),
      statement(2, { sessionId: 'sess-keys', decision: 'require_approval', ruleId: 'hold-ddl' }),
    ]);
    const [allowed, held] = await queryPartition(db.client, tables.events, 'sess-keys');
    expect(allowed?.['timeKey']?.S).toBe('2025-03-01T10:00:01.000Z#sess-keys#STMT#000000000001');
    expect(allowed?.['day']?.S).toMatch(/^2025-03-01#[0-7]$/);
    expect(allowed?.['decisionDay']).toBeUndefined();
    expect(held?.['decisionDay']?.S).toBe('require_approval#2025-03-01');
    // one session, one shard: its statements stay together in the day index
    expect(held?.['day']?.S).toBe(allowed?.['day']?.S);
  });

  it('stores fields it does not know, nested values included, as they came', async () => {
    const event = {
      ...statement(1, { sessionId: 'sess-generic' }),
      params: ['abc', null],
      masked: [{ column: 'public.customers.email', ruleId: 'mask-email', method: 'redact', values: 3 }],
      someFutureField: { nested: [1, true] },
    };
    await store.put([event]);
    const [item] = await queryPartition(db.client, tables.events, 'sess-generic');
    expect(item?.['params']?.L).toEqual([{ S: 'abc' }, { NULL: true }]);
    expect(item?.['masked']?.L?.[0]?.M?.['values']).toEqual({ N: '3' });
    expect(item?.['someFutureField']?.M?.['nested']?.L).toEqual([{ N: '1' }, { BOOL: true }]);
  });

  it('files approval steps in the session that asked, under their own prefix', async () => {
    await store.put([
      statement(1, { sessionId: 'sess-appr' }),
      {
        type: 'approval',
        eventId: 'appr-evt-1',
        at: '2025-03-01T10:00:05.000Z',
        approvalId: 'appr-1',
        step: 'requested',
        sessionId: 'sess-appr',
        principal: 'ada@example.com',
        by: 'pgwarden',
        via: 'proxy',
        database: 'app',
        ruleId: 'hold-ddl',
        fingerprint: 'f',
        textHash: 'h',
        message: 'held for approval',
      },
    ]);
    const items = await queryPartition(db.client, tables.events, 'sess-appr');
    expect(items.map((item) => item['sk']?.S)).toEqual([
      'APPROVAL#2025-03-01T10:00:05.000Z#appr-evt-1',
      'STMT#000000000001',
    ]);
    expect(items[0]?.['approvalId']?.S).toBe('appr-1');
  });

  it('sets expiresAt from the record time when a retention is configured, and not otherwise', async () => {
    const retained = new DynamoDbAuditStore(db.client, tables, { retentionDays: 30 });
    await retained.put([statement(1, { sessionId: 'sess-ttl' }), sessionOpened({ sessionId: 'sess-ttl' })]);
    const [item] = await queryPartition(db.client, tables.events, 'sess-ttl');
    const expected = Date.parse('2025-03-01T10:00:01.000Z') / 1000 + 30 * 86_400;
    expect(item?.['expiresAt']?.N).toBe(String(expected));
    expect((await sessionItem('sess-ttl'))?.['expiresAt']?.N).toBe(
      String(Date.parse('2025-03-01T10:00:00.000Z') / 1000 + 30 * 86_400),
    );
    await store.put([statement(1, { sessionId: 'sess-no-ttl' })]);
    const [kept] = await queryPartition(db.client, tables.events, 'sess-no-ttl');
    expect(kept?.['expiresAt']).toBeUndefined();
  });

  it('replaces the record of intent with the completed record (same key, one item)', async () => {
    await store.put([statement(1, { sessionId: 'sess-intent', outcome: 'pending', commandTag: undefined })]);
    await store.put([statement(1, { sessionId: 'sess-intent', outcome: 'ok' })]);
    const items = await queryPartition(db.client, tables.events, 'sess-intent');
    expect(items).toHaveLength(1);
    expect(items[0]?.['outcome']?.S).toBe('ok');
  });
});

describe('DynamoDbAuditStore is append-only (every bypass found stays here)', () => {
  const item = async (sessionId: string, seq: number) =>
    (await queryPartition(db.client, tables.events, sessionId)).find((i) => i['seq']?.N === String(seq));
  const conflict = (promise: Promise<unknown>) =>
    expect(promise).rejects.toMatchObject({ code: 'AUDIT_CONFLICT' });
  const intent = (seq: number, overrides: Partial<StatementEvent> = {}) =>
    statement(seq, {
      outcome: 'pending',
      durationMs: 0,
      commandTag: undefined,
      rows: undefined,
      ...overrides,
    });

  it('a re-sent identical record is stored once and is no error (the shipper retries)', async () => {
    const events = [statement(1, { sessionId: 'ao-retry' }), authFailed({ eventId: 'ao-f' })];
    await store.put(events);
    await store.put(events);
    expect(await queryPartition(db.client, tables.events, 'ao-retry')).toHaveLength(1);
  });

  it('a record re-sent with one field changed is refused and the stored one stays', async () => {
    await store.put([statement(1, { sessionId: 'ao-change', rows: 1 })]);
    await conflict(store.put([statement(1, { sessionId: 'ao-change', rows: 0 })]));
    await conflict(store.put([statement(1, { sessionId: 'ao-change', text: 'select 2' })]));
    expect((await item('ao-change', 1))?.['rows']?.N).toBe('1');
  });

  it('a completion replaces its own intent; a stale intent sent afterwards changes nothing', async () => {
    await store.put([intent(1, { sessionId: 'ao-step' })]);
    expect((await item('ao-step', 1))?.['outcome']?.S).toBe('pending');
    await store.put([statement(1, { sessionId: 'ao-step', outcome: 'ok' })]);
    await store.put([intent(1, { sessionId: 'ao-step' })]);
    expect((await item('ao-step', 1))?.['outcome']?.S).toBe('ok');
  });

  it('in one batch the completion wins over its intent whatever their order', async () => {
    await store.put([
      statement(1, { sessionId: 'ao-order', outcome: 'ok' }),
      intent(1, { sessionId: 'ao-order' }),
    ]);
    expect((await item('ao-order', 1))?.['outcome']?.S).toBe('ok');
  });

  it('an intent completed twice with different outcomes keeps the first completion', async () => {
    await store.put([intent(1, { sessionId: 'ao-twice' })]);
    await store.put([statement(1, { sessionId: 'ao-twice', outcome: 'error', sqlstate: '42P01' })]);
    await conflict(store.put([statement(1, { sessionId: 'ao-twice', outcome: 'ok' })]));
    expect((await item('ao-twice', 1))?.['outcome']?.S).toBe('error');
  });

  it('a completion of another statement (different fixed part) cannot replace an intent', async () => {
    await store.put([intent(1, { sessionId: 'ao-other', text: 'select 1' })]);
    await conflict(store.put([statement(1, { sessionId: 'ao-other', text: 'delete from orders' })]));
    await conflict(store.put([intent(1, { sessionId: 'ao-other', text: 'delete from orders' })]));
    expect((await item('ao-other', 1))?.['text']?.S).toBe('select 1');
  });

  it('a forged headHash (another head claimed for this record) is refused before any write', async () => {
    const claimed = statement(1, { sessionId: 'ao-forged', text: 'select 1' });
    const realHead = headHashOf(claimed as unknown as Record<string, unknown>);
    await store.put([intent(1, { sessionId: 'ao-forged', text: 'select 1' })]);
    // the condition compares headHash: a completion claiming the intent's hash over another text
    const forged = statement(1, { sessionId: 'ao-forged', text: 'drop table orders', headHash: realHead });
    // refused whole, nothing written: the proxy keeps such a batch in its spool instead of losing it
    await expect(store.put([forged, statement(2, { sessionId: 'ao-forged' })])).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await item('ao-forged', 2)).toBeUndefined();
    expect((await item('ao-forged', 1))?.['text']?.S).toBe('select 1');
  });

  it('a chain link whose recordHash does not match the record is refused', async () => {
    const event = statement(1, { sessionId: 'ao-link' });
    const headHash = headHashOf(event as unknown as Record<string, unknown>);
    const tail = canonicalJson(splitStatement(event as unknown as Record<string, unknown>).tail);
    const prevHash = genesisHash('ao-link');
    const linked = {
      ...event,
      headHash,
      chainIndex: 1,
      prevHash,
      recordHash: linkHash(1, prevHash, headHash, tail),
    };
    const bad = expect.objectContaining({ code: 'BAD_REQUEST' });
    await expect(store.put([{ ...linked, rows: 5 }])).rejects.toEqual(bad);
    await expect(store.put([{ ...linked, recordHash: undefined }])).rejects.toEqual(bad);
    await store.put([linked]);
    expect((await item('ao-link', 1))?.['recordHash']?.S).toBe(linked.recordHash);
  });

  it('stores the rest of a batch when one record is refused, and names the refused one', async () => {
    await store.put([statement(1, { sessionId: 'ao-partial' })]);
    const error = await store
      .put([statement(1, { sessionId: 'ao-partial', rows: 9 }), statement(2, { sessionId: 'ao-partial' })])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditConflictError);
    expect((error as AuditConflictError).rejected).toEqual([
      expect.objectContaining({ key: 'ao-partial STMT#000000000001', eventId: 'evt-stmt-1' }),
    ]);
    expect(await queryPartition(db.client, tables.events, 'ao-partial')).toHaveLength(2);
  });

  it('approval steps and failed logins cannot be rewritten either', async () => {
    await store.put([authFailed({ eventId: 'ao-fail', message: 'expired' })]);
    await conflict(store.put([authFailed({ eventId: 'ao-fail', message: 'all fine' })]));
  });

  it('session items: an open or close is re-sendable but never changes what the item holds', async () => {
    await store.put([sessionOpened({ sessionId: 'ao-sess' })]);
    await store.put([sessionOpened({ sessionId: 'ao-sess' })]);
    await conflict(store.put([sessionOpened({ sessionId: 'ao-sess', principal: 'mallory@example.com' })]));
    // the close may not rename the session's principal either (both events carry it)
    await conflict(store.put([sessionClosed({ sessionId: 'ao-sess', principal: 'mallory@example.com' })]));
    await store.put([sessionClosed({ sessionId: 'ao-sess', chainLength: 3, chainHead: 'a'.repeat(64) })]);
    await conflict(
      store.put([sessionClosed({ sessionId: 'ao-sess', chainLength: 2, chainHead: 'b'.repeat(64) })]),
    );
    const session = await sessionItem('ao-sess');
    expect(session?.['principal']?.S).toBe('ada@example.com');
    expect(session?.['chainLength']?.N).toBe('3');
  });
});
