/**
 * Policies over HTTP (see the "Policies HTTP API" contract):
 * - GET /v1/policies/current: any signed-in person; GET /v1/proxy/policies/current: the proxy (its
 *   AWS identity, proxy-auth.ts). ETag = version, If-None-Match → 304, so polling proxies pay for a
 *   body only when the policy changed;
 * - PUT /v1/policies: admins; the body is the document as text (YAML or JSON), validated with
 *   line/field issues before anything is stored;
 * - GET /v1/policies: the version history, for admins and auditors.
 * With nothing stored, the current policy is the built-in default pack (or local mode's file).
 */
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { PgWardenError } from '../../../shared/errors.ts';
import { principalFromClaims } from '../../../shared/identity.ts';
import { DEFAULT_POLICY } from '../../../shared/policy/default-policy.ts';
import type { Policy } from '../../../shared/policy/model.ts';
import { checkPolicyText, formatIssue } from '../../../shared/policy/parse-policy.ts';
import type { PolicyStore, StoredPolicy } from '../../../shared/policy/stored.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import { DynamoDbPolicyStore, policyTableName } from '../../adapters/dynamodb-policy-store.ts';
import { type AccessGroups, type CurrentPrincipals, requireUser, userOf } from '../auth.ts';
import { localProxyAuth, type ProxyAuth, requireProxy } from '../proxy-auth.ts';
import type { RouteContext } from './index.ts';

export interface PolicyRoutesDeps {
  verifier: TokenVerifier;
  access: AccessGroups;
  proxyAuth: ProxyAuth;
  store: PolicyStore;
  /** current when nothing is stored */
  fallback: Policy;
  now: () => Date;
  /** told about each stored version (local mode: the in-process decisions switch at once) */
  onStored?: (stored: StoredPolicy) => void;
  /** people's tokens checked against the principals directory (disabled, groups removed since) */
  current?: CurrentPrincipals;
}

/**
 * The group as apiRoutes registers it: with the context's policy source when there is one (its
 * store, its fallback, and it hears of each PUT at once), else straight over the policies table.
 */
export function policyRouteGroup(ctx: RouteContext): (app: Hono) => void {
  const source = ctx.policySource;
  return policyRoutes({
    verifier: ctx.verifier,
    access: ctx.access,
    proxyAuth: ctx.proxyAuth ?? localProxyAuth(ctx.serviceToken),
    store: source?.store ?? new DynamoDbPolicyStore(ctx.dynamodb, policyTableName(ctx.tablePrefix)),
    fallback: source?.fallback ?? DEFAULT_POLICY,
    now: ctx.now,
    current: { ...(ctx.principals && { principals: ctx.principals }), now: ctx.now },
    ...(source && { onStored: (stored: StoredPolicy) => source.accept(stored) }),
  });
}

/** A policy document is a few KB; this leaves room for large rule lists and comments. */
export const MAX_POLICY_BYTES = 256 * 1024;
const MAX_HISTORY = 100;

export function policyRoutes(deps: PolicyRoutesDeps): (app: Hono) => void {
  return (app) => {
    // People read it with their token; the proxy polls its own route (signed with its AWS identity,
    // behind the IAM authorizer in AWS: one API Gateway route cannot take both kinds of caller).
    const current = async (c: Context) => {
      const stored = await deps.store.current();
      const body = stored
        ? {
            policy: stored.policy,
            version: stored.version,
            storedAt: stored.storedAt,
            storedBy: stored.storedBy,
          }
        : { policy: deps.fallback, version: deps.fallback.version, storedAt: null, storedBy: null };
      const etag = `"${body.version}"`;
      c.header('ETag', etag);
      c.header('Cache-Control', 'no-cache');
      if (matches(c.req.header('if-none-match'), etag)) return c.body(null, 304);
      return c.json(body);
    };
    app.get('/v1/policies/current', anyPerson(deps.verifier), current);
    app.get('/v1/proxy/policies/current', requireProxy(deps.proxyAuth), current);

    app.put(
      '/v1/policies',
      requireUser(deps.verifier, deps.access.admins, 'change policies', deps.current),
      async (c) => {
        const text = await c.req.text();
        if (Buffer.byteLength(text) > MAX_POLICY_BYTES)
          throw new PgWardenError('BAD_REQUEST', `the policy is larger than ${MAX_POLICY_BYTES} bytes`);
        if (text.trim() === '')
          throw new PgWardenError('BAD_REQUEST', 'send the policy document (YAML or JSON) as the body');
        const check = checkPolicyText(text);
        if (!check.ok) {
          const message = `invalid policy:\n${check.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`;
          return c.json({ error: { code: 'BAD_REQUEST', message, issues: check.issues } }, 400);
        }
        const stored = await deps.store.put({
          text,
          policy: check.policy,
          storedBy: userOf(c).name,
          storedAt: deps.now().toISOString(),
        });
        deps.onStored?.(stored);
        return c.json({
          version: stored.version,
          declaredVersion: stored.declaredVersion,
          storedAt: stored.storedAt,
          storedBy: stored.storedBy,
          rules: stored.policy.rules.length,
        });
      },
    );

    app.get(
      '/v1/policies',
      requireUser(
        deps.verifier,
        [...deps.access.admins, ...deps.access.auditors],
        'read the policy history',
        deps.current,
      ),
      async (c) => {
        const limitText = c.req.query('limit');
        const limit = limitText === undefined ? 20 : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY)
          throw new PgWardenError('BAD_REQUEST', `limit must be an integer from 1 to ${MAX_HISTORY}`);
        return c.json({ versions: await deps.store.history(limit) });
      },
    );
  };
}

/** If-None-Match: a list of entity tags, or `*`; weak tags compare by their value. */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim().replace(/^W\//, '');
    return t === '*' || t === etag;
  });
}

/** Any person with a valid token: the policy is no secret to them. */
function anyPerson(verifier: TokenVerifier): MiddlewareHandler {
  return async (c: Context, next) => {
    const token = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (token === undefined) {
      throw new PgWardenError(
        'AUTH_TOKEN_MISSING',
        'send your OIDC token as "Authorization: Bearer <token>"',
      );
    }
    principalFromClaims(await verifier.verify(token));
    await next();
  };
}
