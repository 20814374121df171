import { describe, expect, it } from 'vitest';
import { createApp } from '../../../functions/api/app.ts';
import { localSigningFetch } from '../../../proxy/aws-sigv4.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import { SESSION_END_REASONS } from '../../../shared/events.ts';
import type { Logger } from '../../../shared/logger.ts';
import { decisionBody, fakeControlPlane, openedSession, openSessionBody } from '../../fakes/control-plane.ts';
import { sessionClosed, statement } from '../../fakes/events.ts';

const serviceToken = 'service-token-0123456789abcdef';

/** Signed as the proxy signs (local key pair) unless `headers` are given: then sent as they are. */
function post(
  app: ReturnType<typeof createApp>,
  path: string,
  body: unknown,
  headers?: Record<string, string>,
) {
  const init = {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
  if (headers !== undefined) return app.request(path, init);
  const signed = localSigningFetch(serviceToken, async (input, i) => app.request(new Request(input, i)));
  return signed(`http://localhost${path}`, init);
}

describe('GET /healthz', () => {
  it('answers without credentials', async () => {
    const response = await createApp({ service: fakeControlPlane(), serviceToken }).request('/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });
});

describe('service credential', () => {
  it.each([
    ['no header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token' }],
    // the old shared bearer token is no credential any more: only a SigV4 signature is
    ['the service token itself as a bearer token', { authorization: `Bearer ${serviceToken}` }],
    ['another scheme', { authorization: `Basic ${serviceToken}` }],
  ])('refuses %s with 401 and calls nothing', async (_label, headers) => {
    const service = fakeControlPlane();
    const response = await post(
      createApp({ service, serviceToken }),
      '/v1/sessions',
      openSessionBody,
      headers,
    );
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({
      error: { code: 'AUTH_SERVICE_CREDENTIAL', message: expect.stringContaining('SigV4') },
    });
    expect(service.calls.openSession).toEqual([]);
  });

  it('answers unknown /v1 routes with a JSON 404 that reveals nothing else', async () => {
    const response = await post(
      createApp({ service: fakeControlPlane(), serviceToken }),
      '/v1/nothing',
      {},
      {},
    );
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: 'NOT_FOUND', message: expect.any(String) } });
  });

  it('keeps the proxy routes behind the proxy signature when other route groups are mounted', async () => {
    const service = fakeControlPlane();
    const app = createApp({
      service,
      serviceToken,
      routes: [(a) => a.get('/v1/open', (c) => c.json({ open: true }))],
    });
    const response = await post(app, '/v1/decisions', {}, {});
    expect(response.status).toBe(401);
    expect((await app.request('/v1/open')).status).toBe(200);
  });
});

describe('POST /v1/sessions', () => {
  it('opens a session', async () => {
    const service = fakeControlPlane();
    const response = await post(createApp({ service, serviceToken }), '/v1/sessions', openSessionBody);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(openedSession);
    expect(service.calls.openSession).toEqual([openSessionBody]);
  });

  it('drops fields the contract does not know', async () => {
    const service = fakeControlPlane();
    await post(createApp({ service, serviceToken }), '/v1/sessions', { ...openSessionBody, admin: true });
    expect(service.calls.openSession[0]).toEqual(openSessionBody);
  });

  it.each([
    ['user', { ...openSessionBody, user: undefined }],
    ['database', { ...openSessionBody, database: 42 }],
    ['proxyId', { ...openSessionBody, proxyId: '' }],
  ])('answers 400 naming a bad %s', async (field, body) => {
    const service = fakeControlPlane();
    const response = await post(createApp({ service, serviceToken }), '/v1/sessions', body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('BAD_REQUEST');
    expect(error.message).toContain(field);
    expect(service.calls.openSession).toEqual([]);
  });

  it('answers 400 on malformed JSON', async () => {
    const response = await post(
      createApp({ service: fakeControlPlane(), serviceToken }),
      '/v1/sessions',
      '{"token":',
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });

  it('answers 400 on a body that is not an object', async () => {
    const response = await post(
      createApp({ service: fakeControlPlane(), serviceToken }),
      '/v1/sessions',
      [1, 2],
    );
    expect(response.status).toBe(400);
  });
});

describe('POST /v1/decisions', () => {
  it('returns the decision', async () => {
    const service = fakeControlPlane({
      decide: () => ({ action: 'deny', ruleId: 'no-ddl', reason: 'DDL needs a ticket', policyVersion: 'v3' }),
    });
    const response = await post(createApp({ service, serviceToken }), '/v1/decisions', decisionBody);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      action: 'deny',
      ruleId: 'no-ddl',
      reason: 'DDL needs a ticket',
      policyVersion: 'v3',
    });
    expect(service.calls.decide).toEqual([decisionBody]);
  });

  it('answers 400 naming a nested field', async () => {
    const body = { ...decisionBody, statement: { text: 'select 1', protocol: 'binary' } };
    const response = await post(
      createApp({ service: fakeControlPlane(), serviceToken }),
      '/v1/decisions',
      body,
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { message: expect.stringContaining('statement.protocol') },
    });
  });
});

describe('POST /v1/events', () => {
  it('stores a batch and says how many', async () => {
    const service = fakeControlPlane();
    const events = [statement(1), statement(2), sessionClosed()];
    const response = await post(createApp({ service, serviceToken }), '/v1/events', { events });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ stored: 3 });
    expect(service.calls.ingest).toEqual([events]);
  });

  it('accepts every way a session can end (the proxy sends each of them)', async () => {
    const service = fakeControlPlane();
    const events = SESSION_END_REASONS.map((reason, i) => sessionClosed({ eventId: `close-${i}`, reason }));
    const response = await post(createApp({ service, serviceToken }), '/v1/events', { events });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ stored: SESSION_END_REASONS.length });
  });

  it('refuses more than 500 events per batch', async () => {
    const service = fakeControlPlane();
    const events = Array.from({ length: 501 }, (_, i) => statement(i + 1));
    const response = await post(createApp({ service, serviceToken }), '/v1/events', { events });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { message: expect.stringContaining('500') } });
    expect(service.calls.ingest).toEqual([]);
  });

  it('names the bad field of a bad event', async () => {
    const events = [statement(1), { ...statement(2), startedAt: 'yesterday' }];
    const response = await post(createApp({ service: fakeControlPlane(), serviceToken }), '/v1/events', {
      events,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { message: expect.stringContaining('events[1].startedAt') },
    });
  });

  it('refuses a body over the size limit before parsing it', async () => {
    const service = fakeControlPlane();
    const huge = JSON.stringify({ events: [statement(1, { text: 'x'.repeat(6 * 1024 * 1024) })] });
    const response = await post(createApp({ service, serviceToken }), '/v1/events', huge);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect(service.calls.ingest).toEqual([]);
  });

  it('answers 400 when events is missing', async () => {
    const response = await post(createApp({ service: fakeControlPlane(), serviceToken }), '/v1/events', {});
    expect(response.status).toBe(400);
  });
});

describe('error mapping', () => {
  it.each([
    ['AUTH_TOKEN_EXPIRED', 401],
    ['AUTH_NO_ROLE', 401],
    ['FORBIDDEN', 403],
    ['NOT_FOUND', 404],
    ['STORE_UNAVAILABLE', 503],
    ['AUTH_ISSUER_UNAVAILABLE', 503],
  ] as const)('maps %s to %i with its code and message', async (code, status) => {
    const service = fakeControlPlane({
      openSession: async () => {
        throw new PgWardenError(code, `because ${code}`);
      },
    });
    const response = await post(createApp({ service, serviceToken }), '/v1/sessions', openSessionBody);
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ error: { code, message: `because ${code}` } });
  });

  it('hides unexpected errors behind a generic 500 and logs them', async () => {
    const logged: Array<Record<string, unknown> | undefined> = [];
    const logger: Logger = { info() {}, warn() {}, error: (_message, fields) => logged.push(fields) };
    const service = fakeControlPlane({
      openSession: async () => {
        throw new Error('connection string postgres://secret@db');
      },
    });
    const response = await post(
      createApp({ service, serviceToken, logger }),
      '/v1/sessions',
      openSessionBody,
    );
    expect(response.status).toBe(500);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'INTERNAL', message: expect.any(String) } });
    expect(text).not.toContain('secret');
    expect(text).not.toContain('at ');
    expect(logged).toHaveLength(1);
    expect(String(logged[0]?.['detail'])).toContain('postgres://secret@db');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const response = await createApp({ service: fakeControlPlane(), serviceToken }).request('/nowhere');
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});
