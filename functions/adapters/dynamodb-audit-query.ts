/**
 * AuditQuery over the layout of dynamodb-audit-layout.ts. Each query reads one ordered stream of
 * statement items (a session's partition, a principal's index partition, or per day the day shards
 * merged by timeKey / the decision partition), keeps those matchesAuditQuery accepts, and stops at
 * the page size or after MAX_SCANNED items, returning where it stopped.
 */
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/client-dynamodb';
import {
  type AuditEventPage,
  type AuditEventQuery,
  type AuditPosition,
  type AuditSessionRecord,
  matchesAuditQuery,
} from '../../shared/audit-query.ts';
import type { AuditQuery } from '../../shared/ports.ts';
import {
  BY_DAY_INDEX,
  BY_DECISION_INDEX,
  BY_PRINCIPAL_INDEX,
  DAY_SHARDS,
  dayPartition,
  decisionPartition,
  recordOf,
  STATEMENT_SK_PREFIX,
  timeKey,
} from './dynamodb-audit-layout.ts';
import { AUDIT_STORE, type AuditTableNames } from './dynamodb-audit-store.ts';
import { orStoreUnavailable } from './dynamodb-common.ts';

type Item = Record<string, AttributeValue>;

/** A page that filters away most of what it reads (text search) returns early with a cursor. */
const MAX_SCANNED = 5_000;
const DAY_MS = 86_400_000;

export class DynamoDbAuditQuery implements AuditQuery {
  private readonly maxScanned: number;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: AuditTableNames,
    options: { maxScanned?: number } = {},
  ) {
    this.maxScanned = options.maxScanned ?? MAX_SCANNED;
  }

  async statements(query: AuditEventQuery): Promise<AuditEventPage> {
    const items = this.stream(query);
    const events: AuditEventPage['events'] = [];
    let scanned = 0;
    for await (const item of items) {
      scanned += 1;
      const record = recordOf(item);
      if (matchesAuditQuery(record, query)) events.push(record);
      if (events.length === query.limit) {
        const more = await items.next();
        return more.done ? { events } : { events, next: positionOf(item) };
      }
      if (scanned >= this.maxScanned) return { events, next: positionOf(item) };
    }
    return { events };
  }

  async session(sessionId: string): Promise<AuditSessionRecord | undefined> {
    const output = await orStoreUnavailable(AUDIT_STORE, () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tables.sessions,
          Key: { sessionId: { S: sessionId } },
          ConsistentRead: true,
        }),
      ),
    );
    if (output.Item === undefined) return undefined;
    const record = recordOf(output.Item);
    return { ...record, state: record['closedAt'] === undefined ? 'open' : 'closed' };
  }

  /** Every statement record of a session (intents included), in seq order: what `audit verify` checks. */
  async sessionStatements(sessionId: string): Promise<Array<Record<string, unknown>>> {
    const records: Array<Record<string, unknown>> = [];
    for await (const item of this.partition({
      TableName: this.tables.events,
      KeyConditionExpression: 'sessionId = :pk AND begins_with(sk, :stmt)',
      ExpressionAttributeValues: { ':pk': { S: sessionId }, ':stmt': { S: STATEMENT_SK_PREFIX } },
      ConsistentRead: true,
    })) {
      records.push(recordOf(item));
    }
    return records;
  }

  /**
   * The sessions with a statement started between `since` and `until` (the day index, every shard),
   * at most `max`, in order of first appearance; `more` when there were more.
   */
  async sessionsBetween(
    since: string,
    until: string,
    max: number,
  ): Promise<{ ids: string[]; more: boolean }> {
    const ids = new Set<string>();
    for (const day of days(since.slice(0, 10), until.slice(0, 10))) {
      for (let shard = 0; shard < DAY_SHARDS; shard++) {
        for await (const item of this.partition({
          TableName: this.tables.events,
          IndexName: BY_DAY_INDEX,
          KeyConditionExpression: '#pk = :pk AND timeKey BETWEEN :lo AND :hi',
          ExpressionAttributeNames: { '#pk': 'day' },
          ExpressionAttributeValues: {
            ':pk': { S: dayPartition(day, shard) },
            ':lo': { S: since },
            ':hi': { S: until },
          },
          ProjectionExpression: 'sessionId',
        })) {
          const id = item['sessionId']?.S;
          if (id === undefined || ids.has(id)) continue;
          if (ids.size >= max) return { ids: [...ids], more: true };
          ids.add(id);
        }
      }
    }
    return { ids: [...ids], more: false };
  }

  private stream(query: AuditEventQuery): AsyncGenerator<Item> {
    const limit = Math.min(1_000, query.limit + 1);
    const { after } = query;
    if (query.index === 'session') {
      const sessionId = query.filters.sessionId!;
      return this.partition({
        TableName: this.tables.events,
        KeyConditionExpression: 'sessionId = :pk AND sk BETWEEN :lo AND :hi',
        ExpressionAttributeValues: {
          ':pk': { S: sessionId },
          // `!` sorts before every character a key continues with: "strictly after" this sk
          ':lo': { S: after ? `${after.sk}!` : STATEMENT_SK_PREFIX },
          ':hi': { S: `${STATEMENT_SK_PREFIX}~` },
        },
        ConsistentRead: true,
        Limit: limit,
      });
    }
    if (query.index === 'principal') {
      const principal = query.filters.principal!;
      return this.partition({
        TableName: this.tables.events,
        IndexName: BY_PRINCIPAL_INDEX,
        KeyConditionExpression: 'principal = :pk AND startedAt BETWEEN :lo AND :hi',
        ExpressionAttributeValues: {
          ':pk': { S: principal },
          ':lo': { S: query.since },
          ':hi': { S: query.until },
        },
        Limit: limit,
        // startedAt is not unique: resume from the exact item key
        ...(after && {
          ExclusiveStartKey: {
            principal: { S: principal },
            startedAt: { S: after.startedAt },
            sessionId: { S: after.sessionId },
            sk: { S: after.sk },
          },
        }),
      });
    }
    return this.byDays(query, limit);
  }

  /** Everyone's (or one decision's) statements, day by day, each day's partitions merged in time order. */
  private async *byDays(query: AuditEventQuery, limit: number): AsyncGenerator<Item> {
    const afterKey = query.after && timeKey(query.after.startedAt, query.after.sessionId, query.after.sk);
    const lo = afterKey !== undefined && `${afterKey}!` > query.since ? `${afterKey}!` : query.since;
    const hi = query.until; // every timeKey of a statement started at `until` sorts above it
    if (lo > hi) return;
    for (const day of days(lo.slice(0, 10), hi.slice(0, 10))) {
      const partitions =
        query.index === 'decision'
          ? [{ attribute: 'decisionDay', value: decisionPartition(query.filters.decision!, day) }]
          : Array.from({ length: DAY_SHARDS }, (_, shard) => ({
              attribute: 'day',
              value: dayPartition(day, shard),
            }));
      const streams = partitions.map(({ attribute, value }) =>
        this.partition({
          TableName: this.tables.events,
          IndexName: query.index === 'decision' ? BY_DECISION_INDEX : BY_DAY_INDEX,
          KeyConditionExpression: '#pk = :pk AND timeKey BETWEEN :lo AND :hi',
          ExpressionAttributeNames: { '#pk': attribute },
          ExpressionAttributeValues: { ':pk': { S: value }, ':lo': { S: lo }, ':hi': { S: hi } },
          Limit: limit,
        }),
      );
      yield* mergeByTimeKey(streams);
    }
  }

  private async *partition(input: QueryCommandInput): AsyncGenerator<Item> {
    let start = input.ExclusiveStartKey;
    do {
      const page = await orStoreUnavailable(AUDIT_STORE, () =>
        this.client.send(new QueryCommand({ ...input, ExclusiveStartKey: start })),
      );
      yield* page.Items ?? [];
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
  }
}

/** K-way merge of streams each already ordered by timeKey (unique, so no ties). */
async function* mergeByTimeKey(streams: Array<AsyncGenerator<Item>>): AsyncGenerator<Item> {
  const heads = await Promise.all(streams.map((stream) => stream.next()));
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i += 1) {
      const head = heads[i]!;
      if (head.done) continue;
      if (best === -1 || keyOf(head.value) < keyOf((heads[best] as IteratorYieldResult<Item>).value))
        best = i;
    }
    if (best === -1) return;
    yield (heads[best] as IteratorYieldResult<Item>).value;
    heads[best] = await streams[best]!.next();
  }
}

function keyOf(item: Item): string {
  return item['timeKey']?.S ?? '';
}

function positionOf(item: Item): AuditPosition {
  return {
    sessionId: item['sessionId']?.S ?? '',
    sk: item['sk']?.S ?? '',
    startedAt: item['startedAt']?.S ?? '',
  };
}

/** YYYY-MM-DD from `first` to `last`, inclusive. */
function* days(first: string, last: string): Generator<string> {
  for (let t = Date.parse(`${first}T00:00:00.000Z`); t <= Date.parse(`${last}T00:00:00.000Z`); t += DAY_MS) {
    yield new Date(t).toISOString().slice(0, 10);
  }
}
