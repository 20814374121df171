/**
 * The whole deployment, composed from the reusable constructs: network, audit store and its
 * compliance export, control-plane API, and the proxy in front of the database.
 */
import { CfnOutput, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { type ISecurityGroup, SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { type PgWardenConfig, rolesToEnv } from './config.ts';
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
  readonly proxy: PgWardenProxy;
  readonly serviceToken: Secret;

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

    this.serviceToken = new Secret(this, 'ServiceToken', {
      description: "pgwarden: the proxy's bearer credential for the control-plane API",
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(this.serviceToken).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Both holders read the token only at start (ECS secret, Lambda cold start), so a rotation Lambda cannot swap it safely; rotate by a new secret version plus a service redeploy (README.md, "Deploy to AWS").',
    });
    const imported = (id: string, arn: string): ISecret => Secret.fromSecretCompleteArn(this, id, arn);

    this.auditStore = new PgWardenAuditStore(this, 'AuditStore', { tablePrefix: config.tablePrefix });
    this.auditExport = new PgWardenAuditExport(this, 'AuditExport', {
      key: this.auditStore.key,
      tables: { sessions: this.auditStore.sessions, events: this.auditStore.events },
      namePrefix: config.tablePrefix,
    });

    this.controlPlane = new PgWardenControlPlane(this, 'ControlPlane', {
      oidc: config.oidc,
      roles: rolesToEnv(config.roles),
      tablePrefix: config.tablePrefix,
      auditStore: this.auditStore,
      serviceToken: this.serviceToken,
      logRetention,
    });

    // Approvals issue: the SQS approvals queue (KMS, DLQ + alarm) and the notifier Lambda go here,
    // wired to the control plane (send) and to Slack secrets (bot token, signing secret).

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
        serviceToken: this.serviceToken,
        ...(config.upstream.caSecretArn === undefined
          ? {}
          : { upstreamCa: imported('UpstreamCa', config.upstream.caSecretArn) }),
      },
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
      logRetention,
    });

    this.outputs(config);
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
    output('ServiceTokenSecretArn', this.serviceToken.secretArn, "the proxy's API credential (generated)");
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
