/**
 * The notifier end to end: approvals queued on a real SQS API (fauxqs) by the real queue adapter,
 * received and handed over in Lambda's SQS event shape, posted to the Slack stand-in through Bolt's
 * WebClient, with channel and ts stored in DynamoDB (dynalite). Failing records come back as partial
 * batch failures while the rest of the batch succeeds. The last suite runs the Lambda entry point
 * itself, configured from the environment.
 */
import { randomUUID } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { startFauxqs } from 'fauxqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../functions/adapters/dynamodb-audit-store.ts';
import { createSlackApi } from '../../functions/adapters/slack-web-api.ts';
import { SqsApprovalQueue } from '../../functions/adapters/sqs-approval-queue.ts';
import { type ApprovalsService, createApprovalsService } from '../../functions/api/approvals-service.ts';
import { createNotifier, type NotifierHandler } from '../../functions/notifier/notifier.ts';
import type { SqsEvent } from '../../functions/notifier/sqs-batch.ts';
import { approvalRequest, RecordingAuditStore, reviewer } from '../fakes/approvals.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';
import { type FakeSlack, startFakeSlack } from '../fakes/slack-api.ts';

const PREFIX = 'notifier-test-';
const CHANNEL = '#db-approvals';
let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
let sqs: SQSClient;
let queueUrl: string;
let queueArn: string;
let db: LocalDynamoDb;
let slack: FakeSlack;
let store: DynamoDbApprovalStore;
let service: ApprovalsService;
let notifier: NotifierHandler;
let audit: DynamoDbAuditStore;
let counter = 0;

beforeAll(async () => {
  [fauxqs, db, slack] = await Promise.all([
    startFauxqs({ port: 0, logger: false }),
    startDynamoDb(),
    startFakeSlack(),
  ]);
  sqs = new SQSClient({
    endpoint: `http://127.0.0.1:${fauxqs.port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    useQueueUrlAsEndpoint: false,
  });
  queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'approvals' }))).QueueUrl!;
  const attributes = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  queueArn = attributes.Attributes?.['QueueArn'] ?? 'arn:aws:sqs:us-east-1:000000000000:approvals';
  const tables = approvalTableNames(PREFIX);
  await Promise.all([
    ensureApprovalTables(db.client, tables),
    ensureAuditTables(db.client, tableNames(PREFIX)),
  ]);
  store = new DynamoDbApprovalStore(db.client, tables.approvals);
  audit = new DynamoDbAuditStore(db.client, tableNames(PREFIX));
  service = createApprovalsService({
    store,
    audit: new RecordingAuditStore(),
    queue: new SqsApprovalQueue(sqs, queueUrl),
    defaultApprovers: ['reviewers'],
    now: () => new Date(),
    newId: randomUUID,
  });
  notifier = createNotifier({
    store,
    slack: createSlackApi({ token: slack.token, apiUrl: slack.apiUrl }),
    channel: CHANNEL,
    approvals: service,
    audit,
    newId: randomUUID,
  });
});
afterAll(async () => {
  sqs.destroy();
  await Promise.all([fauxqs.stop(), db.stop(), slack.stop()]);
});
beforeEach(async () => {
  await receiveEvent(); // nothing left over from an earlier test
  slack.calls.length = 0;
  slack.clearFailures();
});

/** What Lambda's event source mapping hands the function: up to 10 received messages as Records. */
async function receiveEvent(
  expected = 0,
): Promise<SqsEvent & { Records: Array<{ messageId: string; body: string }> }> {
  const records: SqsEvent['Records'] = [];
  for (let attempt = 0; attempt < 20 && (records.length < expected || attempt === 0); attempt += 1) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: expected > 0 ? 1 : 0,
        AttributeNames: ['All'],
      }),
    );
    for (const message of Messages) {
      records.push({
        messageId: message.MessageId!,
        receiptHandle: message.ReceiptHandle!,
        body: message.Body!,
        attributes: message.Attributes ?? {},
        messageAttributes: {},
        md5OfBody: message.MD5OfBody!,
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: 'us-east-1',
      } as SqsEvent['Records'][number]);
    }
    if (expected === 0) break;
  }
  return { Records: records };
}

async function ask() {
  counter += 1;
  return service.request(approvalRequest({ text: `delete from orders where id = ${counter}` }));
}

describe('the notifier', () => {
  it('posts the Block Kit message for a new approval and remembers where', async () => {
    const approval = await ask();
    const event = await receiveEvent(1);
    expect(JSON.parse(event.Records[0]!.body)).toEqual({ approvalId: approval.id });
    expect(await notifier(event)).toEqual({ batchItemFailures: [] });

    const [post] = slack.callsTo('chat.postMessage');
    expect(post?.args['channel']).toBe(CHANNEL);
    const blocks = JSON.stringify(post?.args['blocks']);
    expect(blocks).toContain('"action_id":"approval_approve"');
    expect(blocks).toContain(`"value":"${approval.id}"`);
    expect(blocks).toContain('delete from orders');
    const stored = await store.get(approval.id);
    expect(stored?.slack).toEqual({ channel: CHANNEL, ts: expect.stringMatching(/^\d+\.\d+$/) });

    // The step is in the audit trail (wherever the audit store files approval events).
    expect(await countNotified(approval.id)).toBe(1);
  });

  it("posts to the rule's own channel when the rule names one, and keeps it on the stored approval", async () => {
    counter += 1;
    const approval = await service.request(
      approvalRequest({ text: `drop table payments_${counter}`, channel: 'C0PAYMENTS01' }),
    );
    expect((await store.get(approval.id))?.channel).toBe('C0PAYMENTS01');
    expect(await notifier(await receiveEvent(1))).toEqual({ batchItemFailures: [] });
    const post = slack
      .callsTo('chat.postMessage')
      .find((call) => JSON.stringify(call.args).includes(`payments_${counter}`));
    expect(post?.args['channel']).toBe('C0PAYMENTS01');
    expect((await store.get(approval.id))?.slack?.channel).toBe('C0PAYMENTS01');
  });

  it('updates that message with the decision', async () => {
    const approval = await ask();
    await notifier(await receiveEvent(1));
    await service.decide(approval.id, reviewer(), { verdict: 'deny', reason: 'not on a Friday' });
    expect(await notifier(await receiveEvent(1))).toEqual({ batchItemFailures: [] });
    const [update] = slack.callsTo('chat.update');
    const { slack: where } = (await store.get(approval.id))!;
    expect(update?.args).toMatchObject({ channel: where!.channel, ts: where!.ts });
    expect(JSON.stringify(update?.args['blocks'])).toContain('not on a Friday');
    expect(JSON.stringify(update?.args['blocks'])).not.toContain('approval_approve');
    expect(slack.callsTo('chat.postMessage')).toHaveLength(1);
  });

  it('reports only the failing records of a batch; the others succeed, and a retry of the failed one works', async () => {
    const good = await ask();
    const bad = await ask();
    const alsoGood = await ask();
    const event = await receiveEvent(3);
    event.Records.push({ ...event.Records[0]!, messageId: 'not-json', body: '{not json' });
    slack.failWhen(
      'chat.postMessage',
      (args) => JSON.stringify(args['blocks']).includes(bad.id),
      'channel_not_found',
    );

    const result = await notifier(event);
    const badRecord = event.Records.find((r) => r.body.includes(bad.id))!;
    expect(result.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(
      [badRecord.messageId, 'not-json'].sort(),
    );
    expect((await store.get(good.id))?.slack).toBeDefined();
    expect((await store.get(alsoGood.id))?.slack).toBeDefined();
    expect((await store.get(bad.id))?.slack).toBeUndefined();

    slack.clearFailures();
    expect(await notifier({ Records: [badRecord] })).toEqual({ batchItemFailures: [] });
    expect((await store.get(bad.id))?.slack).toBeDefined();
  });

  it('reports a record as failed when Slack answers 500 or the token is refused', async () => {
    const approval = await ask();
    const event = await receiveEvent(1);
    slack.failNext('chat.postMessage', 'http500');
    expect((await notifier(event)).batchItemFailures).toEqual([
      { itemIdentifier: event.Records[0]!.messageId },
    ]);
    const wrongToken = createNotifier({
      store,
      slack: createSlackApi({ token: 'xoxb-wrong', apiUrl: slack.apiUrl }),
      channel: CHANNEL,
    });
    expect((await wrongToken(event)).batchItemFailures).toHaveLength(1);
    expect((await store.get(approval.id))?.slack).toBeUndefined();
  });

  it('posts once for repeated notifications of one approval, and updates afterwards', async () => {
    const approval = await ask();
    const [first] = (await receiveEvent(1)).Records;
    const event = { Records: [first!, { ...first!, messageId: 'dup-1' }, { ...first!, messageId: 'dup-2' }] };
    expect(await notifier(event)).toEqual({ batchItemFailures: [] });
    expect(slack.callsTo('chat.postMessage')).toHaveLength(1);
    expect(await notifier({ Records: [first!] })).toEqual({ batchItemFailures: [] });
    expect(slack.callsTo('chat.postMessage')).toHaveLength(1);
    expect(slack.callsTo('chat.update')).toHaveLength(1);
    expect((await store.get(approval.id))?.slack).toBeDefined();
  });

  it('drops a notification for an approval that no longer exists', async () => {
    const result = await notifier({
      Records: [{ messageId: 'm-gone', body: JSON.stringify({ approvalId: 'gone' }) }],
    });
    expect(result).toEqual({ batchItemFailures: [] });
    expect(slack.calls).toEqual([]);
  });
});

describe('the Lambda entry point (functions/notifier/handler.ts)', () => {
  beforeAll(() => {
    vi.stubEnv('PGWARDEN_TABLE_PREFIX', PREFIX);
    vi.stubEnv('PGWARDEN_DYNAMODB_ENDPOINT', db.endpoint);
    vi.stubEnv('SLACK_BOT_TOKEN', slack.token);
    vi.stubEnv('PGWARDEN_SLACK_API_URL', slack.apiUrl);
    vi.stubEnv('PGWARDEN_SLACK_CHANNEL', 'C-FROM-ENV');
    vi.stubEnv('AWS_REGION', 'us-east-1');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
  });
  afterAll(() => vi.unstubAllEnvs());

  it('is configured from the environment and handles an SQS batch', async () => {
    const { handler } = await import('../../functions/notifier/handler.ts');
    const approval = await ask();
    const event = await receiveEvent(1);
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(slack.callsTo('chat.postMessage')[0]?.args['channel']).toBe('C-FROM-ENV');
    expect((await store.get(approval.id))?.slack?.channel).toBe('C-FROM-ENV');
  });
});

async function countNotified(approvalId: string): Promise<number> {
  const { Items = [] } = await db.client.send(
    new ScanCommand({
      TableName: `${PREFIX}events`,
      FilterExpression: 'approvalId = :id AND step = :step',
      ExpressionAttributeValues: { ':id': { S: approvalId }, ':step': { S: 'notified' } },
    }),
  );
  return Items.length;
}

describe('an approval nobody decides', () => {
  it('is looked at again when it lapses, so Slack shows it expired without a click', async () => {
    let clock = new Date('2026-11-25T12:00:00Z');
    const expiryQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'approvals-expiry' })))
      .QueueUrl!;
    const queue = new SqsApprovalQueue(sqs, expiryQueueUrl);
    const lapsing = createApprovalsService({
      store,
      audit: new RecordingAuditStore(),
      queue,
      defaultApprovers: ['reviewers'],
      windows: { decisionSeconds: 60, useSeconds: 60 },
      now: () => clock,
      newId: randomUUID,
    });
    const notify = createNotifier({
      store,
      slack: createSlackApi({ token: slack.token, apiUrl: slack.apiUrl }),
      channel: CHANNEL,
      approvals: lapsing,
      queue,
      now: () => clock,
      newId: randomUUID,
    });
    const delayed = async () =>
      Number(
        (
          await sqs.send(
            new GetQueueAttributesCommand({
              QueueUrl: expiryQueueUrl,
              AttributeNames: ['ApproximateNumberOfMessagesDelayed'],
            }),
          )
        ).Attributes?.['ApproximateNumberOfMessagesDelayed'],
      );
    const record = (approvalId: string) =>
      ({
        messageId: randomUUID(),
        receiptHandle: 'r',
        body: JSON.stringify({ approvalId }),
        attributes: {},
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: queueArn,
        awsRegion: 'us-east-1',
      }) as SqsEvent['Records'][number];

    const approval = await lapsing.request(approvalRequest({ text: 'delete from orders -- lapses' }));
    // the request's own notification is immediate; posting it schedules the look at expiry
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: expiryQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect(Messages.map((m) => JSON.parse(m.Body!))).toEqual([{ approvalId: approval.id }]);
    expect(await notify({ Records: [record(approval.id)] })).toEqual({ batchItemFailures: [] });
    expect(slack.callsTo('chat.postMessage')).toHaveLength(1);
    expect(await delayed()).toBe(1);
    const visibleNow = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: expiryQueueUrl, WaitTimeSeconds: 0 }),
    );
    expect(visibleNow.Messages ?? []).toEqual([]);

    // the delayed notification arrives after the deadline: the approval is expired and Slack says so
    clock = new Date(clock.getTime() + 120_000);
    expect(await notify({ Records: [record(approval.id)] })).toEqual({ batchItemFailures: [] });
    expect((await store.get(approval.id))?.status).toBe('expired');
    const [update] = slack.callsTo('chat.update');
    expect(JSON.stringify(update?.args['blocks']).toLowerCase()).toContain('expired');
    expect(JSON.stringify(update?.args['blocks'])).not.toContain('approval_approve');
    // nothing more is scheduled for a decided (here: expired) approval
    expect(await delayed()).toBe(1);
  });
});
