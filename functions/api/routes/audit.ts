/**
 * Reading the audit trail, for auditors only (their OIDC token; PGWARDEN_AUDITOR_GROUPS):
 * - GET /v1/audit/events?principal&session&since&until&decision&text&limit&cursor
 *   → {events, nextCursor} (time order; a session's in statement order);
 * - GET /v1/sessions/:id?limit&cursor → {session, events, nextCursor}: the session record (opened and
 *   closed merged) and its statements in order.
 * - GET /v1/audit/verify?session=ID, or ?since&until (the sessions with statements in that window)
 *   → {ok, sessions: [{sessionId, status, links, statements, firstBreak?}], more}: each session's
 *   hash chain checked (shared/audit-chain.ts); ok is false when any is broken.
 * Filters are validated in shared/audit-query.ts; the cursor is signed, so it only continues the
 * query it came from.
 */
import { createHash } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { type ChainSessionItem, type ChainVerdict, verifySessionChain } from '../../../shared/audit-chain.ts';
import { encodeAuditCursor, parseAuditQuery } from '../../../shared/audit-query.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import type { AuditQuery, TokenVerifier } from '../../../shared/ports.ts';
import { DynamoDbAuditQuery } from '../../adapters/dynamodb-audit-query.ts';
import { tableNames } from '../../adapters/dynamodb-audit-store.ts';
import { type CurrentPrincipals, requireUser } from '../auth.ts';
import type { RouteContext, RouteGroup } from './index.ts';

export interface AuditRoutesDeps {
  query: AuditQuery;
  verifier: TokenVerifier;
  auditors: readonly string[];
  /** signs page cursors; a secret of this deployment */
  cursorKey: string;
  now: () => Date;
  /** auditors' tokens checked against the principals directory (disabled, groups removed since) */
  current?: CurrentPrincipals;
}

export function auditRouteGroup(ctx: RouteContext): RouteGroup {
  return auditRoutes({
    query: new DynamoDbAuditQuery(ctx.dynamodb, tableNames(ctx.tablePrefix)),
    verifier: ctx.verifier,
    auditors: ctx.access.auditors,
    cursorKey: cursorKeyFrom(ctx.serviceToken),
    now: ctx.now,
    current: { ...(ctx.principals && { principals: ctx.principals }), now: ctx.now },
  });
}

/** The service token is already this deployment's secret; a derived key keeps the two uses apart. */
export function cursorKeyFrom(serviceToken: string): string {
  return createHash('sha256').update(`pgwarden audit cursor\u0000${serviceToken}`).digest('base64url');
}

export function auditRoutes(deps: AuditRoutesDeps): RouteGroup {
  return (app: Hono) => {
    const auditorsOnly = requireUser(deps.verifier, deps.auditors, 'read the audit trail', deps.current);

    app.get('/v1/audit/events', auditorsOnly, async (c) => {
      const query = parseAuditQuery(queryParams(c), deps.now(), deps.cursorKey);
      const page = await deps.query.statements(query);
      return c.json({
        events: page.events,
        nextCursor: page.next === undefined ? null : encodeAuditCursor(query, page.next, deps.cursorKey),
      });
    });

    app.get('/v1/audit/verify', auditorsOnly, (c) => verify(c, deps));

    app.get('/v1/sessions/:id', auditorsOnly, async (c) => {
      const sessionId = c.req.param('id');
      const params = queryParams(c);
      const extra = Object.keys(params).filter((name) => name !== 'limit' && name !== 'cursor');
      if (extra.length > 0)
        throw new PgWardenError('BAD_REQUEST', `unknown parameter ${extra.join(', ')}; use limit, cursor`);
      const query = parseAuditQuery({ ...params, session: sessionId }, deps.now(), deps.cursorKey);
      const [session, page] = await Promise.all([
        deps.query.session(sessionId),
        deps.query.statements(query),
      ]);
      if (session === undefined && page.events.length === 0 && query.after === undefined) {
        throw new PgWardenError('NOT_FOUND', `no session ${sessionId} in the audit trail`);
      }
      return c.json({
        session: session ?? null,
        events: page.events,
        nextCursor: page.next === undefined ? null : encodeAuditCursor(query, page.next, deps.cursorKey),
      });
    });
  };
}

/** Sessions one verify request checks at most (each is read whole). */
export const MAX_VERIFIED_SESSIONS = 200;

async function verifySession(query: AuditQuery, sessionId: string): Promise<ChainVerdict | undefined> {
  const [session, statements] = await Promise.all([
    query.session(sessionId),
    query.sessionStatements(sessionId),
  ]);
  if (session === undefined && statements.length === 0) return undefined;
  return verifySessionChain(sessionId, session as ChainSessionItem | undefined, statements);
}

/** GET /v1/audit/verify: one session, or every session with a statement in a time window. */
async function verify(c: Context, deps: AuditRoutesDeps): Promise<Response> {
  const params = queryParams(c);
  const extra = Object.keys(params).filter((name) => !['session', 'since', 'until'].includes(name));
  if (extra.length > 0)
    throw new PgWardenError(
      'BAD_REQUEST',
      `unknown parameter ${extra.join(', ')}; use session, or since and until`,
    );
  const sessionId = params['session'];
  if (sessionId !== undefined) {
    if (params['since'] !== undefined || params['until'] !== undefined)
      throw new PgWardenError('BAD_REQUEST', 'give a session, or since and until, not both');
    const verdict = await verifySession(deps.query, sessionId);
    if (verdict === undefined)
      throw new PgWardenError('NOT_FOUND', `no session ${sessionId} in the audit trail`);
    return c.json({ ok: verdict.status !== 'broken', sessions: [verdict], more: false });
  }
  if (params['since'] === undefined)
    throw new PgWardenError('BAD_REQUEST', 'give session=ID, or since (and until) for a time window');
  // the same window rules as the event listing (ISO times or durations back, at most a few days)
  const window = parseAuditQuery(
    { since: params['since'], until: params['until'] },
    deps.now(),
    deps.cursorKey,
  );
  const { ids, more } = await deps.query.sessionsBetween(window.since, window.until, MAX_VERIFIED_SESSIONS);
  const sessions: ChainVerdict[] = [];
  for (const id of ids) {
    const verdict = await verifySession(deps.query, id);
    if (verdict) sessions.push(verdict);
  }
  return c.json({ ok: sessions.every((v) => v.status !== 'broken'), sessions, more });
}

/** One value per name; a repeated parameter is ambiguous and refused. */
function queryParams(c: Context): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (values.length !== 1) throw new PgWardenError('BAD_REQUEST', `give ${name} once`);
    params[name] = values[0]!;
  }
  return params;
}
