/**
 * Local mode's stand-in for Lambda's SQS event source mapping: long-polls the queue
 * (ReceiveMessage with WaitTimeSeconds), hands each batch to the notifier handler in Lambda's SQS
 * event shape, and deletes only the records the handler did not report as failed (partial batch
 * responses). A record that fails, or a batch whose handler throws, is left on the queue: it comes
 * back after the visibility timeout and, after maxReceiveCount tries, lands in the dead-letter queue,
 * as in AWS.
 */
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { type Logger, silentLogger } from '../../shared/logger.ts';

/** The parts of Lambda's SQSRecord the product reads (the full shape is sent). */
export interface SqsEventRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: Record<string, string>;
  messageAttributes: Record<string, unknown>;
  md5OfBody: string;
  eventSource: 'aws:sqs';
  eventSourceARN: string;
  awsRegion: string;
}

export interface SqsEvent {
  Records: SqsEventRecord[];
}

export interface SqsBatchResponse {
  batchItemFailures: Array<{ itemIdentifier: string }>;
}

export type SqsHandler = (event: SqsEvent) => Promise<SqsBatchResponse>;

export interface NotifierPollerOptions {
  client: SQSClient;
  queueUrl: string;
  handler: SqsHandler;
  logger?: Logger;
  /** long-poll wait per ReceiveMessage (SQS allows 0–20); default 20 */
  waitTimeSeconds?: number;
  /** records per event (Lambda's batch size; SQS allows 1–10); default 10 */
  batchSize?: number;
  region?: string;
}

export interface NotifierPoller {
  /** batches handed to the handler so far */
  readonly batches: number;
  stop(): Promise<void>;
}

const RECEIVE_RETRY_MS = 1_000;

export function startNotifierPoller(options: NotifierPollerOptions): NotifierPoller {
  const logger = options.logger ?? silentLogger;
  const region = options.region ?? 'us-east-1';
  const queueArn = arnOf(options.queueUrl, region);
  const stopping = new AbortController();
  let batches = 0;

  async function receive(): Promise<Message[]> {
    const { Messages } = await options.client.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        WaitTimeSeconds: options.waitTimeSeconds ?? 20,
        MaxNumberOfMessages: options.batchSize ?? 10,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: stopping.signal },
    );
    return Messages ?? [];
  }

  async function handle(messages: Message[]): Promise<void> {
    const records = messages.map((m) => toRecord(m, queueArn, region));
    let failed: Set<string>;
    try {
      batches++;
      const response = await options.handler({ Records: records });
      failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
    } catch (error) {
      // As Lambda does: a handler that throws fails the whole batch.
      logger.warn('notifier failed a whole batch; it will be retried', {
        records: records.length,
        error: String(error),
      });
      return;
    }
    if (failed.size > 0)
      logger.warn('notifier failed some records; they will be retried', { failed: failed.size });
    const done = records.filter((r) => !failed.has(r.messageId));
    if (done.length === 0) return;
    const result = await options.client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
      }),
    );
    if (result.Failed?.length) {
      logger.warn('could not delete handled messages; they may be delivered again', {
        failed: result.Failed.length,
      });
    }
  }

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        const messages = await receive();
        if (messages.length > 0) await handle(messages);
      } catch (error) {
        if (stopping.signal.aborted) break;
        logger.warn('polling the approvals queue failed; retrying', { error: String(error) });
        await new Promise((r) => setTimeout(r, RECEIVE_RETRY_MS));
      }
    }
  })();

  return {
    get batches() {
      return batches;
    },
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}

function toRecord(message: Message, queueArn: string, region: string): SqsEventRecord {
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: { ...(message.Attributes ?? {}) },
    messageAttributes: { ...(message.MessageAttributes ?? {}) },
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** http://sqs.us-east-1.localhost:4566/000000000000/name → arn:aws:sqs:us-east-1:000000000000:name */
function arnOf(queueUrl: string, region: string): string {
  const [account = '000000000000', name = 'queue'] = new URL(queueUrl).pathname.split('/').filter(Boolean);
  return `arn:aws:sqs:${region}:${account}:${name}`;
}
