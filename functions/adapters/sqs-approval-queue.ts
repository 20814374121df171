/**
 * ApprovalQueue over SQS: one message per approval change ({approvalId}); the notifier Lambda makes
 * Slack show the approval's current state, so messages may repeat or arrive late without harm.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ApprovalQueue } from '../../shared/approvals/ports.ts';
import type { ApprovalNotification } from '../../shared/approvals.ts';
import { PgWardenError } from '../../shared/errors.ts';

/** SQS delays a message by at most 15 minutes. */
const MAX_DELAY_SECONDS = 900;

export class SqsApprovalQueue implements ApprovalQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  enqueue(notification: ApprovalNotification): Promise<void> {
    return this.send(notification, 0);
  }

  enqueueLater(notification: ApprovalNotification, delaySeconds: number): Promise<void> {
    return this.send(notification, Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(delaySeconds))));
  }

  private async send(notification: ApprovalNotification, delaySeconds: number): Promise<void> {
    const body: ApprovalNotification = { approvalId: notification.approvalId };
    try {
      await this.client.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: JSON.stringify(body),
          ...(delaySeconds > 0 ? { DelaySeconds: delaySeconds } : {}),
        }),
      );
    } catch (error) {
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      throw new PgWardenError(
        'STORE_UNAVAILABLE',
        `the approvals queue is unavailable (${name}: ${message})`,
        {
          cause: error,
        },
      );
    }
  }
}

/** The body of one SQS record, or undefined when it is not an approval notification. */
export function parseApprovalNotification(body: string): ApprovalNotification | undefined {
  try {
    const parsed = JSON.parse(body) as { approvalId?: unknown };
    return typeof parsed?.approvalId === 'string' && parsed.approvalId !== ''
      ? { approvalId: parsed.approvalId }
      : undefined;
  } catch {
    return undefined;
  }
}
