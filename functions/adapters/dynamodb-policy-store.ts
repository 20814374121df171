/**
 * PolicyStore over DynamoDB. Table `<prefix>policies`, PK `policy` (one partition, `main`), SK
 * `version`:
 * - `VERSION#<seq, 12 digits>`: one item per stored version (text, document, who and when), written
 *   with attribute_not_exists, so two concurrent PUTs can never take the same sequence number: the
 *   loser re-reads the latest and takes the next one;
 * - `CURRENT`: a copy of the current version, replaced only by a higher sequence number (conditional
 *   write), so concurrent PUTs cannot leave an older version current, and reading the current
 *   policy is one GetItem.
 */
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/client-dynamodb';
import { PgWardenError } from '../../shared/errors.ts';
import { validatePolicy } from '../../shared/policy/parse-policy.ts';
import type {
  NewPolicyVersion,
  PolicyStore,
  PolicyVersionSummary,
  StoredPolicy,
} from '../../shared/policy/stored.ts';
import { conditionalWrite, ensureTables, onDemandTable, orStoreUnavailable } from './dynamodb-common.ts';

export function policyTableName(prefix: string): string {
  return `${prefix}policies`;
}

const STORE = 'the policy store';
const PARTITION = 'main';
const CURRENT = 'CURRENT';
const VERSION_PREFIX = 'VERSION#';
/** concurrent PUTs each retry on a lost race; this many losses in a row means something is wrong */
const MAX_ATTEMPTS = 20;

const versionKey = (seq: number) => `${VERSION_PREFIX}${String(seq).padStart(12, '0')}`;
const versionLabel = (seq: number) => `v${seq}`;

export class DynamoDbPolicyStore implements PolicyStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async current(): Promise<StoredPolicy | undefined> {
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { policy: { S: PARTITION }, version: { S: CURRENT } },
          ConsistentRead: true,
        }),
      ),
    );
    return output.Item ? storedPolicy(output.Item) : undefined;
  }

  async put(next: NewPolicyVersion): Promise<StoredPolicy> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const seq = (await this.latestSeq()) + 1;
      const stored: StoredPolicy = {
        version: versionLabel(seq),
        policy: { ...next.policy, version: versionLabel(seq) },
        text: next.text,
        declaredVersion: next.policy.version,
        storedAt: next.storedAt,
        storedBy: next.storedBy,
      };
      const item = itemOf(stored, seq);
      const tookSeq = await conditionalWrite(STORE, () =>
        this.client.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...item, version: { S: versionKey(seq) } },
            ConditionExpression: 'attribute_not_exists(#v)',
            ExpressionAttributeNames: { '#v': 'version' },
          }),
        ),
      );
      if (!tookSeq) continue; // another PUT took seq
      // When this write loses, a PUT that started later already made its (newer) version current:
      // ours stays in history.
      await conditionalWrite(STORE, () =>
        this.client.send(
          new PutItemCommand({
            TableName: this.table,
            Item: { ...item, version: { S: CURRENT } },
            ConditionExpression: 'attribute_not_exists(seq) OR seq < :seq',
            ExpressionAttributeValues: { ':seq': { N: String(seq) } },
          }),
        ),
      );
      return stored;
    }
    throw new PgWardenError(
      'STORE_UNAVAILABLE',
      `the policy was not stored: ${MAX_ATTEMPTS} concurrent changes won the race first; try again`,
    );
  }

  async history(limit: number): Promise<PolicyVersionSummary[]> {
    const output = await this.newestVersions(limit);
    return (output.Items ?? []).map((item) => {
      const { policy, text: _text, ...summary } = storedPolicy(item);
      return { ...summary, rules: policy.rules.length };
    });
  }

  private async latestSeq(): Promise<number> {
    const output = await this.newestVersions(1, { ConsistentRead: true, ProjectionExpression: 'seq' });
    const seq = output.Items?.[0]?.['seq']?.N;
    return seq === undefined ? 0 : Number(seq);
  }

  /** The stored versions (not CURRENT), newest first. */
  private newestVersions(
    limit: number,
    read: Pick<QueryCommandInput, 'ConsistentRead' | 'ProjectionExpression'> = {},
  ) {
    return orStoreUnavailable(STORE, () =>
      this.client.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#p = :p AND begins_with(#v, :prefix)',
          ExpressionAttributeNames: { '#p': 'policy', '#v': 'version' },
          ExpressionAttributeValues: { ':p': { S: PARTITION }, ':prefix': { S: VERSION_PREFIX } },
          ScanIndexForward: false,
          Limit: limit,
          ...read,
        }),
      ),
    );
  }
}

function itemOf(stored: StoredPolicy, seq: number): Record<string, AttributeValue> {
  return {
    policy: { S: PARTITION },
    seq: { N: String(seq) },
    label: { S: stored.version },
    text: { S: stored.text },
    document: { S: JSON.stringify(stored.policy) },
    declaredVersion: { S: stored.declaredVersion },
    storedAt: { S: stored.storedAt },
    storedBy: { S: stored.storedBy },
  };
}

/** Stored documents are validated again on the way out: the table is not trusted blindly. */
function storedPolicy(item: Record<string, AttributeValue>): StoredPolicy {
  const label = item['label']?.S;
  const document = item['document']?.S;
  if (label === undefined || document === undefined)
    throw new PgWardenError('STORE_UNAVAILABLE', 'a stored policy item lacks its label or document');
  let policy: ReturnType<typeof validatePolicy>;
  try {
    policy = validatePolicy(JSON.parse(document));
  } catch (error) {
    throw new PgWardenError('STORE_UNAVAILABLE', `stored policy ${label} is not a valid policy`, {
      cause: error,
    });
  }
  return {
    version: label,
    policy: { ...policy, version: label },
    text: item['text']?.S ?? '',
    declaredVersion: item['declaredVersion']?.S ?? '',
    storedAt: item['storedAt']?.S ?? '',
    storedBy: item['storedBy']?.S ?? '',
  };
}

/** Creates the table (on-demand) when missing and waits until it is ACTIVE: local mode and tests. */
export async function ensurePolicyTable(client: DynamoDBClient, table: string): Promise<void> {
  await ensureTables(client, STORE, [
    onDemandTable({ name: table, partitionKey: 'policy', sortKey: 'version' }),
  ]);
}
