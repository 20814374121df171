/**
 * The CLI's one way of calling the pgwarden API: PGWARDEN_API_URL with the caller's own OIDC token
 * from PGWARDEN_TOKEN, JSON back. Every problem is a CliFailure whose message the user can act on;
 * the subclasses carry what an area needs to word it its own way.
 */
import { cliConfigFromEnv } from '../../shared/config.ts';
import type { CliIo } from './command.ts';

/** A failure the user can act on: printed as is, exit code 1. */
export class CliFailure extends Error {}

/** PGWARDEN_TOKEN is not set. */
export class MissingToken extends CliFailure {}

/** The request never got an answer (nothing listening, DNS, timeout). */
export class ApiUnreachable extends CliFailure {
  constructor(
    readonly apiUrl: string,
    override readonly cause: unknown,
  ) {
    super(
      `cannot reach the pgwarden API at ${apiUrl} (is \`npm start\` running? set PGWARDEN_API_URL otherwise)`,
    );
  }
}

/** The API answered with an error status (or with no JSON); `error` is its {code, message} if any. */
export class ApiRefusal extends CliFailure {
  constructor(
    readonly status: number,
    readonly error: { code?: string; message?: string } | undefined,
    notFoundHint: string | undefined,
  ) {
    super(refusalText(status, error, notFoundHint));
  }
}

function refusalText(
  status: number,
  error: { code?: string; message?: string } | undefined,
  notFoundHint: string | undefined,
): string {
  const message = error?.message ?? `the API answered HTTP ${status}`;
  if (status === 401) return `your token was not accepted: ${message}`;
  if (status === 403) return `refused: ${message}`;
  if (status === 404 && notFoundHint !== undefined) return `${message} (see: ${notFoundHint})`;
  return message;
}

export interface ApiRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** relative to PGWARDEN_API_URL, without a leading slash: `v1/approvals?status=pending` */
  path: string;
  body?: { contentType: string; text: string };
}

export interface ApiClientOptions {
  /** the whole message for a caller without PGWARDEN_TOKEN: which token, and how to get one locally */
  missingToken: string;
  /** appended to a 404's message as `(see: …)`: the command that lists what exists */
  notFoundHint?: string;
  timeoutMs?: number;
}

export function jsonBody(value: unknown): ApiRequest['body'] {
  return { contentType: 'application/json', text: JSON.stringify(value) };
}

/** One authenticated call; the parsed JSON answer of a 2xx response, or a CliFailure. */
export async function callApi<T>(io: CliIo, request: ApiRequest, options: ApiClientOptions): Promise<T> {
  const { apiUrl, token } = cliConfigFromEnv(io.env);
  if (token === undefined) throw new MissingToken(options.missingToken);
  const { body } = request;
  let response: Response;
  try {
    response = await fetch(`${apiUrl}/${request.path}`, {
      method: request.method ?? 'GET',
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { 'content-type': body.contentType }),
      },
      ...(body !== undefined && { body: body.text }),
      ...(options.timeoutMs !== undefined && { signal: AbortSignal.timeout(options.timeoutMs) }),
    });
  } catch (error) {
    throw new ApiUnreachable(apiUrl, error);
  }
  const payload = (await response.json().catch(() => undefined)) as
    | (T & { error?: { code?: string; message?: string } })
    | undefined;
  if (response.ok && payload !== undefined) return payload;
  throw new ApiRefusal(response.status, payload?.error, options.notFoundHint);
}
