/**
 * The wire proxy: ECS on Fargate behind a Network Load Balancer with a plain TCP listener (the
 * proxy terminates TLS itself, since PostgreSQL negotiates it inside the protocol).
 *
 * Draining: on a deploy or scale-in the target is deregistered (no new connections) and keeps its
 * sessions for `drainSeconds`; then ECS sends SIGTERM, the proxy stops accepting, gives sessions
 * another `drainSeconds`, then syncs its audit spool and ships what the API takes. SIGKILL comes
 * only after ECS's longest stop timeout (120 s), so the spool gets everything the drain leaves.
 *
 * The audit spool (PGWARDEN_AUDIT_SPOOL_DIR) is a task volume on Fargate's ephemeral storage: it
 * survives API outages and container restarts within the task, not the task itself (README.md,
 * "Audit spool on AWS").
 */
import { Duration, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import {
  CfnScalingPolicy,
  PredefinedMetric,
  ScalableTarget,
  ServiceNamespace,
} from 'aws-cdk-lib/aws-applicationautoscaling';
import { type ISecurityGroup, type IVpc, Peer, Port, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  AwsLogDriverMode,
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  Protocol as EcsProtocol,
  Secret as EcsSecret,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { NetworkLoadBalancer, Protocol } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { CpuArchitecture as Arch, AuditMode, AuditParams, UpstreamSsl } from '../config.ts';
import { REPO_ROOT } from '../repo-root.ts';

export interface PgWardenProxyProps {
  vpc: IVpc;
  /** the load balancer's port, the one clients connect to */
  port: number;
  internetFacing: boolean;
  /** who may open connections to the proxy port */
  allowedClientCidrs: string[];
  upstream: {
    host: string;
    port: number;
    ssl: UpstreamSsl;
    /** the database's security group (opened to the proxy), else `cidr` bounds the proxy's egress */
    securityGroup?: ISecurityGroup;
    cidr: string;
  };
  /** the control-plane API's base URL */
  apiUrl: string;
  secrets: {
    /** JSON `{"cert": "<PEM>", "key": "<PEM>"}` */
    tls: ISecret;
    /** JSON `{"role": {"user": "…", "password": "…"}, …}` */
    upstreamCredentials: ISecret;
    /** PGWARDEN_MASKING_KEY: the HMAC key of the hash and fake mask methods, the same for every task */
    maskingKey: ISecret;
    /** PEM CA bundle for the database's certificate */
    upstreamCa?: ISecret;
  };
  /**
   * The task's role: its AWS identity signs every call to the control-plane API (SigV4), which
   * accepts only this role on the proxy's routes (control-plane.ts). Made by the stack, before the API.
   */
  taskRole: IRole;
  /** defaults to the Dockerfile at the repository root */
  image?: ContainerImage;
  task: { cpu: number; memoryMiB: number; architecture: Arch };
  scaling: { minTasks: number; maxTasks: number; cpuTargetPercent: number; connectionsPerTask: number };
  drainSeconds: number;
  /** Fargate ephemeral storage in GiB (20 is included in the task price; up to 200) */
  ephemeralStorageGiB?: number;
  audit?: { mode: AuditMode; params: AuditParams; spoolMaxMiB: number };
  /** PGWARDEN_POLICY_REFRESH_SECONDS: how often the proxy polls the current policy */
  policyRefreshSeconds?: number;
  logRetention: RetentionDays;
}

const CONTAINER_NAME = 'proxy';
/** ECS's upper bound between SIGTERM and SIGKILL */
export const STOP_TIMEOUT_SECONDS = 120;
/** the spool volume's mount point; the image creates it owned by `node` (see the Dockerfile) */
export const AUDIT_SPOOL_DIR = '/var/lib/pgwarden/spool';
const SPOOL_VOLUME = 'audit-spool';
const FARGATE_INCLUDED_STORAGE_GIB = 20;
/** inside the task; unprivileged so the container runs as the `node` user */
export const CONTAINER_PORT = 6432;

export class PgWardenProxy extends Construct {
  readonly loadBalancer: NetworkLoadBalancer;
  readonly service: FargateService;
  readonly securityGroup: SecurityGroup;
  readonly loadBalancerSecurityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: PgWardenProxyProps) {
    super(scope, id);
    const { vpc, port } = props;

    this.loadBalancerSecurityGroup = new SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc,
      description: 'pgwarden NLB: clients to the proxy port only',
      allowAllOutbound: false,
    });
    for (const cidr of props.allowedClientCidrs) {
      this.loadBalancerSecurityGroup.addIngressRule(
        Peer.ipv4(cidr),
        Port.tcp(port),
        `PostgreSQL clients ${cidr}`,
      );
    }
    if (props.allowedClientCidrs.includes('0.0.0.0/0')) {
      Validations.of(this.loadBalancerSecurityGroup).acknowledge({
        id: 'AwsSolutions-EC23',
        reason:
          'The operator opened the proxy port to any address (allowedClientCidrs); every connection must still present a valid OIDC token over TLS.',
      });
    }
    this.securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'pgwarden proxy tasks: in from the NLB; out to the database and HTTPS (API, AWS APIs)',
      allowAllOutbound: false,
    });
    this.securityGroup.connections.allowFrom(
      this.loadBalancerSecurityGroup,
      Port.tcp(CONTAINER_PORT),
      'NLB to proxy',
    );
    // The control-plane API and the AWS endpoints the task needs (ECR, Secrets Manager, CloudWatch
    // Logs) are HTTPS services with no fixed addresses.
    this.securityGroup.addEgressRule(Peer.anyIpv4(), Port.tcp(443), 'control-plane API and AWS APIs');
    if (props.upstream.securityGroup !== undefined) {
      this.securityGroup.connections.allowTo(
        props.upstream.securityGroup,
        Port.tcp(props.upstream.port),
        'database',
      );
    } else {
      this.securityGroup.addEgressRule(
        Peer.ipv4(props.upstream.cidr),
        Port.tcp(props.upstream.port),
        'database',
      );
    }

    const cluster = new Cluster(this, 'Cluster', { vpc, containerInsightsV2: ContainerInsights.ENABLED });
    const taskDefinition = this.taskDefinition(props);
    this.service = new FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: props.scaling.minTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      securityGroups: [this.securityGroup],
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      healthCheckGracePeriod: Duration.seconds(60),
      enableExecuteCommand: false,
    });

    this.loadBalancer = new NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc,
      internetFacing: props.internetFacing,
      vpcSubnets: { subnetType: props.internetFacing ? SubnetType.PUBLIC : SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.loadBalancerSecurityGroup],
      crossZoneEnabled: true,
    });
    Validations.of(this.loadBalancer).acknowledge({
      id: 'AwsSolutions-ELB2',
      reason:
        'NLB access logs are written only for TLS listeners; this listener is TCP (the proxy terminates TLS in-protocol). Every session, with the client address, is in the audit trail.',
    });
    const listener = this.loadBalancer.addListener('Postgres', { port, protocol: Protocol.TCP });
    listener.addTargets('Proxy', {
      port: CONTAINER_PORT,
      protocol: Protocol.TCP,
      targets: [
        this.service.loadBalancerTarget({ containerName: CONTAINER_NAME, containerPort: CONTAINER_PORT }),
      ],
      deregistrationDelay: Duration.seconds(props.drainSeconds),
      // The audit trail records the client's own address, not the NLB's.
      preserveClientIp: true,
      healthCheck: {
        protocol: Protocol.TCP,
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });

    this.autoScale(props, cluster);
  }

  private taskDefinition(props: PgWardenProxyProps): FargateTaskDefinition {
    const storage = props.ephemeralStorageGiB ?? FARGATE_INCLUDED_STORAGE_GIB;
    const taskDefinition = new FargateTaskDefinition(this, 'Task', {
      taskRole: props.taskRole,
      cpu: props.task.cpu,
      memoryLimitMiB: props.task.memoryMiB,
      ...(storage > FARGATE_INCLUDED_STORAGE_GIB ? { ephemeralStorageGiB: storage } : {}),
      runtimePlatform: {
        cpuArchitecture: props.task.architecture === 'arm64' ? CpuArchitecture.ARM64 : CpuArchitecture.X86_64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    const logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const image =
      props.image ??
      ContainerImage.fromAsset(REPO_ROOT, {
        file: 'Dockerfile',
        platform: props.task.architecture === 'arm64' ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64,
      });
    const { secrets } = props;
    const audit = props.audit ?? { mode: 'buffered', params: 'hashed', spoolMaxMiB: 8192 };
    // A volume without a host path lives on the task's ephemeral storage: writable under the
    // read-only root file system, gone with the task.
    taskDefinition.addVolume({ name: SPOOL_VOLUME });
    const container = taskDefinition.addContainer(CONTAINER_NAME, {
      containerName: CONTAINER_NAME,
      image,
      essential: true,
      readonlyRootFilesystem: true,
      user: 'node',
      portMappings: [{ containerPort: CONTAINER_PORT, protocol: EcsProtocol.TCP }],
      stopTimeout: Duration.seconds(STOP_TIMEOUT_SECONDS),
      environment: {
        PGWARDEN_PROXY_PORT: String(CONTAINER_PORT),
        PGWARDEN_UPSTREAM_HOST: props.upstream.host,
        PGWARDEN_UPSTREAM_PORT: String(props.upstream.port),
        PGWARDEN_UPSTREAM_SSL: props.upstream.ssl,
        PGWARDEN_API_URL: props.apiUrl,
        // the region its API calls are signed for (SigV4 with the task role)
        PGWARDEN_API_REGION: Stack.of(this).region,
        PGWARDEN_DRAIN_SECONDS: String(props.drainSeconds),
        PGWARDEN_AUDIT_MODE: audit.mode,
        PGWARDEN_AUDIT_PARAMS: audit.params,
        PGWARDEN_AUDIT_SPOOL_DIR: AUDIT_SPOOL_DIR,
        PGWARDEN_AUDIT_SPOOL_MAX_MB: String(audit.spoolMaxMiB),
        PGWARDEN_POLICY_REFRESH_SECONDS: String(props.policyRefreshSeconds ?? 30),
      },
      secrets: {
        PGWARDEN_TLS_CERT: EcsSecret.fromSecretsManager(secrets.tls, 'cert'),
        PGWARDEN_TLS_KEY: EcsSecret.fromSecretsManager(secrets.tls, 'key'),
        PGWARDEN_UPSTREAM_CREDENTIALS: EcsSecret.fromSecretsManager(secrets.upstreamCredentials),
        PGWARDEN_MASKING_KEY: EcsSecret.fromSecretsManager(secrets.maskingKey),
        ...(secrets.upstreamCa === undefined
          ? {}
          : { PGWARDEN_UPSTREAM_CA: EcsSecret.fromSecretsManager(secrets.upstreamCa) }),
      },
      // A wedged event loop stops answering connects: ECS replaces the task.
      healthCheck: {
        command: [
          'CMD',
          'node',
          '-e',
          "require('node:net').connect(Number(process.env.PGWARDEN_PROXY_PORT),'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))",
        ],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(15),
      },
      logging: LogDrivers.awsLogs({
        logGroup,
        streamPrefix: 'proxy',
        // A slow log delivery must never stall the data path; the audit trail does not go through logs.
        mode: AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
    });
    container.addMountPoints({ sourceVolume: SPOOL_VOLUME, containerPath: AUDIT_SPOOL_DIR, readOnly: false });
    Validations.of(taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Only ecr:GetAuthorizationToken, which AWS defines for resource "*" alone; image pulls, logs and secrets are scoped to their ARNs.',
    });
    Validations.of(taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        "The environment holds only non-secret settings (ports, database host, API URL, drain time); certificates, database credentials and the masking key come from Secrets Manager as ECS secrets. The API is called with the task role's own credentials (SigV4), no stored token.",
    });
    return taskDefinition;
  }

  /**
   * Scale on CPU and on connections per task. NLB's ActiveFlowCount counts the whole service, so
   * the connection policy tracks it divided by the running tasks (metric math, which the L2
   * construct does not offer, hence the L1 policy).
   */
  private autoScale(props: PgWardenProxyProps, cluster: Cluster): void {
    const target = new ScalableTarget(this, 'Scaling', {
      serviceNamespace: ServiceNamespace.ECS,
      resourceId: `service/${cluster.clusterName}/${this.service.serviceName}`,
      scalableDimension: 'ecs:service:DesiredCount',
      minCapacity: props.scaling.minTasks,
      maxCapacity: props.scaling.maxTasks,
    });
    target.node.addDependency(this.service);
    target.scaleToTrackMetric('Cpu', {
      predefinedMetric: PredefinedMetric.ECS_SERVICE_AVERAGE_CPU_UTILIZATION,
      targetValue: props.scaling.cpuTargetPercent,
      scaleInCooldown: Duration.seconds(300),
      scaleOutCooldown: Duration.seconds(60),
    });
    new CfnScalingPolicy(this, 'ConnectionsPolicy', {
      policyName: `${Stack.of(this).stackName}-proxy-connections-per-task`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: target.scalableTargetId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: props.scaling.connectionsPerTask,
        // Connections are long-lived: scale in slowly so sessions are not drained needlessly.
        scaleInCooldown: 600,
        scaleOutCooldown: 60,
        customizedMetricSpecification: {
          metrics: [
            {
              id: 'flows',
              returnData: false,
              metricStat: {
                metric: {
                  namespace: 'AWS/NetworkELB',
                  metricName: 'ActiveFlowCount_TCP',
                  dimensions: [{ name: 'LoadBalancer', value: this.loadBalancer.loadBalancerFullName }],
                },
                stat: 'Average',
              },
            },
            {
              id: 'tasks',
              returnData: false,
              metricStat: {
                metric: {
                  namespace: 'ECS/ContainerInsights',
                  metricName: 'RunningTaskCount',
                  dimensions: [
                    { name: 'ClusterName', value: cluster.clusterName },
                    { name: 'ServiceName', value: this.service.serviceName },
                  ],
                },
                stat: 'Average',
              },
            },
            { id: 'perTask', expression: 'flows / tasks', label: 'connections per task', returnData: true },
          ],
        },
      },
    });
  }
}
