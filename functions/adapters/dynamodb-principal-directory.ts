/**
 * PrincipalDirectory over DynamoDB (table <prefix>principals, PK email, lower-cased): what pgwarden
 * last saw in a verified OIDC token of each person. Slack knows people by email only, so a Slack
 * click is mapped to identity groups through this table.
 */
import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { KnownPrincipal, PrincipalDirectory } from '../../shared/approvals/ports.ts';
import { PgWardenError } from '../../shared/errors.ts';

export class DynamoDbPrincipalDirectory implements PrincipalDirectory {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  async remember(principal: Omit<KnownPrincipal, 'seenAt'>, now: Date): Promise<void> {
    await translated(() =>
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
    const output = await translated(() =>
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

async function translated<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    throw new PgWardenError(
      'STORE_UNAVAILABLE',
      `the principals directory is unavailable (${name}: ${message})`,
      {
        cause: error,
      },
    );
  }
}
