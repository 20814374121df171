/**
 * The control-plane HTTP API: Request → Response, the same on Lambda (handler.ts) and on Node. Routes
 * only validate and delegate; every failure is thrown and turned into a response once, in onError.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ControlPlane } from '../../shared/control-plane.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import { errorResponse } from './errors.ts';
import { decisionRequest, eventBatch, openSessionRequest, parse } from './validate.ts';

export interface AppDeps {
  service: ControlPlane;
  serviceToken: string;
  logger?: Logger;
}

/** Above a full batch of 500 statement events; Lambda refuses bodies over 6 MB anyway. */
const MAX_BODY_BYTES = 5 * 1024 * 1024;

export function createApp(deps: AppDeps): Hono {
  if (deps.serviceToken === '') throw new PgWardenError('CONFIG_INVALID', 'the service token is empty');
  const logger = deps.logger ?? silentLogger;
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.use('/v1/*', requireServiceToken(deps.serviceToken));
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

  app.post('/v1/sessions', async (c) => {
    const request = parse(openSessionRequest, await jsonBody(c));
    return c.json(await deps.service.openSession(request));
  });

  app.post('/v1/decisions', async (c) => {
    const request = parse(decisionRequest, await jsonBody(c));
    return c.json(await deps.service.decide(request));
  });

  app.post('/v1/events', async (c) => {
    const { events } = parse(eventBatch, await jsonBody(c));
    await deps.service.ingest(events);
    return c.json({ stored: events.length });
  });

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

/**
 * Only the proxy may call /v1. Both sides are hashed first so timingSafeEqual compares equal
 * lengths and the comparison time says nothing about the token, not even its length.
 */
function requireServiceToken(serviceToken: string): MiddlewareHandler {
  const expected = sha256(serviceToken);
  return async (c, next) => {
    const presented = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (presented === undefined || !timingSafeEqual(sha256(presented), expected)) {
      throw new PgWardenError(
        'AUTH_SERVICE_CREDENTIAL',
        'this API answers only the pgwarden proxy: send its service token as "Authorization: Bearer <token>"',
      );
    }
    await next();
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new PgWardenError('BAD_REQUEST', 'the body must be valid JSON');
  }
}
