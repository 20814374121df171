/**
 * The whole deployment, composed from the reusable constructs: network, data (audit trail,
 * approvals, policies) and the audit trail's compliance export, the approvals queue and its Slack
 * notifier, the control-plane API, and the proxy in front of the database.
 */
import { CfnOutput, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { type ISecurityGroup, SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { type PgWardenConfig, rolesToEnv } from './config.ts';
import { PgWardenApprovals } from './constructs/approvals.ts';
import { PgWardenAuditExport } from './constructs/audit-export.ts';
import { PgWardenAuditStore } from './constructs/audit-store.ts';
import { PgWardenControlPlane } from './constructs/control-plane.ts';
import { PgWardenNetwork } from './constructs/network.ts';
import { PgWardenProxy } from './constructs/proxy.ts';

export interface PgWardenStackProps extends StackProps {
  config: PgWardenConfig;
}

export class PgWardenStack extends Stack {
  readonly network: PgWardenNetwork;
  readonly auditStore: PgWardenAuditStore;
  readonly auditExport: PgWardenAuditExport;
  readonly controlPlane: PgWardenControlPlane;
  readonly approvals: PgWardenApprovals;
  readonly proxy: PgWardenProxy;
  readonly serviceToken: Secret;
  readonly proxyTaskRole: Role;
  readonly maskingKey: Secret;
  readonly slackBotToken: ISecret;
  readonly slackSigningSecret: ISecret;

  constructor(scope: Construct, id: string, props: PgWardenStackProps) {
    super(scope, id, props);
    const { config } = props;
    const logRetention = config.logRetentionDays as RetentionDays;

    this.network = new PgWardenNetwork(this, 'Network', {
      ...(config.network.vpcId === undefined ? {} : { vpcId: config.network.vpcId }),
      cidr: config.network.vpcCidr,
      maxAzs: config.network.maxAzs,
      natGateways: config.network.natGateways,
      logRetention,
    });
    const { vpc } = this.network;

    this.serviceToken = this.unrotatedSecret('ServiceToken', {
      description:
        "pgwarden: the control-plane API's own secret (signs audit page cursors; no caller presents it)",
      passwordLength: 64,
      removalPolicy: RemovalPolicy.DESTROY,
      whyNotRotated:
        'Only the API reads it, at cold start, to sign audit page cursors (a new value only ends cursors already handed out); rotate by a new secret version plus a function redeploy (README.md, "Deploy to AWS").',
    });
    // The key decides every hashed and faked value: a new one breaks joins with everything masked
    // before. RETAIN keeps it when the stack is deleted, so a rebuilt deployment can take it over.
    this.maskingKey = this.unrotatedSecret('MaskingKey', {
      description: "pgwarden: the proxy's HMAC key for the hash and fake mask methods (every task shares it)",
      passwordLength: 64,
      removalPolicy: RemovalPolicy.RETAIN,
      whyNotRotated:
        'A new key changes every hashed and faked value, so it is never rotated on a schedule; the proxy reads it only at start (ECS secret). Rotate deliberately: new secret version, then a proxy redeploy (README.md, "Deploy to AWS").',
    });
    const imported = (id: string, arn: string): ISecret => Secret.fromSecretCompleteArn(this, id, arn);

    this.auditStore = new PgWardenAuditStore(this, 'AuditStore', { tablePrefix: config.tablePrefix });
    this.auditExport = new PgWardenAuditExport(this, 'AuditExport', {
      key: this.auditStore.key,
      tables: { sessions: this.auditStore.sessions, events: this.auditStore.events },
      namePrefix: config.tablePrefix,
    });

    this.slackBotToken = this.slackSecret(
      'SlackBotToken',
      config.slack.botTokenSecretArn,
      "pgwarden: the Slack app's bot token (xoxb-…), for posting and updating approval requests",
    );
    this.slackSigningSecret = this.slackSecret(
      'SlackSigningSecret',
      config.slack.signingSecretArn,
      "pgwarden: the Slack app's signing secret, to verify that /slack/events requests come from Slack",
    );

    this.approvals = new PgWardenApprovals(this, 'Approvals', {
      store: this.auditStore,
      tablePrefix: config.tablePrefix,
      slack: { channel: config.slack.channel, botToken: this.slackBotToken },
      logRetention,
      ...(config.alarmTopicArn === undefined
        ? {}
        : { alarmTopic: Topic.fromTopicArn(this, 'AlarmTopic', config.alarmTopicArn) }),
    });

    // The proxy tasks' identity: made first, so the API can name it as the only caller of the
    // proxy's routes, and the tasks can sign their API calls with it.
    this.proxyTaskRole = new Role(this, 'ProxyTaskRole', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: "pgwarden proxy tasks: signs the proxy's calls to the control-plane API (SigV4)",
    });

    this.controlPlane = new PgWardenControlPlane(this, 'ControlPlane', {
      oidc: config.oidc,
      roles: rolesToEnv(config.roles),
      tablePrefix: config.tablePrefix,
      auditStore: this.auditStore,
      ...(config.audit.retentionDays === undefined ? {} : { auditRetentionDays: config.audit.retentionDays }),
      access: config.access,
      serviceToken: this.serviceToken,
      proxyRole: this.proxyTaskRole,
      approvals: this.approvals,
      slack: {
        channel: config.slack.channel,
        botToken: this.slackBotToken,
        signingSecret: this.slackSigningSecret,
      },
      logRetention,
    });

    let databaseSecurityGroup: ISecurityGroup | undefined;
    if (config.upstream.securityGroupId !== undefined) {
      databaseSecurityGroup = SecurityGroup.fromSecurityGroupId(
        this,
        'DatabaseSecurityGroup',
        config.upstream.securityGroupId,
        {
          allowAllOutbound: false,
          mutable: true,
        },
      );
    }
    this.proxy = new PgWardenProxy(this, 'Proxy', {
      vpc,
      port: config.proxy.port,
      internetFacing: config.network.internetFacing,
      allowedClientCidrs: config.network.allowedClientCidrs ?? [this.network.cidr],
      upstream: {
        host: config.upstream.host,
        port: config.upstream.port,
        ssl: config.upstream.ssl,
        ...(databaseSecurityGroup === undefined ? {} : { securityGroup: databaseSecurityGroup }),
        cidr: config.upstream.cidr ?? this.network.cidr,
      },
      apiUrl: this.controlPlane.url,
      secrets: {
        tls: imported('TlsSecret', config.tlsSecretArn),
        upstreamCredentials: imported('UpstreamCredentials', config.upstream.credentialsSecretArn),
        maskingKey: this.maskingKey,
        ...(config.upstream.caSecretArn === undefined
          ? {}
          : { upstreamCa: imported('UpstreamCa', config.upstream.caSecretArn) }),
      },
      taskRole: this.proxyTaskRole,
      task: {
        cpu: config.proxy.cpu,
        memoryMiB: config.proxy.memoryMiB,
        architecture: config.proxy.architecture,
      },
      scaling: {
        minTasks: config.proxy.minTasks,
        maxTasks: config.proxy.maxTasks,
        cpuTargetPercent: config.proxy.cpuTargetPercent,
        connectionsPerTask: config.proxy.connectionsPerTask,
      },
      drainSeconds: config.proxy.drainSeconds,
      ephemeralStorageGiB: config.proxy.ephemeralStorageGiB,
      audit: { mode: config.audit.mode, params: config.audit.params, spoolMaxMiB: config.audit.spoolMaxMiB },
      policyRefreshSeconds: config.proxy.policyRefreshSeconds,
      logRetention,
    });

    this.outputs(config);
  }

  /**
   * An existing secret by ARN, or a new one holding a random placeholder that the operator replaces
   * with the real value (README.md, "Connect Slack"). Until then Slack rejects the notifier's posts
   * (they end in the dead-letter queue) and /slack/events rejects every request as unsigned.
   */
  private slackSecret(id: string, arn: string | undefined, description: string): ISecret {
    if (arn !== undefined) return Secret.fromSecretCompleteArn(this, id, arn);
    return this.unrotatedSecret(id, {
      description,
      passwordLength: 32,
      removalPolicy: RemovalPolicy.DESTROY,
      whyNotRotated:
        'Slack issues and rotates this value (app settings → reinstall / regenerate); a rotation Lambda cannot obtain a new one. Rotate in Slack, then put-secret-value (README.md, "Connect Slack").',
    });
  }

  /**
   * A secret with a generated value (letters and digits) that no rotation Lambda can rotate: cdk-nag's
   * AwsSolutions-SMG4 is acknowledged with `whyNotRotated`, which also says how to rotate it instead.
   */
  private unrotatedSecret(
    id: string,
    props: {
      description: string;
      passwordLength: number;
      removalPolicy: RemovalPolicy;
      whyNotRotated: string;
    },
  ): Secret {
    const secret = new Secret(this, id, {
      description: props.description,
      generateSecretString: { passwordLength: props.passwordLength, excludePunctuation: true },
      removalPolicy: props.removalPolicy,
    });
    Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: props.whyNotRotated });
    return secret;
  }

  private outputs(config: PgWardenConfig): void {
    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output(
      'ProxyHost',
      this.proxy.loadBalancer.loadBalancerDnsName,
      'connect psql/Cursor here (TLS required)',
    );
    output('ProxyPort', String(config.proxy.port), 'the proxy port');
    output('ApiUrl', this.controlPlane.url, 'control-plane API base URL');
    output(
      'SlackRequestUrl',
      this.controlPlane.slackRequestUrl,
      "paste into the Slack app's Interactivity & Shortcuts → Request URL",
    );
    output('SlackBotTokenSecretArn', this.slackBotToken.secretArn, 'put the Slack bot token (xoxb-…) here');
    output(
      'SlackSigningSecretArn',
      this.slackSigningSecret.secretArn,
      "put the Slack app's signing secret here",
    );
    output('ApiFunctionName', this.controlPlane.function.functionName, 'the control-plane Lambda function');
    output(
      'NotifierFunctionName',
      this.approvals.notifier.functionName,
      'the Slack notifier Lambda function',
    );
    output('ApprovalsQueueUrl', this.approvals.queue.queueUrl, 'approval notifications (SQS)');
    output(
      'ApprovalsDeadLetterQueueUrl',
      this.approvals.deadLetterQueue.queueUrl,
      'notifications that failed repeatedly (alarm: ApprovalsDeadLetterAlarm)',
    );
    output(
      'ApprovalsDeadLetterAlarm',
      this.approvals.deadLetterAlarm.alarmName,
      'fires when a notification lands in the DLQ',
    );
    output('ApprovalsTable', this.auditStore.approvals.tableName, 'approvals table');
    output('PoliciesTable', this.auditStore.policies.tableName, 'policies table (version history)');
    output('ServiceTokenSecretArn', this.serviceToken.secretArn, "the API's own secret (generated)");
    output(
      'ProxyTaskRoleArn',
      this.proxyTaskRole.roleArn,
      "the proxy tasks' role: the only caller of the proxy routes",
    );
    output('MaskingKeySecretArn', this.maskingKey.secretArn, "the proxy's masking key (generated, retained)");
    output('SessionsTable', this.auditStore.sessions.tableName, 'audit sessions table');
    output('EventsTable', this.auditStore.events.tableName, 'audit events table');
    output('AuditKeyArn', this.auditStore.key.keyArn, 'KMS key of the audit trail and its exports');
    output(
      'ExportBucket',
      this.auditExport.bucket.bucketName,
      'DynamoDB export destination (s3 prefix exports/<table>)',
    );
    output(
      'GlueDatabase',
      this.auditExport.databaseName,
      'Glue database with the sessions and events export tables',
    );
    output('AthenaWorkGroup', this.auditExport.workGroupName, 'Athena workgroup for compliance queries');
    output(
      'CompliancePolicyArn',
      this.auditExport.compliancePolicy.managedPolicyArn,
      'attach to who runs exports and queries',
    );
  }
}
