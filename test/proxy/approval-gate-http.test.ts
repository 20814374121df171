/**
 * The proxy's HTTP client of the approvals API, against a scripted `fetch`: what it sends (paths,
 * service token, long-poll cap) and how it turns answers it cannot trust into errors the gate
 * fails closed on.
 */
import { describe, expect, it } from 'vitest';
import { createHttpApprovalsClient } from '../../proxy/approvals-http.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import type { ApprovalView, CreateApprovalRequest } from '../../shared/approvals.ts';
import { PgWardenError } from '../../shared/errors.ts';

const approval = { id: 'appr 1/x', status: 'pending' } as ApprovalView;
const body: CreateApprovalRequest = {
  session: {
    sessionId: 's',
    principal: {
      name: 'alice@example.com',
      issuer: 'https://issuer.example',
      subject: 'alice@example.com',
      groups: [],
      actor: 'person',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'psql',
  },
  statement: { text: 'delete from orders', protocol: 'simple' },
  decision: { action: 'require_approval', ruleId: 'r', policyVersion: 'v' },
};

function clientAnswering(answer: (request: Request) => Response | Promise<Response>) {
  const seen: Request[] = [];
  const client = createHttpApprovalsClient({
    baseUrl: 'http://api.test/prefix',
    timeoutMs: 200,
    // signed as in production; the transport records what went out
    fetch: localSigningFetch('approvals-test-secret-0123456789', async (input, init) => {
      const request = input instanceof Request && init === undefined ? input : new Request(input, init);
      seen.push(request);
      return answer(request);
    }),
  });
  return { client, seen };
}

const json = (value: unknown, status = 200) => Response.json(value, { status });

async function failure(promise: Promise<unknown>): Promise<PgWardenError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PgWardenError);
  return error as PgWardenError;
}

describe('the approvals HTTP client', () => {
  it('asks for an approval signed with the proxy identity (no bearer token) and the contract body', async () => {
    const { client, seen } = clientAnswering(() => json({ approval }));
    expect(await client.request(body)).toEqual(approval);
    const sent = seen[0]!;
    expect(sent.method).toBe('POST');
    expect(sent.url).toBe('http://api.test/prefix/v1/approvals');
    expect(sent.headers.get('authorization')).toMatch(
      /^AWS4-HMAC-SHA256 Credential=PGWARDENLOCALPROXY\/\d{8}\/local\/execute-api\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-pgwarden-nonce, Signature=[0-9a-f]{64}$/,
    );
    expect(await sent.json()).toEqual(body);
  });

  it('long-polls with the id escaped and the wait capped at 25 s', async () => {
    const { client, seen } = clientAnswering(() => json({ approval }));
    await client.wait('appr 1/x', 90_000);
    await client.wait('appr 1/x', 1_234.4);
    expect(seen.map((r) => r.url)).toEqual([
      'http://api.test/prefix/v1/approvals/appr%201%2Fx/wait?timeoutMs=25000',
      'http://api.test/prefix/v1/approvals/appr%201%2Fx/wait?timeoutMs=1234',
    ]);
    expect(seen[0]!.method).toBe('GET');
  });

  it('reports an execution', async () => {
    const { client, seen } = clientAnswering(() => json({ approval }));
    await client.reportExecution('a1', { commandTag: 'DELETE 3', rows: 3 });
    expect(seen[0]!.url).toBe('http://api.test/prefix/v1/approvals/a1/executed');
    expect(await seen[0]!.json()).toEqual({ commandTag: 'DELETE 3', rows: 3 });
  });

  it("passes the API's own error on", async () => {
    const { client } = clientAnswering(() =>
      json({ error: { code: 'AUTH_SERVICE_CREDENTIAL', message: 'only the proxy' } }, 401),
    );
    const error = await failure(client.request(body));
    expect(error.code).toBe('AUTH_SERVICE_CREDENTIAL');
    expect(error.message).toBe('only the proxy');
  });

  it('treats answers that are not approvals as the API being unavailable', async () => {
    for (const answer of [
      () => new Response('<html>bad gateway</html>', { status: 502 }),
      () => json({ approval: { id: 'x', status: 'maybe' } }),
      () => json({ ok: true }),
      () => new Response('not json', { status: 200 }),
    ]) {
      const { client } = clientAnswering(answer);
      expect((await failure(client.request(body))).code).toBe('CONTROL_PLANE_UNAVAILABLE');
    }
  });

  it('gives up on a request that does not answer in time, and says where it failed without hanging', async () => {
    const { client } = clientAnswering(
      (request) =>
        new Promise((_resolve, reject) =>
          request.signal.addEventListener('abort', () => reject(request.signal.reason), { once: true }),
        ),
    );
    const error = await failure(client.request(body));
    expect(error.code).toBe('CONTROL_PLANE_UNAVAILABLE');
    expect(error.message).toMatch(/did not answer within 200 ms/);
  });

  it('stops a wait when the caller aborts, with the abort rather than an outage', async () => {
    const { client } = clientAnswering(
      (request) =>
        new Promise((_resolve, reject) =>
          request.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
        ),
    );
    const gone = new AbortController();
    const waiting = client.wait('a1', 20_000, gone.signal);
    gone.abort();
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(PgWardenError);
  });
});
