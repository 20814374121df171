/**
 * The policy routes with real pieces: tokens from the dev OIDC issuer (served over HTTP, verified
 * with jose through the real verifier), the DynamoDB store on dynalite, the Hono app as deployed.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbPolicyStore,
  ensurePolicyTable,
  policyTableName,
} from '../../../../functions/adapters/dynamodb-policy-store.ts';
import { createOidcVerifier } from '../../../../functions/adapters/oidc-verifier.ts';
import { createApp } from '../../../../functions/api/app.ts';
import { DEFAULT_ACCESS_GROUPS } from '../../../../functions/api/auth.ts';
import { StoredPolicySource } from '../../../../functions/api/policy-source.ts';
import { localProxyAuth } from '../../../../functions/api/proxy-auth.ts';
import { policyRoutes } from '../../../../functions/api/routes/policies.ts';
import { createControlPlaneService } from '../../../../functions/api/service.ts';
import { localSigningFetch } from '../../../../proxy/aws-sigv4.ts';
import { createDevIssuer, type DevIssuer, issuerAlgorithm } from '../../../../scripts/local/oidc-issuer.ts';
import { getFreePort } from '../../../../scripts/local/postgres.ts';
import { DEFAULT_POLICY, DEFAULT_POLICY_YAML } from '../../../../shared/policy/default-policy.ts';
import { loadSqlParser } from '../../../../shared/sql/analyze.ts';
import { decisionBody } from '../../../fakes/control-plane.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../../fakes/dynamodb.ts';

const audience = 'pgwarden-test';
const serviceToken = 'policy-routes-service-token-0123456789';
let dir = '';
let dynamo: LocalDynamoDb;
let issuer: DevIssuer;
let issuerServer: Server;
let prefixN = 0;

beforeAll(async () => {
  await loadSqlParser();
  dir = await mkdtemp(join(tmpdir(), 'pgwarden-policy-routes-'));
  dynamo = await startDynamoDb();
  const port = await getFreePort('127.0.0.1');
  issuer = createDevIssuer({ dataDir: dir, issuerUrl: `http://127.0.0.1:${port}/dev-oidc` });
  const root = new Hono();
  root.route('/dev-oidc', issuer.app);
  issuerServer = await new Promise<Server>((resolve) => {
    const server = serve({ fetch: root.fetch, hostname: '127.0.0.1', port }, () => resolve(server as Server));
  });
});

afterAll(async () => {
  issuerServer.closeAllConnections();
  await new Promise((resolve) => issuerServer.close(resolve));
  await dynamo.stop();
  await rm(dir, { recursive: true, force: true });
});

async function newApi() {
  const table = policyTableName(`r${++prefixN}_`);
  await ensurePolicyTable(dynamo.client, table);
  const store = new DynamoDbPolicyStore(dynamo.client, table);
  const verifier = createOidcVerifier({ issuer: issuer.issuerUrl, audience, algorithms: [issuerAlgorithm] });
  const source = new StoredPolicySource(store, { ttlMs: 60_000 });
  const service = createControlPlaneService({
    verifier,
    store: { put: async () => {} },
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
    policies: source,
  });
  const app = createApp({
    service,
    serviceToken,
    routes: [
      policyRoutes({
        verifier,
        access: DEFAULT_ACCESS_GROUPS,
        proxyAuth: localProxyAuth(serviceToken),
        store,
        fallback: DEFAULT_POLICY,
        now: () => new Date(),
        onStored: (stored) => source.accept(stored),
      }),
    ],
  });
  return { app, store, source };
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field below
const json = async (response: Response): Promise<any> => response.json();

const token = (email: string, groups: string[]) =>
  issuer.issueToken({ email, groups, ttlSeconds: 600, audience });
const auth = (t: string) => ({ authorization: `Bearer ${t}` });
/** requests signed as the proxy signs them (local key pair), answered by the app in-process */
const asProxy = (app: { request: (r: Request) => Response | Promise<Response> }) =>
  localSigningFetch(serviceToken, async (input, init) => app.request(new Request(input, init)));

const DENY_DROP = `version: team-1
default: { action: allow }
rules:
  - id: no-drop
    match: { kinds: [drop] }
    action: deny
    reason: never drop
`;

describe('GET /v1/policies/current', () => {
  it('serves the default pack while nothing is stored, to the proxy and to any signed-in person', async () => {
    const { app } = await newApi();
    const viaProxy = await asProxy(app)('http://localhost/v1/proxy/policies/current');
    expect(viaProxy.status).toBe(200);
    expect(viaProxy.headers.get('etag')).toBe(`"${DEFAULT_POLICY.version}"`);
    const body = await json(viaProxy);
    expect(body).toMatchObject({ version: DEFAULT_POLICY.version, storedAt: null });
    expect(body.policy).toEqual(DEFAULT_POLICY);
    const person = await app.request('/v1/policies/current', {
      headers: auth(await token('dev@example.com', ['engineering'])),
    });
    expect(person.status).toBe(200);
  });

  it('answers 304 to If-None-Match with the current version, and 200 once it changed', async () => {
    const { app } = await newApi();
    const proxy = asProxy(app);
    const first = await proxy('http://localhost/v1/proxy/policies/current');
    const etag = first.headers.get('etag') ?? '';
    const again = await proxy('http://localhost/v1/proxy/policies/current', {
      headers: { 'if-none-match': etag },
    });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const put = await app.request('/v1/policies', {
      method: 'PUT',
      headers: { ...auth(await token('admin@example.com', ['admins'])), 'content-type': 'text/yaml' },
      body: DENY_DROP,
    });
    expect(put.status).toBe(200);
    const changed = await proxy('http://localhost/v1/proxy/policies/current', {
      headers: { 'if-none-match': etag },
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).toBe('"v1"');
    expect(await json(changed)).toMatchObject({ version: 'v1', storedBy: 'admin@example.com' });
  });

  it('is refused without a token (401) and with a wrong or forged one (401)', async () => {
    const { app } = await newApi();
    expect((await app.request('/v1/policies/current')).status).toBe(401);
    const wrong = await app.request('/v1/policies/current', { headers: auth(`${serviceToken}x`) });
    expect(wrong.status).toBe(401);
    // the old service token is no credential on either route any more
    expect((await app.request('/v1/policies/current', { headers: auth(serviceToken) })).status).toBe(401);
    expect((await app.request('/v1/proxy/policies/current', { headers: auth(serviceToken) })).status).toBe(
      401,
    );
    // a person's token does not open the proxy's route, nor a signature the people's route
    const person = await token('dev@example.com', ['engineering']);
    expect((await app.request('/v1/proxy/policies/current', { headers: auth(person) })).status).toBe(401);
    expect((await asProxy(app)('http://localhost/v1/policies/current')).status).toBe(401);
    const t = await token('dev@example.com', ['engineering']);
    const forged = `${t.slice(0, -4)}AAAA`;
    expect((await app.request('/v1/policies/current', { headers: auth(forged) })).status).toBe(401);
  });
});

describe('PUT /v1/policies', () => {
  it('stores a valid document from an admin as a new version and decisions switch to it', async () => {
    const { app, source } = await newApi();
    const request = {
      ...decisionBody,
      statement: { text: 'drop table orders', protocol: 'simple' as const },
    };
    const before = await asProxy(app)('http://localhost/v1/decisions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    expect((await json(before)).action).toBe('require_approval');
    const admin = auth(await token('admin@example.com', ['admins']));
    const put = await app.request('/v1/policies', {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'text/yaml' },
      body: DENY_DROP,
    });
    expect(put.status).toBe(200);
    expect(await json(put)).toMatchObject({ version: 'v1', declaredVersion: 'team-1', rules: 1 });
    expect(source.decider.policyVersion).toBe('v1');
    const after = await asProxy(app)('http://localhost/v1/decisions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    expect(await json(after)).toMatchObject({ action: 'deny', ruleId: 'no-drop', policyVersion: 'v1' });
  });

  it('accepts JSON as well', async () => {
    const { app } = await newApi();
    const put = await app.request('/v1/policies', {
      method: 'PUT',
      headers: { ...auth(await token('admin@example.com', ['admins'])), 'content-type': 'application/json' },
      body: JSON.stringify({ version: 'json-1', default: { action: 'allow' }, rules: [] }),
    });
    expect(put.status).toBe(200);
    expect(await json(put)).toMatchObject({ version: 'v1', declaredVersion: 'json-1' });
  });

  it('refuses a non-admin (403), even one in the auditor group, and stores nothing', async () => {
    const { app, store } = await newApi();
    for (const groups of [['engineering'], ['auditors'], ['reviewers']]) {
      const put = await app.request('/v1/policies', {
        method: 'PUT',
        headers: auth(await token('dev@example.com', groups)),
        body: DENY_DROP,
      });
      expect(put.status, groups.join()).toBe(403);
      expect((await json(put)).error.code).toBe('FORBIDDEN');
    }
    const proxy = await asProxy(app)('http://localhost/v1/policies', { method: 'PUT', body: DENY_DROP });
    expect(proxy.status).toBe(401); // the proxy is no person
    expect((await app.request('/v1/policies', { method: 'PUT', body: DENY_DROP })).status).toBe(401);
    expect(await store.current()).toBeUndefined();
  });

  it('refuses an invalid document with 400 and every issue with its line and field', async () => {
    const { app, store } = await newApi();
    const invalid = `version: bad-1
default: { action: allow }
rules:
  - id: r1
    match: { kinds: [dorp] }
    action: deny
  - id: r2
    match: { tables: [orders] }
    action: alow
`;
    const put = await app.request('/v1/policies', {
      method: 'PUT',
      headers: { ...auth(await token('admin@example.com', ['admins'])), 'content-type': 'text/yaml' },
      body: invalid,
    });
    expect(put.status).toBe(400);
    const body = await json(put);
    expect(body.error.code).toBe('BAD_REQUEST');
    expect(body.error.message).toMatch(
      /line 5, column \d+: rules\[0\]\.match\.kinds\[0\]: unknown statement kind "dorp" \(did you mean "drop"\?\)/,
    );
    expect(body.error.message).toMatch(/line 8, .*rules\[1\]\.match\.tables: unknown field "tables"/);
    expect(body.error.message).toMatch(/line 9, .*rules\[1\]\.action: unknown action "alow"/);
    expect(body.error.issues.map((i: { line: number }) => i.line)).toEqual([5, 8, 9]);
    for (const broken of ['', 'version: [', '{"version": "x", "default": {"action": "allow"}, "rules": []']) {
      const response = await app.request('/v1/policies', {
        method: 'PUT',
        headers: auth(await token('admin@example.com', ['admins'])),
        body: broken,
      });
      expect(response.status, broken).toBe(400);
    }
    expect(await store.current()).toBeUndefined();
  });

  it('stores concurrent PUTs as distinct versions, the newest current', async () => {
    const { app, store } = await newApi();
    const admin = auth(await token('admin@example.com', ['admins']));
    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        app.request('/v1/policies', {
          method: 'PUT',
          headers: admin,
          body: DENY_DROP.replace('team-1', `team-${i}`),
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const versions = await Promise.all(responses.map(async (r) => (await json(r)).version));
    expect(versions.sort()).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
    expect((await store.current())?.version).toBe('v5');
  });
});

describe('GET /v1/policies', () => {
  it('lists versions, newest first, for admins and auditors only', async () => {
    const { app } = await newApi();
    const admin = auth(await token('admin@example.com', ['admins']));
    for (const body of [DENY_DROP, DEFAULT_POLICY_YAML])
      expect((await app.request('/v1/policies', { method: 'PUT', headers: admin, body })).status).toBe(200);
    for (const groups of [['admins'], ['auditors']]) {
      const list = await app.request('/v1/policies', { headers: auth(await token('a@example.com', groups)) });
      expect(list.status).toBe(200);
      const { versions } = await json(list);
      expect(
        versions.map((v: { version: string; declaredVersion: string }) => [v.version, v.declaredVersion]),
      ).toEqual([
        ['v2', DEFAULT_POLICY.version],
        ['v1', 'team-1'],
      ]);
      expect(versions[0]).toMatchObject({
        storedBy: 'admin@example.com',
        rules: DEFAULT_POLICY.rules.length,
      });
    }
    const dev = await app.request('/v1/policies', {
      headers: auth(await token('dev@example.com', ['engineering'])),
    });
    expect(dev.status).toBe(403);
    const limited = await app.request('/v1/policies?limit=1', { headers: admin });
    expect((await json(limited)).versions).toHaveLength(1);
    expect((await app.request('/v1/policies?limit=0', { headers: admin })).status).toBe(400);
  });
});

describe("POST /v1/decisions with the session's prepared statements", () => {
  it('decides an EXECUTE through what the name was prepared with, and denies an unknown name', async () => {
    const { app } = await newApi();
    const decide = async (statement: Record<string, unknown>) => {
      const response = await asProxy(app)('http://localhost/v1/decisions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...decisionBody, statement: { protocol: 'simple', ...statement } }),
      });
      expect(response.status).toBe(200);
      return json(response);
    };
    expect(
      await decide({ text: 'EXECUTE p', prepared: { p: ['PREPARE p AS DELETE FROM orders'] } }),
    ).toMatchObject({ action: 'require_approval', ruleId: 'approve-writes-without-where' });
    expect(await decide({ text: 'EXECUTE p' })).toMatchObject({
      action: 'deny',
      ruleId: 'unknown-prepared-statement',
    });
    expect(
      await decide({
        text: 'EXECUTE "__proto__"',
        prepared: JSON.parse('{"__proto__": ["PREPARE x AS SELECT 1"]}'),
      }),
    ).toMatchObject({ action: 'allow' });
    const bad = await asProxy(app)('http://localhost/v1/decisions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        ...decisionBody,
        statement: { text: 'EXECUTE p', protocol: 'simple', prepared: { p: 'x' } },
      }),
    });
    expect(bad.status).toBe(400);
  });
});
