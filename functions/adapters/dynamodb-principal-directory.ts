/**
 * PrincipalDirectory over DynamoDB (table <prefix>principals, PK email, lower-cased): what pgwarden
 * last saw in a verified OIDC token of each person. Slack knows people by email only, so a Slack
 * click is mapped to identity groups through this table.
 */
import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { KnownPrincipal, PrincipalDirectory } from '../../shared/approvals/ports.ts';
import { orStoreUnavailable } from './dynamodb-common.ts';

const STORE = 'the principals directory';

export class DynamoDbPrincipalDirectory implements PrincipalDirectory {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async remember(principal: Omit<KnownPrincipal, 'seenAt'>, now: Date): Promise<void> {
    await orStoreUnavailable(STORE, () =>
      this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: {
            email: { S: principal.email.toLowerCase() },
            name: { S: principal.name },
            subject: { S: principal.subject },
            issuer: { S: principal.issuer },
            groups: { L: principal.groups.map((group) => ({ S: group })) },
            seenAt: { S: now.toISOString() },
          },
        }),
      ),
    );
  }

  async lookup(email: string): Promise<KnownPrincipal | undefined> {
    const output = await orStoreUnavailable(STORE, () =>
      this.client.send(
        new GetItemCommand({
          TableName: this.table,
          Key: { email: { S: email.toLowerCase() } },
          ConsistentRead: true,
        }),
      ),
    );
    const item = output.Item;
    if (item === undefined) return undefined;
    return {
      email: item['email']?.S ?? '',
      name: item['name']?.S ?? '',
      subject: item['subject']?.S ?? '',
      issuer: item['issuer']?.S ?? '',
      groups: (item['groups']?.L ?? []).map((group) => group.S ?? ''),
      seenAt: item['seenAt']?.S ?? '',
    };
  }
}
