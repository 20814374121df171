/**
 * PrincipalDirectory over DynamoDB: table <prefix>identities, PK id = `issuer#subject`
 * (shared/identity.ts principalKey), GSI by_email on `emailKey` (the verified email, lower-cased).
 * Every verified token updates its principal; its groups replace the stored ones only when the
 * token is not older than what is stored (a conditional write), so a stale token cannot bring back
 * a group that a newer token or an administrator took away. `disabled` is written only by change().
 */
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type {
  KnownPrincipal,
  PrincipalChange,
  PrincipalDirectory,
  PrincipalFacts,
} from '../../shared/approvals/ports.ts';
import { type PrincipalId, principalKey } from '../../shared/identity.ts';
import { conditionalWrite, orStoreUnavailable } from './dynamodb-common.ts';

export const EMAIL_INDEX = 'by_email';
const STORE = 'the principals directory';
/** more principals than this under one email is a misconfiguration; the caller refuses anyway */
const MAX_EMAIL_MATCHES = 10;

export class DynamoDbPrincipalDirectory implements PrincipalDirectory {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async remember(facts: PrincipalFacts, asOf: Date, now: Date): Promise<void> {
    const values: Record<string, AttributeValue> = {
      ':issuer': { S: facts.issuer },
      ':subject': { S: facts.subject },
      ':name': { S: facts.name },
      ':actor': { S: facts.actor },
      ':seenAt': { S: now.toISOString() },
      ':groups': { L: facts.groups.map((group) => ({ S: group })) },
      ':asOf': { S: asOf.toISOString() },
    };
    const sets = [
      'issuer = :issuer',
      'subject = :subject',
      '#name = :name',
      // once seen as a person, a principal stays one (an agent token of theirs does not change it)
      facts.actor === 'person' ? 'actor = :actor' : 'actor = if_not_exists(actor, :actor)',
      'seenAt = :seenAt',
      '#groups = :groups',
      'groupsAsOf = :asOf',
    ];
    if (facts.email !== undefined) {
      values[':email'] = { S: facts.email };
      values[':emailKey'] = { S: facts.email.toLowerCase() };
      sets.push('email = :email', 'emailKey = :emailKey');
    }
    const fresh = await conditionalWrite(STORE, () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: this.key(facts),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_not_exists(groupsAsOf) OR groupsAsOf <= :asOf',
          ExpressionAttributeNames: { '#name': 'name', '#groups': 'groups' },
          ExpressionAttributeValues: values,
        }),
      ),
    );
    if (fresh) return;
    // An older token than what is known: it only says the principal was seen.
    await orStoreUnavailable(STORE, () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: this.key(facts),
          UpdateExpression: 'SET seenAt = :seenAt',
          ExpressionAttributeValues: { ':seenAt': { S: now.toISOString() } },
        }),
      ),
    );
  }

  async get(id: PrincipalId): Promise<KnownPrincipal | undefined> {
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new GetItemCommand({ TableName: this.table, Key: this.key(id), ConsistentRead: true }),
      ),
    );
    return output.Item === undefined ? undefined : fromItem(output.Item);
  }

  async findByEmail(email: string): Promise<KnownPrincipal[]> {
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: EMAIL_INDEX,
          KeyConditionExpression: 'emailKey = :emailKey',
          ExpressionAttributeValues: { ':emailKey': { S: email.toLowerCase() } },
          Limit: MAX_EMAIL_MATCHES,
        }),
      ),
    );
    return (output.Items ?? []).map(fromItem);
  }

  async change(id: PrincipalId, change: PrincipalChange, by: string, now: Date): Promise<KnownPrincipal> {
    const at = now.toISOString();
    const values: Record<string, AttributeValue> = {
      ':issuer': { S: id.issuer },
      ':subject': { S: id.subject },
      ':person': { S: 'person' },
      ':at': { S: at },
    };
    const sets = [
      'issuer = :issuer',
      'subject = :subject',
      '#name = if_not_exists(#name, :subject)',
      'actor = if_not_exists(actor, :person)',
      'seenAt = if_not_exists(seenAt, :at)',
    ];
    const removes: string[] = [];
    if (change.groups !== undefined) {
      values[':groups'] = { L: change.groups.map((group) => ({ S: group })) };
      sets.push('#groups = :groups', 'groupsAsOf = :at');
    } else {
      values[':none'] = { L: [] };
      sets.push('#groups = if_not_exists(#groups, :none)', 'groupsAsOf = if_not_exists(groupsAsOf, :at)');
    }
    if (change.disabled === true) {
      values[':disabled'] = {
        M: {
          at: { S: at },
          by: { S: by },
          ...(change.reason === undefined ? {} : { reason: { S: change.reason } }),
        },
      };
      sets.push('disabled = :disabled');
    } else if (change.disabled === false) {
      removes.push('disabled');
    }
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: this.key(id),
          UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ExpressionAttributeNames: { '#name': 'name', '#groups': 'groups' },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      ),
    );
    return fromItem(output.Attributes ?? {});
  }

  private key(id: PrincipalId): Record<string, AttributeValue> {
    return { id: { S: principalKey(id) } };
  }
}

function fromItem(item: Record<string, AttributeValue>): KnownPrincipal {
  const disabled = item['disabled']?.M;
  return {
    issuer: item['issuer']?.S ?? '',
    subject: item['subject']?.S ?? '',
    name: item['name']?.S ?? '',
    ...(item['email']?.S === undefined ? {} : { email: item['email'].S }),
    actor: item['actor']?.S === 'agent' ? 'agent' : 'person',
    groups: (item['groups']?.L ?? []).map((group) => group.S ?? ''),
    groupsAsOf: item['groupsAsOf']?.S ?? '',
    seenAt: item['seenAt']?.S ?? '',
    ...(disabled === undefined
      ? {}
      : {
          disabled: {
            at: disabled['at']?.S ?? '',
            by: disabled['by']?.S ?? '',
            ...(disabled['reason']?.S === undefined ? {} : { reason: disabled['reason'].S }),
          },
        }),
  };
}
