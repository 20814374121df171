/**
 * Approvals on AWS: the API queues one {approvalId} message per approval change on an SQS queue
 * (encrypted with the deployment's key); the notifier Lambda (functions/notifier/handler.ts) brings
 * the approval's Slack message up to date and reports the records it could not handle
 * (ReportBatchItemFailures), so SQS retries only those. A record that keeps failing moves to the
 * dead-letter queue after `maxReceiveCount` tries, and an alarm fires as soon as one is there.
 */
import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { REPO_ROOT } from '../repo-root.ts';
import type { PgWardenAuditStore } from './audit-store.ts';
import { pgWardenFunction } from './lambda-function.ts';

export interface PgWardenApprovalsProps {
  store: PgWardenAuditStore;
  tablePrefix: string;
  slack: { channel: string; botToken: ISecret };
  logRetention: RetentionDays;
  /** where the dead-letter alarm notifies */
  alarmTopic?: ITopic;
  /** records per invocation (default 10) */
  batchSize?: number;
  /** tries before a record moves to the dead-letter queue (default 5) */
  maxReceiveCount?: number;
}

/** Slack calls may take seconds; SQS hides a record for six times this while it is handled. */
const NOTIFIER_TIMEOUT_SECONDS = 30;
const BATCHING_WINDOW_SECONDS = 1;

export class PgWardenApprovals extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly deadLetterAlarm: Alarm;
  readonly notifier: ReturnType<typeof pgWardenFunction>;

  constructor(scope: Construct, id: string, props: PgWardenApprovalsProps) {
    super(scope, id);
    const { store } = props;
    const queueDefaults = {
      encryption: QueueEncryption.KMS,
      encryptionMasterKey: store.key,
      // One data key per five minutes instead of a KMS call per message.
      dataKeyReuse: Duration.minutes(5),
      enforceSSL: true,
      removalPolicy: RemovalPolicy.DESTROY,
    };
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      ...queueDefaults,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new Queue(this, 'Queue', {
      ...queueDefaults,
      // Lambda's guidance for SQS event sources: six function timeouts plus the batching window, so a
      // record is not handed out twice while a throttled invocation still retries it.
      visibilityTimeout: Duration.seconds(6 * NOTIFIER_TIMEOUT_SECONDS + BATCHING_WINDOW_SECONDS),
      // An approval older than this has expired anyway; its message would only say so.
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });

    this.deadLetterAlarm = new Alarm(this, 'DeadLetterAlarm', {
      alarmDescription:
        'pgwarden: approval notifications failed repeatedly and are in the dead-letter queue (Slack token, channel or outage?); reviewers may not have been told',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    if (props.alarmTopic !== undefined) this.deadLetterAlarm.addAlarmAction(new SnsAction(props.alarmTopic));

    this.notifier = pgWardenFunction(this, 'Notifier', {
      entry: join(REPO_ROOT, 'functions/notifier/handler.ts'),
      description: 'pgwarden approvals notifier (SQS to Slack)',
      timeout: Duration.seconds(NOTIFIER_TIMEOUT_SECONDS),
      memorySize: 256,
      logRetention: props.logRetention,
      environment: {
        PGWARDEN_TABLE_PREFIX: props.tablePrefix,
        PGWARDEN_SLACK_CHANNEL: props.slack.channel,
        // Read from Secrets Manager at cold start, never placed in the function's configuration.
        SLACK_BOT_TOKEN_SECRET_ARN: props.slack.botToken.secretArn,
        // the notifier schedules a delayed look at each pending approval, to show it expired
        PGWARDEN_APPROVALS_QUEUE_URL: this.queue.queueUrl,
      },
    });
    this.grantSend(this.notifier);
    store.grantApprovalSlackUpdate(this.notifier);
    store.grantApprovalEventWrite(this.notifier);
    props.slack.botToken.grantRead(this.notifier);
    this.notifier.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: props.batchSize ?? 10,
        maxBatchingWindow: Duration.seconds(BATCHING_WINDOW_SECONDS),
        reportBatchItemFailures: true,
      }),
    );
  }

  /** SendMessage on the queue, and the key only as SQS uses it for that. */
  grantSend(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.queue.queueArn] }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [this.queue.encryptionMasterKey!.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `sqs.${this.queue.stack.region}.amazonaws.com` } },
      }),
    );
  }
}
