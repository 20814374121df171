/**
 * Lambda's SQS event shape and partial batch responses: each record is handled on its own, and a
 * record that fails is reported by its messageId so SQS retries only it (and, after the queue's
 * maxReceiveCount, moves it to the dead-letter queue). Needs ReportBatchItemFailures on the event
 * source mapping.
 */
import type { Logger } from '../../shared/logger.ts';

/** The parts of Lambda's SQSRecord the notifier reads (the real event carries more). */
export interface SqsRecord {
  messageId: string;
  body: string;
}

export interface SqsEvent {
  Records: SqsRecord[];
}

export interface SqsBatchResponse {
  batchItemFailures: Array<{ itemIdentifier: string }>;
}

/**
 * Runs `handle` for every record (records naming the same key run once, in order: the latest state is
 * what matters) and reports the ones that failed.
 */
export async function processSqsBatch<T>(
  event: SqsEvent,
  parse: (body: string) => T | undefined,
  keyOf: (message: T) => string,
  handle: (message: T) => Promise<void>,
  logger: Logger,
): Promise<SqsBatchResponse> {
  const failures: string[] = [];
  const groups = new Map<string, { message: T; messageIds: string[] }>();
  for (const record of event.Records ?? []) {
    const message = parse(record.body);
    if (message === undefined) {
      // Unreadable now means unreadable forever: fail it so it ends in the dead-letter queue for a look.
      logger.error('an SQS record is not an approval notification', { messageId: record.messageId });
      failures.push(record.messageId);
      continue;
    }
    const key = keyOf(message);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { message, messageIds: [record.messageId] });
    else group.messageIds.push(record.messageId);
  }
  await Promise.all(
    [...groups.entries()].map(async ([key, group]) => {
      try {
        await handle(group.message);
      } catch (error) {
        logger.warn('notification failed; SQS will retry it', { key, error: String(error) });
        failures.push(...group.messageIds);
      }
    }),
  );
  return { batchItemFailures: failures.map((itemIdentifier) => ({ itemIdentifier })) };
}
