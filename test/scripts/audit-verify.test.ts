import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statementSk, toItem } from '../../functions/adapters/dynamodb-audit-layout.ts';
import { type DynamoDbAuditStore, tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import { auditCommand } from '../../scripts/cli/audit.ts';
import type { DevIssuer } from '../../scripts/local/oidc-issuer.ts';
import {
  canonicalJson,
  genesisHash,
  headHashOf,
  linkHash,
  splitStatement,
} from '../../shared/audit-chain.ts';
import type { StatementEvent } from '../../shared/events.ts';
import { type ChainedSession, chainedSession } from '../fakes/chained-session.ts';
import { type LocalDynamoDb, queryPartition } from '../fakes/dynamodb.ts';
import { sessionOpened } from '../fakes/events.ts';
import { type ApiStack, startApiStack } from '../fixtures/api-stack.ts';

const audience = 'pgwarden-verify-test';
const serviceToken = 'audit-verify-service-token-0123456789';
const prefix = 'ver-';
const tables = tableNames(prefix);
let stack: ApiStack;
let dynamo: LocalDynamoDb;
let issuer: DevIssuer;
let apiUrl = '';
let auditorToken = '';
let store: DynamoDbAuditStore;

beforeAll(async () => {
  stack = await startApiStack({ prefix, audience, serviceToken });
  ({ dynamo, issuer, apiUrl, store } = stack);
  auditorToken = await issuer.issueToken({
    email: 'audrey@example.com',
    groups: ['auditors'],
    ttlSeconds: 600,
    audience,
  });
}, 60_000);

afterAll(() => stack?.stop());

async function verify(args: string[]) {
  let out = '';
  let err = '';
  const code = await auditCommand(['verify', ...args], {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    env: { PGWARDEN_API_URL: apiUrl, PGWARDEN_TOKEN: auditorToken },
  });
  return { code, out, err };
}

async function verifyJson(sessionId: string) {
  const { code, out } = await verify(['--session', sessionId, '--json']);
  return { code, answer: JSON.parse(out) as { ok: boolean; sessions: Array<Record<string, unknown>> } };
}

/** Stores a session of `count` statements as the proxy and the API would (open, chained records, close). */
async function stored(sessionId: string, count = 5): Promise<ChainedSession> {
  const session = chainedSession(sessionId, count);
  await store.put([sessionOpened({ sessionId, eventId: `${sessionId}-open` })]);
  await store.put([...session.statements, session.close]);
  return session;
}

const key = (sessionId: string, seq: number) => ({
  sessionId: { S: sessionId },
  sk: { S: statementSk(seq) },
});

/** Overwrites a stored statement item directly in the table (what the API's grant no longer allows). */
async function overwrite(record: StatementEvent): Promise<void> {
  const fields: Record<string, unknown> = { ...record, sk: statementSk(record.seq) };
  await dynamo.client.send(new PutItemCommand({ TableName: tables.events, Item: toItem(fields) }));
}

/** A record with its own hashes recomputed after a change: a forger who knows the algorithm. */
function rehashed(record: StatementEvent, chainIndex: number, prevHash: string): StatementEvent {
  const fields = { ...record, chainIndex, prevHash } as unknown as Record<string, unknown>;
  const headHash = headHashOf(fields);
  const recordHash = linkHash(chainIndex, prevHash, headHash, canonicalJson(splitStatement(fields).tail));
  return { ...record, headHash, chainIndex, prevHash, recordHash };
}

describe('audit verify', () => {
  it('an untouched session is intact: exit 0, every link counted', async () => {
    await stored('v-intact');
    const { code, out } = await verify(['--session', 'v-intact']);
    expect(code).toBe(0);
    expect(out).toContain('v-intact: intact (5 links, 5 statement records)');
  });

  it('a changed outcome field: names the record and the expected and found hash, exit 1', async () => {
    await stored('v-field');
    await dynamo.client.send(
      new UpdateItemCommand({
        TableName: tables.events,
        Key: key('v-field', 3),
        UpdateExpression: 'SET #rows = :r',
        ExpressionAttributeNames: { '#rows': 'rows' },
        ExpressionAttributeValues: { ':r': { N: '0' } },
      }),
    );
    const { code, out } = await verify(['--session', 'v-field']);
    expect(code).toBe(1);
    expect(out).toContain('v-field: broken');
    expect(out).toMatch(/first broken link at seq 3, link 3, event v-field-e3: the record's recordHash/);
    expect(out).toMatch(/expected [0-9a-f]{64}\n {2}found {4}[0-9a-f]{64}/);
  });

  it('a changed fixed field (the statement text) breaks the head hash', async () => {
    await stored('v-text');
    await dynamo.client.send(
      new UpdateItemCommand({
        TableName: tables.events,
        Key: key('v-text', 2),
        UpdateExpression: 'SET #t = :t',
        ExpressionAttributeNames: { '#t': 'text' },
        ExpressionAttributeValues: { ':t': { S: 'select harmless' } },
      }),
    );
    const { code, answer } = await verifyJson('v-text');
    expect(code).toBe(1);
    expect(answer.sessions[0]).toMatchObject({
      status: 'broken',
      firstBreak: { seq: 2, chainIndex: 2, problem: expect.stringContaining('headHash') },
    });
  });

  it('a deleted record in the middle: the missing link is named', async () => {
    await stored('v-delete');
    await dynamo.client.send(new DeleteItemCommand({ TableName: tables.events, Key: key('v-delete', 3) }));
    const { code, answer } = await verifyJson('v-delete');
    expect(code).toBe(1);
    expect(answer.sessions[0]).toMatchObject({
      links: 2,
      firstBreak: { chainIndex: 3, problem: expect.stringContaining('link 3 is missing') },
    });
  });

  it('the last record deleted: the close no longer anchors the chain', async () => {
    await stored('v-tail');
    await dynamo.client.send(new DeleteItemCommand({ TableName: tables.events, Key: key('v-tail', 5) }));
    const { code, answer } = await verifyJson('v-tail');
    expect(code).toBe(1);
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: {
        problem: expect.stringContaining('does not anchor'),
        found: expect.stringMatching(/^4 links/),
      },
    });
  });

  it('two records reordered (each rehashed by a forger): the first swapped link is named', async () => {
    const { statements } = await stored('v-order');
    const [s2, s3] = [statements[1]!, statements[2]!];
    // swap their positions in the chain, recomputing each record's own hashes so each alone checks
    await overwrite(rehashed(s3, 2, s2.prevHash!));
    await overwrite(rehashed(s2, 3, s3.prevHash!));
    const { answer } = await verifyJson('v-order');
    expect(answer.sessions[0]).toMatchObject({
      status: 'broken',
      firstBreak: { chainIndex: 3, problem: expect.stringContaining('prevHash') },
    });
  });

  it('an inserted record claiming a link already taken', async () => {
    const { statements } = await stored('v-insert');
    const fake = rehashed(
      { ...statements[2]!, seq: 9, eventId: 'fake', text: 'select 9' },
      3,
      statements[2]!.prevHash!,
    );
    await overwrite(fake);
    const { answer } = await verifyJson('v-insert');
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: { chainIndex: 3, problem: expect.stringContaining('two records claim link 3') },
    });
  });

  it('a record appended after the close (a valid link of its own): the anchor shows it', async () => {
    const { statements } = await stored('v-append');
    const last = statements[4]!;
    await overwrite(
      rehashed({ ...last, seq: 6, eventId: 'late', text: 'delete from orders' }, 6, last.recordHash!),
    );
    const { answer } = await verifyJson('v-append');
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: {
        problem: expect.stringContaining('does not anchor'),
        found: expect.stringMatching(/^6 links/),
      },
    });
  });

  it('a forged chain (every later record rehashed after a change) is still caught by the anchor', async () => {
    const { statements } = await stored('v-forged');
    let prev = genesisHash('v-forged');
    for (const [i, record] of statements.entries()) {
      const changed = i === 1 ? { ...record, rows: 0 } : record;
      const forged = rehashed(changed, i + 1, prev);
      await overwrite(forged);
      prev = forged.recordHash!;
    }
    const { answer } = await verifyJson('v-forged');
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: { problem: expect.stringContaining('does not anchor') },
    });
  });

  it('a session nobody opened through the API (records written under a made-up id) is broken', async () => {
    const { statements, close } = chainedSession('v-madeup', 2);
    await store.put([...statements, close]);
    const { code, answer } = await verifyJson('v-madeup');
    expect(code).toBe(1);
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: { problem: expect.stringContaining('not opened through the API') },
    });
  });

  it('a session still running (no close) is open, not broken; an intent is allowed there', async () => {
    const { statements } = chainedSession('v-open', 3);
    await store.put([sessionOpened({ sessionId: 'v-open', eventId: 'v-open-open' }), ...statements]);
    const { code, out } = await verify(['--session', 'v-open']);
    expect(code).toBe(0);
    expect(out).toContain('v-open: open (3 links');
  });

  it('checks every session with statements in a time window and fails when one is broken', async () => {
    const { code, answer } = await (async () => {
      const r = await verify(['--from', '1h', '--json']);
      return {
        code: r.code,
        answer: JSON.parse(r.out) as { ok: boolean; sessions: Array<{ sessionId: string; status: string }> },
      };
    })();
    expect(code).toBe(1);
    expect(answer.ok).toBe(false);
    const byId = Object.fromEntries(answer.sessions.map((s) => [s.sessionId, s.status]));
    expect(byId).toMatchObject({ 'v-intact': 'intact', 'v-field': 'broken', 'v-open': 'open' });
  });

  it('names an unknown session with NOT_FOUND and refuses a caller outside the auditors', async () => {
    const missing = await verify(['--session', 'v-nobody']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no session v-nobody');
    const engineer = await issuer.issueToken({
      email: 'eve@example.com',
      groups: ['engineering'],
      ttlSeconds: 600,
      audience,
    });
    const response = await fetch(`${apiUrl}/v1/audit/verify?session=v-intact`, {
      headers: { authorization: `Bearer ${engineer}` },
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
  });

  it('the stored records were untouched by verification (it only reads)', async () => {
    expect(await queryPartition(dynamo.client, tables.events, 'v-intact')).toHaveLength(5);
  });
});

describe('no route rewrites or deletes the trail (every route, every method, every credential)', () => {
  it('leaves every stored item of a session as it was, and its chain intact', async () => {
    const { statements, close } = await stored('v-routes');
    const snapshot = async () => ({
      events: (await queryPartition(dynamo.client, tables.events, 'v-routes')).map((i) => canonicalJson(i)),
      session: canonicalJson(
        (
          await dynamo.client.send(
            new GetItemCommand({ TableName: tables.sessions, Key: { sessionId: { S: 'v-routes' } } }),
          )
        ).Item,
      ),
    });
    const before = await snapshot();
    const admin = await issuer.issueToken({
      email: 'root@example.com',
      groups: ['admins', 'auditors', 'reviewers'],
      ttlSeconds: 600,
      audience,
    });
    // what an attacker would send: the session's records with the outcome changed, a close with another anchor
    const changed = statements.map((s): StatementEvent => ({ ...s, outcome: 'error', rows: 0 }));
    const body = JSON.stringify({
      events: [...changed, { ...close, chainLength: 0, chainHead: genesisHash('v-routes') }],
    });
    const paths = [
      '/v1/events',
      '/v1/sessions',
      '/v1/sessions/v-routes',
      '/v1/audit/events',
      '/v1/audit/verify',
      `/v1/audit/events/${statements[0]!.eventId}`,
      '/v1/decisions',
      '/v1/approvals',
      '/v1/policies',
    ];
    const signed = localSigningFetch(serviceToken);
    const statuses: string[] = [];
    for (const path of paths) {
      for (const method of ['DELETE', 'PUT', 'PATCH', 'POST']) {
        const init = { method, headers: { 'content-type': 'application/json' }, body };
        const asProxy = await signed(`${apiUrl}${path}`, init);
        const asAdmin = await fetch(`${apiUrl}${path}`, {
          ...init,
          headers: { ...init.headers, authorization: `Bearer ${admin}` },
        });
        statuses.push(`${method} ${path} ${asProxy.status} ${asAdmin.status}`);
        // nothing answers a write to the trail with success, for either caller
        // records whose hashes no longer match: the batch is refused whole (400)
        if (path === '/v1/events' && method === 'POST') expect(asProxy.status).toBe(400);
        else
          expect(
            [asProxy.status, asAdmin.status].filter((s) => s >= 200 && s < 300),
            `${method} ${path}`,
          ).toEqual([]);
      }
    }
    expect(statuses.length).toBe(paths.length * 4);
    // the same change with every hash recomputed: well-formed, but the keys are taken (409)
    let prev = genesisHash('v-routes');
    const forged = changed.map((record, i) => {
      const link = rehashed(record, i + 1, prev);
      prev = link.recordHash!;
      return link;
    });
    const rewrite = await signed(`${apiUrl}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: forged }),
    });
    expect(rewrite.status).toBe(409);
    expect(await rewrite.json()).toMatchObject({ error: { code: 'AUDIT_CONFLICT' } });
    expect(await snapshot()).toEqual(before);
    expect((await verifyJson('v-routes')).answer.sessions[0]).toMatchObject({ status: 'intact', links: 5 });
  });

  it('a completion for a free key is accepted (refusals have no intent), but an injected one breaks the chain', async () => {
    const { statements } = await stored('v-inject');
    // someone holding the proxy's identity sends a well-formed completed record for seq 6
    const fake = rehashed(
      { ...statements[4]!, seq: 6, eventId: 'injected', text: 'select secret' },
      6,
      statements[4]!.recordHash!,
    );
    const response = await localSigningFetch(serviceToken)(`${apiUrl}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: [fake] }),
    });
    expect(response.status).toBe(200);
    const { code, answer } = await verifyJson('v-inject');
    expect(code).toBe(1);
    expect(answer.sessions[0]).toMatchObject({
      firstBreak: { problem: expect.stringContaining('does not anchor') },
    });
  });
});
