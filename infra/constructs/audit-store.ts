/**
 * The audit trail's DynamoDB tables, encrypted with a customer-managed KMS key. The layout is the
 * one functions/adapters/dynamodb-audit-store.ts writes (and `ensureAuditTables` creates locally):
 * sessions (PK sessionId) and events (PK sessionId, SK sk, GSI by_principal on principal/startedAt).
 * Audit data outlives the stack: tables and key are retained and protected from deletion.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface PgWardenAuditStoreProps {
  /** table names are `<prefix>sessions` and `<prefix>events` (PGWARDEN_TABLE_PREFIX) */
  tablePrefix: string;
}

export const BY_PRINCIPAL_INDEX = 'by_principal';

export class PgWardenAuditStore extends Construct {
  /** encrypts the tables, their backups and exports */
  readonly key: Key;
  readonly sessions: Table;
  readonly events: Table;

  constructor(scope: Construct, id: string, props: PgWardenAuditStoreProps) {
    super(scope, id);
    this.key = new Key(this, 'Key', {
      description: 'pgwarden audit trail: DynamoDB tables and their S3 exports',
      enableKeyRotation: true,
      pendingWindow: Duration.days(30),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const common = {
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    };
    this.sessions = new Table(this, 'Sessions', {
      ...common,
      tableName: `${props.tablePrefix}sessions`,
      partitionKey: { name: 'sessionId', type: AttributeType.STRING },
    });
    this.events = new Table(this, 'Events', {
      ...common,
      tableName: `${props.tablePrefix}events`,
      partitionKey: { name: 'sessionId', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
    });
    this.events.addGlobalSecondaryIndex({
      indexName: BY_PRINCIPAL_INDEX,
      partitionKey: { name: 'principal', type: AttributeType.STRING },
      sortKey: { name: 'startedAt', type: AttributeType.STRING },
      projectionType: ProjectionType.ALL,
    });
  }

  /**
   * Exactly what DynamoDbAuditStore calls: UpdateItem on sessions, BatchWriteItem on events, and the
   * key only through DynamoDB. Nothing may read, scan or delete the trail through this grant.
   */
  grantAuditWrite(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['dynamodb:UpdateItem'], resources: [this.sessions.tableArn] }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['dynamodb:BatchWriteItem'], resources: [this.events.tableArn] }),
    );
    this.grantKeyViaDynamoDb(grantee);
  }

  private grantKeyViaDynamoDb(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
  }
}
