/**
 * Hand-written request validators. Each check returns the value typed (unknown fields dropped) or
 * throws BAD_REQUEST naming the offending field, e.g. `events[3].seq must be a positive integer`.
 */
import type {
  DecisionRequest,
  OpenSessionRequest,
  SessionCheckRequest,
  SessionContext,
} from '../../shared/control-plane.ts';
import { PgWardenError } from '../../shared/errors.ts';
import {
  APPROVAL_STEPS,
  type AuditEvent,
  type DetectorHitRecord,
  type MaskedColumnRecord,
  SESSION_END_REASONS,
  STATEMENT_OUTCOMES,
} from '../../shared/events.ts';

export type Check<T> = (value: unknown, path: string) => T;

export const MAX_EVENTS_PER_BATCH = 500;

const bad = (path: string, expectation: string) =>
  new PgWardenError('BAD_REQUEST', `${path} must be ${expectation}`);

const string: Check<string> = (value, path) => {
  if (typeof value !== 'string') throw bad(path, 'a string');
  return value;
};

const nonEmpty: Check<string> = (value, path) => {
  if (typeof value !== 'string' || value === '') throw bad(path, 'a non-empty string');
  return value;
};

/** UTC ISO-8601 as produced by toISOString: sorts lexically, which the store's sort keys rely on. */
const isoTime: Check<string> = (value, path) => {
  const ok = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/.test(value);
  if (!ok || Number.isNaN(Date.parse(value)))
    throw bad(path, 'a UTC ISO-8601 time (e.g. 2025-01-31T12:00:00.000Z)');
  return value;
};

const stringList: Check<string[]> = (value, path) => {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string'))
    throw bad(path, 'a list of strings');
  return value;
};

/** Bind parameters: a string per value, null for SQL NULL. */
const nullableStringList: Check<Array<string | null>> = (value, path) => {
  if (!Array.isArray(value) || !value.every((item) => item === null || typeof item === 'string'))
    throw bad(path, 'a list of strings or nulls');
  return value;
};

function listOf<T>(check: Check<T>): Check<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) throw bad(path, 'a list');
    return value.map((item, index) => check(item, `${path}[${index}]`));
  };
}

/** A hash of the audit chain: 64 lowercase hex digits. */
const sha256Hex: Check<string> = (value, path) => {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw bad(path, 'a SHA-256 in hex');
  return value;
};

const trueOnly: Check<true> = (value, path) => {
  if (value !== true) throw bad(path, 'true');
  return true;
};

const boolean: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean') throw bad(path, 'true or false');
  return value;
};

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw bad(path, `an integer from ${min} to ${max}`);
    }
    return value;
  };
}

const duration: Check<number> = (value, path) => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw bad(path, 'a number ≥ 0');
  return value;
};

function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (value, path) => {
    if (!values.includes(value as T)) throw bad(path, `one of ${values.join(', ')}`);
    return value as T;
  };
}

function optional<T>(check: Check<T>): Check<T | undefined> {
  return (value, path) => (value === undefined ? undefined : check(value, path));
}

/** A session id must never be mistaken for the store's failed-login partitions. */
const sessionId: Check<string> = (value, path) => {
  const id = nonEmpty(value, path);
  if (id.startsWith('AUTHFAIL#') || id.length > 200) throw bad(path, 'a session id (at most 200 characters)');
  return id;
};

export function object<T>(shape: { [K in keyof T]-?: Check<T[K]> }): Check<T> {
  return (value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw bad(path || 'the body', 'an object');
    const source = value as Record<string, unknown>;
    const result: Record<string, unknown> = {};
    for (const key of Object.keys(shape) as Array<keyof T & string>) {
      const checked = shape[key](source[key], path ? `${path}.${key}` : key);
      if (checked !== undefined) result[key] = checked;
    }
    return result as T;
  };
}

export const openSessionRequest: Check<OpenSessionRequest> = object<OpenSessionRequest>({
  token: string, // an empty token is the verifier's AUTH_TOKEN_MISSING, not a malformed request
  user: nonEmpty,
  database: nonEmpty,
  applicationName: string,
  clientAddress: string,
  proxyId: nonEmpty,
});

export const sessionCheckRequest: Check<SessionCheckRequest> = object<SessionCheckRequest>({
  sessionId,
  issuer: nonEmpty,
  subject: nonEmpty,
  role: nonEmpty,
  groupsAsOf: optional(isoTime),
});

const sessionContext = object<SessionContext>({
  sessionId,
  principal: object<SessionContext['principal']>({
    name: nonEmpty,
    issuer: nonEmpty,
    subject: nonEmpty,
    email: optional(string),
    knownEmail: optional(string),
    groups: stringList,
    actor: oneOf(['person', 'agent']),
  }),
  role: nonEmpty,
  roles: stringList,
  database: nonEmpty,
  applicationName: string,
});

/** name → texts that prepared it; a null-prototype copy, so a name such as __proto__ stays data. */
const preparedTexts: Check<Record<string, string[]>> = (value, path) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(path, 'an object');
  const out: Record<string, string[]> = Object.create(null);
  for (const [name, texts] of Object.entries(value)) out[name] = stringList(texts, `${path}.${name}`);
  return out;
};

export const decisionRequest: Check<DecisionRequest> = object<DecisionRequest>({
  session: sessionContext,
  statement: object<DecisionRequest['statement']>({
    text: string,
    protocol: oneOf(['simple', 'extended']),
    preparedName: optional(string),
    prepared: optional(preparedTexts),
  }),
});

const eventChecks: { [K in AuditEvent['type']]: Check<Extract<AuditEvent, { type: K }>> } = {
  session_opened: object({
    type: oneOf(['session_opened']),
    eventId: nonEmpty,
    sessionId,
    at: isoTime,
    principal: nonEmpty,
    subject: nonEmpty,
    issuer: nonEmpty,
    tokenId: optional(string),
    groups: stringList,
    roles: stringList,
    role: nonEmpty,
    actor: oneOf(['person', 'agent']),
    database: nonEmpty,
    upstreamUser: optional(string),
    applicationName: string,
    clientAddress: string,
    proxyId: nonEmpty,
  }),
  session_closed: object({
    type: oneOf(['session_closed']),
    eventId: nonEmpty,
    sessionId,
    at: isoTime,
    principal: nonEmpty,
    issuer: optional(string),
    subject: optional(string),
    durationMs: duration,
    statements: integer(0),
    reason: oneOf(SESSION_END_REASONS),
    upstreamUser: optional(string),
    chainLength: optional(integer(0)),
    chainHead: optional(sha256Hex),
  }),
  auth_failed: object({
    type: oneOf(['auth_failed']),
    eventId: nonEmpty,
    at: isoTime,
    user: string,
    database: string,
    applicationName: string,
    clientAddress: string,
    code: nonEmpty,
    message: string,
    proxyId: nonEmpty,
  }),
  approval: object({
    type: oneOf(['approval']),
    eventId: nonEmpty,
    at: isoTime,
    approvalId: nonEmpty,
    step: oneOf(APPROVAL_STEPS),
    sessionId,
    principal: nonEmpty,
    issuer: optional(string),
    subject: optional(string),
    by: nonEmpty,
    byIssuer: optional(string),
    bySubject: optional(string),
    via: oneOf(['api', 'slack', 'proxy', 'notifier']),
    database: string,
    ruleId: nonEmpty,
    fingerprint: string,
    textHash: nonEmpty,
    paramsHash: optional(string),
    reason: optional(string),
    message: string,
  }),
  statement: object({
    type: oneOf(['statement']),
    eventId: nonEmpty,
    sessionId,
    seq: integer(1, 999_999_999_999), // the store's sort key holds 12 digits
    principal: nonEmpty, // key of the by_principal index: may not be empty
    issuer: optional(string),
    subject: optional(string),
    database: nonEmpty,
    applicationName: string,
    text: string,
    protocol: oneOf(['simple', 'extended']),
    preparedName: optional(string),
    decision: oneOf(['allow', 'deny', 'require_approval']),
    ruleId: nonEmpty,
    startedAt: isoTime,
    durationMs: duration,
    commandTag: optional(string),
    rows: optional(integer(0)),
    sqlstate: optional(string),
    errorMessage: optional(string),
    outcome: optional(oneOf(STATEMENT_OUTCOMES)),
    fingerprint: optional(string),
    kinds: optional(stringList),
    policyVersion: optional(string),
    portalName: optional(string),
    approvalId: optional(string),
    params: optional(nullableStringList),
    paramsMode: optional(oneOf(['hashed', 'clear'])),
    paramFormats: optional(listOf(oneOf(['text', 'binary']))),
    bytesToClient: optional(integer(0)),
    cancelled: optional(boolean),
    upstreamUser: optional(string),
    actor: optional(oneOf(['person', 'agent'])),
    masked: optional(
      listOf(
        object<MaskedColumnRecord>({
          column: string,
          ruleId: string,
          method: string,
          values: integer(0),
          note: optional(string),
        }),
      ),
    ),
    detected: optional(
      listOf(object<DetectorHitRecord>({ detector: string, where: string, values: integer(0) })),
    ),
    textBytes: optional(integer(0)),
    textTruncated: optional(trueOnly),
    errorMessageBytes: optional(integer(0)),
    errorMessageTruncated: optional(trueOnly),
    headHash: optional(sha256Hex),
    chainIndex: optional(integer(1)),
    prevHash: optional(sha256Hex),
    recordHash: optional(sha256Hex),
  }),
};

export const auditEvent: Check<AuditEvent> = (value, path) => {
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(eventChecks, type)) {
    throw bad(`${path}.type`, `one of ${Object.keys(eventChecks).join(', ')}`);
  }
  return eventChecks[type as AuditEvent['type']](value, path);
};

export const auditEvents: Check<AuditEvent[]> = (value, path) => {
  if (!Array.isArray(value)) throw bad(path, 'a list of events');
  return value.map((event, index) => auditEvent(event, `${path}[${index}]`));
};

/** The HTTP body of POST /v1/events; the cap keeps one request within Lambda's payload and time. */
export const eventBatch: Check<{ events: AuditEvent[] }> = object({
  events: (value, path) => {
    if (Array.isArray(value) && value.length > MAX_EVENTS_PER_BATCH) {
      throw bad(path, `at most ${MAX_EVENTS_PER_BATCH} events`);
    }
    return auditEvents(value, path);
  },
});

/** Runs a check from the top of a request body. */
export function parse<T>(check: Check<T>, value: unknown): T {
  return check(value, '');
}
