/**
 * The control-plane HTTP API: Request → Response, the same on Lambda (handler.ts) and on Node. Routes
 * only validate and delegate; every failure is thrown and turned into a response once, in onError.
 */
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ControlPlane } from '../../shared/control-plane.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import { errorResponse } from './errors.ts';
import { localProxyAuth, type ProxyAuth, requireProxy } from './proxy-auth.ts';
import { publicRateLimit, type RateLimitOptions } from './rate-limit.ts';
import { decisionRequest, eventBatch, openSessionRequest, parse, sessionCheckRequest } from './validate.ts';

export interface AppDeps {
  service: ControlPlane;
  /** the deployment's secret: locally, the proxy's signing secret when `proxyAuth` is not given */
  serviceToken: string;
  /** how the proxy's routes authenticate (deployed: 'iam'); default: the local SigV4 key pair */
  proxyAuth?: ProxyAuth;
  /** per-caller limits on the public routes (rate-limit.ts); default DEFAULT_PUBLIC_RATE_LIMIT */
  rateLimit?: RateLimitOptions;
  logger?: Logger;
  /**
   * Further route groups (audit queries, policies, approvals, Slack). Each applies its own auth
   * per route: middleware registered with a wildcard here would leak onto the others' routes.
   */
  routes?: ReadonlyArray<(app: Hono) => void>;
}

/** What the proxy records through POST /v1/events. */
const PROXY_EVENT_TYPES = new Set(['statement', 'session_closed']);

/** Above a full batch of 500 statement events; Lambda refuses bodies over 6 MB anyway. */
const MAX_BODY_BYTES = 5 * 1024 * 1024;

export function createApp(deps: AppDeps): Hono {
  const logger = deps.logger ?? silentLogger;
  const app = new Hono();

  // Public routes only (Slack, people, /healthz): the proxy's are authenticated and not limited here.
  app.use('*', publicRateLimit(deps.rateLimit));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  const proxyOnly = requireProxy(deps.proxyAuth ?? localProxyAuth(deps.serviceToken));
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        c.json(
          { error: { code: 'BAD_REQUEST', message: `the body is larger than ${MAX_BODY_BYTES} bytes` } },
          413,
        ),
    }),
  );

  app.post('/v1/sessions', proxyOnly, async (c) => {
    const request = parse(openSessionRequest, await jsonBody(c));
    return c.json(await deps.service.openSession(request));
  });

  // The proxy's periodic re-check of an open session (proxy/session-lifetime.ts).
  app.post('/v1/session-checks', proxyOnly, async (c) => {
    const request = parse(sessionCheckRequest, await jsonBody(c));
    if (deps.service.checkSession === undefined) return c.json({ status: 'active' });
    return c.json(await deps.service.checkSession(request));
  });

  app.post('/v1/decisions', proxyOnly, async (c) => {
    const request = parse(decisionRequest, await jsonBody(c));
    return c.json(await deps.service.decide(request));
  });

  app.post('/v1/events', proxyOnly, async (c) => {
    const { events } = parse(eventBatch, await jsonBody(c));
    // The API writes session opens, failed logins and approval steps itself: whoever holds the
    // proxy's identity must not fabricate a session (verification requires its open) or its approvals.
    const foreign = events.findIndex((event) => !PROXY_EVENT_TYPES.has(event.type));
    if (foreign >= 0)
      throw new PgWardenError(
        'BAD_REQUEST',
        `events[${foreign}].type must be statement or session_closed (the API records ${events[foreign]!.type} itself)`,
      );
    await deps.service.ingest(events);
    return c.json({ stored: events.length });
  });

  for (const register of deps.routes ?? []) register(app);

  app.notFound((c) =>
    c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404),
  );

  app.onError((error, c) => {
    const { status, body } = errorResponse(error);
    if (status >= 500) {
      // The stack goes to our logs only; the caller gets the generic body.
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      logger.error('request failed', {
        method: c.req.method,
        path: c.req.path,
        code: body.error.code,
        detail,
      });
    }
    return c.json(body, status);
  });

  return app;
}

export async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new PgWardenError('BAD_REQUEST', 'the body must be valid JSON');
  }
}
