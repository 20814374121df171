/**
 * The approvals API over HTTP, signed with the proxy's AWS identity (aws-sigv4.ts). An error body from the API becomes
 * the PgWardenError the API threw; a network failure or an answer that is not an approval becomes
 * CONTROL_PLANE_UNAVAILABLE, so the gate fails closed on anything it would have to guess about.
 * Local mode passes the API app's own `fetch` and so runs the same routes without a socket.
 */
import {
  APPROVAL_STATUSES,
  type ApprovalExecutionReport,
  type ApprovalsPort,
  type ApprovalView,
  type CreateApprovalRequest,
  MAX_WAIT_MS,
} from '../shared/approvals.ts';
import { type ErrorCode, PgWardenError } from '../shared/errors.ts';
import type { FetchLike } from './aws-sigv4.ts';

export interface HttpApprovalsClientOptions {
  baseUrl: string;
  /** signs each request (aws-sigv4.ts signingFetch; local mode over the API app's own fetch) */
  fetch: FetchLike;
  /** for POST /v1/approvals; a wait gets its own long-poll time on top. Default 10 s */
  timeoutMs?: number;
}

/** time allowed on top of a long poll for the answer to travel */
const WAIT_MARGIN_MS = 5_000;

const statuses = new Set<string>(APPROVAL_STATUSES);

/** Every method takes an optional signal: aborted = the held client went away, stop waiting. */
export interface HttpApprovalsClient extends ApprovalsPort {
  request(request: CreateApprovalRequest, signal?: AbortSignal): Promise<ApprovalView>;
}

export function createHttpApprovalsClient(options: HttpApprovalsClientOptions): HttpApprovalsClient {
  const fetchImpl = options.fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const base = options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`;

  async function call(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    limitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<ApprovalView> {
    // A timer and one controller held by this call, not AbortSignal.timeout or AbortSignal.any:
    // those signals are held weakly and may be collected (and never fire) while nothing but a
    // stalled request refers to them, and the signing fetch passes the signal on once more.
    const timeout = new AbortController();
    const abort = new AbortController();
    const timer = setTimeout(() => {
      timeout.abort();
      abort.abort(timeout.signal.reason);
    }, limitMs);
    const callerGone = () => abort.abort(signal?.reason);
    if (signal?.aborted) callerGone();
    else signal?.addEventListener('abort', callerGone, { once: true });
    let status: number;
    let payload: unknown;
    try {
      const response = await fetchImpl(new URL(path, base), {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: abort.signal,
      });
      status = response.status;
      payload = await response.json().catch(() => undefined);
    } catch (cause) {
      if (signal?.aborted) throw cause;
      throw new PgWardenError(
        'CONTROL_PLANE_UNAVAILABLE',
        timeout.signal.aborted
          ? `the pgwarden approvals API did not answer within ${limitMs} ms`
          : `cannot reach the pgwarden approvals API at ${options.baseUrl}`,
        { cause },
      );
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', callerGone);
    }
    if (status >= 200 && status < 300) {
      const approval = (payload as { approval?: ApprovalView } | undefined)?.approval;
      if (typeof approval?.id === 'string' && statuses.has(approval.status)) return approval;
      throw new PgWardenError('CONTROL_PLANE_UNAVAILABLE', 'the approvals API answered without an approval');
    }
    throw errorFrom(status, payload);
  }

  return {
    request: (request: CreateApprovalRequest, signal?: AbortSignal) =>
      call('POST', 'v1/approvals', request, timeoutMs, signal),
    reportExecution: (id: string, report: ApprovalExecutionReport) =>
      call('POST', `v1/approvals/${encodeURIComponent(id)}/executed`, report, timeoutMs, undefined),
    wait(id: string, waitMs: number, signal?: AbortSignal) {
      const capped = Math.max(0, Math.min(Math.round(waitMs), MAX_WAIT_MS));
      return call(
        'GET',
        `v1/approvals/${encodeURIComponent(id)}/wait?timeoutMs=${capped}`,
        undefined,
        capped + WAIT_MARGIN_MS,
        signal,
      );
    },
  };
}

function errorFrom(status: number, payload: unknown): PgWardenError {
  const error = (payload as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (typeof error?.code === 'string' && typeof error.message === 'string') {
    return new PgWardenError(error.code as ErrorCode, error.message);
  }
  // No pgwarden error body: a gateway, load balancer or Lambda runtime answered instead of the app.
  return new PgWardenError(
    'CONTROL_PLANE_UNAVAILABLE',
    `the approvals API answered HTTP ${status} without a pgwarden error`,
  );
}
