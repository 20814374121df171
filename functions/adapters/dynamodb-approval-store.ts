/**
 * ApprovalStore over DynamoDB. Table <prefix>approvals, PK id; every state change is an UpdateItem
 * whose ConditionExpression names the status it leaves (and, for decisions and consumption, that the
 * deadline has not passed), so of two concurrent clicks or two concurrent retries exactly one wins.
 * Indexes:
 * - by_retry_key (retryKey, requestedAt): a retry of the same statement finds its approval;
 * - by_status (status, requestedAt): the pending list.
 * `expiresAtEpoch` is the table's TTL attribute: a week after the deadline, so decided approvals stay
 * readable for a while (the audit trail keeps every step for good).
 */
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import type { ApprovalParam } from '../../shared/approvals/params.ts';
import type { ApprovalChanges, ApprovalStore } from '../../shared/approvals/ports.ts';
import {
  APPROVAL_STATUSES,
  type ApprovalExecution,
  type ApprovalStatus,
  type ApprovalView,
  approvalRetryKey,
} from '../../shared/approvals.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { conditionalWrite, ensureTables, onDemandTable, orStoreUnavailable } from './dynamodb-common.ts';
import { EMAIL_INDEX } from './dynamodb-principal-directory.ts';

export interface ApprovalTableNames {
  approvals: string;
  principals: string;
}

export function approvalTableNames(prefix: string): ApprovalTableNames {
  return { approvals: `${prefix}approvals`, principals: `${prefix}identities` };
}

export const RETRY_KEY_INDEX = 'by_retry_key';
export const STATUS_INDEX = 'by_status';
const STORE = 'the approvals store';
const RETENTION_SECONDS = 7 * 24 * 3600;
/** DynamoDB items are capped at 400 KB; the text is the only unbounded field. */
const MAX_TEXT_BYTES = 256 * 1024;

export class DynamoDbApprovalStore implements ApprovalStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async get(id: string): Promise<ApprovalView | undefined> {
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new GetItemCommand({ TableName: this.table, Key: { id: { S: id } }, ConsistentRead: true }),
      ),
    );
    return output.Item === undefined ? undefined : fromItem(output.Item);
  }

  async create(approval: ApprovalView): Promise<void> {
    if (Buffer.byteLength(approval.text) > MAX_TEXT_BYTES) {
      throw new PgWardenError(
        'BAD_REQUEST',
        `the statement is longer than ${MAX_TEXT_BYTES} bytes; statements that long cannot be sent for approval`,
      );
    }
    const item = toItem(approval);
    item['retryKey'] = { S: approvalRetryKey(approval) };
    await orStoreUnavailable(STORE, () =>
      this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: 'attribute_not_exists(id)',
        }),
      ),
    );
  }

  async transition(
    id: string,
    from: ApprovalStatus,
    changes: ApprovalChanges,
    options: { unexpiredAt?: Date } = {},
  ): Promise<boolean> {
    const update = setExpression(changes);
    const names: Record<string, string> = { ...update.names, '#status_from': 'status' };
    const values: Record<string, AttributeValue> = { ...update.values, ':status_from': { S: from } };
    let condition = '#status_from = :status_from';
    if (options.unexpiredAt !== undefined) {
      // ISO-8601 UTC strings of one format compare in time order.
      names['#deadline'] = 'expiresAt';
      values[':unexpired_at'] = { S: options.unexpiredAt.toISOString() };
      condition += ' AND #deadline > :unexpired_at';
    }
    return this.conditionalUpdate(id, {
      UpdateExpression: update.expression,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  async setSlackMessage(id: string, slack: { channel: string; ts: string }): Promise<boolean> {
    return this.conditionalUpdate(id, {
      UpdateExpression: 'SET slack = :slack',
      ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(slack)',
      ExpressionAttributeValues: {
        ':slack': { M: { channel: { S: slack.channel }, ts: { S: slack.ts } } },
      },
    });
  }

  async setExecution(id: string, execution: ApprovalExecution): Promise<boolean> {
    const fields: Record<string, AttributeValue> = { at: { S: execution.at } };
    if (execution.commandTag !== undefined) fields['commandTag'] = { S: execution.commandTag };
    if (execution.rows !== undefined) fields['rows'] = { N: String(execution.rows) };
    if (execution.error !== undefined) fields['error'] = { S: execution.error };
    return this.conditionalUpdate(id, {
      UpdateExpression: 'SET execution = :execution',
      ConditionExpression: '#status = :consumed',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':execution': { M: fields }, ':consumed': { S: 'consumed' } },
    });
  }

  /** An UpdateItem of one approval under a condition: false when the condition failed. */
  private conditionalUpdate(
    id: string,
    update: Omit<UpdateItemCommandInput, 'TableName' | 'Key'>,
  ): Promise<boolean> {
    return conditionalWrite(STORE, () =>
      this.client.send(new UpdateItemCommand({ TableName: this.table, Key: { id: { S: id } }, ...update })),
    );
  }

  async findByRetryKey(retryKey: string): Promise<ApprovalView[]> {
    return this.query(RETRY_KEY_INDEX, 'retryKey', retryKey, 25);
  }

  async listByStatus(status: ApprovalStatus, limit: number): Promise<ApprovalView[]> {
    return this.query(STATUS_INDEX, 'status', status, limit);
  }

  private async query(index: string, key: string, value: string, limit: number): Promise<ApprovalView[]> {
    const items: ApprovalView[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await orStoreUnavailable(STORE, () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: index,
            KeyConditionExpression: '#key = :value',
            ExpressionAttributeNames: { '#key': key },
            ExpressionAttributeValues: { ':value': { S: value } },
            ScanIndexForward: false,
            Limit: limit - items.length,
            ExclusiveStartKey: start,
          }),
        ),
      );
      items.push(...(page.Items ?? []).map(fromItem));
      start = page.LastEvaluatedKey;
    } while (start !== undefined && items.length < limit);
    return items;
  }
}

/**
 * Creates the approvals and principals (identities) tables (on-demand) when missing, with their indexes and TTL,
 * and waits until they are ACTIVE. For local mode and tests; deployed tables come from the CDK stack.
 */
export async function ensureApprovalTables(client: DynamoDBClient, names: ApprovalTableNames): Promise<void> {
  await ensureTables(client, STORE, [
    onDemandTable({
      name: names.approvals,
      partitionKey: 'id',
      indexes: [
        { name: RETRY_KEY_INDEX, partitionKey: 'retryKey', sortKey: 'requestedAt' },
        { name: STATUS_INDEX, partitionKey: 'status', sortKey: 'requestedAt' },
      ],
    }),
    onDemandTable({
      name: names.principals,
      partitionKey: 'id',
      indexes: [{ name: EMAIL_INDEX, partitionKey: 'emailKey' }],
    }),
  ]);
  await orStoreUnavailable(STORE, () =>
    client
      .send(
        new UpdateTimeToLiveCommand({
          TableName: names.approvals,
          TimeToLiveSpecification: { AttributeName: 'expiresAtEpoch', Enabled: true },
        }),
      )
      // Already enabled (a second start) is fine; local stand-ins may not implement TTL at all.
      .catch(() => undefined),
  );
}

function setExpression(changes: ApprovalChanges): {
  expression: string;
  names: Record<string, string>;
  values: Record<string, AttributeValue>;
} {
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const assignments: string[] = [];
  const set = (name: string, value: AttributeValue) => {
    const n = assignments.length;
    names[`#c${n}`] = name; // status is a reserved word; the others are named the same way
    values[`:c${n}`] = value;
    assignments.push(`#c${n} = :c${n}`);
  };
  for (const [name, value] of Object.entries(changes)) {
    if (typeof value === 'string') set(name, { S: value });
  }
  if (changes.expiresAt !== undefined) set('expiresAtEpoch', { N: String(ttlEpoch(changes.expiresAt)) });
  if (assignments.length === 0) throw new PgWardenError('INTERNAL', 'a transition must change something');
  return { expression: `SET ${assignments.join(', ')}`, names, values };
}

function ttlEpoch(expiresAt: string): number {
  return Math.floor(Date.parse(expiresAt) / 1000) + RETENTION_SECONDS;
}

const STRING_FIELDS = [
  'id',
  'status',
  'principal',
  'requesterIssuer',
  'requesterSubject',
  'requesterEmail',
  'actor',
  'sessionId',
  'database',
  'applicationName',
  'text',
  'protocol',
  'fingerprint',
  'textHash',
  'paramsHash',
  'ruleId',
  'reason',
  'policyVersion',
  'requestedAt',
  'expiresAt',
  'decidedBy',
  'decidedByIssuer',
  'decidedBySubject',
  'decidedAt',
  'decidedVia',
  'denyReason',
  'consumedAt',
  'channel',
] as const satisfies ReadonlyArray<keyof ApprovalView>;

function toItem(approval: ApprovalView): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = {};
  for (const field of STRING_FIELDS) {
    const value = approval[field];
    if (typeof value === 'string') item[field] = { S: value };
  }
  item['approvers'] = { L: approval.approvers.map((group) => ({ S: group })) };
  item['holdTimeoutSeconds'] = { N: String(approval.holdTimeoutSeconds) };
  item['expiresAtEpoch'] = { N: String(ttlEpoch(approval.expiresAt)) };
  if (approval.slack) {
    item['slack'] = { M: { channel: { S: approval.slack.channel }, ts: { S: approval.slack.ts } } };
  }
  if (approval.params) item['params'] = paramsItem(approval.params);
  return item;
}

function fromItem(item: Record<string, AttributeValue>): ApprovalView {
  const fields: Record<string, unknown> = {};
  for (const field of STRING_FIELDS) {
    const value = item[field]?.S;
    if (value !== undefined) fields[field] = value;
  }
  const status = fields['status'] as ApprovalStatus;
  if (!APPROVAL_STATUSES.includes(status)) {
    throw new PgWardenError('INTERNAL', `approval ${String(fields['id'])} has an unknown status "${status}"`);
  }
  const approval = fields as unknown as ApprovalView;
  approval.approvers = (item['approvers']?.L ?? []).map((group) => group.S ?? '');
  approval.holdTimeoutSeconds = Number(item['holdTimeoutSeconds']?.N ?? '0');
  const slack = item['slack']?.M;
  if (slack?.['channel']?.S !== undefined && slack['ts']?.S !== undefined) {
    approval.slack = { channel: slack['channel'].S, ts: slack['ts'].S };
  }
  const params = item['params']?.M;
  if (params !== undefined) approval.params = paramsFrom(params);
  const execution = item['execution']?.M;
  if (execution?.['at']?.S !== undefined) {
    approval.execution = {
      at: execution['at'].S,
      ...(execution['commandTag']?.S === undefined ? {} : { commandTag: execution['commandTag'].S }),
      ...(execution['rows']?.N === undefined ? {} : { rows: Number(execution['rows'].N) }),
      ...(execution['error']?.S === undefined ? {} : { error: execution['error'].S }),
    };
  }
  return approval;
}

/** The shown parameter values: a map of the count and a list of one map per value. */
function paramsItem(params: NonNullable<ApprovalView['params']>): AttributeValue {
  const values: AttributeValue[] = params.values.map((p) => {
    const value: Record<string, AttributeValue> = {
      value: p.value === null ? { NULL: true } : { S: p.value },
      format: { S: p.format },
    };
    if (p.type !== undefined) value['type'] = { S: p.type };
    if (p.masked !== undefined) value['masked'] = { S: p.masked };
    if (p.truncated) value['truncated'] = { BOOL: true };
    return { M: value };
  });
  return { M: { count: { N: String(params.count) }, values: { L: values } } };
}

function paramsFrom(item: Record<string, AttributeValue>): NonNullable<ApprovalView['params']> {
  const values = (item['values']?.L ?? []).map((entry): ApprovalParam => {
    const p = entry.M ?? {};
    return {
      value: p['value']?.S ?? null,
      format: p['format']?.S === 'binary' ? 'binary' : 'text',
      ...(p['type']?.S === undefined ? {} : { type: p['type'].S }),
      ...(p['masked']?.S === undefined ? {} : { masked: p['masked'].S }),
      ...(p['truncated']?.BOOL === true ? { truncated: true as const } : {}),
    };
  });
  return { count: Number(item['count']?.N ?? values.length), values };
}
