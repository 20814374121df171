/**
 * Audit queries, pure: the filters a reader may give (validated), which index answers them, the
 * check every returned record passes, and the opaque page cursor.
 *
 * The cursor carries the position of the last record a page looked at and the resolved time window,
 * signed with HMAC-SHA256 over the query's filters: a cursor only continues the query that made it;
 * an edited or replayed-elsewhere cursor is refused, so it cannot steer reads to other partitions.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { DecisionAction } from './control-plane.ts';
import { PgWardenError } from './errors.ts';

export const AUDIT_DECISIONS: readonly DecisionAction[] = ['allow', 'deny', 'require_approval'];
export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 1000;
/** Without a principal or a session, how far back a query looks by default. */
export const DEFAULT_WINDOW_DAYS = 7;
/** Queries over everyone read one partition set per day: bounded so one request stays cheap. */
export const MAX_WINDOW_DAYS = 366;

const DAY_MS = 86_400_000;
const EARLIEST = '1970-01-01T00:00:00.000Z';
const LATEST = '9999-12-31T23:59:59.999Z';
/** Records are stamped by the proxy's clock: an open-ended window reaches a little past ours. */
const CLOCK_SKEW_MS = 5 * 60_000;

export interface AuditFilters {
  principal?: string;
  sessionId?: string;
  decision?: DecisionAction;
  /** case-insensitive substring of the statement text, applied to what the index returns */
  text?: string;
}

/** session → the events table; principal → by_principal; refused/held → by_decision; else by_day. */
export type AuditIndex = 'session' | 'principal' | 'decision' | 'day';

/** Where a page stopped: the key of the last record it looked at. */
export interface AuditPosition {
  sessionId: string;
  sk: string;
  startedAt: string;
}

export interface AuditEventQuery {
  filters: AuditFilters;
  index: AuditIndex;
  /** inclusive, ISO-8601 UTC */
  since: string;
  /** exclusive, ISO-8601 UTC */
  until: string;
  limit: number;
  after?: AuditPosition;
}

/** A stored statement record: every field the proxy sent (see StatementEvent), nothing else. */
export type AuditRecord = Record<string, unknown>;

export interface AuditEventPage {
  events: AuditRecord[];
  /** present when more records may follow */
  next?: AuditPosition;
}

/** The session item: opened and closed merged (openedAt, closedAt, durationMs, statements, endReason, …). */
export type AuditSessionRecord = Record<string, unknown>;

const PARAMS = new Set(['principal', 'session', 'since', 'until', 'decision', 'text', 'limit', 'cursor']);

/**
 * Query parameters → a query. `since`/`until` take ISO-8601 times or durations back from `now`
 * (`90s`, `15m`, `1h`, `2d`, `1w`). A `cursor` (signed with `cursorKey`) continues a previous page.
 */
export function parseAuditQuery(
  params: Record<string, string | undefined>,
  now: Date,
  cursorKey: string,
): AuditEventQuery {
  const unknown = Object.keys(params).filter((name) => !PARAMS.has(name));
  if (unknown.length > 0) {
    throw badRequest(`unknown parameter ${unknown.join(', ')}; use ${[...PARAMS].join(', ')}`);
  }
  const filters: AuditFilters = {};
  const principal = text(params, 'principal', 320);
  const sessionId = text(params, 'session', 200);
  const contains = text(params, 'text', 1000);
  if (principal !== undefined) filters.principal = principal;
  if (sessionId !== undefined) filters.sessionId = sessionId;
  if (contains !== undefined) filters.text = contains;
  const decision = params['decision'];
  if (decision !== undefined) {
    if (!(AUDIT_DECISIONS as readonly string[]).includes(decision)) {
      throw badRequest(`decision must be one of ${AUDIT_DECISIONS.join(', ')}`);
    }
    filters.decision = decision as DecisionAction;
  }
  const limit = parseLimit(params['limit']);
  const index = chooseIndex(filters);
  const cursor = params['cursor'];
  if (cursor !== undefined && cursor !== '') {
    // The window is the first page's: a relative `since=1h` must not slide between pages.
    const { since, until, after } = decodeAuditCursor(cursor, { filters, index }, cursorKey);
    return { filters, index, since, until, limit, after };
  }
  const { since, until } = window(params, index, now);
  return { filters, index, since, until, limit };
}

export function chooseIndex(filters: AuditFilters): AuditIndex {
  if (filters.sessionId !== undefined) return 'session';
  if (filters.principal !== undefined) return 'principal';
  if (filters.decision !== undefined && filters.decision !== 'allow') return 'decision';
  return 'day';
}

/** Whether a stored record answers the query; every index's results pass through this. */
export function matchesAuditQuery(record: AuditRecord, query: AuditEventQuery): boolean {
  const { filters } = query;
  if (record['type'] !== 'statement') return false;
  if (filters.principal !== undefined && record['principal'] !== filters.principal) return false;
  if (filters.sessionId !== undefined && record['sessionId'] !== filters.sessionId) return false;
  if (filters.decision !== undefined && record['decision'] !== filters.decision) return false;
  const startedAt = record['startedAt'];
  if (typeof startedAt !== 'string' || startedAt < query.since || startedAt >= query.until) return false;
  if (filters.text !== undefined) {
    const statement = record['text'];
    if (typeof statement !== 'string' || !statement.toLowerCase().includes(filters.text.toLowerCase()))
      return false;
  }
  return true;
}

/** An ISO-8601 time or a duration back from `now`, normalised to `toISOString()` form. */
export function parseTimeBound(value: string, now: Date, name = 'time'): string {
  const relative = /^(\d{1,6})(s|m|h|d|w)$/.exec(value.trim());
  if (relative) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS }[relative[2] as 's'];
    return isoOrThrow(now.getTime() - Number(relative[1]) * unit, name, value);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    throw badRequest(
      `${name} must be an ISO-8601 time (2025-03-01T10:00:00Z) or a duration back (15m, 1h, 2d)`,
    );
  }
  return isoOrThrow(Date.parse(value.trim()), name, value);
}

function isoOrThrow(ms: number, name: string, value: string): string {
  const date = new Date(ms);
  if (Number.isNaN(ms) || date.getUTCFullYear() < 1970 || date.getUTCFullYear() > 9999) {
    throw badRequest(`${name} "${value}" is not a usable time`);
  }
  return date.toISOString();
}

function window(
  params: Record<string, string | undefined>,
  index: AuditIndex,
  now: Date,
): { since: string; until: string } {
  const perDay = index === 'day' || index === 'decision';
  const until = params['until']
    ? parseTimeBound(params['until'], now, 'until')
    : perDay
      ? new Date(now.getTime() + CLOCK_SKEW_MS).toISOString()
      : LATEST;
  const since = params['since']
    ? parseTimeBound(params['since'], now, 'since')
    : perDay
      ? new Date(Date.parse(until) - DEFAULT_WINDOW_DAYS * DAY_MS).toISOString()
      : EARLIEST;
  if (since >= until) throw badRequest(`since (${since}) must be before until (${until})`);
  if (perDay && Date.parse(until) - Date.parse(since) > MAX_WINDOW_DAYS * DAY_MS) {
    throw badRequest(
      `a query without principal or session may span at most ${MAX_WINDOW_DAYS} days; narrow since/until or add a principal`,
    );
  }
  return { since, until };
}

function parseLimit(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_AUDIT_LIMIT;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_AUDIT_LIMIT) {
    throw badRequest(`limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  return n;
}

function text(
  params: Record<string, string | undefined>,
  name: string,
  maxLength: number,
): string | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (value === '' || value.length > maxLength)
    throw badRequest(`${name} must be 1 to ${maxLength} characters`);
  return value;
}

function badRequest(message: string): PgWardenError {
  return new PgWardenError('BAD_REQUEST', message);
}

// --- cursor ---------------------------------------------------------------------------------------

interface CursorPayload {
  v: 1;
  /** digest of the filters and index the cursor continues */
  q: string;
  since: string;
  until: string;
  a: [string, string, string];
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const STATEMENT_SK = /^STMT#\d{12}$/;

export function encodeAuditCursor(
  query: Pick<AuditEventQuery, 'filters' | 'index' | 'since' | 'until'>,
  after: AuditPosition,
  key: string,
): string {
  const payload: CursorPayload = {
    v: 1,
    q: queryDigest(query),
    since: query.since,
    until: query.until,
    a: [after.sessionId, after.sk, after.startedAt],
  };
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${body}.${sign(body, key)}`;
}

export function decodeAuditCursor(
  cursor: string,
  query: Pick<AuditEventQuery, 'filters' | 'index'>,
  key: string,
): { since: string; until: string; after: AuditPosition } {
  const invalid = () =>
    badRequest('cursor is not valid for this query: pass back nextCursor unchanged, with the same filters');
  const [body, signature, ...rest] = cursor.split('.');
  if (body === undefined || signature === undefined || rest.length > 0 || cursor.length > 2048)
    throw invalid();
  const expected = Buffer.from(sign(body, key));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw invalid();
  let payload: CursorPayload;
  try {
    payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as CursorPayload;
  } catch {
    throw invalid();
  }
  if (payload?.v !== 1 || payload.q !== queryDigest(query) || !Array.isArray(payload.a)) throw invalid();
  const [sessionId, sk, startedAt] = payload.a;
  const wellFormed =
    typeof sessionId === 'string' &&
    sessionId !== '' &&
    typeof sk === 'string' &&
    STATEMENT_SK.test(sk) &&
    typeof startedAt === 'string' &&
    ISO.test(startedAt) &&
    typeof payload.since === 'string' &&
    ISO.test(payload.since) &&
    typeof payload.until === 'string' &&
    ISO.test(payload.until) &&
    (query.filters.sessionId === undefined || query.filters.sessionId === sessionId);
  if (!wellFormed) throw invalid();
  return { since: payload.since, until: payload.until, after: { sessionId, sk, startedAt } };
}

function queryDigest(query: Pick<AuditEventQuery, 'filters' | 'index'>): string {
  const { principal, sessionId, decision, text: contains } = query.filters;
  return createHmac('sha256', 'pgwarden-audit-query')
    .update(
      JSON.stringify([query.index, principal ?? null, sessionId ?? null, decision ?? null, contains ?? null]),
    )
    .digest('base64url')
    .slice(0, 22);
}

function sign(body: string, key: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}
