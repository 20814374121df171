/**
 * The deployment's DynamoDB tables, all encrypted with one customer-managed KMS key. Each layout is
 * the one its adapter reads and writes (and creates locally with its ensure-table function;
 * test/infra/stack.test.ts compares them):
 * - sessions (PK sessionId) and events (PK sessionId, SK sk; GSIs by_principal, by_day,
 *   by_decision): functions/adapters/dynamodb-audit-store.ts and dynamodb-audit-layout.ts; TTL
 *   attribute expiresAt, set only when a retention is configured;
 * - approvals (PK id; GSIs by_retry_key, by_status; TTL expiresAtEpoch):
 *   functions/adapters/dynamodb-approval-store.ts;
 * - identities, the principals directory (PK id = issuer#subject; GSI by_email):
 *   functions/adapters/dynamodb-principal-directory.ts. (The earlier `principals` table, keyed by
 *   email, is no longer part of the stack; being retained, it stays in the account until removed.)
 * - policies (PK policy, SK version): functions/adapters/dynamodb-policy-store.ts.
 * Data outlives the stack: tables and key are retained and protected from deletion.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { Table } from 'aws-cdk-lib/aws-dynamodb';
import type { IGrantable } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { RETRY_KEY_INDEX, STATUS_INDEX } from '../../functions/adapters/dynamodb-approval-store.ts';
import {
  BY_DAY_INDEX,
  BY_DECISION_INDEX,
  BY_PRINCIPAL_INDEX,
  TTL_ATTRIBUTE,
} from '../../functions/adapters/dynamodb-audit-layout.ts';
import { EMAIL_INDEX } from '../../functions/adapters/dynamodb-principal-directory.ts';
import { grantKeyViaDynamoDb, grantTable, protectedTable } from './protected-table.ts';

export interface PgWardenAuditStoreProps {
  /** table names are `<prefix>sessions`, `<prefix>events`, … (PGWARDEN_TABLE_PREFIX) */
  tablePrefix: string;
}

export { BY_PRINCIPAL_INDEX };
/** the approvals table's TTL attribute (epoch seconds, a week after the approval's deadline) */
export const APPROVALS_TTL_ATTRIBUTE = 'expiresAtEpoch';
const EVENT_INDEXES = [BY_PRINCIPAL_INDEX, BY_DAY_INDEX, BY_DECISION_INDEX];
const APPROVAL_INDEXES = [RETRY_KEY_INDEX, STATUS_INDEX];

export class PgWardenAuditStore extends Construct {
  /** encrypts the tables, their backups and exports, and the approvals queue */
  readonly key: Key;
  readonly sessions: Table;
  readonly events: Table;
  readonly approvals: Table;
  readonly principals: Table;
  readonly policies: Table;

  constructor(scope: Construct, id: string, props: PgWardenAuditStoreProps) {
    super(scope, id);
    this.key = new Key(this, 'Key', {
      description:
        'pgwarden: DynamoDB tables (audit trail, approvals, policies), their exports, the approvals queue',
      enableKeyRotation: true,
      pendingWindow: Duration.days(30),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const table = (
      tableId: string,
      suffix: string,
      layout: Omit<Parameters<typeof protectedTable>[2], 'tableName' | 'key'>,
    ) =>
      protectedTable(this, tableId, { ...layout, tableName: `${props.tablePrefix}${suffix}`, key: this.key });

    this.sessions = table('Sessions', 'sessions', {
      partitionKey: 'sessionId',
      timeToLiveAttribute: TTL_ATTRIBUTE,
    });
    this.events = table('Events', 'events', {
      partitionKey: 'sessionId',
      sortKey: 'sk',
      timeToLiveAttribute: TTL_ATTRIBUTE,
      indexes: [
        { name: BY_PRINCIPAL_INDEX, partitionKey: 'principal', sortKey: 'startedAt' },
        { name: BY_DAY_INDEX, partitionKey: 'day', sortKey: 'timeKey' },
        { name: BY_DECISION_INDEX, partitionKey: 'decisionDay', sortKey: 'timeKey' },
      ],
    });
    this.approvals = table('Approvals', 'approvals', {
      partitionKey: 'id',
      timeToLiveAttribute: APPROVALS_TTL_ATTRIBUTE,
      indexes: [
        { name: RETRY_KEY_INDEX, partitionKey: 'retryKey', sortKey: 'requestedAt' },
        { name: STATUS_INDEX, partitionKey: 'status', sortKey: 'requestedAt' },
      ],
    });
    this.principals = table('Identities', 'identities', {
      partitionKey: 'id',
      indexes: [{ name: EMAIL_INDEX, partitionKey: 'emailKey' }],
    });
    this.policies = table('Policies', 'policies', { partitionKey: 'policy', sortKey: 'version' });
  }

  /**
   * Exactly what DynamoDbAuditStore calls: conditional UpdateItem on sessions (an attribute may be
   * added, never changed), conditional PutItem on events (only where no item is, or a completion over
   * its own intent) and GetItem to tell a retry from a conflict; the key only through DynamoDB. No
   * DeleteItem, and no BatchWriteItem (it deletes too and takes no condition): the trail is
   * append-only through this grant. test/infra/stack.test.ts asserts the list.
   */
  grantAuditWrite(grantee: IGrantable): void {
    grantTable(grantee, this.sessions, ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    grantTable(grantee, this.events, ['dynamodb:GetItem', 'dynamodb:PutItem']);
    grantKeyViaDynamoDb(grantee, this.key);
  }

  /** What DynamoDbAuditQuery calls: a session by key, events by Query on the table and its indexes. */
  grantAuditRead(grantee: IGrantable): void {
    grantTable(grantee, this.sessions, ['dynamodb:GetItem']);
    grantTable(grantee, this.events, ['dynamodb:Query'], EVENT_INDEXES);
    grantKeyViaDynamoDb(grantee, this.key);
  }

  /** Approval events only (the notifier records where it posted): conditional PutItem, as above. */
  grantApprovalEventWrite(grantee: IGrantable): void {
    grantTable(grantee, this.events, ['dynamodb:GetItem', 'dynamodb:PutItem']);
    grantKeyViaDynamoDb(grantee, this.key);
  }

  /**
   * DynamoDbApprovalStore (create, transitions, retry-key and status queries) and the principals
   * directory (read, conditional updates, lookup by verified email; never a delete).
   */
  grantApprovalsReadWrite(grantee: IGrantable): void {
    grantTable(
      grantee,
      this.approvals,
      ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
      APPROVAL_INDEXES,
    );
    grantTable(
      grantee,
      this.principals,
      ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      [EMAIL_INDEX],
    );
    grantKeyViaDynamoDb(grantee, this.key);
  }

  /** The notifier: read an approval and record its Slack message (GetItem, UpdateItem; no queries). */
  grantApprovalSlackUpdate(grantee: IGrantable): void {
    grantTable(grantee, this.approvals, ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    grantKeyViaDynamoDb(grantee, this.key);
  }

  /** DynamoDbPolicyStore: the current policy (GetItem), new versions (PutItem), history (Query). */
  grantPolicies(grantee: IGrantable): void {
    grantTable(grantee, this.policies, ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']);
    grantKeyViaDynamoDb(grantee, this.key);
  }
}
