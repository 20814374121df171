/**
 * The VPC pgwarden runs in: an existing one looked up by id, or a new one with public subnets (NAT
 * and an internet-facing load balancer only) and private subnets for the proxy tasks.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  IpAddresses,
  type IVpc,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface PgWardenNetworkProps {
  /** an existing VPC (needs private subnets with a route to the internet, for ECR and the API) */
  vpcId?: string;
  /** for a new VPC */
  cidr?: string;
  maxAzs?: number;
  natGateways?: number;
  logRetention: RetentionDays;
}

export class PgWardenNetwork extends Construct {
  readonly vpc: IVpc;
  /** the VPC's CIDR as a plain string (known at synth time, also for a looked-up VPC) */
  readonly cidr: string;

  constructor(scope: Construct, id: string, props: PgWardenNetworkProps) {
    super(scope, id);
    if (props.vpcId !== undefined) {
      this.vpc = Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId });
      this.cidr = this.vpc.vpcCidrBlock;
      return;
    }
    const flowLogs = new LogGroup(this, 'FlowLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.cidr = props.cidr ?? '10.0.0.0/16';
    this.vpc = new Vpc(this, 'Vpc', {
      ipAddresses: IpAddresses.cidr(this.cidr),
      maxAzs: props.maxAzs ?? 2,
      natGateways: props.natGateways ?? 1,
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
      // Connection records of who reached the proxy (and what the proxy reached) outlive the tasks.
      flowLogs: {
        all: {
          destination: FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: FlowLogTrafficType.ALL,
        },
      },
    });
  }
}
