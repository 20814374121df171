/**
 * The proxy's routes take only the proxy's AWS identity, attacked the ways a holder of a captured
 * request, the old shared token, or another AWS identity would try (every bypass stays here):
 * - local mode: the app verifies SigV4 itself (replay, another body, another path, old or future
 *   signatures, another key or scope, a body hash header that lies, an unsigned nonce);
 * - deployed: API Gateway's IAM authorizer context must name the proxy's role.
 * Plus the public routes' rate limit, and what POST /v1/events refuses to take from the proxy.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../../functions/api/app.ts';
import { PROXY_ROUTES } from '../../../functions/api/proxy-auth.ts';
import { localSigningFetch } from '../../../proxy/aws-sigv4.ts';
import { LOCAL_ACCESS_KEY_ID, NodeSha256 } from '../../../shared/sigv4.ts';
import { decisionBody, fakeControlPlane } from '../../fakes/control-plane.ts';
import { sessionOpened, statement } from '../../fakes/events.ts';

const secret = 'proxy-auth-test-secret-0123456789';

function app(now?: () => number) {
  const service = fakeControlPlane();
  return {
    service,
    app: createApp({
      service,
      serviceToken: secret,
      ...(now && { rateLimit: { perSecond: 1, burst: 3, now } }),
    }),
  };
}

/** Signs as the proxy does and returns the request that would have gone out, unsent. */
async function captured(
  path: string,
  body: unknown,
  options: { secret?: string; at?: Date } = {},
): Promise<Request> {
  let request: Request | undefined;
  const sign = localSigningFetch(options.secret ?? secret, async (input, init) => {
    request = new Request(input, init);
    return new Response('{}');
  });
  const signed = options.at
    ? // the signer's clock at `at`: an old (or future) signature
      (await import('../../../proxy/aws-sigv4.ts')).signingFetch({
        credentials: { accessKeyId: LOCAL_ACCESS_KEY_ID, secretAccessKey: options.secret ?? secret },
        region: 'local',
        now: () => options.at!,
        fetch: async (input, init) => {
          request = new Request(input, init);
          return new Response('{}');
        },
      })
    : sign;
  await signed(`http://localhost${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return request!;
}

async function send(target: ReturnType<typeof app>['app'], request: Request, body?: string) {
  const init: RequestInit = { method: request.method, headers: request.headers };
  return target.request(request.url, { ...init, body: body ?? (await request.clone().text()) });
}

async function code(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code;
}

describe('local SigV4 verification of the proxy routes', () => {
  it('accepts a request the proxy signed', async () => {
    const { app: api, service } = app();
    const response = await send(api, await captured('/v1/decisions', decisionBody));
    expect(response.status).toBe(200);
    expect(service.calls.decide).toHaveLength(1);
  });

  it('refuses the same signed request a second time (replay)', async () => {
    const { app: api, service } = app();
    const request = await captured('/v1/decisions', decisionBody);
    expect((await send(api, request.clone())).status).toBe(200);
    const again = await send(api, request);
    expect(again.status).toBe(401);
    expect(await again.json()).toMatchObject({
      error: { code: 'AUTH_SERVICE_CREDENTIAL', message: expect.stringContaining('replay') },
    });
    expect(service.calls.decide).toHaveLength(1);
  });

  it('refuses a signature kept with another body', async () => {
    const { app: api, service } = app();
    const request = await captured('/v1/events', { events: [statement(1)] });
    const other = JSON.stringify({ events: [statement(1, { text: 'drop table orders' })] });
    const response = await send(api, request, other);
    expect(response.status).toBe(401);
    expect(service.calls.ingest).toEqual([]);
  });

  it('refuses a signature sent to another path', async () => {
    const { app: api, service } = app();
    const request = await captured('/v1/decisions', { events: [] });
    const moved = new Request(request.url.replace('/v1/decisions', '/v1/events'), request);
    expect((await send(api, moved)).status).toBe(401);
    expect(service.calls.ingest).toEqual([]);
  });

  it('refuses a signature older than five minutes, and one from the future', async () => {
    const { app: api } = app();
    const old = await captured('/v1/decisions', decisionBody, { at: new Date(Date.now() - 6 * 60_000) });
    expect(await send(api, old).then(code)).toBe('AUTH_SERVICE_CREDENTIAL');
    const future = await captured('/v1/decisions', decisionBody, { at: new Date(Date.now() + 6 * 60_000) });
    expect((await send(api, future)).status).toBe(401);
  });

  it('refuses a signature made with another key', async () => {
    const { app: api } = app();
    const request = await captured('/v1/decisions', decisionBody, { secret: 'not-the-secret-0123456789' });
    expect((await send(api, request)).status).toBe(401);
  });

  it('every route that answers only the proxy is one the deployment puts its IAM authorizer on', async () => {
    // A proxy route missing from PROXY_ROUTES would reach the app without the authorizer's
    // context in the deployment and be refused there: the proxy's calls to it would all fail.
    const { app: api } = app();
    const guarded: string[] = [];
    for (const route of api.routes) {
      if (!route.path.startsWith('/v1/') || route.method === 'ALL') continue;
      const path = route.path.replaceAll(/:(\w+)/g, 'x');
      const response = await api.request(path, {
        method: route.method,
        ...(route.method === 'GET' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } }),
      });
      const body = (await response.json()) as { error?: { message?: string } };
      if (response.status === 401 && /only the pgwarden proxy/.test(body.error?.message ?? ''))
        guarded.push(`${route.method} ${route.path.replaceAll(/:(\w+)/g, '{$1}')}`);
    }
    expect(guarded).toContain('POST /v1/session-checks');
    const declared = PROXY_ROUTES.map(({ method, path }) => `${method} ${path}`);
    for (const route of guarded) expect(declared, route).toContain(route);
  });

  it('refuses the old shared token, and any bearer token, on every proxy route', async () => {
    const { app: api, service } = app();
    for (const path of ['/v1/sessions', '/v1/decisions', '/v1/events']) {
      const response = await api.request(path, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(response.status, path).toBe(401);
    }
    expect(service.calls.openSession).toEqual([]);
  });

  it('refuses an x-amz-content-sha256 that is not the hash of the body sent', async () => {
    const { app: api, service } = app();
    // a client that signs the body hash as a header: the signer would trust that header
    const signer = new SignatureV4({
      credentials: { accessKeyId: LOCAL_ACCESS_KEY_ID, secretAccessKey: secret },
      region: 'local',
      service: 'execute-api',
      sha256: NodeSha256,
      applyChecksum: true,
    });
    const body = JSON.stringify({ events: [statement(1)] });
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: 'localhost',
      path: '/v1/events',
      headers: { host: 'localhost', 'content-type': 'application/json', 'x-pgwarden-nonce': 'n-1' },
      body,
    });
    const { host: _host, ...headers } = signed.headers as Record<string, string>;
    expect(headers['x-amz-content-sha256']).toBeDefined();
    const swapped = JSON.stringify({ events: [statement(1, { text: 'drop table orders' })] });
    const response = await api.request('/v1/events', { method: 'POST', headers, body: swapped });
    expect(response.status).toBe(401);
    expect(service.calls.ingest).toEqual([]);
    // the same signature with its own body is fine: the check is about the body, not the header
    const honest = await api.request('/v1/events', { method: 'POST', headers, body });
    expect(honest.status).toBe(200);
  });

  it('refuses a signature that does not sign the nonce (it could be replayed)', async () => {
    const { app: api } = app();
    const signer = new SignatureV4({
      credentials: { accessKeyId: LOCAL_ACCESS_KEY_ID, secretAccessKey: secret },
      region: 'local',
      service: 'execute-api',
      sha256: NodeSha256,
      applyChecksum: false,
    });
    const body = JSON.stringify(decisionBody);
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: 'localhost',
      path: '/v1/decisions',
      headers: { host: 'localhost', 'content-type': 'application/json' },
      body,
    });
    const { host: _host, ...headers } = signed.headers as Record<string, string>;
    const response = await api.request('/v1/decisions', { method: 'POST', headers, body });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain('nonce');
  });
});

describe('deployed: the IAM authorizer context must name the proxy role', () => {
  const role = 'arn:aws:iam::111122223333:role/service/pgwarden-proxy-task';
  const deployed = () => {
    const service = fakeControlPlane();
    return {
      service,
      api: createApp({ service, serviceToken: secret, proxyAuth: { mode: 'iam', roleArns: [role] } }),
    };
  };
  const lambdaEnv = (userArn?: string) => ({
    event: { requestContext: { authorizer: userArn === undefined ? {} : { iam: { userArn } } } },
  });
  const post = (api: ReturnType<typeof deployed>['api'], env: unknown) =>
    api.request(
      '/v1/decisions',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(decisionBody) },
      env as never,
    );

  it("accepts the proxy role's session (the ARN's path dropped, as STS names it)", async () => {
    const { api, service } = deployed();
    const response = await post(
      api,
      lambdaEnv('arn:aws:sts::111122223333:assumed-role/pgwarden-proxy-task/abc'),
    );
    expect(response.status).toBe(200);
    expect(service.calls.decide).toHaveLength(1);
  });

  it('refuses no context (a route without the authorizer), another role, another account, a user', async () => {
    const { api, service } = deployed();
    for (const userArn of [
      undefined,
      'arn:aws:sts::111122223333:assumed-role/some-lambda-role/abc',
      'arn:aws:sts::999999999999:assumed-role/pgwarden-proxy-task/abc',
      'arn:aws:iam::111122223333:user/pgwarden-proxy-task',
    ]) {
      const response = await post(api, lambdaEnv(userArn));
      expect(response.status, String(userArn)).toBe(401);
    }
    // nor a signature that would pass locally: deployed, only the authorizer's word counts
    const signed = await captured('/v1/decisions', decisionBody);
    expect((await send(api, signed)).status).toBe(401);
    expect(service.calls.decide).toEqual([]);
  });
});

describe('POST /v1/events takes only what the proxy records', () => {
  it('refuses a session open (only the API opens sessions) and approval steps', async () => {
    const { app: api, service } = app();
    for (const event of [
      sessionOpened({ sessionId: 'fabricated' }),
      {
        type: 'approval',
        eventId: 'a',
        at: '2025-03-01T10:00:00.000Z',
        approvalId: 'x',
        step: 'approved',
        sessionId: 's',
        principal: 'p',
        by: 'me',
        via: 'api',
        database: 'd',
        ruleId: 'r',
        fingerprint: 'f',
        textHash: 't',
        message: 'approved by me',
      },
    ]) {
      const response = await send(api, await captured('/v1/events', { events: [statement(1), event] }));
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({
        error: { code: 'BAD_REQUEST', message: expect.stringContaining('events[1].type') },
      });
    }
    expect(service.calls.ingest).toEqual([]);
  });
});

describe('the public routes are rate-limited apart from the proxy routes', () => {
  it('answers 429 RATE_LIMITED once a caller used its burst, refills, and never limits the proxy', async () => {
    let now = 1_000_000;
    const { app: api } = app(() => now);
    const health = () => api.request('/healthz');
    for (let i = 0; i < 3; i++) expect((await health()).status).toBe(200);
    const limited = await health();
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    expect(limited.headers.get('retry-after')).toBe('1');
    // the proxy's routes keep working while the public ones are limited
    for (let i = 0; i < 5; i++) {
      expect((await send(api, await captured('/v1/decisions', decisionBody))).status).toBe(200);
    }
    now += 1_000;
    expect((await health()).status).toBe(200);
  });
});
