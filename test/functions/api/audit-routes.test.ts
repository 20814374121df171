/**
 * The audit routes with real pieces: tokens from the dev OIDC issuer (served over HTTP, verified with
 * jose), records written by the real DynamoDB store on dynalite, the routes registered by apiRoutes
 * into the Hono app as deployed. Only auditors read; everyone else is told why.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../../functions/adapters/dynamodb-approval-store.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../../functions/adapters/dynamodb-audit-store.ts';
import { createOidcVerifier } from '../../../functions/adapters/oidc-verifier.ts';
import { createApp } from '../../../functions/api/app.ts';
import { type AccessGroups, DEFAULT_ACCESS_GROUPS } from '../../../functions/api/auth.ts';
import { apiRoutes } from '../../../functions/api/routes/index.ts';
import { createControlPlaneService } from '../../../functions/api/service.ts';
import { localSigningFetch } from '../../../proxy/aws-sigv4.ts';
import {
  createDevIssuer,
  type DevIssuer,
  issuerAlgorithm,
  readOrCreateIssuerKeys,
  signToken,
} from '../../../scripts/local/oidc-issuer.ts';
import { getFreePort } from '../../../scripts/local/postgres.ts';
import { silentLogger } from '../../../shared/logger.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';
import { sessionClosed, sessionOpened, statement } from '../../fakes/events.ts';

const audience = 'pgwarden-test';
const serviceToken = 'audit-routes-service-token-0123456789';
const prefix = 'ar-';
let dir = '';
let dynamo: LocalDynamoDb;
let issuer: DevIssuer;
let issuerServer: Server;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgwarden-audit-routes-'));
  dynamo = await startDynamoDb();
  const port = await getFreePort('127.0.0.1');
  issuer = createDevIssuer({ dataDir: dir, issuerUrl: `http://127.0.0.1:${port}/dev-oidc` });
  const root = new Hono();
  root.route('/dev-oidc', issuer.app);
  issuerServer = await new Promise<Server>((resolve) => {
    const server = serve({ fetch: root.fetch, hostname: '127.0.0.1', port }, () => resolve(server as Server));
  });
  await ensureAuditTables(dynamo.client, tableNames(prefix));
  // people's calls are checked against the principals directory (its table must exist)
  await ensureApprovalTables(dynamo.client, approvalTableNames(prefix));
  const store = new DynamoDbAuditStore(dynamo.client, tableNames(prefix));
  const today = new Date().toISOString().slice(0, 10);
  const at = (s: number) => new Date(Date.parse(`${today}T00:00:00.000Z`) + s * 1000).toISOString();
  await store.put([
    sessionOpened({ sessionId: 'sess-a', at: at(0), principal: 'ada@example.com' }),
    ...Array.from({ length: 12 }, (_, i) =>
      statement(i + 1, { sessionId: 'sess-a', principal: 'ada@example.com', startedAt: at(i + 1) }),
    ),
    statement(13, {
      sessionId: 'sess-a',
      principal: 'ada@example.com',
      startedAt: at(13),
      text: 'DROP TABLE Orders',
      decision: 'require_approval',
      ruleId: 'hold-ddl',
      outcome: 'refused',
      sqlstate: '42501',
    }),
    sessionClosed({
      sessionId: 'sess-a',
      at: at(20),
      statements: 13,
      durationMs: 20_000,
      reason: 'client_terminate',
    }),
    statement(1, {
      sessionId: 'sess-b',
      principal: 'bob@example.com',
      startedAt: at(5),
      applicationName: 'cursor',
    }),
  ]);
});

afterAll(async () => {
  issuerServer?.closeAllConnections();
  await new Promise((resolve) => issuerServer?.close(resolve));
  await dynamo?.stop();
  await rm(dir, { recursive: true, force: true });
});

function newApi(access: AccessGroups = DEFAULT_ACCESS_GROUPS) {
  const verifier = createOidcVerifier({ issuer: issuer.issuerUrl, audience, algorithms: [issuerAlgorithm] });
  const controlPlane = createControlPlaneService({
    verifier,
    store: new DynamoDbAuditStore(dynamo.client, tableNames(prefix)),
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
  });
  const routes = apiRoutes({
    verifier,
    dynamodb: dynamo.client,
    tablePrefix: prefix,
    access,
    serviceToken,
    controlPlane,
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
    logger: silentLogger,
  });
  return createApp({ service: controlPlane, serviceToken, routes });
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field below
const json = async (response: Response): Promise<any> => response.json();
const token = (email: string, groups: string[]) =>
  issuer.issueToken({ email, groups, ttlSeconds: 600, audience });
const auth = (t: string) => ({ authorization: `Bearer ${t}` });
const auditor = () => token('audrey@example.com', ['auditors']);

describe('who may read the audit trail', () => {
  const paths = ['/v1/audit/events', '/v1/sessions/sess-a'];

  it('asks for a token when there is none (401, JSON)', async () => {
    const app = newApi();
    for (const path of paths) {
      const response = await app.request(path);
      expect(response.status, path).toBe(401);
      expect((await json(response)).error.code).toBe('AUTH_TOKEN_MISSING');
    }
  });

  it('refuses people outside the auditor groups (403, JSON naming the group)', async () => {
    const app = newApi();
    for (const groups of [['engineering'], ['admins'], ['reviewers'], []]) {
      const t = await token('eve@example.com', groups);
      for (const path of paths) {
        const response = await app.request(path, { headers: auth(t) });
        expect(response.status, `${groups} ${path}`).toBe(403);
        const body = await json(response);
        expect(body.error.code).toBe('FORBIDDEN');
        expect(body.error.message).toMatch(/"auditors"/);
      }
    }
  });

  it('refuses the proxy service token, forged and foreign tokens (401)', async () => {
    const app = newApi();
    const real = await auditor();
    const [header, payload, signature] = real.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = [
      header,
      Buffer.from(JSON.stringify({ ...claims, email: 'x@example.com' })).toString('base64url'),
      signature,
    ].join('.');
    const { keys } = await readOrCreateIssuerKeys(dir);
    const foreign = await signToken(keys[0]!, 'https://evil.example.com', {
      email: 'audrey@example.com',
      groups: ['auditors'],
      ttlSeconds: 600,
      audience,
    });
    const otherAudience = await issuer.issueToken({
      email: 'a@example.com',
      groups: ['auditors'],
      audience: 'other',
      ttlSeconds: 600,
    });
    for (const t of [serviceToken, forged, foreign, otherAudience]) {
      const response = await app.request('/v1/audit/events', { headers: auth(t) });
      expect(response.status).toBe(401);
      expect((await json(response)).error.code).toMatch(/^AUTH_/);
    }
  });

  it('follows the configured auditor groups, not the default name', async () => {
    const app = newApi({ ...DEFAULT_ACCESS_GROUPS, auditors: ['compliance'] });
    const defaultName = await app.request('/v1/audit/events', { headers: auth(await auditor()) });
    expect(defaultName.status).toBe(403);
    const compliance = await app.request('/v1/audit/events', {
      headers: auth(await token('carl@example.com', ['compliance'])),
    });
    expect(compliance.status).toBe(200);
  });
});

describe('GET /v1/audit/events', () => {
  it('filters and pages with nextCursor until null', async () => {
    const app = newApi();
    const headers = auth(await auditor());
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query = new URLSearchParams({
        principal: 'ada@example.com',
        limit: '5',
        ...(cursor && { cursor }),
      });
      const response = await app.request(`/v1/audit/events?${query}`, { headers });
      expect(response.status).toBe(200);
      const body = await json(response);
      seen.push(...body.events.map((e: { eventId: string }) => e.eventId));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 13 }, (_, i) => `evt-stmt-${i + 1}`));
  });

  it('answers the questions people ask: by decision, by text, across everyone', async () => {
    const app = newApi();
    const headers = auth(await auditor());
    const get = async (params: Record<string, string>) =>
      json(await app.request(`/v1/audit/events?${new URLSearchParams(params)}`, { headers }));
    const held = await get({ decision: 'require_approval', since: '1d' });
    expect(held.events).toHaveLength(1);
    expect(held.events[0]).toMatchObject({
      text: 'DROP TABLE Orders',
      ruleId: 'hold-ddl',
      sqlstate: '42501',
      outcome: 'refused',
    });
    expect((await get({ text: 'drop table', since: '1d' })).events).toHaveLength(1);
    const everyone = await get({ since: '1d', limit: '1000' });
    expect(everyone.events).toHaveLength(14);
    expect(everyone.events.map((e: { applicationName: string }) => e.applicationName)).toContain('cursor');
    expect(everyone.nextCursor).toBeNull();
  });

  it('refuses bad filters and edited cursors with 400 and a reason', async () => {
    const app = newApi();
    const headers = auth(await auditor());
    const first = await json(
      await app.request('/v1/audit/events?principal=ada@example.com&limit=2', { headers }),
    );
    const edited = `${first.nextCursor.slice(0, -2)}AA`;
    for (const query of [
      'decision=maybe',
      'limit=5000',
      'since=yesterday',
      'bogus=1',
      'principal=a&principal=b',
      `principal=ada@example.com&cursor=${edited}`,
      `principal=bob@example.com&cursor=${first.nextCursor}`,
    ]) {
      const response = await app.request(`/v1/audit/events?${query}`, { headers });
      expect(response.status, query).toBe(400);
      expect((await json(response)).error.code).toBe('BAD_REQUEST');
    }
  });

  it('finds what the proxy sent through POST /v1/events', async () => {
    const app = newApi();
    const sent = statement(1, {
      sessionId: 'sess-ingested',
      eventId: 'evt-ingested',
      principal: 'ivy@example.com',
      startedAt: new Date().toISOString(),
    });
    // signed as the proxy signs (the local key pair), answered by the app in-process
    const asProxy = localSigningFetch(serviceToken, async (input, init) =>
      app.request(new Request(input, init)),
    );
    const post = await asProxy('http://localhost/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: [sent] }),
    });
    expect(post.status).toBe(200);
    const body = await json(
      await app.request('/v1/audit/events?principal=ivy@example.com', { headers: auth(await auditor()) }),
    );
    expect(body.events).toMatchObject([{ eventId: 'evt-ingested', text: sent.text, commandTag: 'SELECT 1' }]);
  });
});

describe('GET /v1/sessions/:id', () => {
  it('answers the whole session: the merged record and its statements in order, paged', async () => {
    const app = newApi();
    const headers = auth(await auditor());
    const first = await json(await app.request('/v1/sessions/sess-a?limit=10', { headers }));
    expect(first.session).toMatchObject({
      sessionId: 'sess-a',
      principal: 'ada@example.com',
      statements: 13,
      durationMs: 20_000,
      endReason: 'client_terminate',
      state: 'closed',
    });
    expect(first.session.openedAt < first.session.closedAt).toBe(true);
    expect(first.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const rest = await json(
      await app.request(`/v1/sessions/sess-a?limit=10&cursor=${first.nextCursor}`, { headers }),
    );
    expect(rest.events.map((e: { seq: number }) => e.seq)).toEqual([11, 12, 13]);
    expect(rest.nextCursor).toBeNull();
    // a cursor of one session does not continue another
    const other = await app.request(`/v1/sessions/sess-b?cursor=${first.nextCursor}`, { headers });
    expect(other.status).toBe(400);
  });

  it('shows statements even before the session record arrived, and 404 for an unknown session', async () => {
    const app = newApi();
    const headers = auth(await auditor());
    const early = await json(await app.request('/v1/sessions/sess-b', { headers }));
    expect(early.session).toBeNull();
    expect(early.events).toHaveLength(1);
    const missing = await app.request('/v1/sessions/nope', { headers });
    expect(missing.status).toBe(404);
    expect((await json(missing)).error.code).toBe('NOT_FOUND');
    const extra = await app.request('/v1/sessions/sess-a?principal=x', { headers });
    expect(extra.status).toBe(400);
  });
});
