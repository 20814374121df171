/**
 * ControlPlane over HTTP: the proxy's client of functions/api/app.ts. An error body from the API
 * becomes the same PgWardenError the API threw, so the proxy maps one set of codes to SQLSTATEs
 * whether it runs against the deployed API or in-process.
 */
import type {
  ControlPlane,
  Decision,
  DecisionRequest,
  OpenSessionRequest,
  OpenSessionResponse,
  SessionCheckRequest,
  SessionCheckResponse,
} from '../shared/control-plane.ts';
import { type ErrorCode, PgWardenError } from '../shared/errors.ts';
import type { AuditEvent, SerializedAuditEvent } from '../shared/events.ts';
import type { FetchLike } from './aws-sigv4.ts';

export interface HttpControlPlaneOptions {
  baseUrl: string;
  /** signs each request with the proxy's AWS identity (aws-sigv4.ts signingFetch) */
  fetch: FetchLike;
  /** per request; default 10 s */
  timeoutMs?: number;
}

/** The API's per-request cap on events (functions/api/validate.ts). */
const MAX_EVENTS_PER_REQUEST = 500;

/** Every code, so a code the API sends is recognised at run time; the Record type keeps it complete. */
const knownCodes: Record<ErrorCode, true> = {
  AUTH_TOKEN_MISSING: true,
  AUTH_TOKEN_INVALID: true,
  AUTH_TOKEN_EXPIRED: true,
  AUTH_TOKEN_NOT_YET_VALID: true,
  AUTH_WRONG_ISSUER: true,
  AUTH_WRONG_AUDIENCE: true,
  AUTH_ALGORITHM_NOT_ALLOWED: true,
  AUTH_USER_MISMATCH: true,
  AUTH_NO_ROLE: true,
  AUTH_DISABLED: true,
  AUTH_ISSUER_UNAVAILABLE: true,
  AUTH_SERVICE_CREDENTIAL: true,
  FORBIDDEN: true,
  BAD_REQUEST: true,
  NOT_FOUND: true,
  AUDIT_CONFLICT: true,
  RATE_LIMITED: true,
  STORE_UNAVAILABLE: true,
  CONTROL_PLANE_UNAVAILABLE: true,
  UPSTREAM_UNAVAILABLE: true,
  UPSTREAM_AUTH_FAILED: true,
  CONFIG_INVALID: true,
  INTERNAL: true,
};

const decisionActions = new Set(['allow', 'deny', 'require_approval']);

export function createHttpControlPlane(options: HttpControlPlaneOptions): ControlPlane {
  const fetchImpl = options.fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const base = options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`;

  async function post<T>(path: string, body: unknown): Promise<T> {
    return postJson<T>(path, JSON.stringify(body));
  }

  /** `json` is the request body, already serialized. */
  async function postJson<T>(path: string, json: string): Promise<T> {
    let status: number;
    let payload: unknown;
    try {
      const response = await fetchImpl(new URL(path, base), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: json,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      payload = await response.json().catch(() => undefined);
    } catch (cause) {
      const timedOut = cause instanceof Error && cause.name === 'TimeoutError';
      throw new PgWardenError(
        'CONTROL_PLANE_UNAVAILABLE',
        timedOut
          ? `the pgwarden control plane did not answer within ${timeoutMs} ms`
          : `cannot reach the pgwarden control plane at ${options.baseUrl}`,
        { cause },
      );
    }
    if (status >= 200 && status < 300 && payload !== undefined) return payload as T;
    throw errorFrom(status, payload);
  }

  return {
    openSession: (request: OpenSessionRequest) => post<OpenSessionResponse>('v1/sessions', request),

    async checkSession(request: SessionCheckRequest): Promise<SessionCheckResponse> {
      const answer = await post<SessionCheckResponse>('v1/session-checks', request);
      // An answer the proxy does not understand is not a confirmation: the lifetime retries, then ends.
      const known =
        (answer?.status === 'ended' && typeof answer.reason === 'string') ||
        (answer?.status === 'active' &&
          (answer.groups === undefined || (Array.isArray(answer.groups) && Array.isArray(answer.roles))));
      if (!known)
        throw new PgWardenError(
          'CONTROL_PLANE_UNAVAILABLE',
          'the control plane answered a session check oddly',
        );
      return answer;
    },

    async decide(request: DecisionRequest): Promise<Decision> {
      const decision = await post<Decision>('v1/decisions', request);
      // Fail closed on an answer the proxy would have to guess about.
      if (!decisionActions.has(decision?.action)) {
        throw new PgWardenError(
          'CONTROL_PLANE_UNAVAILABLE',
          'the control plane answered with an unknown decision',
        );
      }
      return decision;
    },

    async ingest(events: AuditEvent[]): Promise<void> {
      for (let i = 0; i < events.length; i += MAX_EVENTS_PER_REQUEST) {
        await post('v1/events', { events: events.slice(i, i + MAX_EVENTS_PER_REQUEST) });
      }
    },

    async ingestSerialized(events: readonly SerializedAuditEvent[]): Promise<void> {
      for (let i = 0; i < events.length; i += MAX_EVENTS_PER_REQUEST) {
        const lines = events.slice(i, i + MAX_EVENTS_PER_REQUEST).map((e) => e.line);
        await postJson('v1/events', `{"events":[${lines.join(',')}]}`);
      }
    },
  };
}

function errorFrom(status: number, payload: unknown): PgWardenError {
  const error = (payload as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = error?.code;
  if (typeof code === 'string' && Object.hasOwn(knownCodes, code)) {
    const message =
      typeof error?.message === 'string' ? error.message : `the control plane refused (${code})`;
    return new PgWardenError(code as ErrorCode, message);
  }
  // No pgwarden error body: a gateway, load balancer or Lambda runtime answered instead of the app.
  const outage = status >= 500 || status === 429;
  return new PgWardenError(
    outage ? 'CONTROL_PLANE_UNAVAILABLE' : 'INTERNAL',
    `the control plane answered HTTP ${status} without a pgwarden error`,
  );
}
