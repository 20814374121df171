/**
 * Who may call which route. Two kinds of callers reach the API:
 * - the proxy, with the service token (sessions, decisions, events, approvals it waits on);
 * - people and their tools (CLI, Slack aside), with their own OIDC token, authorised by group
 *   (auditors read the audit trail, admins change policies, reviewers decide approvals).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import type { PrincipalDirectory } from '../../shared/approvals/ports.ts';
import { PgWardenError } from '../../shared/errors.ts';
import { type Principal, principalFromClaims } from '../../shared/identity.ts';
import type { TokenVerifier } from '../../shared/ports.ts';
import { currentPrincipal } from './remember-principal.ts';

/**
 * Where people's tokens are checked against what pgwarden knows now (a disabled principal, groups
 * removed since the token was issued): see remember-principal.ts. Absent: the token alone counts.
 */
export interface CurrentPrincipals {
  principals?: PrincipalDirectory;
  now: () => Date;
}

/** Groups that grant the API's human capabilities; each list is "any of". */
export interface AccessGroups {
  auditors: string[];
  admins: string[];
  reviewers: string[];
}

export const DEFAULT_ACCESS_GROUPS: AccessGroups = {
  auditors: ['auditors'],
  admins: ['admins'],
  reviewers: ['reviewers'],
};

function bearer(c: Context): string | undefined {
  return /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '')?.[1];
}

/**
 * Only the proxy. Both sides are hashed first so timingSafeEqual compares equal lengths and the
 * comparison time says nothing about the token, not even its length.
 */
export function requireServiceToken(serviceToken: string): MiddlewareHandler {
  if (serviceToken === '') throw new PgWardenError('CONFIG_INVALID', 'the service token is empty');
  const expected = sha256(serviceToken);
  return async (c, next) => {
    const presented = bearer(c);
    if (presented === undefined || !timingSafeEqual(sha256(presented), expected)) {
      throw new PgWardenError(
        'AUTH_SERVICE_CREDENTIAL',
        'this endpoint answers only the pgwarden proxy: send its service token as "Authorization: Bearer <token>"',
      );
    }
    await next();
  };
}

/**
 * A person with a verified OIDC token who is in one of `groups` (as pgwarden knows them now, when
 * `current` is given). The principal is left on the context (`c.get('principal')`) for the route.
 * 401 without a valid token (or disabled), 403 outside the groups.
 */
export function requireUser(
  verifier: TokenVerifier,
  groups: readonly string[],
  capability: string,
  current?: CurrentPrincipals,
): MiddlewareHandler {
  return async (c, next) => {
    const principal = await verifiedCaller(c, verifier, current);
    if (!principal.groups.some((group) => groups.includes(group))) {
      throw new PgWardenError(
        'FORBIDDEN',
        `${principal.name} may not ${capability}: that needs membership of ${groups.map((g) => `"${g}"`).join(' or ')}`,
      );
    }
    c.set('principal' as never, principal as never);
    await next();
  };
}

/** The caller's verified principal, brought up to date through the directory when one is given. */
export async function verifiedCaller(
  c: Context,
  verifier: TokenVerifier,
  current?: CurrentPrincipals,
): Promise<Principal> {
  const token = bearer(c);
  if (token === undefined) {
    throw new PgWardenError(
      'AUTH_TOKEN_MISSING',
      'send your OIDC token as "Authorization: Bearer <token>" (npm run -s token -- EMAIL --groups ... locally)',
    );
  }
  const principal = principalFromClaims(await verifier.verify(token));
  return current === undefined ? principal : currentPrincipal(current.principals, principal, current.now());
}

/** The principal `requireUser` verified for this request. */
export function userOf(c: Context): Principal {
  const principal = c.get('principal' as never) as Principal | undefined;
  if (!principal) throw new PgWardenError('INTERNAL', 'route reached without requireUser');
  return principal;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
