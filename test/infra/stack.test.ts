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
  UpdateTimeToLiveCommand,
  type UpdateTimeToLiveCommandInput,
} from '@aws-sdk/client-dynamodb';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { TTL_ATTRIBUTE } from '../../functions/adapters/dynamodb-audit-layout.ts';
import { ensureAuditTables, tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import { ensurePolicyTable, policyTableName } from '../../functions/adapters/dynamodb-policy-store.ts';
import { PROXY_ROUTES } from '../../functions/api/proxy-auth.ts';
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
const tableArn = (name: string) => ({
  'Fn::GetAtt': [logicalId('AWS::DynamoDB::Table', { TableName: name }), 'Arn'],
});
const indexArn = (name: string, index: string) => ({ 'Fn::Join': ['', [tableArn(name), `/index/${index}`]] });
const secretRef = (description: RegExp) => ({
  Ref: logicalId('AWS::SecretsManager::Secret', { Description: Match.stringLikeRegexp(description.source) }),
});
const proxyTaskRole = () =>
  logicalId('AWS::IAM::Role', { Description: Match.stringLikeRegexp('signs the proxy') });
const serviceTokenRef = () => secretRef(/control-plane API's own secret/);
const maskingKeyRef = () => secretRef(/HMAC key for the hash and fake mask methods/);
const botTokenRef = () => secretRef(/bot token/);
const signingSecretRef = () => secretRef(/signing secret/);
const queueArn = (dlq = false) => ({
  'Fn::GetAtt': [
    logicalId(
      'AWS::SQS::Queue',
      dlq ? { RedrivePolicy: Match.absent() } : { RedrivePolicy: Match.anyValue() },
    ),
    'Arn',
  ],
});
const ALL_TABLES = [
  'pgwarden-sessions',
  'pgwarden-events',
  'pgwarden-approvals',
  'pgwarden-identities',
  'pgwarden-policies',
];

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding', () => {
    expect(nagViolations(synth.outdir)).toEqual([]);
  });
});

describe('tables (DynamoDB)', () => {
  /**
   * The tables exactly as local mode creates them, by each adapter's own ensure function
   * (functions/adapters/dynamodb-{audit,approval,policy}-store.ts), with the TTL settings they ask for.
   */
  async function localDefinitions(): Promise<{
    tables: CreateTableCommandInput[];
    ttl: UpdateTimeToLiveCommandInput[];
  }> {
    const tables: CreateTableCommandInput[] = [];
    const ttl: UpdateTimeToLiveCommandInput[] = [];
    const client = {
      send: async (command: unknown) => {
        if (command instanceof CreateTableCommand) {
          tables.push(command.input);
          return {};
        }
        if (command instanceof UpdateTimeToLiveCommand) {
          ttl.push(command.input);
          return {};
        }
        if (command instanceof DescribeTableCommand) {
          if (tables.some((table) => table.TableName === command.input.TableName)) {
            return { Table: { TableStatus: 'ACTIVE' } };
          }
          throw new ResourceNotFoundException({ message: 'not found', $metadata: {} });
        }
        throw new Error(`unexpected ${String(command)}`);
      },
    } as unknown as DynamoDBClient;
    await ensureAuditTables(client, tableNames('pgwarden-'));
    await ensureApprovalTables(client, approvalTableNames('pgwarden-'));
    await ensurePolicyTable(client, policyTableName('pgwarden-'));
    return { tables, ttl };
  }

  const sortByName = <T extends { AttributeName?: string }>(list: T[] | undefined) =>
    [...(list ?? [])].sort((a, b) => String(a.AttributeName).localeCompare(String(b.AttributeName)));
  const byIndexName = <T extends { IndexName?: string }>(list: T[] | undefined) =>
    [...(list ?? [])].sort((a, b) => String(a.IndexName).localeCompare(String(b.IndexName)));

  it('has exactly the tables, keys and indexes the adapters create locally', async () => {
    const { tables } = await localDefinitions();
    expect(tables.map((table) => table.TableName).sort()).toEqual([...ALL_TABLES].sort());
    for (const local of tables) {
      const { Properties } = only('AWS::DynamoDB::Table', { TableName: local.TableName });
      expect(Properties['KeySchema'], local.TableName).toEqual(local.KeySchema);
      expect(sortByName(Properties['AttributeDefinitions']), local.TableName).toEqual(
        sortByName(local.AttributeDefinitions),
      );
      expect(byIndexName(Properties['GlobalSecondaryIndexes']), local.TableName).toEqual(
        byIndexName(local.GlobalSecondaryIndexes),
      );
      expect(Properties['BillingMode']).toBe(local.BillingMode);
    }
    expect(Object.keys(resources('AWS::DynamoDB::Table'))).toHaveLength(ALL_TABLES.length);
  });

  it('expires records by the attributes the adapters write', async () => {
    const { ttl } = await localDefinitions();
    const ttlOf = (name: string) =>
      only('AWS::DynamoDB::Table', { TableName: name }).Properties['TimeToLiveSpecification'];
    for (const local of ttl) {
      expect(ttlOf(local.TableName!)).toEqual({
        AttributeName: local.TimeToLiveSpecification!.AttributeName,
        Enabled: true,
      });
    }
    expect(ttl.map((local) => local.TableName)).toEqual(['pgwarden-approvals']);
    // The audit adapter writes expiresAt only when PGWARDEN_AUDIT_RETENTION_DAYS is set.
    for (const name of ['pgwarden-sessions', 'pgwarden-events']) {
      expect(ttlOf(name)).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    }
    expect(ttlOf('pgwarden-identities')).toBeUndefined();
    expect(ttlOf('pgwarden-policies')).toBeUndefined();
  });

  it.each(ALL_TABLES)('%s: PITR, the customer-managed key, deletion protection, retained', (tableName) => {
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
  });

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

/** The ESM bundle of a function: it parses, and holds exactly the files listed. */
function expectBundle(fn: { Properties: Record<string, Json> }, files: string[]): void {
  const key: string = fn.Properties['Code'].S3Key;
  const asset = join(synth.outdir, `asset.${key.replace(/\.zip$/, '')}`);
  expect(readdirSync(asset).sort()).toEqual(files);
  const check = spawnSync(process.execPath, ['--check', join(asset, 'index.mjs')], { encoding: 'utf8' });
  expect(check.status, check.stderr).toBe(0);
}

/** The statements of the one inline policy attached to a function's role. */
function roleStatements(fn: { Properties: Record<string, Json> }): Array<Record<string, Json>> {
  const role = fn.Properties['Role']['Fn::GetAtt'][0];
  // No AWS managed policy (AWSLambdaBasicExecutionRole would allow every log group).
  expect(template.findResources('AWS::IAM::Role')[role]!['Properties']['ManagedPolicyArns']).toBeUndefined();
  return only('AWS::IAM::Policy', { Roles: [{ Ref: role }] }).Properties['PolicyDocument'].Statement;
}

const dynamoDbKey = {
  Effect: 'Allow',
  Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'],
  Resource: { 'Fn::GetAtt': [expect.stringMatching(/Key/), 'Arn'] },
  Condition: { StringEquals: { 'kms:ViaService': 'dynamodb.eu-west-1.amazonaws.com' } },
};
const secretRead = ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'];

describe('control-plane API (Lambda + HTTP API)', () => {
  const fn = () => only('AWS::Lambda::Function', { Description: 'pgwarden control-plane API (Hono)' });

  it('runs the Hono app on Node.js 22, ARM64, long enough for an approval wait (25 s)', () => {
    const { Properties } = fn();
    expect(Properties['Handler']).toBe('index.handler');
    expect(Properties['Runtime']).toBe('nodejs22.x');
    expect(Properties['Architectures']).toEqual(['arm64']);
    expect(Properties['Timeout']).toBe(29); // below API Gateway's 30 s integration limit
  });

  it("ships an ESM bundle that parses, with the SQL parser's WebAssembly beside it", () => {
    expectBundle(fn(), ['index.mjs', 'index.mjs.map', 'libpg-query.wasm']);
  });

  it('configures the API from context and passes every secret by ARN, never by value', () => {
    const variables = fn().Properties['Environment'].Variables;
    expect(variables).toEqual({
      PGWARDEN_OIDC_ISSUER: 'https://login.example.com/',
      PGWARDEN_OIDC_AUDIENCE: 'pgwarden',
      PGWARDEN_OIDC_ALGORITHMS: 'RS256,ES256',
      PGWARDEN_OIDC_GROUPS_CLAIM: 'groups',
      PGWARDEN_ROLES: 'admin=admins,platform;developer=engineering;auditor=auditors',
      PGWARDEN_TABLE_PREFIX: 'pgwarden-',
      PGWARDEN_AUDITOR_GROUPS: 'auditors',
      PGWARDEN_ADMIN_GROUPS: 'admins',
      PGWARDEN_REVIEWER_GROUPS: 'reviewers',
      PGWARDEN_APPROVALS_QUEUE_URL: { Ref: queueArn()['Fn::GetAtt'][0] },
      PGWARDEN_SLACK_CHANNEL: 'pgwarden-approvals',
      PGWARDEN_SERVICE_TOKEN_SECRET_ARN: serviceTokenRef(),
      PGWARDEN_PROXY_AUTH: 'iam',
      PGWARDEN_PROXY_ROLE_ARNS: { 'Fn::GetAtt': [proxyTaskRole(), 'Arn'] },
      SLACK_BOT_TOKEN_SECRET_ARN: botTokenRef(),
      SLACK_SIGNING_SECRET_SECRET_ARN: signingSecretRef(),
      NODE_OPTIONS: '--enable-source-maps',
    });
    expect(JSON.stringify(template.toJSON())).not.toContain('resolve:secretsmanager');
  });

  it('may use its tables, send to the approvals queue and read its three secrets, and nothing else', () => {
    expect(roleStatements(fn())).toEqual([
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/FunctionLogs/), 'Arn'] },
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: tableArn('pgwarden-sessions'),
      },
      {
        // append-only: new items and intent → completion by conditional PutItem; no delete, no batch
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        Resource: tableArn('pgwarden-events'),
      },
      dynamoDbKey,
      {
        Effect: 'Allow',
        Action: 'dynamodb:Query',
        Resource: [
          tableArn('pgwarden-events'),
          indexArn('pgwarden-events', 'by_day'),
          indexArn('pgwarden-events', 'by_decision'),
          indexArn('pgwarden-events', 'by_principal'),
        ],
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        Resource: [
          tableArn('pgwarden-approvals'),
          indexArn('pgwarden-approvals', 'by_retry_key'),
          indexArn('pgwarden-approvals', 'by_status'),
        ],
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        Resource: [tableArn('pgwarden-identities'), indexArn('pgwarden-identities', 'by_email')],
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
        Resource: tableArn('pgwarden-policies'),
      },
      { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: queueArn() },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: keyArn(),
        Condition: { StringEquals: { 'kms:ViaService': 'sqs.eu-west-1.amazonaws.com' } },
      },
      {
        Effect: 'Allow',
        Action: secretRead,
        Resource: [serviceTokenRef(), botTokenRef(), signingSecretRef()],
      },
    ]);
  });

  it("puts the proxy's routes behind the IAM authorizer; people's and Slack's reach the app unchanged", () => {
    const routes = Object.values(resources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties);
    const proxyRoutes = PROXY_ROUTES.map(({ method, path }) => `${method} ${path}`).sort();
    expect(routes.map((route) => route['RouteKey']).sort()).toEqual(
      [...proxyRoutes, 'ANY /v1/{proxy+}', 'GET /healthz', 'POST /slack/events'].sort(),
    );
    for (const route of routes) {
      // the proxy signs with its task role (SigV4); API Gateway checks it before the function runs
      const expected = proxyRoutes.includes(route['RouteKey']) ? 'AWS_IAM' : 'NONE';
      expect(route['AuthorizationType'] ?? 'NONE', route['RouteKey']).toBe(expected);
    }
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      DefaultRouteSettings: { ThrottlingRateLimit: 2000, ThrottlingBurstLimit: 4000 },
      // the public routes are throttled apart from the proxy's (the default above)
      RouteSettings: {
        'POST /slack/events': { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 50 },
        'ANY /v1/{proxy+}': { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
        'GET /healthz': { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 },
      },
    });
  });

  it("lets only the proxy task role invoke the proxy's routes, each named exactly", () => {
    const policies = Object.values(resources('AWS::IAM::Policy')).filter((policy) =>
      JSON.stringify(policy.Properties['PolicyDocument']).includes('execute-api:Invoke'),
    );
    expect(policies).toHaveLength(1);
    const [policy] = policies;
    expect(policy!.Properties['Roles']).toEqual([{ Ref: proxyTaskRole() }]);
    const [statement] = policy!.Properties['PolicyDocument'].Statement as Array<Record<string, Json>>;
    const routes = (statement!.Resource as Json[]).map((r) => r['Fn::Join'][1][2]).sort();
    expect(routes).toEqual(
      PROXY_ROUTES.map(({ method, path }) => `/*/${method}${path.replaceAll(/\{[^}]+\}/g, '*')}`).sort(),
    );
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: Match.objectLike({
        Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })],
      }),
      Description: Match.stringLikeRegexp('signs the proxy'),
    });
    const task = only('AWS::ECS::TaskDefinition').Properties;
    expect(task['TaskRoleArn']).toEqual({ 'Fn::GetAtt': [proxyTaskRole(), 'Arn'] });
  });

  it('generates the service token in Secrets Manager', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Description: Match.stringLikeRegexp("control-plane API's own secret"),
      GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true },
    });
  });

  it('creates placeholder secrets for the Slack bot token and signing secret (no ARNs in context)', () => {
    for (const what of ['bot token', 'signing secret']) {
      template.hasResourceProperties('AWS::SecretsManager::Secret', {
        Description: Match.stringLikeRegexp(what),
        GenerateSecretString: Match.objectLike({ PasswordLength: 32 }),
      });
    }
    expect(Object.keys(resources('AWS::SecretsManager::Secret'))).toHaveLength(4);
  });

  it('generates the masking key in Secrets Manager and keeps it when the stack is deleted', () => {
    // A new key changes every hashed and faked value: deleting the stack must not lose it.
    const id = maskingKeyRef().Ref;
    const secret = template.toJSON().Resources[id];
    expect(secret.Properties['GenerateSecretString']).toEqual({
      PasswordLength: 64,
      ExcludePunctuation: true,
    });
    expect(secret.DeletionPolicy).toBe('Retain');
    expect(secret.UpdateReplacePolicy).toBe('Retain');
    expect(template.toJSON().Outputs['MaskingKeySecretArn'].Value).toEqual({ Ref: id });
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

  it('injects certificate, key, database logins and masking key as ECS secrets (no API token)', () => {
    const { Secrets, Environment } = container();
    expect(Secrets).toEqual([
      { Name: 'PGWARDEN_TLS_CERT', ValueFrom: `${TLS_SECRET_ARN}:cert::` },
      { Name: 'PGWARDEN_TLS_KEY', ValueFrom: `${TLS_SECRET_ARN}:key::` },
      { Name: 'PGWARDEN_UPSTREAM_CREDENTIALS', ValueFrom: CREDENTIALS_SECRET_ARN },
      { Name: 'PGWARDEN_MASKING_KEY', ValueFrom: maskingKeyRef() },
    ]);
    const names = (Environment as Array<{ Name: string }>).map((variable) => variable.Name);
    expect(names.sort()).toEqual([
      'PGWARDEN_API_REGION',
      'PGWARDEN_API_URL',
      'PGWARDEN_AUDIT_MODE',
      'PGWARDEN_AUDIT_PARAMS',
      'PGWARDEN_AUDIT_SPOOL_DIR',
      'PGWARDEN_AUDIT_SPOOL_MAX_MB',
      'PGWARDEN_DRAIN_SECONDS',
      'PGWARDEN_POLICY_REFRESH_SECONDS',
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

  it('audits in buffered mode with a spool on a task volume, and polls the policy every 30 s', () => {
    const definition = container();
    expect(definition.Environment).toEqual(
      expect.arrayContaining([
        { Name: 'PGWARDEN_AUDIT_MODE', Value: 'buffered' },
        { Name: 'PGWARDEN_AUDIT_PARAMS', Value: 'hashed' },
        { Name: 'PGWARDEN_AUDIT_SPOOL_DIR', Value: '/var/lib/pgwarden/spool' },
        { Name: 'PGWARDEN_AUDIT_SPOOL_MAX_MB', Value: '8192' },
        { Name: 'PGWARDEN_POLICY_REFRESH_SECONDS', Value: '30' },
      ]),
    );
    // The root file system is read-only: the spool is the one writable place, a volume without a
    // host path, i.e. on the task's ephemeral storage (20 GiB included, so none is configured).
    expect(definition.MountPoints).toEqual([
      { ContainerPath: '/var/lib/pgwarden/spool', ReadOnly: false, SourceVolume: 'audit-spool' },
    ]);
    const task = only('AWS::ECS::TaskDefinition').Properties;
    expect(task['Volumes']).toEqual([{ Name: 'audit-spool' }]);
    expect(task['EphemeralStorage']).toBeUndefined();
  });

  it("gives the drain and the spool flush ECS's longest stop timeout, runs read-only as node, logs to CloudWatch", () => {
    const definition = container();
    expect(definition).toMatchObject({
      StopTimeout: 120,
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

  it('lets the task execution role read exactly the three secrets (the API token is not one)', () => {
    const { Properties } = only('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('ExecutionRole') }],
    });
    const statements = Properties['PolicyDocument'].Statement as Array<Record<string, Json>>;
    const secretRead = statements.find((s) => JSON.stringify(s.Action).includes('GetSecretValue'))!;
    // exactly these (IAM merges the grants in its own order)
    const readable = [TLS_SECRET_ARN, CREDENTIALS_SECRET_ARN, maskingKeyRef()];
    expect(secretRead.Resource).toHaveLength(readable.length);
    expect(secretRead.Resource).toEqual(expect.arrayContaining(readable));
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

describe('approvals (SQS, dead-letter queue and alarm, notifier Lambda)', () => {
  const notifier = () =>
    only('AWS::Lambda::Function', { Description: 'pgwarden approvals notifier (SQS to Slack)' });
  const queue = () => only('AWS::SQS::Queue', { RedrivePolicy: Match.anyValue() });
  const deadLetterQueue = () => only('AWS::SQS::Queue', { RedrivePolicy: Match.absent() });

  it('encrypts both queues with the customer-managed key and refuses plain HTTP', () => {
    expect(Object.keys(resources('AWS::SQS::Queue'))).toHaveLength(2);
    for (const { id, Properties } of [queue(), deadLetterQueue()]) {
      expect(Properties['KmsMasterKeyId']).toEqual(keyArn());
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: id }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sqs:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });

  it('moves a record to the dead-letter queue after 5 receives; hides it 6 notifier timeouts + the batching window', () => {
    expect(queue().Properties).toMatchObject({
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [deadLetterQueue().id, 'Arn'] },
        maxReceiveCount: 5,
      },
      VisibilityTimeout: 6 * notifier().Properties['Timeout'] + 1, // + the batching window
    });
    expect(deadLetterQueue().Properties['MessageRetentionPeriod']).toBe(14 * 24 * 3600);
  });

  it('alarms as soon as one message is in the dead-letter queue', () => {
    const { Properties } = only('AWS::CloudWatch::Alarm');
    expect(Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [deadLetterQueue().id, 'QueueName'] } }],
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: 1,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(Properties['AlarmActions']).toBeUndefined(); // no alarmTopicArn in context
  });

  it('feeds the notifier in batches with partial batch responses', () => {
    const { Properties } = only('AWS::Lambda::EventSourceMapping');
    expect(Properties).toEqual({
      EventSourceArn: { 'Fn::GetAtt': [queue().id, 'Arn'] },
      FunctionName: { Ref: notifier().id },
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('runs functions/notifier/handler.ts on Node.js 22, ARM64, with the bot token by secret ARN', () => {
    const { Properties } = notifier();
    expect(Properties).toMatchObject({
      Handler: 'index.handler',
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Timeout: 30,
    });
    expect(Properties['Environment'].Variables).toEqual({
      PGWARDEN_TABLE_PREFIX: 'pgwarden-',
      PGWARDEN_SLACK_CHANNEL: 'pgwarden-approvals',
      SLACK_BOT_TOKEN_SECRET_ARN: botTokenRef(),
      PGWARDEN_APPROVALS_QUEUE_URL: { Ref: expect.stringMatching(/^ApprovalsQueue/) },
      NODE_OPTIONS: '--enable-source-maps',
    });
    expectBundle(notifier(), ['index.mjs', 'index.mjs.map']);
  });

  it('lets the notifier read and annotate approvals, record approval events, read the bot token, consume the queue and schedule its look at expiry', () => {
    expect(roleStatements(notifier())).toEqual([
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/NotifierLogs/), 'Arn'] },
      },
      // consume the queue, and send it the delayed look at a lapsing approval
      {
        Effect: 'Allow',
        Action: [
          'sqs:ChangeMessageVisibility',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
          'sqs:GetQueueUrl',
          'sqs:ReceiveMessage',
          'sqs:SendMessage',
        ],
        Resource: queueArn(),
      },
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Condition: { StringEquals: { 'kms:ViaService': 'sqs.eu-west-1.amazonaws.com' } },
        Resource: keyArn(),
      },
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: tableArn('pgwarden-approvals'),
      },
      dynamoDbKey,
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        Resource: tableArn('pgwarden-events'),
      },
      { Effect: 'Allow', Action: secretRead, Resource: botTokenRef() },
      // What Lambda's SQS poller needs to read messages encrypted with the key.
      { Effect: 'Allow', Action: 'kms:Decrypt', Resource: keyArn() },
    ]);
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
    expect(groups.length).toBe(5); // flow logs, API function, API access, notifier, proxy
    for (const group of groups) expect(group.Properties['RetentionInDays']).toBe(365);
  });
});

describe('least privilege', () => {
  it('lets no role delete, batch-write or replace audit items: conditional PutItem and UpdateItem only', () => {
    const policies = { ...resources('AWS::IAM::Policy'), ...resources('AWS::IAM::ManagedPolicy') };
    const audit = [tableArn('pgwarden-sessions'), tableArn('pgwarden-events')].map((arn) =>
      JSON.stringify(arn),
    );
    const actions = new Map<string, Set<string>>();
    for (const policy of Object.values(policies)) {
      for (const statement of policy.Properties['PolicyDocument'].Statement as Array<Record<string, Json>>) {
        const onAudit = [statement.Resource].flat().filter((r) => audit.includes(JSON.stringify(r)));
        for (const resource of onAudit) {
          const table = JSON.stringify(resource).includes('Sessions') ? 'sessions' : 'events';
          for (const action of [statement.Action].flat()) {
            if (!actions.has(table)) actions.set(table, new Set());
            actions.get(table)!.add(action);
          }
        }
      }
    }
    const reads = [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:DescribeTable',
      'dynamodb:ExportTableToPointInTime',
    ];
    const writes = (table: string) =>
      [...(actions.get(table) ?? [])].filter((a) => !reads.includes(a)).sort();
    // sessions: attributes added by a conditional UpdateItem; events: items added by a conditional PutItem
    expect(writes('sessions')).toEqual(['dynamodb:UpdateItem']);
    expect(writes('events')).toEqual(['dynamodb:PutItem']);
    const everything = JSON.stringify(policies);
    for (const forbidden of [
      'dynamodb:DeleteItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:*',
      'dynamodb:Delete*',
    ])
      expect(everything).not.toContain(forbidden);
  });

  it('grants "*" resources only for ecr:GetAuthorizationToken', () => {
    const policies = { ...resources('AWS::IAM::Policy'), ...resources('AWS::IAM::ManagedPolicy') };
    const wildcard = Object.values(policies).flatMap((policy) =>
      (policy.Properties['PolicyDocument'].Statement as Array<Record<string, Json>>).filter((statement) =>
        [statement.Resource].flat().includes('*'),
      ),
    );
    expect(wildcard.map((statement) => statement.Action)).toEqual(['ecr:GetAuthorizationToken']);
  });

  it("lets only the proxy's task execution role read the masking key (it never leaves the proxy)", () => {
    const policies = { ...resources('AWS::IAM::Policy'), ...resources('AWS::IAM::ManagedPolicy') };
    const key = JSON.stringify(maskingKeyRef());
    const readers = Object.entries(policies)
      .filter(([, policy]) => JSON.stringify(policy.Properties['PolicyDocument']).includes(key))
      .map(([id]) => id);
    const executionPolicy = only('AWS::IAM::Policy', {
      Roles: [{ Ref: Match.stringLikeRegexp('ExecutionRole') }],
    }).id;
    expect(readers).toEqual([executionPolicy]);
    expect(JSON.stringify(resources('AWS::Lambda::Function'))).not.toContain(key);
  });
});

describe('outputs', () => {
  it('gives Slack the request URL of /slack/events on the HTTP API', () => {
    expect(template.toJSON().Outputs['SlackRequestUrl'].Value).toEqual({
      'Fn::Join': [
        '',
        [{ 'Fn::GetAtt': [logicalId('AWS::ApiGatewayV2::Api', {}), 'ApiEndpoint'] }, '/slack/events'],
      ],
    });
  });

  it('names what a user needs after the deploy', () => {
    const outputs = Object.keys(template.toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'ProxyHost',
        'ProxyPort',
        'ApiUrl',
        'SlackRequestUrl',
        'SlackBotTokenSecretArn',
        'SlackSigningSecretArn',
        'ApiFunctionName',
        'NotifierFunctionName',
        'ApprovalsDeadLetterAlarm',
        'ServiceTokenSecretArn',
        'ExportBucket',
        'GlueDatabase',
        'AthenaWorkGroup',
        'CompliancePolicyArn',
      ]),
    );
  });
});
