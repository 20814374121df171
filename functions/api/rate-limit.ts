/**
 * Rate limits for the public routes (Slack's /slack/events, people's OIDC routes, /healthz), apart
 * from the proxy's: a token bucket per source address and one per bearer token, in memory. On
 * Lambda each warm container keeps its own buckets, so this bounds one caller's burst per
 * container; the deployment's API Gateway stage throttles each public route as a whole
 * (infra/constructs/control-plane.ts). An empty bucket answers 429 with code RATE_LIMITED.
 * The proxy's routes are not limited here: they are authenticated first (proxy-auth.ts) and carry
 * every statement's audit record.
 */
import { createHash } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { PgWardenError } from '../../shared/errors.ts';
import { PROXY_ROUTES } from './proxy-auth.ts';

export interface RateLimitOptions {
  /** tokens added per second to each caller's bucket */
  perSecond: number;
  /** a bucket's size: how many requests a caller may send at once */
  burst: number;
  /** milliseconds (tests) */
  now?: () => number;
}

export const DEFAULT_PUBLIC_RATE_LIMIT: RateLimitOptions = { perSecond: 50, burst: 200 };

/** buckets kept at most; the fullest (idle) ones are dropped first when there are more */
const MAX_BUCKETS = 50_000;

class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly o: RateLimitOptions) {}

  take(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) this.dropIdle(now);
      bucket = { tokens: this.o.burst, at: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.o.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.o.perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have refilled (their callers are idle): nothing is lost by that. */
  private dropIdle(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.o.perSecond >= this.o.burst)
        this.buckets.delete(key);
    }
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear(); // a flood of distinct keys
  }
}

const proxyRoutes = PROXY_ROUTES.map(({ method, path }) => ({
  method,
  pattern: new RegExp(`^${path.replaceAll(/\{[^}]+\}/g, '[^/]+')}$`),
}));

export function isProxyRoute(method: string, path: string): boolean {
  return proxyRoutes.some((route) => route.method === method && route.pattern.test(path));
}

/** The caller's address: API Gateway's source IP on Lambda, the socket's peer on Node. */
export function sourceAddress(c: Context): string {
  const env = c.env as
    | {
        event?: { requestContext?: { http?: { sourceIp?: string } } };
        incoming?: { socket?: { remoteAddress?: string } };
      }
    | undefined;
  return env?.event?.requestContext?.http?.sourceIp ?? env?.incoming?.socket?.remoteAddress ?? 'unknown';
}

export function publicRateLimit(options: RateLimitOptions = DEFAULT_PUBLIC_RATE_LIMIT): MiddlewareHandler {
  const buckets = new TokenBuckets(options);
  const now = options.now ?? Date.now;
  return async (c, next) => {
    if (isProxyRoute(c.req.method, c.req.path)) return next();
    const at = now();
    const token = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '')?.[1];
    const keys = [`ip:${sourceAddress(c)}`];
    // a token's hash, never the token: one person's tool cannot spend another's share
    if (token !== undefined) keys.push(`token:${createHash('sha256').update(token).digest('base64url')}`);
    for (const key of keys) {
      if (!buckets.take(key, at)) {
        c.header('Retry-After', String(Math.max(1, Math.ceil(1 / options.perSecond))));
        throw new PgWardenError(
          'RATE_LIMITED',
          'too many requests from this caller; slow down and retry in a moment',
        );
      }
    }
    return next();
  };
}
