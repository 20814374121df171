/**
 * The Glue tables over the DynamoDB exports must describe what the audit store really writes:
 * every event kind, with every optional field set, goes through DynamoDbAuditStore into a client
 * that records the items, and the attribute names and DynamoDB types are compared with the schema.
 */

import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { BatchWriteItemCommand, type DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDbAuditStore } from '../../functions/adapters/dynamodb-audit-store.ts';
import { EVENTS_ITEM_TYPE, SESSIONS_ITEM_TYPE } from '../../infra/constructs/export-schema.ts';
import { authFailed, sessionClosed, sessionOpened, statement } from '../fakes/events.ts';

type Written = Map<string, string>; // attribute name (lower case, as Glue sees it) → DynamoDB type

function record(into: Written, name: string, value: AttributeValue): void {
  const fields = value as unknown as Record<string, unknown>;
  const type = Object.keys(fields).find((key) => fields[key] !== undefined)!;
  into.set(name.toLowerCase(), type);
}

async function writtenAttributes(): Promise<{ sessions: Written; events: Written }> {
  const sessions: Written = new Map([['sessionid', 'S']]); // the key, not SET by UpdateItem
  const events: Written = new Map();
  const client = {
    send: async (command: unknown) => {
      if (command instanceof UpdateItemCommand) {
        const { ExpressionAttributeNames: names = {}, ExpressionAttributeValues: values = {} } =
          command.input;
        for (const [placeholder, name] of Object.entries(names)) {
          record(sessions, name, values[placeholder.replace('#f', ':v')]!);
        }
        return {};
      }
      if (command instanceof BatchWriteItemCommand) {
        for (const requests of Object.values(command.input.RequestItems ?? {})) {
          for (const request of requests) {
            for (const [name, value] of Object.entries(request.PutRequest!.Item!))
              record(events, name, value);
          }
        }
        return { UnprocessedItems: {} };
      }
      throw new Error(`unexpected ${String(command)}`);
    },
  } as unknown as DynamoDBClient;
  const long = 'x'.repeat(200 * 1024); // past the store's caps, so the *Truncated/*Bytes fields appear
  await new DynamoDbAuditStore(client, { sessions: 'sessions', events: 'events' }).put([
    sessionOpened({ tokenId: 'jti-1', upstreamUser: 'app_rw' }),
    sessionClosed(),
    statement(1, { preparedName: 'p1', sqlstate: '42501', errorMessage: long, text: long }),
    authFailed({ message: long }),
  ]);
  return { sessions, events };
}

/** `struct<name:struct<s:string>,…>` → name → DynamoDB type. */
function schemaAttributes(itemType: string): Written {
  const glueToDynamo: Record<string, string> = { s: 'S', n: 'N', bool: 'BOOL', l: 'L' };
  const out: Written = new Map();
  for (const [, name, type] of itemType.matchAll(/(\w+):struct<(s|n|bool|l):/g)) {
    out.set(name!, glueToDynamo[type!]!);
  }
  return out;
}

describe('export schema', () => {
  it('describes exactly the attributes the audit store writes, with their types', async () => {
    const written = await writtenAttributes();
    expect(Object.fromEntries(schemaAttributes(SESSIONS_ITEM_TYPE))).toEqual(
      Object.fromEntries(written.sessions),
    );
    expect(Object.fromEntries(schemaAttributes(EVENTS_ITEM_TYPE))).toEqual(
      Object.fromEntries(written.events),
    );
  });
});
