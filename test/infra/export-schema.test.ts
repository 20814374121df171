/**
 * The Glue tables over the DynamoDB exports must describe what the audit store really writes:
 * every event kind, with every optional field set, goes through DynamoDbAuditStore into a client
 * that records the items, and the attribute names and DynamoDB types are compared with the schema.
 */

import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { DynamoDbAuditStore } from '../../functions/adapters/dynamodb-audit-store.ts';
import { EVENTS_ITEM_TYPE, SESSIONS_ITEM_TYPE } from '../../infra/constructs/export-schema.ts';
import {
  canonicalJson,
  genesisHash,
  headHashOf,
  linkHash,
  splitStatement,
} from '../../shared/audit-chain.ts';
import type { ApprovalEvent, StatementEvent } from '../../shared/events.ts';
import { authFailed, sessionClosed, sessionOpened, statement } from '../fakes/events.ts';

type Written = Map<string, string>; // attribute name (lower case, as Glue sees it) → DynamoDB type

/** A list of maps is described by its members' attributes (`LM{name:S,…}`), as the schema does. */
function record(into: Written, name: string, value: AttributeValue): void {
  const fields = value as unknown as Record<string, unknown>;
  const type = Object.keys(fields).find((key) => fields[key] !== undefined)!;
  const first = value.L?.[0];
  if (first?.M !== undefined) {
    const members: Written = new Map();
    for (const [member, memberValue] of Object.entries(first.M)) record(members, member, memberValue);
    into.set(name.toLowerCase(), `LM{${[...members].map(([n, t]) => `${n}:${t}`).join(',')}}`);
    return;
  }
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
          record(sessions, name, values[placeholder === '#ttl' ? ':ttl' : placeholder.replace('#f', ':v')]!);
        }
        return {};
      }
      if (command instanceof PutItemCommand) {
        for (const [name, value] of Object.entries(command.input.Item!)) record(events, name, value);
        return {};
      }
      throw new Error(`unexpected ${String(command)}`);
    },
  } as unknown as DynamoDBClient;
  const long = 'x'.repeat(200 * 1024); // past the store's caps, so the *Truncated/*Bytes fields appear
  const approval: ApprovalEvent = {
    type: 'approval',
    eventId: 'evt-approval-1',
    at: '2025-03-01T10:00:30.000Z',
    approvalId: 'appr-1',
    step: 'denied',
    sessionId: 'sess-1',
    principal: 'ada@example.com',
    issuer: 'https://idp.example',
    subject: 'ada-1',
    by: 'grace@example.com',
    byIssuer: 'https://idp.example',
    bySubject: 'grace-1',
    via: 'slack',
    database: 'app',
    ruleId: 'writes-need-approval',
    fingerprint: 'fp-1',
    textHash: 'th-1',
    reason: 'not during the freeze',
    message: long,
  };
  // A retention, so the TTL attribute is written; a refused statement, so the sparse index key is.
  await new DynamoDbAuditStore(
    client,
    { sessions: 'sessions', events: 'events' },
    { retentionDays: 365 },
  ).put([
    sessionOpened({ tokenId: 'jti-1', upstreamUser: 'app_rw' }),
    sessionClosed({ upstreamUser: 'app_rw', chainLength: 1, chainHead: 'a'.repeat(64) }),
    linked(statement(2)),
    statement(1, {
      preparedName: 'p1',
      portalName: 'portal-1',
      sqlstate: '42501',
      errorMessage: long,
      text: long,
      decision: 'deny',
      outcome: 'refused',
      fingerprint: 'fp-1',
      kinds: ['update'],
      policyVersion: 'v3',
      params: ['sha256:abc', null],
      paramsMode: 'hashed',
      paramFormats: ['text', 'binary'],
      bytesToClient: 120,
      cancelled: false,
      upstreamUser: 'app_rw',
      actor: 'agent',
      issuer: 'https://idp.example',
      subject: 'ada-1',
      masked: [{ column: 'users.email', ruleId: 'mask-email', method: 'partial', values: 3, note: 'n' }],
      detected: [{ detector: 'card_number', where: 'DataRow', values: 1 }],
    }),
    approval,
    authFailed({ message: long }),
  ]);
  return { sessions, events };
}

/** A completed statement record with its chain link (the first of its session). */
function linked(event: StatementEvent): StatementEvent {
  const headHash = headHashOf(event as unknown as Record<string, unknown>);
  const tail = canonicalJson(splitStatement(event as unknown as Record<string, unknown>).tail);
  const prevHash = genesisHash(event.sessionId);
  return { ...event, headHash, chainIndex: 1, prevHash, recordHash: linkHash(1, prevHash, headHash, tail) };
}

/** `struct<name:struct<s:string>,…>` → name → DynamoDB type (lists of maps as `LM{…}`). */
function schemaAttributes(itemType: string): Written {
  const glueToDynamo: Record<string, string> = { s: 'S', n: 'N', bool: 'BOOL', l: 'L' };
  const out: Written = new Map();
  // Lists of maps first, and out of the text, so their members are not read as top-level fields.
  const flat = itemType.replace(
    /(\w+):struct<l:array<struct<m:struct<((?:\w+:struct<\w+:\w+>,?)+)>>>>/g,
    (_whole, name: string, members: string) => {
      const inner = [...members.matchAll(/(\w+):struct<(s|n|bool|l):/g)].map(
        ([, member, type]) => `${member}:${glueToDynamo[type!]}`,
      );
      out.set(name, `LM{${inner.join(',')}}`);
      return '';
    },
  );
  for (const [, name, type] of flat.matchAll(/(\w+):struct<(s|n|bool|l):/g)) {
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
