/**
 * The default deployment (new VPC, internal NLB), synthesized once with cdk.json's context and
 * checked resource by resource for its security properties, plus cdk-nag's verdict.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAuditTables, tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import {
  CREDENTIALS_SECRET_ARN,
  nagViolations,
  removeOutdirs,
  type Synthesized,
  synthesize,
  TLS_SECRET_ARN,
} from './synth.ts';

let synth: Synthesized;
let template: Template;

beforeAll(() => {
  synth = synthesize();
  template = synth.template;
}, 120_000);
afterAll(removeOutdirs);

/** Template JSON: its shape is what the assertions check. */
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped until asserted
type Json = any;
type Resources = Record<string, { Type: string; Properties: Record<string, Json>; [key: string]: Json }>;

function resources(type: string): Resources {
  return template.findResources(type) as Resources;
}

function only(
  type: string,
  props?: Record<string, unknown>,
): { id: string; Properties: Record<string, Json> } {
  const found = Object.entries(template.findResources(type, props ? { Properties: props } : undefined));
  expect(found, `exactly one ${type}`).toHaveLength(1);
  const [id, resource] = found[0]!;
  return { id, Properties: resource.Properties };
}

function logicalId(type: string, props: Record<string, unknown>): string {
  return only(type, props).id;
}

const keyArn = () => ({ 'Fn::GetAtt': [only('AWS::KMS::Key').id, 'Arn'] });

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding', () => {
    expect(nagViolations(synth.outdir)).toEqual([]);
  });
});

describe('audit store (DynamoDB)', () => {
  /** The tables exactly as local mode creates them (functions/adapters/dynamodb-audit-store.ts). */
  async function localDefinitions(): Promise<CreateTableCommandInput[]> {
    const created: CreateTableCommandInput[] = [];
    const client = {
      send: async (command: unknown) => {
        if (command instanceof CreateTableCommand) {
          created.push(command.input);
          return {};
        }
        if (command instanceof DescribeTableCommand) {
          if (created.some((table) => table.TableName === command.input.TableName)) {
            return { Table: { TableStatus: 'ACTIVE' } };
          }
          throw new ResourceNotFoundException({ message: 'not found', $metadata: {} });
        }
        throw new Error(`unexpected ${String(command)}`);
      },
    } as unknown as DynamoDBClient;
    await ensureAuditTables(client, tableNames('pgwarden-'));
    return created;
  }

  const sortByName = <T extends { AttributeName?: string }>(list: T[] | undefined) =>
    [...(list ?? [])].sort((a, b) => String(a.AttributeName).localeCompare(String(b.AttributeName)));

  it('has the same tables, keys and index as the adapter creates locally', async () => {
    for (const local of await localDefinitions()) {
      const { Properties } = only('AWS::DynamoDB::Table', { TableName: local.TableName });
      expect(Properties['KeySchema']).toEqual(local.KeySchema);
      expect(sortByName(Properties['AttributeDefinitions'])).toEqual(sortByName(local.AttributeDefinitions));
      expect(Properties['GlobalSecondaryIndexes'] ?? []).toEqual(local.GlobalSecondaryIndexes ?? []);
      expect(Properties['BillingMode']).toBe(local.BillingMode);
    }
    expect(Object.keys(resources('AWS::DynamoDB::Table'))).toHaveLength(2);
  });

  it.each(['pgwarden-sessions', 'pgwarden-events'])(
    '%s: PITR, the customer-managed key, deletion protection, retained',
    (tableName) => {
      template.hasResource('AWS::DynamoDB::Table', {
        Properties: {
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyArn() },
          DeletionProtectionEnabled: true,
        },
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    },
  );

  it('encrypts with a rotating, retained KMS key', () => {
    template.hasResource('AWS::KMS::Key', {
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });
});

describe('compliance export (S3, Glue, Athena)', () => {
  const exportBucket = () => only('AWS::S3::Bucket', { LoggingConfiguration: Match.anyValue() });

  it('keeps exports in a versioned, KMS-encrypted, private, logged, retained bucket', () => {
    const { id } = exportBucket();
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            {
              BucketKeyEnabled: true,
              ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyArn() },
            },
          ],
        },
        VersioningConfiguration: { Status: 'Enabled' },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      },
      DeletionPolicy: 'Retain',
    });
    expect(template.findResources('AWS::S3::Bucket')[id]).toBeDefined();
  });

  it('blocks public access on every bucket and refuses plain HTTP', () => {
    const buckets = resources('AWS::S3::Bucket');
    expect(Object.keys(buckets)).toHaveLength(2); // exports + their access logs
    for (const [id, bucket] of Object.entries(buckets)) {
      expect(bucket.Properties['PublicAccessBlockConfiguration']).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });

  it('describes both export layouts in Glue, one partition per export id', () => {
    const bucket = { Ref: exportBucket().id };
    template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'pgwarden_audit' } });
    for (const table of ['sessions', 'events']) {
      template.hasResourceProperties('AWS::Glue::Table', {
        DatabaseName: 'pgwarden_audit',
        TableInput: {
          Name: table,
          PartitionKeys: [Match.objectLike({ Name: 'export_id', Type: 'string' })],
          Parameters: Match.objectLike({
            'projection.enabled': 'true',
            'projection.export_id.type': 'injected',
            'storage.location.template': {
              'Fn::Join': ['', ['s3://', bucket, `/exports/${table}/AWSDynamoDB/\${export_id}/data/`]],
            },
          }),
          StorageDescriptor: Match.objectLike({
            Columns: [{ Name: 'item', Type: Match.stringLikeRegexp('^struct<sessionid:struct<s:string>,') }],
            SerdeInfo: Match.objectLike({ SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' }),
          }),
        },
      });
    }
  });

  it('runs Athena in a workgroup that enforces KMS-encrypted results in the export bucket', () => {
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      Name: 'pgwarden-audit',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        ResultConfiguration: {
          EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: keyArn() },
          OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: exportBucket().id }, '/athena-results/']] },
        },
      },
    });
    expect(Object.keys(resources('AWS::Athena::NamedQuery'))).toHaveLength(3);
  });

  it('offers a compliance policy scoped to the two tables, the bucket, the key and the workgroup', () => {
    const { Properties } = only('AWS::IAM::ManagedPolicy');
    const statements = Properties['PolicyDocument'].Statement as Array<Record<string, Json>>;
    const bySid = Object.fromEntries(statements.map((s) => [s.Sid, s]));
    const sessions = logicalId('AWS::DynamoDB::Table', { TableName: 'pgwarden-sessions' });
    const events = logicalId('AWS::DynamoDB::Table', { TableName: 'pgwarden-events' });
    expect(bySid['ExportAuditTables'].Action).toEqual([
      'dynamodb:DescribeTable',
      'dynamodb:ExportTableToPointInTime',
    ]);
    expect(bySid['ExportAuditTables'].Resource).toEqual([
      { 'Fn::GetAtt': [events, 'Arn'] },
      { 'Fn::GetAtt': [sessions, 'Arn'] },
    ]);
    expect(bySid['UseAuditKey'].Resource).toEqual(keyArn());
    expect(JSON.stringify(bySid['QueryWorkGroup'].Resource)).toContain('workgroup/pgwarden-audit');
    for (const statement of statements) expect(statement.Resource).not.toBe('*');
  });
});

describe('control-plane API (Lambda + HTTP API)', () => {
  const fn = () => only('AWS::Lambda::Function', { Handler: 'index.handler' });

  it('runs the Hono app on Node.js 22, ARM64, bundled as ESM', () => {
    const { Properties } = fn();
    expect(Properties['Runtime']).toBe('nodejs22.x');
    expect(Properties['Architectures']).toEqual(['arm64']);
    expect(Properties['Timeout']).toBe(10);
  });

  it("ships an ESM bundle that parses, with the SQL parser's WebAssembly beside it", () => {
    const key: string = fn().Properties['Code'].S3Key;
    const asset = join(synth.outdir, `asset.${key.replace(/\.zip$/, '')}`);
    expect(readdirSync(asset).sort()).toEqual(['index.mjs', 'index.mjs.map', 'libpg-query.wasm']);
    const check = spawnSync(process.execPath, ['--check', join(asset, 'index.mjs')], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
  });

  it('configures the API from context and passes the service token by secret ARN, never by value', () => {
    const variables = fn().Properties['Environment'].Variables;
    expect(variables).toMatchObject({
      PGWARDEN_OIDC_ISSUER: 'https://login.example.com/',
      PGWARDEN_OIDC_AUDIENCE: 'pgwarden',
      PGWARDEN_OIDC_ALGORITHMS: 'RS256,ES256',
      PGWARDEN_ROLES: 'admin=admins,platform;developer=engineering;auditor=auditors',
      PGWARDEN_TABLE_PREFIX: 'pgwarden-',
      PGWARDEN_SERVICE_TOKEN_SECRET_ARN: { Ref: logicalId('AWS::SecretsManager::Secret', {}) },
    });
    expect(variables).not.toHaveProperty('PGWARDEN_SERVICE_TOKEN');
    expect(JSON.stringify(template.toJSON())).not.toContain('resolve:secretsmanager');
  });

  it('may write the audit trail and read the token, and nothing else', () => {
    const role = fn().Properties['Role']['Fn::GetAtt'][0];
    const { Properties } = only('AWS::IAM::Policy', { Roles: [{ Ref: role }] });
    const sessions = logicalId('AWS::DynamoDB::Table', { TableName: 'pgwarden-sessions' });
    const events = logicalId('AWS::DynamoDB::Table', { TableName: 'pgwarden-events' });
    expect(Properties['PolicyDocument'].Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/FunctionLogs/), 'Arn'] },
      },
      { Effect: 'Allow', Action: 'dynamodb:UpdateItem', Resource: { 'Fn::GetAtt': [sessions, 'Arn'] } },
      { Effect: 'Allow', Action: 'dynamodb:BatchWriteItem', Resource: { 'Fn::GetAtt': [events, 'Arn'] } },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'],
        Resource: keyArn(),
        Condition: { StringEquals: { 'kms:ViaService': 'dynamodb.eu-west-1.amazonaws.com' } },
      },
      {
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: { Ref: logicalId('AWS::SecretsManager::Secret', {}) },
      },
    ]);
    // No AWS managed policy (AWSLambdaBasicExecutionRole would allow every log group).
    const roleResource = template.findResources('AWS::IAM::Role')[role]!;
    expect(roleResource['Properties']['ManagedPolicyArns']).toBeUndefined();
  });

  it('routes only /healthz and /v1/* to the function, with access logs and throttling', () => {
    const routes = Object.values(resources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties['RouteKey']);
    expect(routes.sort()).toEqual(['ANY /v1/{proxy+}', 'GET /healthz']);
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      DefaultRouteSettings: { ThrottlingRateLimit: 2000, ThrottlingBurstLimit: 4000 },
    });
  });

  it('generates the service token in Secrets Manager', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true },
    });
  });
});

describe('proxy (ECS Fargate behind an NLB)', () => {
  const container = () => only('AWS::ECS::TaskDefinition').Properties['ContainerDefinitions'][0];
  const nlbSecurityGroup = () =>
    logicalId('AWS::EC2::SecurityGroup', { GroupDescription: Match.stringLikeRegexp('^pgwarden NLB') });

  it('listens with plain TCP on the proxy port (the proxy terminates TLS)', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internal',
      SecurityGroups: [{ 'Fn::GetAtt': [nlbSecurityGroup(), 'GroupId'] }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Protocol: 'TCP', Port: 5432 });
  });

  it('health-checks targets over TCP, drains for drainSeconds and keeps the client address', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Protocol: 'TCP',
      Port: 6432,
      TargetType: 'ip',
      HealthCheckProtocol: 'TCP',
      HealthCheckIntervalSeconds: 10,
      HealthyThresholdCount: 2,
      UnhealthyThresholdCount: 2,
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'deregistration_delay.timeout_seconds', Value: '30' },
        { Key: 'preserve_client_ip.enabled', Value: 'true' },
      ]),
    });
  });

  it('runs the image built from the Dockerfile at the repository root, from only what the build needs', () => {
    expect(container().Image['Fn::Sub']).toMatch(/container-assets/);
    const assets = JSON.parse(readFileSync(join(synth.outdir, 'PgWarden.assets.json'), 'utf8'));
    const images = Object.values(assets.dockerImages) as Array<{
      source: { directory: string; dockerFile?: string };
    }>;
    expect(images).toHaveLength(1);
    expect(images[0]!.source.dockerFile).toBe('Dockerfile');
    const staged = readdirSync(join(synth.outdir, images[0]!.source.directory)).sort();
    expect(staged).toEqual([
      '.dockerignore',
      'Dockerfile',
      'package-lock.json',
      'package.json',
      'proxy',
      'shared',
    ]);
  });

  it('injects certificate, key, database logins and service token as ECS secrets', () => {
    const { Secrets, Environment } = container();
    expect(Secrets).toEqual([
      { Name: 'PGWARDEN_TLS_CERT', ValueFrom: `${TLS_SECRET_ARN}:cert::` },
      { Name: 'PGWARDEN_TLS_KEY', ValueFrom: `${TLS_SECRET_ARN}:key::` },
      { Name: 'PGWARDEN_UPSTREAM_CREDENTIALS', ValueFrom: CREDENTIALS_SECRET_ARN },
      { Name: 'PGWARDEN_SERVICE_TOKEN', ValueFrom: { Ref: logicalId('AWS::SecretsManager::Secret', {}) } },
    ]);
    const names = (Environment as Array<{ Name: string }>).map((variable) => variable.Name);
    expect(names.sort()).toEqual([
      'PGWARDEN_API_URL',
      'PGWARDEN_DRAIN_SECONDS',
      'PGWARDEN_PROXY_PORT',
      'PGWARDEN_UPSTREAM_HOST',
      'PGWARDEN_UPSTREAM_PORT',
      'PGWARDEN_UPSTREAM_SSL',
    ]);
    expect(Environment).toContainEqual({
      Name: 'PGWARDEN_API_URL',
      Value: { 'Fn::GetAtt': [logicalId('AWS::ApiGatewayV2::Api', {}), 'ApiEndpoint'] },
    });
  });

  it('stops the container only after the drain plus a margin, runs read-only as node, logs to CloudWatch', () => {
    const definition = container();
    expect(definition).toMatchObject({
      StopTimeout: 40,
      ReadonlyRootFilesystem: true,
      User: 'node',
      PortMappings: [{ ContainerPort: 6432, Protocol: 'tcp' }],
      LogConfiguration: { LogDriver: 'awslogs', Options: { mode: 'non-blocking' } },
      HealthCheck: { Command: expect.arrayContaining(['CMD', 'node']) },
    });
    expect(definition.Environment).toContainEqual({ Name: 'PGWARDEN_DRAIN_SECONDS', Value: '30' });
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '512',
      Memory: '1024',
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
  });

  it('lets the task execution role read exactly the three secrets', () => {
    const { Properties } = only('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('ExecutionRole') }],
    });
    const statements = Properties['PolicyDocument'].Statement as Array<Record<string, Json>>;
    const secretRead = statements.find((s) => JSON.stringify(s.Action).includes('GetSecretValue'))!;
    expect(secretRead.Resource).toEqual([
      TLS_SECRET_ARN,
      CREDENTIALS_SECRET_ARN,
      { Ref: logicalId('AWS::SecretsManager::Secret', {}) },
    ]);
    const wildcard = statements.filter((s) => s.Resource === '*');
    expect(wildcard).toEqual([{ Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' }]);
  });

  it('deploys without losing capacity and rolls back a failing deployment', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: {
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
      EnableExecuteCommand: false,
    });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('scales on CPU and on NLB connections per task', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 6,
      ScalableDimension: 'ecs:service:DesiredCount',
      ServiceNamespace: 'ecs',
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        TargetValue: 60,
      },
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 500,
        CustomizedMetricSpecification: {
          Metrics: [
            Match.objectLike({
              Id: 'flows',
              MetricStat: Match.objectLike({
                Metric: Match.objectLike({ MetricName: 'ActiveFlowCount_TCP', Namespace: 'AWS/NetworkELB' }),
              }),
            }),
            Match.objectLike({
              Id: 'tasks',
              MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'RunningTaskCount' }) }),
            }),
            Match.objectLike({ Id: 'perTask', Expression: 'flows / tasks', ReturnData: true }),
          ],
        },
      },
    });
  });
});

describe('network', () => {
  const groups = () => resources('AWS::EC2::SecurityGroup');
  const idOf = (description: RegExp) =>
    Object.entries(groups()).find(([, group]) => description.test(group.Properties['GroupDescription']))![0];

  it('admits clients to the NLB on the proxy port only, from the VPC by default', () => {
    const nlb = groups()[idOf(/^pgwarden NLB/)]!;
    expect(nlb.Properties['SecurityGroupIngress']).toEqual([
      {
        CidrIp: '10.0.0.0/16',
        Description: 'PostgreSQL clients 10.0.0.0/16',
        FromPort: 5432,
        ToPort: 5432,
        IpProtocol: 'tcp',
      },
    ]);
    // allowAllOutbound: false, and the one egress rule goes to the proxy tasks.
    expect(nlb.Properties['SecurityGroupEgress']).toBeUndefined();
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [idOf(/^pgwarden NLB/), 'GroupId'] },
      DestinationSecurityGroupId: { 'Fn::GetAtt': [idOf(/^pgwarden proxy tasks/), 'GroupId'] },
      FromPort: 6432,
      ToPort: 6432,
    });
  });

  it('admits only the NLB to the proxy, and lets the proxy reach only the database and HTTPS', () => {
    const proxy = idOf(/^pgwarden proxy tasks/);
    const ingress = Object.values(resources('AWS::EC2::SecurityGroupIngress')).filter(
      (rule) => rule.Properties['GroupId']['Fn::GetAtt']?.[0] === proxy,
    );
    expect(ingress.map((rule) => rule.Properties)).toEqual([
      {
        Description: 'NLB to proxy',
        GroupId: { 'Fn::GetAtt': [proxy, 'GroupId'] },
        SourceSecurityGroupId: { 'Fn::GetAtt': [idOf(/^pgwarden NLB/), 'GroupId'] },
        FromPort: 6432,
        ToPort: 6432,
        IpProtocol: 'tcp',
      },
    ]);
    expect(groups()[proxy]!.Properties['SecurityGroupIngress']).toBeUndefined();
    expect(groups()[proxy]!.Properties['SecurityGroupEgress']).toEqual([
      {
        CidrIp: '0.0.0.0/0',
        Description: 'control-plane API and AWS APIs',
        FromPort: 443,
        ToPort: 443,
        IpProtocol: 'tcp',
      },
      { CidrIp: '10.0.0.0/16', Description: 'database', FromPort: 5432, ToPort: 5432, IpProtocol: 'tcp' },
    ]);
  });

  it('creates a VPC with private subnets for the tasks and flow logs', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.0.0.0/16' });
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', ResourceType: 'VPC' });
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    const service = only('AWS::ECS::Service').Properties;
    for (const subnet of service['NetworkConfiguration'].AwsvpcConfiguration.Subnets) {
      expect(subnet.Ref).toMatch(/private/);
    }
  });

  it('keeps every log group for the configured retention', () => {
    const groups = Object.values(resources('AWS::Logs::LogGroup'));
    expect(groups.length).toBeGreaterThanOrEqual(4); // flow logs, function, API access, proxy
    for (const group of groups) expect(group.Properties['RetentionInDays']).toBe(365);
  });
});

describe('least privilege', () => {
  it('grants "*" resources only for ecr:GetAuthorizationToken', () => {
    const policies = { ...resources('AWS::IAM::Policy'), ...resources('AWS::IAM::ManagedPolicy') };
    const wildcard = Object.values(policies).flatMap((policy) =>
      (policy.Properties['PolicyDocument'].Statement as Array<Record<string, Json>>).filter((statement) =>
        [statement.Resource].flat().includes('*'),
      ),
    );
    expect(wildcard.map((statement) => statement.Action)).toEqual(['ecr:GetAuthorizationToken']);
  });
});

describe('outputs', () => {
  it('names what a user needs after the deploy', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'ProxyHost',
        'ProxyPort',
        'ApiUrl',
        'ServiceTokenSecretArn',
        'ExportBucket',
        'GlueDatabase',
        'AthenaWorkGroup',
        'CompliancePolicyArn',
      ]),
    );
  });
});
