/**
 * The one way pgwarden creates a DynamoDB table: on demand, encrypted with the deployment's
 * customer-managed key, point-in-time recovery, deletion protection, retained when the stack goes,
 * and a TTL attribute where records expire. Plus narrow grants: named actions on the table and on
 * the indexes named (never `index/*`), and the key only through DynamoDB.
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AttributeType,
  BillingMode,
  type ITable,
  ProjectionType,
  Table,
  TableEncryption,
} from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

export interface ProtectedTableProps {
  tableName: string;
  key: IKey;
  partitionKey: string;
  sortKey?: string;
  /** epoch-seconds attribute DynamoDB deletes expired items by */
  timeToLiveAttribute?: string;
  /** global secondary indexes, all projecting every attribute (the adapters read whole items) */
  indexes?: Array<{ name: string; partitionKey: string; sortKey?: string }>;
}

export function protectedTable(scope: Construct, id: string, props: ProtectedTableProps): Table {
  const table = new Table(scope, id, {
    tableName: props.tableName,
    billingMode: BillingMode.PAY_PER_REQUEST,
    encryption: TableEncryption.CUSTOMER_MANAGED,
    encryptionKey: props.key,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    deletionProtection: true,
    removalPolicy: RemovalPolicy.RETAIN,
    partitionKey: { name: props.partitionKey, type: AttributeType.STRING },
    ...(props.sortKey === undefined ? {} : { sortKey: { name: props.sortKey, type: AttributeType.STRING } }),
    ...(props.timeToLiveAttribute === undefined ? {} : { timeToLiveAttribute: props.timeToLiveAttribute }),
  });
  for (const index of props.indexes ?? []) {
    table.addGlobalSecondaryIndex({
      indexName: index.name,
      partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
      ...(index.sortKey === undefined
        ? {}
        : { sortKey: { name: index.sortKey, type: AttributeType.STRING } }),
      projectionType: ProjectionType.ALL,
    });
  }
  return table;
}

/** `actions` on the table and, when given, on exactly these indexes. */
export function grantTable(
  grantee: IGrantable,
  table: ITable,
  actions: string[],
  indexes: readonly string[] = [],
): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions,
      resources: [table.tableArn, ...indexes.map((index) => `${table.tableArn}/index/${index}`)],
    }),
  );
}

/** The key for what DynamoDB encrypts and decrypts on the grantee's behalf, and nothing else. */
export function grantKeyViaDynamoDb(grantee: IGrantable, key: IKey): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: [key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Stack.of(key).region}.amazonaws.com` } },
    }),
  );
}
