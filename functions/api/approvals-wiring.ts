/**
 * What a composition root (the Lambda handler, local mode) adds to the API for approvals, from the
 * approvals configuration: the SQS queue the notifier listens on, and Slack interactivity.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import type { ApprovalsConfig } from '../../shared/config.ts';
import { resolveSecret } from '../adapters/secret-source.ts';
import { createSlackApi } from '../adapters/slack-web-api.ts';
import { SqsApprovalQueue } from '../adapters/sqs-approval-queue.ts';
import type { RouteContext } from './routes/index.ts';

export async function approvalsRouteContext(
  config: ApprovalsConfig,
  options: { sqs?: SQSClient } = {},
): Promise<Pick<RouteContext, 'approvalsQueue' | 'slack'>> {
  const context: Pick<RouteContext, 'approvalsQueue' | 'slack'> = {};
  if (config.queueUrl !== undefined) {
    context.approvalsQueue = new SqsApprovalQueue(options.sqs ?? new SQSClient({}), config.queueUrl);
  }
  if (config.slack !== undefined) {
    const [token, signingSecret] = await Promise.all([
      resolveSecret(config.slack.botToken, 'Slack bot token'),
      resolveSecret(config.slack.signingSecret, 'Slack signing secret'),
    ]);
    context.slack = {
      api: createSlackApi({
        token,
        ...(config.slack.apiUrl === undefined ? {} : { apiUrl: config.slack.apiUrl }),
      }),
      signingSecret,
      maxGroupsAgeSeconds: config.reviewerGroupsMaxAgeSeconds,
    };
  }
  return context;
}
