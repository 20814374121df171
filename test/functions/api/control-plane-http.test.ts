/**
 * proxy/control-plane-http.ts against the real app served by @hono/node-server: the two sides of
 * one HTTP contract, tested together (filed here because the proxy tree belongs to its own suite).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../../functions/api/app.ts';
import { type FetchLike, localSigningFetch } from '../../../proxy/aws-sigv4.ts';
import { createHttpControlPlane } from '../../../proxy/control-plane-http.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import {
  decisionBody,
  type FakeControlPlane,
  fakeControlPlane,
  openedSession,
  openSessionBody,
} from '../../fakes/control-plane.ts';
import { statement } from '../../fakes/events.ts';

const serviceToken = 'service-token-0123456789abcdef';
/** the proxy's calls, signed with the local key pair the app verifies */
const signed = localSigningFetch(serviceToken);
let service: FakeControlPlane;
let server: ReturnType<typeof serve>;
let baseUrl: string;

beforeAll(async () => {
  service = fakeControlPlane({
    openSession: async (request) => {
      if (request.user !== openSessionBody.user) {
        throw new PgWardenError(
          'AUTH_USER_MISMATCH',
          `the connection's user "${request.user}" does not match`,
        );
      }
      return openedSession;
    },
  });
  const app = createApp({ service, serviceToken });
  server = await new Promise((resolve) => {
    const started = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(started));
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

async function failure(outcome: unknown): Promise<PgWardenError> {
  const error = await Promise.resolve(outcome).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PgWardenError);
  return error as PgWardenError;
}

describe('createHttpControlPlane', () => {
  it('opens a session, decides and ingests over HTTP', async () => {
    const client = createHttpControlPlane({ baseUrl, fetch: signed });
    expect(await client.openSession(openSessionBody)).toEqual(openedSession);
    expect(await client.decide(decisionBody)).toEqual({
      action: 'allow',
      ruleId: 'default',
      policyVersion: 'test',
    });
    await client.ingest([statement(1), statement(2)]);
    expect(service.calls.ingest.at(-1)).toEqual([statement(1), statement(2)]);
  });

  it('splits large batches to fit the API limit', async () => {
    const before = service.calls.ingest.length;
    const events = Array.from({ length: 1_201 }, (_, i) => statement(i + 1));
    await createHttpControlPlane({ baseUrl: `${baseUrl}/`, fetch: signed }).ingest(events);
    expect(service.calls.ingest.slice(before).map((batch) => batch.length)).toEqual([500, 500, 201]);
  });

  it('sends serialized events as they are, split to fit the API limit, and the API reads them whole', async () => {
    const before = service.calls.ingest.length;
    const events = Array.from({ length: 501 }, (_, i) => statement(i + 1));
    const serialized = events.map((e) => ({ type: e.type, line: JSON.stringify(e) }));
    await createHttpControlPlane({ baseUrl, fetch: signed }).ingestSerialized!(serialized);
    const batches = service.calls.ingest.slice(before);
    expect(batches.map((batch) => batch.length)).toEqual([500, 1]);
    expect(batches.flat()).toEqual(events);
  });

  it('reports a serialized event the API refuses as BAD_REQUEST', async () => {
    const client = createHttpControlPlane({ baseUrl, fetch: signed });
    const bad = { type: 'statement' as const, line: JSON.stringify({ type: 'statement', seq: 'x' }) };
    expect((await failure(client.ingestSerialized!([bad]))).code).toBe('BAD_REQUEST');
  });

  it('rethrows the API error with the same code and message', async () => {
    const client = createHttpControlPlane({ baseUrl, fetch: signed });
    const error = await failure(client.openSession({ ...openSessionBody, user: 'grace@example.com' }));
    expect(error.code).toBe('AUTH_USER_MISMATCH');
    expect(error.message).toContain('grace@example.com');
  });

  it('reports a signature with the wrong key as AUTH_SERVICE_CREDENTIAL', async () => {
    const client = createHttpControlPlane({ baseUrl, fetch: localSigningFetch('wrong-secret-0123456789') });
    expect((await failure(client.decide(decisionBody))).code).toBe('AUTH_SERVICE_CREDENTIAL');
  });

  it('reports a refused body as BAD_REQUEST', async () => {
    const client = createHttpControlPlane({ baseUrl, fetch: signed });
    const bad = { ...decisionBody, statement: { text: 1 } } as unknown as typeof decisionBody;
    expect((await failure(client.decide(bad))).code).toBe('BAD_REQUEST');
  });

  it('reports an unreachable API as CONTROL_PLANE_UNAVAILABLE', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const client = createHttpControlPlane({ baseUrl: `http://127.0.0.1:${port}`, fetch: signed });
    const error = await failure(client.openSession(openSessionBody));
    expect(error.code).toBe('CONTROL_PLANE_UNAVAILABLE');
    expect(error.message).not.toContain(openSessionBody.token);
  });

  it('reports a slow API as CONTROL_PLANE_UNAVAILABLE after the timeout', async () => {
    const slow: Server = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    try {
      const port = (slow.address() as AddressInfo).port;
      const client = createHttpControlPlane({
        baseUrl: `http://127.0.0.1:${port}`,
        fetch: signed,
        timeoutMs: 200,
      });
      const error = await failure(client.decide(decisionBody));
      expect(error.code).toBe('CONTROL_PLANE_UNAVAILABLE');
      expect(error.message).toContain('200 ms');
    } finally {
      slow.closeAllConnections();
      await new Promise((resolve) => slow.close(resolve));
    }
  });

  it('treats a non-pgwarden 502 as unavailable and a garbled decision as a failure', async () => {
    const gateway: FetchLike = async () => new Response('Bad Gateway', { status: 502 });
    const viaGateway = createHttpControlPlane({ baseUrl, fetch: gateway });
    expect((await failure(viaGateway.openSession(openSessionBody))).code).toBe('CONTROL_PLANE_UNAVAILABLE');

    const garbled: FetchLike = async () => Response.json({ action: 'maybe' });
    const viaGarbled = createHttpControlPlane({ baseUrl, fetch: garbled });
    expect((await failure(viaGarbled.decide(decisionBody))).code).toBe('CONTROL_PLANE_UNAVAILABLE');
  });
});

describe('session checks over HTTP', () => {
  const check = {
    sessionId: 'sess-42',
    issuer: 'https://issuer.example',
    subject: 'ada-1',
    role: 'developer',
  };

  async function serving(checkSession?: FakeControlPlane['checkSession']) {
    const app = createApp({
      service: { ...fakeControlPlane(), ...(checkSession && { checkSession }) },
      serviceToken,
    });
    return async (path: string, init: RequestInit) => app.request(path, init);
  }

  it('carries the answer both ways, and only for the proxy', async () => {
    const seen: unknown[] = [];
    const request = await serving(async (body) => {
      seen.push(body);
      return body.subject === 'gone-1' ? { status: 'ended', reason: 'disabled' } : { status: 'active' };
    });
    const client = createHttpControlPlane({
      baseUrl: 'http://api.test',
      fetch: localSigningFetch(serviceToken, async (input, init) => {
        const req = input instanceof Request ? input : new Request(input, init);
        // the whole URL: the signature covers the host
        return request(req.url, {
          method: req.method,
          headers: req.headers,
          body: req.method === 'GET' ? undefined : await req.text(),
        });
      }),
    });
    expect(await client.checkSession!(check)).toEqual({ status: 'active' });
    expect(await client.checkSession!({ ...check, subject: 'gone-1' })).toEqual({
      status: 'ended',
      reason: 'disabled',
    });
    expect(seen[0]).toEqual(check);
    const anonymous = await request('/v1/session-checks', { method: 'POST', body: JSON.stringify(check) });
    expect(anonymous.status).toBe(401);
    // a bearer token (the old shared secret) is not the proxy's identity any more
    const bearer = await request('/v1/session-checks', {
      method: 'POST',
      headers: { authorization: `Bearer ${serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(check),
    });
    expect(bearer.status).toBe(401);
  });

  it('treats an answer it does not understand as no confirmation', async () => {
    const client = createHttpControlPlane({
      baseUrl: 'http://api.test',
      fetch: async () => new Response(JSON.stringify({ status: 'fine' }), { status: 200 }),
    });
    expect((await failure(client.checkSession!(check))).code).toBe('CONTROL_PLANE_UNAVAILABLE');
  });
});
