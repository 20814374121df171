/**
 * Compliance export: DynamoDB point-in-time exports land in a versioned, KMS-encrypted bucket, and
 * Glue tables over them let compliance query the audit trail with SQL in an Athena workgroup.
 *
 * Each export lives under `exports/<table>/AWSDynamoDB/<exportId>/data/`; the Glue tables take the
 * export id as an injected partition (partition projection), so a query names the export it reads:
 * `SELECT … FROM events WHERE export_id = '01700000000000-abcd1234'`.
 */
import { Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { CfnNamedQuery, CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EVENTS_ITEM_TYPE, SESSIONS_ITEM_TYPE } from './export-schema.ts';

export interface PgWardenAuditExportProps {
  /** the audit store's key: exports and query results are encrypted with it too */
  key: IKey;
  tables: { sessions: ITable; events: ITable };
  /** names the Glue database (`<prefix>audit`, non-alphanumerics as `_`) and the Athena workgroup */
  namePrefix: string;
  /** Athena refuses a query that would scan more than this (cost guard) */
  bytesScannedCutoffPerQuery?: number;
}

export const EXPORTS_PREFIX = 'exports';
export const RESULTS_PREFIX = 'athena-results';

export class PgWardenAuditExport extends Construct {
  readonly bucket: Bucket;
  readonly accessLogs: Bucket;
  readonly databaseName: string;
  readonly workGroupName: string;
  /** attach to the compliance role/group: run exports, query them, read the results */
  readonly compliancePolicy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: PgWardenAuditExportProps) {
    super(scope, id);
    this.accessLogs = new Bucket(this, 'AccessLogs', {
      // S3 server access logging cannot deliver to SSE-KMS buckets.
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) }],
    });

    this.bucket = new Bucket(this, 'Exports', {
      encryption: BucketEncryption.KMS,
      encryptionKey: props.key,
      bucketKeyEnabled: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'exports-bucket/',
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          prefix: `${RESULTS_PREFIX}/`,
          expiration: Duration.days(30),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          prefix: `${EXPORTS_PREFIX}/`,
          transitions: [
            { storageClass: StorageClass.INTELLIGENT_TIERING, transitionAfter: Duration.days(0) },
          ],
          noncurrentVersionExpiration: Duration.days(365),
        },
      ],
    });

    this.databaseName = `${props.namePrefix}audit`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    const database = new CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: {
        name: this.databaseName,
        description: 'pgwarden audit trail exports (DynamoDB point-in-time exports)',
      },
    });
    const sessions = this.exportTable('SessionsTable', 'sessions', SESSIONS_ITEM_TYPE);
    const events = this.exportTable('EventsTable', 'events', EVENTS_ITEM_TYPE);
    sessions.addResourceDependency(database);
    events.addResourceDependency(database);

    this.workGroupName = `${props.namePrefix}audit`;
    const workGroup = new CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: 'Compliance queries over pgwarden audit exports',
      recursiveDeleteOption: false,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: props.bytesScannedCutoffPerQuery ?? 100 * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'AUTO' },
        resultConfiguration: {
          outputLocation: this.bucket.s3UrlForObject(`${RESULTS_PREFIX}/`),
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: props.key.keyArn },
        },
      },
    });
    this.namedQueries(workGroup);

    this.compliancePolicy = this.createCompliancePolicy(props, [sessions, events]);
  }

  private exportTable(id: string, name: 'sessions' | 'events', itemType: string): CfnTable {
    const location = this.bucket.s3UrlForObject(`${EXPORTS_PREFIX}/${name}/`);
    return new CfnTable(this, id, {
      catalogId: Aws.ACCOUNT_ID,
      databaseName: this.databaseName,
      tableInput: {
        name,
        description: `pgwarden ${name} table, one partition per DynamoDB export (export_id)`,
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [
          { name: 'export_id', type: 'string', comment: 'the id at the end of the export ARN' },
        ],
        parameters: {
          classification: 'json',
          compressionType: 'gzip',
          'projection.enabled': 'true',
          'projection.export_id.type': 'injected',
          'storage.location.template': `${location}AWSDynamoDB/\${export_id}/data/`,
        },
        storageDescriptor: {
          location,
          columns: [{ name: 'item', type: itemType }],
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          serdeInfo: {
            serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
            parameters: { 'ignore.malformed.json': 'false', 'case.insensitive': 'true' },
          },
        },
      },
    });
  }

  private namedQueries(workGroup: CfnWorkGroup): void {
    const queries: Array<[string, string, string]> = [
      [
        'StatementsByPrincipal',
        'pgwarden: statements by principal',
        `SELECT item.startedat.s AS started_at, item.principal.s AS principal, item."database".s AS db,
       item.decision.s AS decision, item.text.s AS statement, item.sqlstate.s AS sqlstate
FROM events
WHERE export_id = '<export id>' AND item.type.s = 'statement' AND item.principal.s = '<email>'
ORDER BY item.startedat.s`,
      ],
      [
        'AgentSessions',
        'pgwarden: sessions opened by AI agents',
        `SELECT item.openedat.s AS opened_at, item.principal.s AS principal, item.applicationname.s AS application,
       item.clientaddress.s AS client, CAST(item.statements.n AS bigint) AS statements, item.endreason.s AS ended
FROM sessions
WHERE export_id = '<export id>' AND item.actor.s = 'agent'
ORDER BY item.openedat.s`,
      ],
      [
        'FailedLogins',
        'pgwarden: refused logins',
        `SELECT item."at".s AS at, item."user".s AS login, item.clientaddress.s AS client, item.code.s AS code,
       item.message.s AS message
FROM events
WHERE export_id = '<export id>' AND item.type.s = 'auth_failed'
ORDER BY item."at".s`,
      ],
    ];
    for (const [id, name, queryString] of queries) {
      const query = new CfnNamedQuery(this, id, {
        name,
        database: this.databaseName,
        workGroup: workGroup.name,
        queryString,
      });
      query.addResourceDependency(workGroup);
    }
  }

  private createCompliancePolicy(props: PgWardenAuditExportProps, tables: CfnTable[]): ManagedPolicy {
    const stack = Stack.of(this);
    const tableArn = (name: string) =>
      stack.formatArn({ service: 'glue', resource: 'table', resourceName: `${this.databaseName}/${name}` });
    const policy = new ManagedPolicy(this, 'CompliancePolicy', {
      description: 'pgwarden compliance: export the audit tables to S3 and query the exports with Athena',
      statements: [
        new PolicyStatement({
          sid: 'ExportAuditTables',
          actions: ['dynamodb:ExportTableToPointInTime', 'dynamodb:DescribeTable'],
          resources: [props.tables.sessions.tableArn, props.tables.events.tableArn],
        }),
        new PolicyStatement({
          sid: 'FollowExports',
          actions: ['dynamodb:DescribeExport'],
          resources: [
            `${props.tables.sessions.tableArn}/export/*`,
            `${props.tables.events.tableArn}/export/*`,
          ],
        }),
        new PolicyStatement({
          sid: 'WriteExportsAndResults',
          actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
          resources: [
            this.bucket.arnForObjects(`${EXPORTS_PREFIX}/*`),
            this.bucket.arnForObjects(`${RESULTS_PREFIX}/*`),
          ],
        }),
        new PolicyStatement({
          sid: 'ListExportBucket',
          actions: ['s3:ListBucket', 's3:GetBucketLocation'],
          resources: [this.bucket.bucketArn],
        }),
        new PolicyStatement({
          sid: 'UseAuditKey',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
          resources: [props.key.keyArn],
        }),
        new PolicyStatement({
          sid: 'QueryWorkGroup',
          actions: [
            'athena:StartQueryExecution',
            'athena:StopQueryExecution',
            'athena:GetQueryExecution',
            'athena:GetQueryResults',
            'athena:GetWorkGroup',
            'athena:ListNamedQueries',
            'athena:GetNamedQuery',
            'athena:BatchGetNamedQuery',
          ],
          resources: [
            stack.formatArn({ service: 'athena', resource: 'workgroup', resourceName: this.workGroupName }),
          ],
        }),
        new PolicyStatement({
          sid: 'ReadCatalog',
          actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartitions'],
          resources: [
            stack.formatArn({ service: 'glue', resource: 'catalog' }),
            stack.formatArn({ service: 'glue', resource: 'database', resourceName: this.databaseName }),
            ...tables.map((table) => tableArn((table.tableInput as CfnTable.TableInputProperty).name!)),
          ],
        }),
      ],
    });
    for (const finding of [
      `Resource::<${this.logicalIdOf(props.tables.sessions)}.Arn>/export/*`,
      `Resource::<${this.logicalIdOf(props.tables.events)}.Arn>/export/*`,
      `Resource::<${stack.getLogicalId(this.bucket.node.defaultChild as never)}.Arn>/${EXPORTS_PREFIX}/*`,
      `Resource::<${stack.getLogicalId(this.bucket.node.defaultChild as never)}.Arn>/${RESULTS_PREFIX}/*`,
    ]) {
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[${finding}]`,
        reason:
          "Export ids and S3 object keys are chosen by DynamoDB and Athena at run time; the wildcard is confined to this table's exports and to this bucket's exports/ and athena-results/ prefixes.",
      });
    }
    return policy;
  }

  private logicalIdOf(table: ITable): string {
    return Stack.of(this).getLogicalId(table.node.defaultChild as never);
  }
}
