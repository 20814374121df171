/**
 * AuditStore over DynamoDB. Keys are derived from the events themselves, so a retried batch lands on
 * the same items (idempotent, no duplicates). Layout (see dynamodb-audit-layout.ts for the keys):
 * - sessions table, PK sessionId: one item per session; opened and closed each UpdateItem their own
 *   attributes, so the item is right whichever of the two arrives first.
 * - events table, PK sessionId + SK sk: statements under `STMT#<seq, 12 digits>` (a session reads in
 *   order), approval steps under `APPROVAL#<at>#<eventId>` in their session, failed logins under
 *   `AUTHFAIL#<day>` / `<at>#<eventId>`. GSIs: by_principal (principal, startedAt) for "what did
 *   this person run", by_day (day shard, timeKey) for "everyone, between these times", by_decision
 *   (sparse: decisionDay, timeKey) for "what was refused or held".
 * Every field of an event is stored as it comes (nested values as maps and lists), so fields the
 * proxy adds reach the store and the query API without a change here.
 */
import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  UpdateItemCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { PgWardenError } from '../../shared/errors.ts';
import type { AuditEvent, SessionClosedEvent, SessionOpenedEvent } from '../../shared/events.ts';
import type { AuditStore } from '../../shared/ports.ts';
import {
  BY_DAY_INDEX,
  BY_DECISION_INDEX,
  BY_PRINCIPAL_INDEX,
  expiresAt,
  statementKeyAttributes,
  TTL_ATTRIBUTE,
  toAttribute,
  toItem,
} from './dynamodb-audit-layout.ts';
import { ensureTables, onDemandTable, orStoreUnavailable } from './dynamodb-common.ts';

/** How the audit store names itself in STORE_UNAVAILABLE messages (the query side says the same). */
export const AUDIT_STORE = 'the audit store';

export interface AuditTableNames {
  sessions: string;
  events: string;
}

export function tableNames(prefix: string): AuditTableNames {
  return { sessions: `${prefix}sessions`, events: `${prefix}events` };
}

export interface RetryOptions {
  /** BatchWriteItem calls per chunk before giving up on its unprocessed items */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep: (ms: number) => Promise<void>;
}

export interface AuditStoreOptions extends RetryOptions {
  /**
   * PGWARDEN_AUDIT_RETENTION_DAYS: items carry expiresAt (epoch seconds) this many days after their
   * event, for the tables' TTL to delete; undefined keeps everything (the default).
   */
  retentionDays?: number;
}

const defaultRetry: RetryOptions = {
  maxAttempts: 8,
  baseDelayMs: 50,
  maxDelayMs: 2_000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const BATCH_SIZE = 25; // BatchWriteItem's limit
const CONCURRENCY = 4;
/** Items are capped at 400 KB: an oversized statement must not make its whole batch unstorable. */
const MAX_TEXT_BYTES = 128 * 1024;
const MAX_MESSAGE_BYTES = 8 * 1024;

export class DynamoDbAuditStore implements AuditStore {
  private readonly retry: AuditStoreOptions;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: AuditTableNames,
    options: Partial<AuditStoreOptions> = {},
  ) {
    this.retry = { ...defaultRetry, ...options };
  }

  async put(events: readonly AuditEvent[]): Promise<void> {
    const sessionWrites: Array<() => Promise<void>> = [];
    // Keyed by item key: BatchWriteItem rejects a batch naming one key twice, and the last copy of a
    // re-sent event is as good as the first.
    const items = new Map<string, Record<string, AttributeValue>>();
    for (const event of events) {
      if (event.type === 'session_opened' || event.type === 'session_closed') {
        sessionWrites.push(() => this.updateSession(event));
      } else {
        const item = eventItem(event, this.retry.retentionDays);
        items.set(`${item['sessionId']!.S}\u0000${item['sk']!.S}`, item);
      }
    }
    const requests: WriteRequest[] = [...items.values()].map((Item) => ({ PutRequest: { Item } }));
    const batchWrites: Array<() => Promise<void>> = [];
    for (let i = 0; i < requests.length; i += BATCH_SIZE) {
      const chunk = requests.slice(i, i + BATCH_SIZE);
      batchWrites.push(() => this.writeBatch(chunk));
    }
    await runLimited([...sessionWrites, ...batchWrites], CONCURRENCY);
  }

  private async updateSession(event: SessionOpenedEvent | SessionClosedEvent): Promise<void> {
    const fields = sessionFields(event);
    if (this.retry.retentionDays !== undefined) {
      // The close comes last and pushes the expiry out: a session outlives its statements by its length.
      fields[TTL_ATTRIBUTE] = expiresAt(event.at, this.retry.retentionDays);
    }
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = {};
    const assignments: string[] = [];
    for (const [name, value] of Object.entries(fields)) {
      const attribute = toAttribute(value);
      if (attribute === undefined) continue;
      const n = assignments.length;
      names[`#f${n}`] = name; // names such as "role" and "database" are DynamoDB reserved words
      values[`:v${n}`] = attribute;
      assignments.push(`#f${n} = :v${n}`);
    }
    const command = new UpdateItemCommand({
      TableName: this.tables.sessions,
      Key: { sessionId: { S: event.sessionId } },
      UpdateExpression: `SET ${assignments.join(', ')}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
    await orStoreUnavailable(AUDIT_STORE, () => this.client.send(command));
  }

  /** Writes one chunk, resending what DynamoDB leaves unprocessed (throttling) with backoff. */
  private async writeBatch(chunk: WriteRequest[]): Promise<void> {
    let pending = chunk;
    for (let attempt = 1; ; attempt += 1) {
      const command = new BatchWriteItemCommand({ RequestItems: { [this.tables.events]: pending } });
      const output = await orStoreUnavailable(AUDIT_STORE, () => this.client.send(command));
      pending = output.UnprocessedItems?.[this.tables.events] ?? [];
      if (pending.length === 0) return;
      if (attempt >= this.retry.maxAttempts) {
        throw new PgWardenError(
          'STORE_UNAVAILABLE',
          `DynamoDB left ${pending.length} audit events unwritten after ${attempt} attempts (throttled)`,
        );
      }
      const delay = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
      await this.retry.sleep(delay / 2 + Math.random() * (delay / 2)); // jitter spreads competing writers
    }
  }
}

/**
 * Creates both tables (on-demand billing) when missing and waits until they are ACTIVE. For local
 * mode and tests; deployed tables come from the CDK stack with the same layout.
 */
export async function ensureAuditTables(client: DynamoDBClient, names: AuditTableNames): Promise<void> {
  await ensureTables(client, AUDIT_STORE, [
    onDemandTable({ name: names.sessions, partitionKey: 'sessionId' }),
    onDemandTable({
      name: names.events,
      partitionKey: 'sessionId',
      sortKey: 'sk',
      indexes: [
        { name: BY_PRINCIPAL_INDEX, partitionKey: 'principal', sortKey: 'startedAt' },
        { name: BY_DAY_INDEX, partitionKey: 'day', sortKey: 'timeKey' },
        { name: BY_DECISION_INDEX, partitionKey: 'decisionDay', sortKey: 'timeKey' },
      ],
    }),
  ]);
}

/** The session item's attributes from one event, minus the key (UpdateItem may not SET it). */
function sessionFields(event: SessionOpenedEvent | SessionClosedEvent): Record<string, unknown> {
  if (event.type === 'session_opened') {
    const { type: _type, sessionId: _key, eventId, at, ...rest } = event;
    return { ...rest, openedAt: at, openedEventId: eventId };
  }
  // `reason` becomes endReason so the session item reads unambiguously next to the opened fields.
  const { type: _type, sessionId: _key, eventId, at, reason, ...rest } = event;
  return { ...rest, closedAt: at, closedEventId: eventId, endReason: reason };
}

function eventItem(
  event: Exclude<AuditEvent, SessionOpenedEvent | SessionClosedEvent>,
  retentionDays: number | undefined,
): Record<string, AttributeValue> {
  const fields: Record<string, unknown> = { ...event };
  let at: string;
  if (event.type === 'statement') {
    Object.assign(fields, statementKeyAttributes(event), capped('text', event.text, MAX_TEXT_BYTES));
    if (event.errorMessage !== undefined)
      Object.assign(fields, capped('errorMessage', event.errorMessage, MAX_MESSAGE_BYTES));
    at = event.startedAt;
  } else if (event.type === 'approval') {
    // An approval's steps belong to the session that asked, beside its statements (own sk prefix).
    Object.assign(fields, { sk: `APPROVAL#${event.at}#${event.eventId}` });
    Object.assign(fields, capped('message', event.message, MAX_MESSAGE_BYTES));
    at = event.at;
  } else {
    Object.assign(fields, {
      sessionId: `AUTHFAIL#${event.at.slice(0, 10)}`,
      sk: `${event.at}#${event.eventId}`,
    });
    Object.assign(fields, capped('message', event.message, MAX_MESSAGE_BYTES));
    at = event.at;
  }
  if (retentionDays !== undefined) fields[TTL_ATTRIBUTE] = expiresAt(at, retentionDays);
  return toItem(fields);
}

/** Keeps the first `maxBytes` of a long text and records that (and how long it was). */
function capped(name: string, text: string, maxBytes: number): Record<string, unknown> {
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return { [name]: text };
  const head = Buffer.from(text).subarray(0, maxBytes).toString('utf8');
  return { [name]: head, [`${name}Truncated`]: true, [`${name}Bytes`]: bytes };
}

/** Runs tasks with at most `limit` in flight; after a failure no new task starts. */
async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < tasks.length && !failed) {
      const task = tasks[next]!;
      next += 1;
      await task().catch((error: unknown) => {
        failed = true;
        throw error;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
