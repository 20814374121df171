/**
 * The local SQS: fauxqs (the SQS API the real @aws-sdk/client-sqs talks to), in memory, with the
 * approvals queue and its dead-letter queue set up the way infra/ sets them up in AWS: a message
 * that fails `maxReceiveCount` deliveries moves to the DLQ.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { startFauxqs } from 'fauxqs';

export interface LocalSqsOptions {
  /** 0 or undefined picks a free port */
  port?: number;
  /** default 'pgwarden-local-approvals' (and '<name>-dlq') */
  queueName?: string;
  /** deliveries before a message goes to the DLQ; default 5 */
  maxReceiveCount?: number;
  /** seconds a received message stays invisible before it is delivered again; default 30 */
  visibilityTimeoutSeconds?: number;
}

export interface LocalSqs {
  /** for `new SQSClient({ endpoint })` */
  endpoint: string;
  queueUrl: string;
  deadLetterQueueUrl: string;
  /** a client configured for this endpoint (callers own it: destroy() it when done) */
  client(): SQSClient;
  close(): Promise<void>;
}

export const localSqsRegion = 'us-east-1';

export async function startLocalSqs(options: LocalSqsOptions = {}): Promise<LocalSqs> {
  const server = await startFauxqs({ port: options.port ?? 0, logger: false, host: 'localhost' });
  const name = options.queueName ?? 'pgwarden-local-approvals';
  const dlq = server.createQueue(`${name}-dlq`);
  const queue = server.createQueue(name, {
    attributes: {
      VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 30),
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlq.queueArn,
        maxReceiveCount: String(options.maxReceiveCount ?? 5),
      }),
    },
  });
  const endpoint = `http://127.0.0.1:${server.port}`;
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    queueUrl: queue.queueUrl,
    deadLetterQueueUrl: dlq.queueUrl,
    client: () => localSqsClient(endpoint),
    close: () => {
      closed ??= server.stop();
      return closed;
    },
  };
}

/** The real SDK client against the local endpoint (queue URLs name `sqs.<region>.localhost`). */
export function localSqsClient(endpoint: string): SQSClient {
  return new SQSClient({
    endpoint,
    region: localSqsRegion,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    // requests go to the endpoint, not to the host inside the queue URL
    useQueueUrlAsEndpoint: false,
  });
}
