/**
 * Who may call the proxy's routes (sessions, decisions, events, the approvals it waits on, the
 * current policy): the proxy's AWS identity, never a shared bearer token.
 * - 'iam' (deployed): API Gateway's IAM authorizer on these routes has verified the request's
 *   SigV4 signature (infra/constructs/control-plane.ts); the app then requires that the signer is
 *   one of the proxy's task roles, from the authorizer's context. A request that reached the
 *   function without that context (another route, a direct invoke) is refused.
 * - 'sigv4' (local mode and tests over HTTP): the app verifies the signature itself against a
 *   local key pair: same signing code in the proxy, same checks (key, scope, five-minute window,
 *   body hash), plus a replay cache for the window that API Gateway does not keep.
 * In-process callers (local mode's proxy) call the use cases directly and need none of this.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Context, MiddlewareHandler } from 'hono';
import { PgWardenError } from '../../shared/errors.ts';
import {
  LOCAL_ACCESS_KEY_ID,
  LOCAL_SIGNING_REGION,
  NONCE_HEADER,
  NodeSha256,
  parseSigV4Authorization,
  SIGNING_SERVICE,
  type SigV4Authorization,
} from '../../shared/sigv4.ts';

export type ProxyAuth =
  | {
      mode: 'iam';
      /** the proxy's task roles (arn:aws:iam::<account>:role/<name>) */
      roleArns: readonly string[];
    }
  | {
      mode: 'sigv4';
      accessKeyId: string;
      secretAccessKey: string;
      region: string;
      now?: () => Date;
    };

/** Local mode's verifier: the local key id with the deployment's local secret. */
export function localProxyAuth(secret: string): ProxyAuth {
  return {
    mode: 'sigv4',
    accessKeyId: LOCAL_ACCESS_KEY_ID,
    secretAccessKey: secret,
    region: LOCAL_SIGNING_REGION,
  };
}

/**
 * The routes only the proxy calls, as API Gateway names them: the deployment puts its IAM
 * authorizer on exactly these (infra/constructs/control-plane.ts), and the app guards each with
 * requireProxy. Everything else is people's (OIDC) or Slack's (signed by Slack).
 */
export const PROXY_ROUTES = [
  { method: 'POST', path: '/v1/sessions' },
  { method: 'POST', path: '/v1/session-checks' },
  { method: 'POST', path: '/v1/decisions' },
  { method: 'POST', path: '/v1/events' },
  { method: 'POST', path: '/v1/approvals' },
  { method: 'GET', path: '/v1/approvals/{id}/wait' },
  { method: 'POST', path: '/v1/approvals/{id}/executed' },
  { method: 'GET', path: '/v1/proxy/policies/current' },
] as const;

/** How far a signature's time may be from ours (AWS allows five minutes). */
export const MAX_SKEW_MS = 5 * 60_000;

const refused = (why: string) =>
  new PgWardenError(
    'AUTH_SERVICE_CREDENTIAL',
    `this endpoint answers only the pgwarden proxy, signed with its AWS identity (SigV4): ${why}`,
  );

export function requireProxy(auth: ProxyAuth): MiddlewareHandler {
  if (auth.mode === 'iam') return requireIamCaller(auth.roleArns);
  return requireLocalSignature(auth);
}

/** The role in `arn:aws:iam::<account>:role[/path]/<name>`, as an assumed-role ARN names it. */
function roleKey(arn: string): string | undefined {
  const match = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(arn);
  return match ? `${match[1]}/${match[2]}` : undefined;
}

/** `arn:aws:sts::<account>:assumed-role/<name>/<session>` → `<account>/<name>`. */
function assumedRoleKey(arn: string): string | undefined {
  const match = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/([\w+=,.@-]+)\/[^/]+$/.exec(arn);
  return match ? `${match[1]}/${match[2]}` : undefined;
}

function requireIamCaller(roleArns: readonly string[]): MiddlewareHandler {
  const allowed = new Set(roleArns.map(roleKey).filter((key): key is string => key !== undefined));
  if (allowed.size === 0) throw new PgWardenError('CONFIG_INVALID', 'no valid proxy role ARN is configured');
  return async (c, next) => {
    // hono/aws-lambda puts the API Gateway event in c.env.event
    const env = c.env as { event?: { requestContext?: { authorizer?: { iam?: { userArn?: unknown } } } } };
    const userArn = env?.event?.requestContext?.authorizer?.iam?.userArn;
    if (typeof userArn !== 'string') throw refused('the request did not come through the IAM authorizer');
    const key = assumedRoleKey(userArn);
    if (key === undefined || !allowed.has(key)) throw refused(`${userArn} is not the proxy's role`);
    await next();
  };
}

function requireLocalSignature(auth: Extract<ProxyAuth, { mode: 'sigv4' }>): MiddlewareHandler {
  const signer = new SignatureV4({
    credentials: { accessKeyId: auth.accessKeyId, secretAccessKey: auth.secretAccessKey },
    region: auth.region,
    service: SIGNING_SERVICE,
    sha256: NodeSha256,
    applyChecksum: false,
  });
  const now = auth.now ?? (() => new Date());
  const seen = new ReplayCache();
  return async (c, next) => {
    const parts = parseSigV4Authorization(c.req.header('authorization'));
    if (parts === undefined) throw refused('no SigV4 Authorization header');
    const amzDate = c.req.header('x-amz-date') ?? '';
    const signedAt = parseAmzDate(amzDate);
    checkScope(parts, auth, amzDate, signedAt, now());
    const expected = await expectedSignature(c, signer, parts, signedAt);
    if (!equalHex(expected, parts.signature)) throw refused('the signature does not match the request');
    if (!seen.add(c.req.header(NONCE_HEADER) ?? '', signedAt.getTime() + MAX_SKEW_MS, now().getTime()))
      throw refused('this signed request was already used (a replay)');
    await next();
  };
}

function checkScope(
  parts: SigV4Authorization,
  auth: Extract<ProxyAuth, { mode: 'sigv4' }>,
  amzDate: string,
  signedAt: Date,
  now: Date,
): void {
  if (!equalText(parts.accessKeyId, auth.accessKeyId)) throw refused('unknown access key');
  if (parts.region !== auth.region || parts.service !== SIGNING_SERVICE)
    throw refused(`the signature is scoped to ${parts.region}/${parts.service}`);
  if (parts.date !== amzDate.slice(0, 8)) throw refused('the credential date is not the x-amz-date day');
  for (const name of ['host', 'x-amz-date', NONCE_HEADER]) {
    if (!parts.signedHeaders.includes(name)) throw refused(`${name} must be signed`);
  }
  if (Math.abs(now.getTime() - signedAt.getTime()) > MAX_SKEW_MS)
    throw refused('the signature is older than five minutes (or from the future)');
}

/** The signature of the request as received, over exactly the headers the caller signed. */
async function expectedSignature(
  c: Context,
  signer: SignatureV4,
  parts: SigV4Authorization,
  signedAt: Date,
): Promise<string> {
  const url = new URL(c.req.url);
  const headers: Record<string, string> = {};
  for (const name of parts.signedHeaders) {
    const value = name === 'host' ? (c.req.header('host') ?? url.host) : c.req.header(name);
    if (value === undefined) throw refused(`the signed header ${name} is missing`);
    headers[name] = value;
  }
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...[seen].flat(), value];
  }
  const method = c.req.method;
  const body = method === 'GET' || method === 'HEAD' ? undefined : await c.req.text();
  // The signer would take a present x-amz-content-sha256 as the body's hash without hashing the
  // body: a signature kept with another body would then still match. It must be the real hash.
  const claimed = headers['x-amz-content-sha256'];
  if (
    claimed !== undefined &&
    claimed !==
      createHash('sha256')
        .update(body ?? '')
        .digest('hex')
  )
    throw refused('x-amz-content-sha256 is not the hash of the body');
  const signed = await signer.sign(
    {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
      ...(body === undefined ? {} : { body }),
    },
    { signingDate: signedAt },
  );
  const authorization = (signed.headers as Record<string, string>)['authorization'] ?? '';
  const recomputed = parseSigV4Authorization(authorization);
  // the signer signs what it is given; a header list that differs means the caller's differs
  if (recomputed === undefined || recomputed.signedHeaders.join(';') !== parts.signedHeaders.join(';'))
    throw refused('the signed header list does not match the request');
  return recomputed.signature;
}

function parseAmzDate(value: string): Date {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) throw refused('x-amz-date is missing or malformed');
  const [, y, mo, d, h, mi, s] = match;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
}

function equalHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

function equalText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Nonces of verified requests within their window; each is forgotten once its window has passed. */
class ReplayCache {
  private readonly expiries = new Map<string, number>();

  /** false when the nonce was already used */
  add(signature: string, expiresAt: number, now: number): boolean {
    if (this.expiries.size > 10_000) {
      for (const [seen, at] of this.expiries) if (at < now) this.expiries.delete(seen);
    }
    const known = this.expiries.get(signature);
    if (known !== undefined && known >= now) return false;
    this.expiries.set(signature, expiresAt);
    return true;
  }
}
