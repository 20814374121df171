/** The policy store against a real DynamoDB API (dynalite): versions, the current pointer, races. */
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbPolicyStore,
  ensurePolicyTable,
  policyTableName,
} from '../../../functions/adapters/dynamodb-policy-store.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';

let dynamo: LocalDynamoDb;
let table = '';
let n = 0;

beforeAll(async () => {
  dynamo = await startDynamoDb();
});
afterAll(async () => {
  await dynamo.stop();
});

async function freshStore(): Promise<DynamoDbPolicyStore> {
  table = policyTableName(`t${++n}_`);
  await ensurePolicyTable(dynamo.client, table);
  await ensurePolicyTable(dynamo.client, table); // twice: idempotent
  return new DynamoDbPolicyStore(dynamo.client, table);
}

const text = (label: string, rules = 0) =>
  `# ${label}\nversion: ${label}\ndefault: { action: allow }\nrules:${rules === 0 ? ' []' : ''}\n${Array.from(
    { length: rules },
    (_, i) => `  - id: r${i}\n    match: { kinds: [drop] }\n    action: deny\n`,
  ).join('')}`;

const put = (store: DynamoDbPolicyStore, label: string, rules = 0) => {
  const t = text(label, rules);
  return store.put({
    text: t,
    policy: parsePolicy(t),
    storedBy: 'admin@example.com',
    storedAt: new Date().toISOString(),
  });
};

describe('DynamoDbPolicyStore', () => {
  it('has no current policy until one is stored', async () => {
    const store = await freshStore();
    expect(await store.current()).toBeUndefined();
    expect(await store.history(10)).toEqual([]);
  });

  it('assigns increasing versions, keeps the text and the declared version, and reads back the current one', async () => {
    const store = await freshStore();
    const first = await put(store, 'mine-1', 1);
    const second = await put(store, 'mine-1', 2); // same declared version: still a new version
    expect(first.version).toBe('v1');
    expect(second.version).toBe('v2');
    const current = await store.current();
    expect(current).toMatchObject({
      version: 'v2',
      declaredVersion: 'mine-1',
      storedBy: 'admin@example.com',
      text: text('mine-1', 2),
    });
    expect(current?.policy.version).toBe('v2');
    expect(current?.policy.rules).toHaveLength(2);
    const history = await store.history(10);
    expect(history.map((h) => [h.version, h.rules])).toEqual([
      ['v2', 2],
      ['v1', 1],
    ]);
    expect(await store.history(1)).toHaveLength(1);
  });

  it('gives concurrent PUTs distinct versions and leaves the newest one current', async () => {
    const store = await freshStore();
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => put(store, `c${i}`, i)));
    const versions = results.map((r) => r.version).sort();
    expect(new Set(versions).size).toBe(6);
    expect(versions).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6']);
    const current = await store.current();
    expect(current?.version).toBe('v6');
    // the current copy is exactly the v6 item, not a mix of two PUTs
    const v6 = results.find((r) => r.version === 'v6');
    expect(current?.declaredVersion).toBe(v6?.declaredVersion);
    expect(current?.text).toBe(v6?.text);
    expect(current?.policy.rules).toHaveLength(v6?.policy.rules.length ?? -1);
  });

  it('never moves the current pointer back to an older version', async () => {
    const store = await freshStore();
    await put(store, 'a');
    await put(store, 'b');
    // a slow PUT of v1 that lost the race tries to write the pointer late: the condition refuses it
    await expect(
      dynamo.client.send(
        new PutItemCommand({
          TableName: table,
          Item: { policy: { S: 'main' }, version: { S: 'CURRENT' }, seq: { N: '1' } },
          ConditionExpression: 'attribute_not_exists(seq) OR seq < :seq',
          ExpressionAttributeValues: { ':seq': { N: '1' } },
        }),
      ),
    ).rejects.toThrow(/conditional/i);
    expect((await store.current())?.version).toBe('v2');
  });

  it('refuses a stored document that is not a valid policy (the table is not trusted blindly)', async () => {
    const store = await freshStore();
    await dynamo.client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          policy: { S: 'main' },
          version: { S: 'CURRENT' },
          seq: { N: '1' },
          label: { S: 'v1' },
          document: { S: JSON.stringify({ version: 'x', default: { action: 'maybe' }, rules: [] }) },
        },
      }),
    );
    await expect(store.current()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });

  it('reports an unreachable DynamoDB as STORE_UNAVAILABLE', async () => {
    const store = new DynamoDbPolicyStore(dynamo.client, 'no_such_table');
    await expect(store.current()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  });
});
