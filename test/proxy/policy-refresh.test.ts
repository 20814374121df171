/**
 * proxy/policy-refresh.ts against the real policy routes on a real HTTP server (store on dynalite):
 * a PUT reaches the proxy's decider on the next poll, 304s cost nothing, a bad answer is ignored.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbPolicyStore,
  ensurePolicyTable,
  policyTableName,
} from '../../functions/adapters/dynamodb-policy-store.ts';
import { DEFAULT_ACCESS_GROUPS } from '../../functions/api/auth.ts';
import { localProxyAuth } from '../../functions/api/proxy-auth.ts';
import { policyRoutes } from '../../functions/api/routes/policies.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import { PolicyRefresher } from '../../proxy/policy-refresh.ts';
import { StatementDecider } from '../../shared/decide.ts';
import type { Logger } from '../../shared/logger.ts';
import { DEFAULT_POLICY } from '../../shared/policy/default-policy.ts';
import { parsePolicy } from '../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';
import { developer } from '../shared/policy/sessions.ts';

const serviceToken = 'refresh-test-service-token-0123456789';
let dynamo: LocalDynamoDb;
let store: DynamoDbPolicyStore;
let server: Server;
let apiUrl = '';
let requests: Array<{ inm: string | undefined; status: number }> = [];
let override: (() => Response) | undefined;

beforeAll(async () => {
  await loadSqlParser();
  dynamo = await startDynamoDb();
  const table = policyTableName('refresh_');
  await ensurePolicyTable(dynamo.client, table);
  store = new DynamoDbPolicyStore(dynamo.client, table);
  const app = new Hono();
  app.use(async (c, next) => {
    if (override) return override();
    await next();
    requests.push({ inm: c.req.header('if-none-match'), status: c.res.status });
    return undefined;
  });
  policyRoutes({
    verifier: { verify: async () => Promise.reject(new Error('no people here')) },
    access: DEFAULT_ACCESS_GROUPS,
    proxyAuth: localProxyAuth(serviceToken),
    store,
    fallback: DEFAULT_POLICY,
    now: () => new Date(),
  })(app);
  server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server));
  });
  apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await dynamo.stop();
});

const logs: Array<[string, string]> = [];
const logger: Logger = {
  info: (m) => logs.push(['info', m]),
  warn: (m) => logs.push(['warn', m]),
  error: (m) => logs.push(['error', m]),
};

const statement = (text: string) => ({
  session: developer,
  statement: { text, protocol: 'simple' as const },
});

describe('PolicyRefresher', () => {
  it('loads the current policy, then swaps in a new version on the next poll, and 304s in between', async () => {
    const decider = new StatementDecider();
    const refresher = new PolicyRefresher({
      apiUrl,
      fetch: localSigningFetch(serviceToken),
      decider,
      intervalMs: 60_000,
      logger,
    });
    expect(refresher.ready).toBe(false);
    requests = [];
    expect(await refresher.refresh()).toBe('changed'); // fresh decider → the served default pack object
    expect(refresher.ready).toBe(true);
    expect(decider.policyVersion).toBe(DEFAULT_POLICY.version);
    expect(await refresher.refresh()).toBe('unchanged');
    expect(requests.map((r) => r.status)).toEqual([200, 304]);
    expect(requests[1]?.inm).toBe(`"${DEFAULT_POLICY.version}"`);

    const text = 'select * from orders where id = 1';
    expect(decider.decide(statement(text)).action).toBe('allow');
    const policyText =
      'version: no-orders\ndefault: { action: allow }\nrules:\n  - id: no-orders\n    match: { relations: [orders] }\n    action: deny\n';
    await store.put({ text: policyText, policy: parsePolicy(policyText), storedBy: 'a', storedAt: 'now' });
    expect(await refresher.refresh()).toBe('changed');
    expect(decider.decide(statement(text))).toMatchObject({
      action: 'deny',
      ruleId: 'no-orders',
      policyVersion: 'v1',
    });
  });

  it('polls on its interval once started', async () => {
    const decider = new StatementDecider();
    const refresher = new PolicyRefresher({
      apiUrl,
      fetch: localSigningFetch(serviceToken),
      decider,
      intervalMs: 50,
      logger,
    });
    refresher.start();
    try {
      await expect.poll(() => refresher.ready, { timeout: 5_000 }).toBe(true);
    } finally {
      refresher.stop();
    }
  });

  it('keeps the last good policy when the API is down, refuses the token, or sends an invalid policy', async () => {
    const decider = new StatementDecider();
    const refresher = new PolicyRefresher({
      apiUrl,
      fetch: localSigningFetch(serviceToken),
      decider,
      intervalMs: 60_000,
      logger,
    });
    await refresher.refresh();
    const version = decider.policyVersion;
    try {
      override = () =>
        Response.json({
          version: 'v99',
          policy: { version: 'v99', default: { action: 'allow' }, rules: [{ id: 'x' }] },
        });
      expect(await refresher.refresh()).toBe('invalid');
      override = () => Response.json({ version: 'v98', policy: 'not a policy' });
      expect(await refresher.refresh()).toBe('invalid');
      override = () => new Response('oops', { status: 500 });
      expect(await refresher.refresh()).toBe('failed');
    } finally {
      override = undefined;
    }
    expect(decider.policyVersion).toBe(version);
    expect(logs.some(([level, m]) => level === 'error' && /does not validate/.test(m))).toBe(true);

    // signed with another key, or not signed at all (a bearer token is no credential): refused
    const wrongToken = new PolicyRefresher({
      apiUrl,
      fetch: localSigningFetch('another-secret-0123456789'),
      decider,
      intervalMs: 60_000,
      logger,
    });
    expect(await wrongToken.refresh()).toBe('failed');
    const bearer = new PolicyRefresher({
      apiUrl,
      fetch: (input, init) => fetch(input, { ...init, headers: { authorization: `Bearer ${serviceToken}` } }),
      decider,
      intervalMs: 60_000,
      logger,
    });
    expect(await bearer.refresh()).toBe('failed');
    const down = new PolicyRefresher({
      apiUrl: 'http://127.0.0.1:1',
      fetch: localSigningFetch(serviceToken),
      decider,
      intervalMs: 60_000,
      logger,
    });
    expect(await down.refresh()).toBe('failed');
    expect(down.ready).toBe(false);
    expect(decider.policyVersion).toBe(version);
  });
});
