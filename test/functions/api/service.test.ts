import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../../functions/adapters/dynamodb-audit-store.ts';
import { createOidcVerifier } from '../../../functions/adapters/oidc-verifier.ts';
import { createControlPlaneService } from '../../../functions/api/service.ts';
import type { ControlPlane, OpenSessionRequest } from '../../../shared/control-plane.ts';
import { DEFAULT_POLICY_VERSION } from '../../../shared/decide.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import type { AuditEvent } from '../../../shared/events.ts';
import type { AuditStore } from '../../../shared/ports.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { decisionBody } from '../../fakes/control-plane.ts';
import { type LocalDynamoDb, queryPartition, startDynamoDb } from '../../fakes/dynamodb.ts';
import { sessionOpened, statement } from '../../fakes/events.ts';
import { startTestIssuer, type TestIssuer } from '../../fakes/oidc-issuer.ts';

const tables = tableNames('svc-');
const roles = [
  { role: 'admin', groups: ['admins'] },
  { role: 'developer', groups: ['engineering'] },
  { role: 'analyst', groups: ['data'] },
];
const now = new Date('2025-03-01T12:00:00.000Z');

let idp: TestIssuer;
let db: LocalDynamoDb;
let store: DynamoDbAuditStore;

beforeAll(async () => {
  [idp, db] = await Promise.all([startTestIssuer(), startDynamoDb()]);
  await ensureAuditTables(db.client, tables);
  store = new DynamoDbAuditStore(db.client, tables);
});
afterAll(async () => {
  await Promise.all([idp.stop(), db.stop()]);
});

function service(overrides: { store?: AuditStore } = {}): ControlPlane {
  let counter = 0;
  return createControlPlaneService({
    verifier: createOidcVerifier({ issuer: idp.issuer, audience: idp.audience }),
    store: overrides.store ?? store,
    roles,
    now: () => now,
    newId: () => `id-${++counter}-${Math.random().toString(36).slice(2, 8)}`,
  });
}

function request(token: string, overrides: Partial<OpenSessionRequest> = {}): OpenSessionRequest {
  return {
    token,
    user: 'ada@example.com',
    database: 'app',
    applicationName: 'psql',
    clientAddress: '10.0.0.7',
    proxyId: 'proxy-a',
    ...overrides,
  };
}

async function authFailures(): Promise<Array<Record<string, string | undefined>>> {
  const items = await queryPartition(db.client, tables.events, 'AUTHFAIL#2025-03-01');
  return items.map((item) => ({ user: item['user']?.S, code: item['code']?.S, message: item['message']?.S }));
}

describe('openSession', () => {
  it('admits a mapped principal, returns its roles in mapping order and records the session', async () => {
    const token = await idp.sign({ email: 'Ada@Example.com', groups: ['data', 'engineering'], jti: 'tok-1' });
    const opened = await service().openSession(request(token));

    expect(opened.role).toBe('developer');
    expect(opened.roles).toEqual(['developer', 'analyst']);
    expect(opened.principal).toMatchObject({ name: 'Ada@Example.com', subject: 'user-1', actor: 'person' });

    const { Item } = await db.client.send(
      new GetItemCommand({ TableName: tables.sessions, Key: { sessionId: { S: opened.sessionId } } }),
    );
    expect(Item?.['principal']?.S).toBe('Ada@Example.com');
    expect(Item?.['role']?.S).toBe('developer');
    expect(Item?.['tokenId']?.S).toBe('tok-1');
    expect(Item?.['openedAt']?.S).toBe(now.toISOString());
    expect(Item?.['applicationName']?.S).toBe('psql');
    expect(Item?.['upstreamUser']).toBeUndefined();
  });

  it('refuses a startup user that is not the token holder, and records the attempt', async () => {
    const token = await idp.sign({ email: 'ada@example.com', groups: ['engineering'] });
    const error = await service()
      .openSession(request(token, { user: 'grace@example.com' }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgWardenError);
    expect((error as PgWardenError).code).toBe('AUTH_USER_MISMATCH');
    expect(await authFailures()).toContainEqual(
      expect.objectContaining({ user: 'grace@example.com', code: 'AUTH_USER_MISMATCH' }),
    );
  });

  it('refuses a principal none of whose groups maps to a role', async () => {
    const token = await idp.sign({ email: 'eve@example.com', groups: ['marketing'] });
    await expect(service().openSession(request(token, { user: 'eve@example.com' }))).rejects.toMatchObject({
      code: 'AUTH_NO_ROLE',
    });
    expect(await authFailures()).toContainEqual(
      expect.objectContaining({ user: 'eve@example.com', code: 'AUTH_NO_ROLE' }),
    );
  });

  it('records an invalid token without storing the token', async () => {
    const token = await idp.sign({ email: 'bob@example.com', exp: Math.floor(now.getTime() / 1000) - 3600 });
    await expect(service().openSession(request(token, { user: 'bob@example.com' }))).rejects.toMatchObject({
      code: 'AUTH_TOKEN_EXPIRED',
    });
    const failure = (await authFailures()).find((f) => f.user === 'bob@example.com');
    expect(failure?.code).toBe('AUTH_TOKEN_EXPIRED');
    expect(failure?.message).not.toContain(token);
  });

  it('still reports the auth error when the failure cannot be recorded', async () => {
    const failingStore: AuditStore = {
      put: async () => {
        throw new PgWardenError('STORE_UNAVAILABLE', 'down');
      },
    };
    await expect(service({ store: failingStore }).openSession(request(''))).rejects.toMatchObject({
      code: 'AUTH_TOKEN_MISSING',
    });
  });

  it('opens no session when it cannot be recorded', async () => {
    const failingStore: AuditStore = {
      put: async () => {
        throw new PgWardenError('STORE_UNAVAILABLE', 'down');
      },
    };
    const token = await idp.sign({ email: 'ada@example.com', groups: ['engineering'] });
    await expect(service({ store: failingStore }).openSession(request(token))).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
  });
});

describe('decide', () => {
  const decision = decisionBody;

  it('answers synchronously, by the default policy pack', async () => {
    await loadSqlParser();
    const answer = service().decide(decision);
    expect(answer).not.toBeInstanceOf(Promise);
    expect(answer).toMatchObject({ action: 'allow', policyVersion: DEFAULT_POLICY_VERSION });
    const drop = service().decide({
      ...decision,
      statement: { text: 'drop table orders', protocol: 'simple' },
    });
    expect(drop).toMatchObject({ action: 'require_approval' });
  });
});

describe('ingest', () => {
  it('stores valid events', async () => {
    await service().ingest([sessionOpened({ sessionId: 'ing-1' }), statement(1, { sessionId: 'ing-1' })]);
    expect(await queryPartition(db.client, tables.events, 'ing-1')).toHaveLength(1);
  });

  it('refuses a malformed event, naming the field, and stores nothing of the batch', async () => {
    const puts: AuditEvent[][] = [];
    const recording: AuditStore = {
      put: async (events) => {
        puts.push([...events]);
      },
    };
    const broken = { ...statement(2), seq: 0 };
    await expect(service({ store: recording }).ingest([statement(1), broken])).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('events[1].seq'),
    });
    expect(puts).toEqual([]);
  });

  it('refuses an unknown event type', async () => {
    const unknown = { type: 'session_paused', eventId: 'x' } as unknown as AuditEvent;
    await expect(service().ingest([unknown])).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
