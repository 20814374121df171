/**
 * The principals directory over HTTP, for administrators (admins groups) and for an identity
 * provider's provisioning hook acting through an administrator's token:
 * - GET /v1/principals?email=… or ?issuer=…&subject=…: what pgwarden knows of a principal;
 * - PATCH /v1/principals {issuer, subject, disabled?, reason?, groups?}: disable (or enable) a
 *   principal, or set the groups pgwarden uses from now on (a removal reaches open sessions at
 *   their next re-check and Slack clicks at once; a token issued later is the IdP's newer word).
 * This is how group changes reach pgwarden before a person's next token: see the README's
 * "Identity and session lifetime".
 */
import type { Hono } from 'hono';
import type { PrincipalChange, PrincipalDirectory } from '../../../shared/approvals/ports.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import type { PrincipalId } from '../../../shared/identity.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import { jsonBody } from '../app.ts';
import { type CurrentPrincipals, requireUser, userOf } from '../auth.ts';

export interface PrincipalRoutesDeps {
  verifier: TokenVerifier;
  admins: readonly string[];
  principals: PrincipalDirectory;
  now: () => Date;
}

const MAX_GROUPS = 200;
const MAX_TEXT = 1024;

export function principalRoutes(deps: PrincipalRoutesDeps): (app: Hono) => void {
  const current: CurrentPrincipals = { principals: deps.principals, now: deps.now };
  return (app) => {
    const adminsOnly = requireUser(deps.verifier, deps.admins, 'manage principals', current);

    app.get('/v1/principals', adminsOnly, async (c) => {
      const email = c.req.query('email');
      if (email !== undefined)
        return c.json({ principals: await deps.principals.findByEmail(text(email, 'email')) });
      const known = await deps.principals.get(principalId(c.req.query()));
      return c.json({ principals: known === undefined ? [] : [known] });
    });

    app.patch('/v1/principals', adminsOnly, async (c) => {
      const body = (await jsonBody(c)) as Record<string, unknown> | null;
      if (typeof body !== 'object' || body === null)
        throw new PgWardenError('BAD_REQUEST', 'the body must be an object');
      const id = principalId(body);
      const change = principalChange(body);
      const admin = userOf(c);
      const principal = await deps.principals.change(id, change, admin.name, deps.now());
      return c.json({ principal });
    });
  };
}

function principalId(source: Record<string, unknown>): PrincipalId {
  return { issuer: text(source['issuer'], 'issuer'), subject: text(source['subject'], 'subject') };
}

function principalChange(body: Record<string, unknown>): PrincipalChange {
  const change: PrincipalChange = {};
  if (body['disabled'] !== undefined) {
    if (typeof body['disabled'] !== 'boolean')
      throw new PgWardenError('BAD_REQUEST', 'disabled must be true or false');
    change.disabled = body['disabled'];
  }
  if (body['reason'] !== undefined) change.reason = text(body['reason'], 'reason');
  if (body['groups'] !== undefined) {
    const groups = body['groups'];
    if (
      !Array.isArray(groups) ||
      groups.length > MAX_GROUPS ||
      !groups.every((g) => typeof g === 'string' && g !== '')
    )
      throw new PgWardenError('BAD_REQUEST', `groups must be a list of at most ${MAX_GROUPS} group names`);
    change.groups = groups as string[];
  }
  if (change.disabled === undefined && change.groups === undefined)
    throw new PgWardenError('BAD_REQUEST', 'say what changes: disabled (true/false) and/or groups');
  return change;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_TEXT)
    throw new PgWardenError('BAD_REQUEST', `${what} must be a non-empty string`);
  return value;
}
