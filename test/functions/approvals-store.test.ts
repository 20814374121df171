/**
 * The approvals store against a real DynamoDB API (dynalite): layout, indexes and, above all, that
 * every transition is conditional so concurrent writers cannot both win.
 */
import { DescribeTableCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { type ApprovalView, approvalRetryKey, newApproval } from '../../shared/approvals.ts';
import { approvalRequest } from '../fakes/approvals.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';

let db: LocalDynamoDb;
let store: DynamoDbApprovalStore;
const tables = approvalTableNames('store-test-');
const now = new Date('2026-01-01T10:00:00.000Z');
let counter = 0;

function fresh(overrides: Parameters<typeof approvalRequest>[0] = {}, at = now): ApprovalView {
  counter += 1;
  return newApproval(approvalRequest(overrides), {
    id: `a-${counter}`,
    now: at,
    defaultApprovers: ['reviewers'],
  });
}

beforeAll(async () => {
  db = await startDynamoDb();
  await ensureApprovalTables(db.client, tables);
  store = new DynamoDbApprovalStore(db.client, tables.approvals);
});
afterAll(() => db.stop());

describe('DynamoDbApprovalStore', () => {
  it('creates both tables with the retry and status indexes, and is idempotent', async () => {
    await ensureApprovalTables(db.client, tables);
    const { Table } = await db.client.send(new DescribeTableCommand({ TableName: tables.approvals }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'id', KeyType: 'HASH' }]);
    expect(Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName).sort()).toEqual([
      'by_retry_key',
      'by_status',
    ]);
    await db.client.send(new DescribeTableCommand({ TableName: tables.principals }));
  });

  it('stores and reads back an approval exactly', async () => {
    const approval = fresh();
    await store.create(approval);
    expect(await store.get(approval.id)).toEqual(approval);
    expect(await store.get('nope')).toBeUndefined();
  });

  it('refuses to create the same id twice', async () => {
    const approval = fresh();
    await store.create(approval);
    await expect(store.create({ ...approval, text: 'drop table orders' })).rejects.toThrow();
    expect((await store.get(approval.id))?.text).toBe(approval.text);
  });

  it('lets exactly one of two concurrent decisions win', async () => {
    const approval = fresh();
    await store.create(approval);
    const results = await Promise.all([
      store.transition(
        approval.id,
        'pending',
        { status: 'approved', decidedBy: 'rita' },
        { unexpiredAt: now },
      ),
      store.transition(approval.id, 'pending', { status: 'denied', decidedBy: 'sam' }, { unexpiredAt: now }),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const stored = await store.get(approval.id);
    expect(stored?.decidedBy).toBe(results[0] ? 'rita' : 'sam');
  });

  it('refuses a transition from the wrong status or past the deadline', async () => {
    const approval = fresh();
    await store.create(approval);
    expect(await store.transition(approval.id, 'approved', { status: 'consumed' })).toBe(false);
    const afterDeadline = new Date(Date.parse(approval.expiresAt) + 1);
    expect(
      await store.transition(approval.id, 'pending', { status: 'approved' }, { unexpiredAt: afterDeadline }),
    ).toBe(false);
    expect((await store.get(approval.id))?.status).toBe('pending');
    expect(await store.transition('missing', 'pending', { status: 'approved' })).toBe(false);
  });

  it('moves the TTL with the deadline', async () => {
    const approval = fresh();
    await store.create(approval);
    const expiresAt = '2026-01-01T10:30:00.000Z';
    expect(await store.transition(approval.id, 'pending', { status: 'approved', expiresAt })).toBe(true);
    const { Item } = await db.client.send(
      new GetItemCommand({ TableName: tables.approvals, Key: { id: { S: approval.id } } }),
    );
    expect(Number(Item?.['expiresAtEpoch']?.N)).toBe(Date.parse(expiresAt) / 1000 + 7 * 24 * 3600);
  });

  it('records the Slack message once', async () => {
    const approval = fresh();
    await store.create(approval);
    expect(await store.setSlackMessage(approval.id, { channel: 'C1', ts: '1.1' })).toBe(true);
    expect(await store.setSlackMessage(approval.id, { channel: 'C1', ts: '2.2' })).toBe(false);
    expect((await store.get(approval.id))?.slack).toEqual({ channel: 'C1', ts: '1.1' });
    expect(await store.setSlackMessage('missing', { channel: 'C1', ts: '1.1' })).toBe(false);
  });

  it('records an execution only on a consumed approval', async () => {
    const approval = fresh();
    await store.create(approval);
    const execution = { at: now.toISOString(), commandTag: 'DELETE 2', rows: 2 };
    expect(await store.setExecution(approval.id, execution)).toBe(false);
    await store.transition(approval.id, 'pending', { status: 'approved' });
    await store.transition(approval.id, 'approved', { status: 'consumed' });
    expect(await store.setExecution(approval.id, execution)).toBe(true);
    expect((await store.get(approval.id))?.execution).toEqual(execution);
  });

  it('finds approvals of the same statement by retry key, newest first, and lists by status', async () => {
    const text = `update accounts set frozen = true -- ${Math.random()}`;
    const older = fresh({ text }, new Date('2026-01-01T09:00:00.000Z'));
    const newer = fresh({ text, sessionId: 'session-2' }, new Date('2026-01-01T09:30:00.000Z'));
    const other = fresh({ text, principal: 'someone@example.com', subject: 'sub|someone' });
    for (const a of [older, newer, other]) await store.create(a);
    const found = await store.findByRetryKey(approvalRetryKey(older));
    expect(found.map((a) => a.id)).toEqual([newer.id, older.id]);

    const pending = await store.listByStatus('pending', 500);
    expect(pending.map((a) => a.id)).toEqual(expect.arrayContaining([older.id, newer.id, other.id]));
    expect(pending.every((a) => a.status === 'pending')).toBe(true);
    expect(await store.listByStatus('pending', 2)).toHaveLength(2);
  });

  it('refuses a statement too large to store', async () => {
    await expect(store.create(fresh({ text: 'x'.repeat(300 * 1024) }))).rejects.toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST' }),
    );
  });

  it('reports an unreachable DynamoDB as STORE_UNAVAILABLE', async () => {
    const broken = new DynamoDbApprovalStore(db.client, 'no-such-table');
    await expect(broken.get('x')).rejects.toThrow(expect.objectContaining({ code: 'STORE_UNAVAILABLE' }));
  });
});
