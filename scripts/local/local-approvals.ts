/**
 * Approvals in local mode, wired as in AWS but in one process: one approvals service shared by the
 * API routes (CLI, /slack/events) and the proxy's hold gate (so a decision wakes the held statement
 * at once), the SQS queue on the local emulator, and the notifier run by the local poller in
 * Lambda's event shape. With Slack credentials the real notifier posts to Slack (or to a Slack
 * stand-in given by apiUrl); without, held statements are printed to the console with the CLI
 * commands that decide them.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../functions/adapters/dynamodb-principal-directory.ts';
import { createSlackApi } from '../../functions/adapters/slack-web-api.ts';
import { SqsApprovalQueue } from '../../functions/adapters/sqs-approval-queue.ts';
import { type ApprovalsService, createApprovalsService } from '../../functions/api/approvals-service.ts';
import type { RouteContext } from '../../functions/api/routes/index.ts';
import { createNotifier } from '../../functions/notifier/notifier.ts';
import { createApprovalGate } from '../../proxy/approval-gate.ts';
import { ApprovedRunReporter } from '../../proxy/approvals-execution.ts';
import { localDecideHint, localSlackDecideHint } from '../../proxy/approvals-messages.ts';
import type { StatementGate } from '../../proxy/statement-gate.ts';
import type { SlackApi } from '../../shared/approvals/ports.ts';
import type { ApprovalWindows } from '../../shared/approvals.ts';
import type { ControlPlane } from '../../shared/control-plane.ts';
import type { AuditEvent } from '../../shared/events.ts';
import type { Logger } from '../../shared/logger.ts';
import { type NotifierPoller, startNotifierPoller } from './notifier-poller.ts';
import { createConsoleNotifier } from './slack-console.ts';
import { localSqsClient } from './sqs.ts';

export interface LocalSlackOptions {
  botToken: string;
  signingSecret: string;
  channel: string;
  /** a Slack Web API stand-in (tests, benchmarks); default: the real https://slack.com/api/ */
  apiUrl?: string;
}

export interface LocalApprovalsOptions {
  /** the local SQS (scripts/local/sqs.ts); absent: no notifications at all (decide with the CLI) */
  sqs?: { endpoint: string; queueUrl: string };
  /** absent: held statements are printed with `console` */
  slack?: LocalSlackOptions;
  /** where held statements are printed without Slack; default: nowhere */
  console?: (text: string) => void;
  /** caps every rule's hold, in seconds (short holds for demos and tests) */
  maxHoldSeconds?: number;
  windows?: ApprovalWindows;
  /** long-poll wait of the notifier poller (seconds, ≤ 20); default 20 */
  pollWaitSeconds?: number;
  /** PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS for Slack clicks; default 300 */
  reviewerGroupsMaxAgeSeconds?: number;
}

export interface LocalApprovals {
  service: ApprovalsService;
  /** the RouteContext fields that give the API this very service, queue and Slack */
  routes: Pick<RouteContext, 'approvals' | 'approvalsQueue' | 'slack' | 'principals'>;
  gate: StatementGate;
  /** the proxy's control plane, watched so released statements' results reach Slack */
  watch(controlPlane: ControlPlane): ControlPlane;
  stop(): Promise<void>;
}

/**
 * What pgwarden knows of each (issuer, subject): Slack clicks are mapped to it by verified email,
 * and sessions are re-checked against it. Every verified token updates it.
 */
export function localPrincipalDirectory(
  dynamodb: DynamoDBClient,
  tablePrefix: string,
): DynamoDbPrincipalDirectory {
  return new DynamoDbPrincipalDirectory(dynamodb, approvalTableNames(tablePrefix).principals);
}

export async function startLocalApprovals(
  options: LocalApprovalsOptions,
  deps: {
    dynamodb: DynamoDBClient;
    tablePrefix: string;
    /** audit trail of approval steps, and the control plane whose ingest the reporter watches */
    controlPlane: ControlPlane;
    defaultApprovers: readonly string[];
    now: () => Date;
    newId: () => string;
    logger: Logger;
  },
): Promise<LocalApprovals> {
  const { logger } = deps;
  const tables = approvalTableNames(deps.tablePrefix);
  await ensureApprovalTables(deps.dynamodb, tables);
  const store = new DynamoDbApprovalStore(deps.dynamodb, tables.approvals);
  const principals = localPrincipalDirectory(deps.dynamodb, deps.tablePrefix);

  let sqsClient: SQSClient | undefined;
  let queue: SqsApprovalQueue | undefined;
  if (options.sqs !== undefined) {
    sqsClient = localSqsClient(options.sqs.endpoint);
    queue = new SqsApprovalQueue(sqsClient, options.sqs.queueUrl);
  }
  const approvalAudit = { put: (events: readonly AuditEvent[]) => deps.controlPlane.ingest([...events]) };
  const service = createApprovalsService({
    store,
    audit: approvalAudit,
    ...(queue === undefined ? {} : { queue }),
    defaultApprovers: deps.defaultApprovers,
    ...(options.windows === undefined ? {} : { windows: options.windows }),
    now: deps.now,
    newId: deps.newId,
    logger,
  });

  const slackApi: SlackApi | undefined =
    options.slack === undefined
      ? undefined
      : createSlackApi({
          token: options.slack.botToken,
          ...(options.slack.apiUrl === undefined ? {} : { apiUrl: options.slack.apiUrl }),
        });

  let poller: NotifierPoller | undefined;
  if (sqsClient !== undefined && options.sqs !== undefined) {
    const handler =
      slackApi !== undefined && options.slack !== undefined
        ? createNotifier({
            approvals: service,
            store,
            slack: slackApi,
            channel: options.slack.channel,
            audit: approvalAudit,
            ...(queue === undefined ? {} : { queue }),
            now: deps.now,
            newId: deps.newId,
            logger,
          })
        : createConsoleNotifier({ get: (id) => service.get(id), write: options.console ?? (() => {}) });
    poller = startNotifierPoller({
      client: sqsClient,
      queueUrl: options.sqs.queueUrl,
      handler,
      logger,
      ...(options.pollWaitSeconds === undefined ? {} : { waitTimeSeconds: options.pollWaitSeconds }),
    });
  }

  const reporter = new ApprovedRunReporter(service, logger);
  const gate = createApprovalGate({
    client: service,
    onRelease: reporter.released,
    decideHint: slackApi === undefined ? localDecideHint : localSlackDecideHint,
    logger,
    ...(options.maxHoldSeconds === undefined ? {} : { maxHoldSeconds: options.maxHoldSeconds }),
  });

  return {
    service,
    routes: {
      approvals: service,
      principals,
      ...(queue === undefined ? {} : { approvalsQueue: queue }),
      ...(slackApi === undefined || options.slack === undefined
        ? {}
        : {
            slack: {
              api: slackApi,
              signingSecret: options.slack.signingSecret,
              ...(options.reviewerGroupsMaxAgeSeconds === undefined
                ? {}
                : { maxGroupsAgeSeconds: options.reviewerGroupsMaxAgeSeconds }),
            },
          }),
    },
    gate,
    watch: (controlPlane) => reporter.watch(controlPlane),
    async stop() {
      await poller?.stop();
      sqsClient?.destroy();
    },
  };
}
