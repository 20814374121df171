/**
 * The notifier: an SQS batch of {approvalId} notifications in, Slack brought up to date for each,
 * partial batch failures out. Used by the Lambda (handler.ts) and by local mode's poller alike.
 */

import type { ApprovalNotification } from '../../shared/approvals.ts';
import { silentLogger } from '../../shared/logger.ts';
import { parseApprovalNotification } from '../adapters/sqs-approval-queue.ts';
import { createSlackSync, type SlackSyncDeps } from './slack-sync.ts';
import { processSqsBatch, type SqsBatchResponse, type SqsEvent } from './sqs-batch.ts';

export type NotifierDeps = SlackSyncDeps;
export type NotifierHandler = (event: SqsEvent) => Promise<SqsBatchResponse>;

export function createNotifier(deps: NotifierDeps): NotifierHandler {
  const sync = createSlackSync(deps);
  const logger = deps.logger ?? silentLogger;
  return (event) =>
    processSqsBatch<ApprovalNotification>(
      event,
      parseApprovalNotification,
      (notification) => notification.approvalId,
      (notification) => sync(notification.approvalId),
      logger,
    );
}
