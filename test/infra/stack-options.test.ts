/**
 * The other shapes of the deployment: an existing VPC, an internet-facing proxy, the database's own
 * security group and CA, x86 tasks, other ports and drain; and cdk-nag failing synthesis on a
 * resource that breaks its rules. In one file so the CloudFormation validator loads once.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgWardenApp } from '../../infra/pgwarden-app.ts';
import { PgWardenError } from '../../shared/errors.ts';
import {
  ACCOUNT,
  nagViolations,
  newOutdir,
  REGION,
  REQUIRED_CONTEXT,
  removeOutdirs,
  synthesize,
} from './synth.ts';

afterAll(removeOutdirs);

const VPC_ID = 'vpc-0abc1234def567890';
const DATABASE_SG = 'sg-0123456789abcdef0';
const CA_SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgwarden/upstream-ca-MnOpQr`;
const BOT_TOKEN_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgwarden/slack-bot-token-StUvWx`;
const SIGNING_SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgwarden/slack-signing-secret-YzAbCd`;
const ALARM_TOPIC_ARN = `arn:aws:sns:${REGION}:${ACCOUNT}:pgwarden-alarms`;

/** What `cdk synth` stores in cdk.context.json after looking the VPC up. */
const vpcLookup = {
  [`vpc-provider:account=${ACCOUNT}:filter.vpc-id=${VPC_ID}:region=${REGION}:returnAsymmetricSubnets=true`]: {
    vpcId: VPC_ID,
    vpcCidrBlock: '172.31.0.0/16',
    ownerAccountId: ACCOUNT,
    availabilityZones: [],
    subnetGroups: [
      {
        name: 'Public',
        type: 'Public',
        subnets: [
          {
            subnetId: 'subnet-0aaaaaaaaaaaaaaa1',
            cidr: '172.31.0.0/20',
            availabilityZone: 'eu-west-1a',
            routeTableId: 'rtb-0aaaaaaaaaaaaaaa1',
          },
          {
            subnetId: 'subnet-0aaaaaaaaaaaaaaa2',
            cidr: '172.31.16.0/20',
            availabilityZone: 'eu-west-1b',
            routeTableId: 'rtb-0aaaaaaaaaaaaaaa2',
          },
        ],
      },
      {
        name: 'Private',
        type: 'Private',
        subnets: [
          {
            subnetId: 'subnet-0bbbbbbbbbbbbbbb1',
            cidr: '172.31.32.0/20',
            availabilityZone: 'eu-west-1a',
            routeTableId: 'rtb-0bbbbbbbbbbbbbbb1',
          },
          {
            subnetId: 'subnet-0bbbbbbbbbbbbbbb2',
            cidr: '172.31.48.0/20',
            availabilityZone: 'eu-west-1b',
            routeTableId: 'rtb-0bbbbbbbbbbbbbbb2',
          },
        ],
      },
    ],
  },
};

describe('existing VPC, internet-facing, database security group and CA, x86, custom ports', () => {
  let template: Template;
  let outdir: string;

  beforeAll(() => {
    const synth = synthesize({
      context: {
        ...vpcLookup,
        vpcId: VPC_ID,
        internetFacing: 'true',
        allowedClientCidrs: '0.0.0.0/0',
        upstreamSecurityGroupId: DATABASE_SG,
        upstreamCaSecretArn: CA_SECRET_ARN,
        upstreamPort: '5433',
        proxyPort: '6543',
        proxyArchitecture: 'x86_64',
        drainSeconds: '60',
      },
    });
    template = synth.template;
    outdir = synth.outdir;
  }, 120_000);

  it('passes cdk-nag: opening the port to the internet is an acknowledged operator choice', () => {
    expect(nagViolations(outdir)).toEqual([]);
  });

  it('uses the looked-up VPC instead of creating one', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: { Subnets: ['subnet-0bbbbbbbbbbbbbbb1', 'subnet-0bbbbbbbbbbbbbbb2'] },
      },
    });
  });

  it('puts an internet-facing NLB in the public subnets, open on the proxy port only', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Subnets: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0aaaaaaaaaaaaaaa2'],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 6543, Protocol: 'TCP' });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^pgwarden NLB'),
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '0.0.0.0/0', FromPort: 6543, ToPort: 6543 })],
    });
  });

  it('opens the database security group to the proxy tasks, and the tasks to nothing else there', () => {
    const proxy = Object.entries(template.findResources('AWS::EC2::SecurityGroup')).find(([, group]) =>
      /^pgwarden proxy tasks/.test(group['Properties']['GroupDescription']),
    )![0];
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: DATABASE_SG,
      SourceSecurityGroupId: { 'Fn::GetAtt': [proxy, 'GroupId'] },
      FromPort: 5433,
      ToPort: 5433,
      IpProtocol: 'tcp',
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [proxy, 'GroupId'] },
      DestinationSecurityGroupId: DATABASE_SG,
      FromPort: 5433,
      ToPort: 5433,
    });
    const egress =
      template.findResources('AWS::EC2::SecurityGroup')[proxy]!['Properties']['SecurityGroupEgress'];
    expect(egress).toEqual([
      {
        CidrIp: '0.0.0.0/0',
        Description: 'control-plane API and AWS APIs',
        FromPort: 443,
        ToPort: 443,
        IpProtocol: 'tcp',
      },
    ]);
  });

  it('injects the database CA and lets the execution role read it', () => {
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0]!['Properties'];
    const container = task['ContainerDefinitions'][0];
    expect(container.Secrets).toContainEqual({ Name: 'PGWARDEN_UPSTREAM_CA', ValueFrom: CA_SECRET_ARN });
    expect(container.Environment).toContainEqual({ Name: 'PGWARDEN_UPSTREAM_PORT', Value: '5433' });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
            Resource: Match.arrayWith([CA_SECRET_ARN]),
          }),
        ]),
      },
    });
  });

  it('runs x86 tasks and stretches draining to the configured time', () => {
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0]!['Properties'];
    expect(task['RuntimePlatform']).toEqual({ CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' });
    const container = task['ContainerDefinitions'][0];
    expect(container.StopTimeout).toBe(120);
    expect(container.Environment).toContainEqual({ Name: 'PGWARDEN_DRAIN_SECONDS', Value: '60' });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '60' }]),
    });
  });
});

describe('Slack secrets by ARN, alarm topic, strict audit with a larger spool, retention', () => {
  let template: Template;

  beforeAll(() => {
    template = synthesize({
      context: {
        slackBotTokenSecretArn: BOT_TOKEN_ARN,
        slackSigningSecretArn: SIGNING_SECRET_ARN,
        slackChannel: 'db-approvals',
        alarmTopicArn: ALARM_TOPIC_ARN,
        auditMode: 'strict',
        auditParams: 'off',
        auditRetentionDays: '400',
        proxyEphemeralStorageGiB: '60',
        auditSpoolMaxMiB: '40960',
        policyRefreshSeconds: '10',
        reviewerGroups: 'dba, security',
      },
    }).template;
  }, 120_000);

  const fn = (description: string) =>
    Object.values(
      template.findResources('AWS::Lambda::Function', { Properties: { Description: description } }),
    )[0]!['Properties'];

  it('uses the given Slack secrets instead of creating placeholders, in both functions', () => {
    // Only the generated service token and masking key are left.
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    const api = fn('pgwarden control-plane API (Hono)')['Environment'].Variables;
    expect(api).toMatchObject({
      SLACK_BOT_TOKEN_SECRET_ARN: BOT_TOKEN_ARN,
      SLACK_SIGNING_SECRET_SECRET_ARN: SIGNING_SECRET_ARN,
      PGWARDEN_SLACK_CHANNEL: 'db-approvals',
      PGWARDEN_REVIEWER_GROUPS: 'dba,security',
      PGWARDEN_AUDIT_RETENTION_DAYS: '400',
    });
    const notifier = fn('pgwarden approvals notifier (SQS to Slack)')['Environment'].Variables;
    expect(notifier).toMatchObject({
      SLACK_BOT_TOKEN_SECRET_ARN: BOT_TOKEN_ARN,
      PGWARDEN_SLACK_CHANNEL: 'db-approvals',
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: Match.arrayWith(['secretsmanager:GetSecretValue']),
            Resource: BOT_TOKEN_ARN,
          }),
        ]),
      },
    });
  });

  it('sends the dead-letter alarm to the given SNS topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      AlarmActions: [ALARM_TOPIC_ARN],
    });
  });

  it('runs the proxy in strict audit mode with the configured spool on larger ephemeral storage', () => {
    const task = Object.values(template.findResources('AWS::ECS::TaskDefinition'))[0]!['Properties'];
    expect(task['EphemeralStorage']).toEqual({ SizeInGiB: 60 });
    expect(task['ContainerDefinitions'][0].Environment).toEqual(
      expect.arrayContaining([
        { Name: 'PGWARDEN_AUDIT_MODE', Value: 'strict' },
        { Name: 'PGWARDEN_AUDIT_PARAMS', Value: 'off' },
        { Name: 'PGWARDEN_AUDIT_SPOOL_MAX_MB', Value: '40960' },
        { Name: 'PGWARDEN_POLICY_REFRESH_SECONDS', Value: '10' },
      ]),
    );
  });
});

describe('cdk-nag in synthesis', () => {
  it('fails synthesis on an unacknowledged finding and names the offending resource only', () => {
    const outdir = newOutdir();
    expect(() =>
      synthesize({ outdir, mutate: (stack) => new Bucket(stack, 'CarelessBucket', { enforceSSL: false }) }),
    ).toThrow(/AwsSolutions-S10/);
    const violations = nagViolations(outdir);
    expect(violations.map((violation) => violation.rule).sort()).toEqual([
      'AwsSolutions-S1',
      'AwsSolutions-S10',
    ]);
    for (const violation of violations) expect(violation.path).toBe('PgWarden/CarelessBucket/Resource');
  });
});

describe('existing VPC without a target environment', () => {
  it('is refused before anything is built: the lookup needs an account and region', () => {
    const attempt = () =>
      createPgWardenApp({ context: { ...REQUIRED_CONTEXT, vpcId: VPC_ID }, outdir: newOutdir(), env: {} });
    expect(attempt).toThrow(PgWardenError);
    expect(attempt).toThrow(/vpcId needs the target account and region/);
  });
});
