/** Counts items in an audit table (Scan, Select COUNT), giving up after a time budget. */
import { type AttributeValue, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';

export interface TableCount {
  count: number;
  /** false when the budget ran out: `count` is then a lower bound */
  complete: boolean;
  seconds: number;
}

export async function countItems(
  client: DynamoDBClient,
  table: string,
  budgetMs: number,
): Promise<TableCount> {
  const started = Date.now();
  let count = 0;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: table, Select: 'COUNT', ExclusiveStartKey: start }),
    );
    count += page.Count ?? 0;
    start = page.LastEvaluatedKey;
  } while (start !== undefined && Date.now() - started < budgetMs);
  return { count, complete: start === undefined, seconds: (Date.now() - started) / 1000 };
}
