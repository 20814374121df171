/**
 * AuditStore over DynamoDB, append-only. Keys are derived from the events themselves, so a retried
 * batch lands on the same items (idempotent, no duplicates). Layout (see dynamodb-audit-layout.ts):
 * - sessions table, PK sessionId: one item per session; opened and closed each UpdateItem their own
 *   attributes, so the item is right whichever of the two arrives first;
 * - events table, PK sessionId + SK sk: statements under `STMT#<seq, 12 digits>` (a session reads in
 *   order), approval steps under `APPROVAL#<at>#<eventId>` in their session, failed logins under
 *   `AUTHFAIL#<day>` / `<at>#<eventId>`. GSIs: by_principal (principal, startedAt) for "what did
 *   this person run", by_day (day shard, timeKey) for "everyone, between these times", by_decision
 *   (sparse: decisionDay, timeKey) for "what was refused or held".
 *
 * Nothing stored is ever overwritten or deleted (the API's grant has no DeleteItem nor
 * BatchWriteItem, which could delete):
 * - an events item is written with a conditional PutItem: only where no item is, except that a
 *   statement's completed record may replace its record of intent when both have the same fixed
 *   part (headHash, which this store computes from the record itself, never trusting the sender);
 * - a session item is updated with a condition on every attribute it sets: absent or already equal,
 *   so an update may add what the item lacks and never change what it holds;
 * - a re-sent identical record (the shipper retries) is a success, not a conflict; a different
 *   record under a taken key is refused: the rest of the batch is stored and put() then throws
 *   AuditConflictError naming the refused records.
 * A statement record's own hashes (headHash, and the chain link of a completed record) must be
 * right (shared/audit-chain.ts), or the whole batch is refused (BAD_REQUEST, nothing written): the
 * proxy keeps it in its spool rather than lose it. Its place in the chain is checked by
 * `audit verify`, which needs the whole session.
 * Every field of an event is stored as it comes (nested values as maps and lists), so fields the
 * proxy adds reach the store and the query API without a change here.
 */
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  canonicalJson,
  cappedText,
  headHashOf,
  MAX_MESSAGE_BYTES,
  MAX_TEXT_BYTES,
  recordHashProblem,
} from '../../shared/audit-chain.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { AuditEvent, SessionClosedEvent, SessionOpenedEvent } from '../../shared/events.ts';
import type { AuditStore } from '../../shared/ports.ts';
import {
  BY_DAY_INDEX,
  BY_DECISION_INDEX,
  BY_PRINCIPAL_INDEX,
  expiresAt,
  fromItem,
  statementKeyAttributes,
  TTL_ATTRIBUTE,
  toAttribute,
  toItem,
} from './dynamodb-audit-layout.ts';
import { ensureTables, onDemandTable, orStoreUnavailable, storeUnavailable } from './dynamodb-common.ts';

/** How the audit store names itself in STORE_UNAVAILABLE messages (the query side says the same). */
export const AUDIT_STORE = 'the audit store';

export interface AuditTableNames {
  sessions: string;
  events: string;
}

export function tableNames(prefix: string): AuditTableNames {
  return { sessions: `${prefix}sessions`, events: `${prefix}events` };
}

export interface AuditStoreOptions {
  /**
   * PGWARDEN_AUDIT_RETENTION_DAYS: items carry expiresAt (epoch seconds) this many days after their
   * event, for the tables' TTL to delete; undefined keeps everything (the default).
   */
  retentionDays?: number;
  /** conditional writes in flight at once per put() (each is one small request) */
  concurrency?: number;
}

/** One record the store refused: where it would have gone and why. */
export interface AuditRejection {
  /** `<sessionId> <sk>` of an events item, `<sessionId> session` of a session item */
  key: string;
  eventId: string;
  reason: string;
}

/** Some records of a batch were refused (the others are stored): never retried as they are. */
export class AuditConflictError extends PgWardenError {
  constructor(readonly rejected: readonly AuditRejection[]) {
    const shown = rejected.slice(0, 5).map((r) => `${r.key} (${r.reason})`);
    const more = rejected.length > shown.length ? ` and ${rejected.length - shown.length} more` : '';
    super(
      'AUDIT_CONFLICT',
      `the audit trail is append-only: ${rejected.length} record(s) refused: ${shown.join('; ')}${more}`,
    );
  }
}

const DEFAULT_CONCURRENCY = 32;

type Item = Record<string, AttributeValue>;

/** An events item to write, with what its condition needs. */
interface PendingPut {
  item: Item;
  key: string;
  eventId: string;
  /** a statement's record of intent (outcome pending) */
  intent: boolean;
  /** a statement record: it may replace an intent with the same headHash */
  headHash?: string;
}

export class DynamoDbAuditStore implements AuditStore {
  private readonly concurrency: number;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: AuditTableNames,
    private readonly options: AuditStoreOptions = {},
  ) {
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  }

  async put(events: readonly AuditEvent[]): Promise<void> {
    const rejected: AuditRejection[] = [];
    const tasks: Array<() => Promise<void>> = [];
    const puts = this.eventPuts(events);
    for (const put of puts.values()) {
      tasks.push(async () => {
        const refusal = await this.putItem(put);
        if (refusal) rejected.push({ key: put.key, eventId: put.eventId, reason: refusal });
      });
    }
    for (const event of events) {
      if (event.type !== 'session_opened' && event.type !== 'session_closed') continue;
      tasks.push(async () => {
        if (!(await this.updateSession(event))) {
          rejected.push({
            key: `${event.sessionId} session`,
            eventId: event.eventId,
            reason: `the session item already holds other values for this ${event.type === 'session_opened' ? 'open' : 'close'}`,
          });
        }
      });
    }
    await runLimited(tasks, this.concurrency);
    if (rejected.length > 0) throw new AuditConflictError(rejected);
  }

  /**
   * The events items of a batch, one per key: a completed statement record wins over its intent
   * whatever their order (an intent re-sent after its completion must not be the copy written).
   */
  private eventPuts(events: readonly AuditEvent[]): Map<string, PendingPut> {
    const puts = new Map<string, PendingPut>();
    const unsound: string[] = [];
    for (const event of events) {
      if (event.type === 'session_opened' || event.type === 'session_closed') continue;
      const item = eventItem(event, this.options.retentionDays);
      const key = `${item['sessionId']!.S} ${item['sk']!.S}`;
      let put: PendingPut = { item, key, eventId: event.eventId, intent: false };
      if (event.type === 'statement') {
        const problem = checkStatement(item);
        if (problem !== undefined) {
          unsound.push(`${key}: ${problem}`);
          continue;
        }
        put = { ...put, intent: item['outcome']?.S === 'pending', headHash: item['headHash']!.S! };
      }
      const earlier = puts.get(key);
      if (earlier && !earlier.intent && put.intent && earlier.headHash === put.headHash) continue;
      puts.set(key, put);
    }
    if (unsound.length > 0) {
      // Nothing of the batch is written: a record whose hashes do not match its fields is a proxy
      // and API that disagree on the fields (versions) or an altered record. Refusing the batch
      // keeps it in the proxy's spool (retried, and statements refused once the spool is full)
      // instead of dropping it as a conflict would.
      throw new PgWardenError(
        'BAD_REQUEST',
        `${unsound.length} statement record(s) do not match their own hashes: ${unsound.slice(0, 3).join('; ')}`,
      );
    }
    return puts;
  }

  /** One conditional PutItem; the reason it was refused, or undefined when stored (or already there). */
  private async putItem(put: PendingPut): Promise<string | undefined> {
    const replacesIntent = put.headHash !== undefined && !put.intent;
    const command = new PutItemCommand({
      TableName: this.tables.events,
      Item: put.item,
      ...(replacesIntent
        ? {
            ConditionExpression: 'attribute_not_exists(sk) OR (outcome = :pending AND headHash = :head)',
            ExpressionAttributeValues: { ':pending': { S: 'pending' }, ':head': { S: put.headHash! } },
          }
        : { ConditionExpression: 'attribute_not_exists(sk)' }),
    });
    try {
      await this.client.send(command);
      return undefined;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw storeUnavailable(AUDIT_STORE, error);
    }
    // Taken: stored already (a retry) or something else holds the key.
    const existing = await this.existingItem(put.item);
    if (existing === undefined) return 'the key was taken and then vanished';
    if (put.intent && put.headHash !== undefined && existing['headHash']?.S === put.headHash)
      return undefined;
    if (sameItem(existing, put.item)) return undefined;
    if (put.headHash === undefined) return 'another record holds this key';
    if (existing['headHash']?.S !== put.headHash)
      return 'another statement (a different fixed part) holds this key';
    return existing['outcome']?.S === 'pending'
      ? 'the intent changed meanwhile'
      : 'this statement is already completed with a different record';
  }

  private async existingItem(item: Item): Promise<Item | undefined> {
    const output = await orStoreUnavailable(AUDIT_STORE, () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tables.events,
          Key: { sessionId: item['sessionId']!, sk: item['sk']! },
          ConsistentRead: true,
        }),
      ),
    );
    return output.Item;
  }

  /**
   * Sets the event's attributes on the session item, each only where it is absent or already has
   * this value: false when some attribute holds another value (nothing is then written). Lists are
   * compared here after a failed condition (DynamoDB's `=` is for scalars): a re-sent open whose
   * groups are already there is a retry, not a conflict.
   */
  private async updateSession(event: SessionOpenedEvent | SessionClosedEvent): Promise<boolean> {
    const names: Record<string, string> = {};
    const values: Record<string, AttributeValue> = {};
    const assignments: string[] = [];
    const conditions: string[] = [];
    const fields = sessionFields(event);
    for (const [name, value] of Object.entries(fields)) {
      const attribute = toAttribute(value);
      if (attribute === undefined) continue;
      const n = assignments.length;
      names[`#f${n}`] = name; // names such as "role" and "database" are DynamoDB reserved words
      values[`:v${n}`] = attribute;
      assignments.push(`#f${n} = :v${n}`);
      const scalar = attribute.S !== undefined || attribute.N !== undefined || attribute.BOOL !== undefined;
      conditions.push(
        scalar ? `(attribute_not_exists(#f${n}) OR #f${n} = :v${n})` : `attribute_not_exists(#f${n})`,
      );
    }
    if (this.options.retentionDays !== undefined) {
      // The close comes last and pushes the expiry out: a session outlives its statements by its
      // length. The open sets it only where the close has not.
      names['#ttl'] = TTL_ATTRIBUTE;
      values[':ttl'] = { N: String(expiresAt(event.at, this.options.retentionDays)) };
      assignments.push(event.type === 'session_closed' ? '#ttl = :ttl' : '#ttl = if_not_exists(#ttl, :ttl)');
    }
    const command = new UpdateItemCommand({
      TableName: this.tables.sessions,
      Key: { sessionId: { S: event.sessionId } },
      UpdateExpression: `SET ${assignments.join(', ')}`,
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
    try {
      await this.client.send(command);
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw storeUnavailable(AUDIT_STORE, error);
    }
    const output = await orStoreUnavailable(AUDIT_STORE, () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.tables.sessions,
          Key: { sessionId: { S: event.sessionId } },
          ConsistentRead: true,
        }),
      ),
    );
    const existing = output.Item === undefined ? {} : fromItem(output.Item);
    return Object.entries(fields).every(
      ([name, value]) => value === undefined || canonicalJson(existing[name]) === canonicalJson(value),
    );
  }
}

/**
 * What is wrong with a statement item's own hashes, or undefined; a missing headHash is computed
 * here (records of sinks without the chain), a given one must be right.
 */
function checkStatement(item: Item): string | undefined {
  const record = recordOfItem(item);
  const headHash = headHashOf(record);
  if (record['headHash'] === undefined) {
    item['headHash'] = { S: headHash };
    record['headHash'] = headHash;
  } else if (record['headHash'] !== headHash) {
    return `headHash does not match the record (expected ${headHash}, found ${String(record['headHash'])})`;
  }
  const linked = ['chainIndex', 'prevHash', 'recordHash'].filter((name) => record[name] !== undefined);
  if (linked.length === 0) return undefined;
  if (record['outcome'] === 'pending') return 'a record of intent is not a link of the chain';
  if (linked.length < 3) return 'a chain link needs chainIndex, prevHash and recordHash';
  const problem = recordHashProblem(record);
  return (
    problem &&
    `${problem.field} does not match the record (expected ${problem.expected}, found ${problem.found})`
  );
}

/** The record an events item holds (what the chain hashes): without the layout's attributes. */
function recordOfItem(item: Item): Record<string, unknown> {
  const record = fromItem(item);
  for (const name of ['sk', 'timeKey', 'day', 'decisionDay', TTL_ATTRIBUTE]) delete record[name];
  return record;
}

function sameItem(a: Item, b: Item): boolean {
  return canonicalJson(fromItem(a)) === canonicalJson(fromItem(b));
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
    Object.assign(fields, statementKeyAttributes(event), cappedText('text', event.text, MAX_TEXT_BYTES));
    if (event.errorMessage !== undefined)
      Object.assign(fields, cappedText('errorMessage', event.errorMessage, MAX_MESSAGE_BYTES));
    at = event.startedAt;
  } else if (event.type === 'approval') {
    // An approval's steps belong to the session that asked, beside its statements (own sk prefix).
    Object.assign(fields, { sk: `APPROVAL#${event.at}#${event.eventId}` });
    Object.assign(fields, cappedText('message', event.message, MAX_MESSAGE_BYTES));
    at = event.at;
  } else {
    Object.assign(fields, {
      sessionId: `AUTHFAIL#${event.at.slice(0, 10)}`,
      sk: `${event.at}#${event.eventId}`,
    });
    Object.assign(fields, cappedText('message', event.message, MAX_MESSAGE_BYTES));
    at = event.at;
  }
  if (retentionDays !== undefined) fields[TTL_ATTRIBUTE] = expiresAt(at, retentionDays);
  return toItem(fields);
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
