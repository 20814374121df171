import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalDynamo } from '../../../scripts/local/dynamodb.ts';

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-dynamo-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const client = (endpoint: string) =>
  new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });

describe('startLocalDynamo', () => {
  it('serves the DynamoDB API on loopback and keeps data on disk across restarts', async () => {
    const first = await startLocalDynamo({ dataDir });
    expect(first.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const db = client(first.endpoint);
    await db.send(
      new CreateTableCommand({
        TableName: 'local-test',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const described = await db.send(new DescribeTableCommand({ TableName: 'local-test' }));
    expect(described.Table?.TableStatus).toBe('ACTIVE');
    await db.send(new PutItemCommand({ TableName: 'local-test', Item: { pk: { S: 'a' }, v: { N: '1' } } }));
    db.destroy();
    await first.close();

    const second = await startLocalDynamo({ dataDir });
    const again = client(second.endpoint);
    const item = await again.send(new GetItemCommand({ TableName: 'local-test', Key: { pk: { S: 'a' } } }));
    expect(item.Item?.['v']).toEqual({ N: '1' });
    again.destroy();
    await second.close();
  });

  it('runs in memory without a data directory', async () => {
    const dynamo = await startLocalDynamo();
    const db = client(dynamo.endpoint);
    const tables = await db.send(new DescribeTableCommand({ TableName: 'nope' })).catch((e: Error) => e.name);
    expect(tables).toBe('ResourceNotFoundException');
    db.destroy();
    await dynamo.close();
  });
});
