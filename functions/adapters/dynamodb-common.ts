/**
 * What every DynamoDB adapter does the same way: turning SDK failures into STORE_UNAVAILABLE (each
 * store names itself in the message), conditional writes that report a lost race as `false`, and
 * creating its tables for local mode and tests (on-demand, string keys, indexes projecting ALL).
 */
import {
  type AttributeDefinition,
  ConditionalCheckFailedException,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  ResourceInUseException,
  ResourceNotFoundException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { PgWardenError } from '../../shared/errors.ts';

/**
 * STORE_UNAVAILABLE for a failed SDK call; `store` names the store in the message ("the audit
 * store"). A PgWardenError passes through unchanged: it already says what went wrong.
 */
export function storeUnavailable(store: string, error: unknown): PgWardenError {
  if (error instanceof PgWardenError) return error;
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  return new PgWardenError('STORE_UNAVAILABLE', `${store} is unavailable (${name}: ${message})`, {
    cause: error,
  });
}

/** Runs an SDK call and turns whatever it throws into STORE_UNAVAILABLE naming `store`. */
export async function orStoreUnavailable<T>(store: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storeUnavailable(store, error);
  }
}

/**
 * Runs a write with a ConditionExpression: false when the condition failed (someone else changed the
 * item first), true when it was written; any other failure is STORE_UNAVAILABLE naming `store`.
 */
export async function conditionalWrite(store: string, call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw storeUnavailable(store, error);
  }
}

/** A table or index key: a partition key and, when given, a sort key; every key attribute is a string. */
export interface KeyLayout {
  partitionKey: string;
  sortKey?: string;
}

export interface TableLayout extends KeyLayout {
  name: string;
  /** global secondary indexes, each projecting every attribute */
  indexes?: Array<KeyLayout & { name: string }>;
}

/** The CreateTable input for an on-demand table of this layout (the CDK stack declares the same). */
export function onDemandTable(layout: TableLayout): CreateTableCommandInput {
  const indexes = layout.indexes ?? [];
  const keyAttributes = new Set<string>();
  for (const key of [layout, ...indexes]) {
    keyAttributes.add(key.partitionKey);
    if (key.sortKey !== undefined) keyAttributes.add(key.sortKey);
  }
  const attributeDefinitions: AttributeDefinition[] = [...keyAttributes].map((AttributeName) => ({
    AttributeName,
    AttributeType: 'S',
  }));
  const globalSecondaryIndexes: GlobalSecondaryIndex[] = indexes.map((index) => ({
    IndexName: index.name,
    KeySchema: keySchema(index),
    Projection: { ProjectionType: 'ALL' },
  }));
  return {
    TableName: layout.name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: attributeDefinitions,
    KeySchema: keySchema(layout),
    ...(globalSecondaryIndexes.length > 0 && { GlobalSecondaryIndexes: globalSecondaryIndexes }),
  };
}

function keySchema(key: KeyLayout): KeySchemaElement[] {
  return [
    { AttributeName: key.partitionKey, KeyType: 'HASH' },
    ...(key.sortKey === undefined ? [] : [{ AttributeName: key.sortKey, KeyType: 'RANGE' as const }]),
  ];
}

/**
 * Creates the tables when missing and waits until they are ACTIVE; failures are STORE_UNAVAILABLE
 * naming `store`. For local mode and tests; deployed tables come from the CDK stack.
 */
export async function ensureTables(
  client: DynamoDBClient,
  store: string,
  definitions: CreateTableCommandInput[],
): Promise<void> {
  await Promise.all(
    definitions.map((definition) => orStoreUnavailable(store, () => ensureTable(client, definition))),
  );
}

async function ensureTable(client: DynamoDBClient, definition: CreateTableCommandInput): Promise<void> {
  const TableName = definition.TableName!;
  try {
    await client.send(new DescribeTableCommand({ TableName }));
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    try {
      await client.send(new CreateTableCommand(definition));
    } catch (createError) {
      // Another process (a second test worker, a parallel start) created it first: fine.
      if (!(createError instanceof ResourceInUseException)) throw createError;
    }
  }
  // The default waiter delay (20 s) is tuned for AWS; local stand-ins are ready in milliseconds.
  await waitUntilTableExists({ client, minDelay: 1, maxDelay: 5, maxWaitTime: 120 }, { TableName });
}
