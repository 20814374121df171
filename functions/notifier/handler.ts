/**
 * Notifier Lambda composition root (SQS event source with ReportBatchItemFailures): reads the
 * environment, builds the clients once per container, and hands each batch to the notifier.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { notifierConfigFromEnv } from '../../shared/config.ts';
import type { Logger } from '../../shared/logger.ts';
import { approvalTableNames, DynamoDbApprovalStore } from '../adapters/dynamodb-approval-store.ts';
import { DynamoDbAuditStore, tableNames } from '../adapters/dynamodb-audit-store.ts';
import { resolveSecret } from '../adapters/secret-source.ts';
import { createSlackApi } from '../adapters/slack-web-api.ts';
import { SqsApprovalQueue } from '../adapters/sqs-approval-queue.ts';
import { createApprovalsService } from '../api/approvals-service.ts';
import { createNotifier } from './notifier.ts';

const logger: Logger = {
  info: (message, fields) => console.log(JSON.stringify({ level: 'info', message, ...fields })),
  warn: (message, fields) => console.log(JSON.stringify({ level: 'warn', message, ...fields })),
  error: (message, fields) => console.log(JSON.stringify({ level: 'error', message, ...fields })),
};

const config = notifierConfigFromEnv(process.env);
const dynamodb = new DynamoDBClient(
  config.dynamoDbEndpoint === undefined ? {} : { endpoint: config.dynamoDbEndpoint },
);
const token = await resolveSecret(config.botToken, 'Slack bot token');

const store = new DynamoDbApprovalStore(dynamodb, approvalTableNames(config.tablePrefix).approvals);
const audit = new DynamoDbAuditStore(dynamodb, tableNames(config.tablePrefix));
const queue =
  config.queueUrl === undefined ? undefined : new SqsApprovalQueue(new SQSClient({}), config.queueUrl);

export const handler = createNotifier({
  store,
  slack: createSlackApi({
    token,
    // Off the interaction path: Slack may take longer, and SQS retries a failure anyway.
    timeoutMs: 10_000,
    ...(config.slackApiUrl === undefined ? {} : { apiUrl: config.slackApiUrl }),
  }),
  channel: config.channel,
  audit,
  ...(queue === undefined ? {} : { queue }),
  // A lapsed approval is marked expired, with its audit step, when the notifier looks at it at the
  // deadline, not only when the API next reads it: the trail shows it without anyone asking.
  approvals: createApprovalsService({
    store,
    audit,
    ...(queue === undefined ? {} : { queue }),
    // who may decide does not matter here: the notifier never decides
    defaultApprovers: [],
    now: () => new Date(),
    newId: randomUUID,
    logger,
    via: 'notifier',
  }),
  now: () => new Date(),
  newId: randomUUID,
  logger,
});
