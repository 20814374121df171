/**
 * The local SQS event source: the real SQS client against fauxqs, records handed over in Lambda's
 * event shape, partial batch failures retried and, after maxReceiveCount, moved to the DLQ.
 */
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type NotifierPoller,
  type SqsBatchResponse,
  type SqsEvent,
  startNotifierPoller,
} from '../../../scripts/local/notifier-poller.ts';
import { type LocalSqs, startLocalSqs } from '../../../scripts/local/sqs.ts';
import { waitFor } from '../../fixtures/wait-for.ts';

let sqs: LocalSqs | undefined;
let client: SQSClient | undefined;
let poller: NotifierPoller | undefined;
afterEach(async () => {
  await poller?.stop();
  client?.destroy();
  await sqs?.close();
  poller = client = sqs = undefined;
});

async function setUp(handler: (event: SqsEvent) => Promise<SqsBatchResponse>) {
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 1, maxReceiveCount: 2 });
  client = sqs.client();
  poller = startNotifierPoller({ client, queueUrl: sqs.queueUrl, handler, waitTimeSeconds: 1 });
  return { sqs, client };
}

async function queued(client: SQSClient, queueUrl: string): Promise<number> {
  const { Attributes } = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the local notifier poller', () => {
  it("hands messages over in Lambda's SQS event shape and deletes them once handled", async () => {
    const events: SqsEvent[] = [];
    const { sqs, client } = await setUp(async (event) => {
      events.push(event);
      return { batchItemFailures: [] };
    });
    await client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: '{"approvalId":"a1"}' }));
    await waitFor(() => events.length > 0, 5_000);
    const record = events[0]!.Records[0]!;
    expect(record).toMatchObject({
      body: '{"approvalId":"a1"}',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:pgwarden-local-approvals',
      awsRegion: 'us-east-1',
    });
    expect(record.messageId).not.toBe('');
    expect(record.receiptHandle).not.toBe('');
    expect(record.attributes.ApproximateReceiveCount).toBe('1');
    await eventually(async () => (await queued(client, sqs.queueUrl)) === 0);
  });

  it('retries only the records reported as failed, then moves them to the dead-letter queue', async () => {
    const seen: string[] = [];
    const { sqs, client } = await setUp(async (event) => {
      seen.push(...event.Records.map((r) => r.body));
      return {
        batchItemFailures: event.Records.filter((r) => r.body === 'bad').map((r) => ({
          itemIdentifier: r.messageId,
        })),
      };
    });
    await client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: 'good' }));
    await client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: 'bad' }));
    await eventually(
      async () => seen.filter((b) => b === 'bad').length >= 2 && (await queued(client, sqs.queueUrl)) === 0,
    );
    expect(seen.filter((b) => b === 'good')).toHaveLength(1);
    const dead = await client.send(
      new ReceiveMessageCommand({ QueueUrl: sqs.deadLetterQueueUrl, WaitTimeSeconds: 1 }),
    );
    expect(dead.Messages?.map((m) => m.Body)).toEqual(['bad']);
  });

  it('leaves the whole batch for a retry when the handler throws', async () => {
    let calls = 0;
    const { sqs, client } = await setUp(async () => {
      calls++;
      if (calls === 1) throw new Error('slack down');
      return { batchItemFailures: [] };
    });
    await client.send(new SendMessageCommand({ QueueUrl: sqs.queueUrl, MessageBody: 'x' }));
    await eventually(async () => calls >= 2 && (await queued(client, sqs.queueUrl)) === 0);
    expect(calls).toBe(2);
  });
});
