/**
 * The approvals HTTP API end to end over HTTP: the proxy's routes behind its signature, people's
 * routes behind real OIDC tokens, every rule of who may decide, long-poll waits released by a
 * decision, and the principals directory that maps Slack users later.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import type { ApprovalView } from '../../shared/approvals.ts';
import { approvalRequest, REQUESTER, textParams } from '../fakes/approvals.ts';
import { type ApprovalsApi, SERVICE_TOKEN, startApprovalsApi } from '../fakes/approvals-api.ts';

let api: ApprovalsApi;
let reviewerToken: string;
let counter = 0;

beforeAll(async () => {
  api = await startApprovalsApi();
  reviewerToken = await api.token('rita@example.com', ['reviewers']);
});
afterAll(() => api.stop());

/** The proxy's calls (token SERVICE_TOKEN) are signed as the proxy signs them; others carry a bearer token. */
async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; bearer?: boolean } = {},
) {
  const asProxy = options.token === SERVICE_TOKEN && !options.bearer;
  const send = asProxy ? localSigningFetch(SERVICE_TOKEN) : fetch;
  const response = await send(`${api.url}${path}`, {
    method,
    headers: {
      ...(options.token === undefined || asProxy ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function ask(overrides: Parameters<typeof approvalRequest>[0] = {}): Promise<ApprovalView> {
  counter += 1;
  const { status, body } = await call('POST', '/v1/approvals', {
    token: SERVICE_TOKEN,
    body: approvalRequest({ text: `delete from orders where id = ${counter}`, ...overrides }),
  });
  expect(status).toBe(200);
  return body['approval'] as ApprovalView;
}

describe('the proxy routes', () => {
  it('create a pending approval', async () => {
    const approval = await ask();
    expect(approval).toMatchObject({ status: 'pending', principal: REQUESTER, approvers: ['reviewers'] });
    expect(api.queue.sent).toContain(approval.id);
  });

  it.each([
    ['no token', undefined],
    ['a person token', 'person'],
    ['a wrong token', 'not-the-service-token'],
    // the old shared secret is no credential: the proxy signs with its AWS identity
    ['the service token as a bearer token', 'service-bearer'],
  ])('refuse %s with 401', async (_label, kind) => {
    const token = kind === 'person' ? reviewerToken : kind === 'service-bearer' ? SERVICE_TOKEN : kind;
    const create = await call('POST', '/v1/approvals', {
      ...(token ? { token } : {}),
      bearer: kind === 'service-bearer',
      body: approvalRequest(),
    });
    expect(create.status).toBe(401);
    const wait = await call(
      'GET',
      '/v1/approvals/x/wait?timeoutMs=0',
      token ? { token, bearer: kind === 'service-bearer' } : {},
    );
    expect(wait.status).toBe(401);
  });

  it.each([
    [
      'a decision that does not need approval',
      { decision: { action: 'allow', ruleId: 'r', policyVersion: 'v' } },
    ],
    ['no session', { session: undefined }],
    [
      'a zero hold',
      { decision: { ...approvalRequest().decision, approval: { approvers: 'r', timeoutSeconds: 0 } } },
    ],
    [
      'a Slack channel that is not one',
      {
        decision: {
          ...approvalRequest().decision,
          approval: { approvers: 'r', timeoutSeconds: 30, channel: '<!channel> everyone' },
        },
      },
    ],
  ])('refuse %s with 400', async (_label, patch) => {
    const { status, body } = await call('POST', '/v1/approvals', {
      token: SERVICE_TOKEN,
      body: { ...approvalRequest(), ...patch },
    });
    expect(status).toBe(400);
    expect(body['error']).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('carry the parameter values of the execution, shown to reviewers and bound by their hash', async () => {
    const params = textParams('42', null);
    const approval = await ask({ protocol: 'extended', params });
    expect(approval).toMatchObject({ paramsHash: params.hash, params: { count: 2, values: params.values } });
    const { body } = await call('GET', `/v1/approvals/${approval.id}`, { token: reviewerToken });
    expect((body['approval'] as ApprovalView).params).toEqual({ count: 2, values: params.values });
    const listed = await call('GET', '/v1/approvals?status=pending', { token: reviewerToken });
    const mine = (listed.body['approvals'] as ApprovalView[]).find((a) => a.id === approval.id);
    expect(mine?.params?.values).toEqual(params.values);
  });

  it.each([
    ['a hash that is not one', { ...textParams('1'), hash: 'abc' }],
    ['more values than parameters', { ...textParams('1', '2'), count: 1 }],
    ['a value that is not a string', { ...textParams('1'), values: [{ value: 1, format: 'text' }] }],
    ['an unknown field', { ...textParams('1'), values: [{ value: '1', format: 'text', html: '<b>' }] }],
    [
      'a value longer than shown values are',
      { ...textParams('1'), values: [{ value: 'x'.repeat(201), format: 'text' }] },
    ],
  ])('refuse parameters with %s (400)', async (_label, params) => {
    const base = approvalRequest({ protocol: 'extended' });
    const { status, body } = await call('POST', '/v1/approvals', {
      token: SERVICE_TOKEN,
      body: { ...base, statement: { ...base.statement, params } },
    });
    expect(status).toBe(400);
    expect(body['error']).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('wait returns pending after timeoutMs, and refuses a malformed timeout', async () => {
    const approval = await ask();
    const started = performance.now();
    const { body } = await call('GET', `/v1/approvals/${approval.id}/wait?timeoutMs=200`, {
      token: SERVICE_TOKEN,
    });
    expect((body['approval'] as ApprovalView).status).toBe('pending');
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    const bad = await call('GET', `/v1/approvals/${approval.id}/wait?timeoutMs=-1`, { token: SERVICE_TOKEN });
    expect(bad.status).toBe(400);
    const missing = await call('GET', '/v1/approvals/nope/wait?timeoutMs=0', { token: SERVICE_TOKEN });
    expect(missing.status).toBe(404);
  });

  it('a wait is released by an approval over HTTP, and takes the one use', async () => {
    const approval = await ask();
    const waiting = call('GET', `/v1/approvals/${approval.id}/wait?timeoutMs=20000`, {
      token: SERVICE_TOKEN,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const decided = await call('POST', `/v1/approvals/${approval.id}/approve`, { token: reviewerToken });
    expect(decided.status).toBe(200);
    // the wait lasts 20 s: 'approved' means the decision released it, not the timeout
    const { body } = await waiting;
    expect(body['approval']).toMatchObject({
      status: 'approved',
      decidedBy: 'rita@example.com',
      decidedVia: 'api',
    });
    const again = await call('GET', `/v1/approvals/${approval.id}/wait?timeoutMs=0`, {
      token: SERVICE_TOKEN,
    });
    expect((again.body['approval'] as ApprovalView).status).toBe('consumed');
  });

  it('report what the released statement did', async () => {
    const approval = await ask();
    await call('POST', `/v1/approvals/${approval.id}/approve`, { token: reviewerToken });
    await call('GET', `/v1/approvals/${approval.id}/wait?timeoutMs=0`, { token: SERVICE_TOKEN });
    const { status, body } = await call('POST', `/v1/approvals/${approval.id}/executed`, {
      token: SERVICE_TOKEN,
      body: { commandTag: 'DELETE 1', rows: 1 },
    });
    expect(status).toBe(200);
    expect((body['approval'] as ApprovalView).execution).toMatchObject({ commandTag: 'DELETE 1', rows: 1 });
    const bad = await call('POST', `/v1/approvals/${approval.id}/executed`, {
      token: SERVICE_TOKEN,
      body: { rows: -1 },
    });
    expect(bad.status).toBe(400);
  });
});

describe('people deciding', () => {
  it('a reviewer denies with a reason', async () => {
    const approval = await ask();
    const { status, body } = await call('POST', `/v1/approvals/${approval.id}/deny`, {
      token: reviewerToken,
      body: { reason: 'use a transaction' },
    });
    expect(status).toBe(200);
    expect(body['approval']).toMatchObject({ status: 'denied', denyReason: 'use a transaction' });
  });

  it('deny works without a body', async () => {
    const approval = await ask();
    const response = await fetch(`${api.url}/v1/approvals/${approval.id}/deny`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reviewerToken}` },
    });
    expect(response.status).toBe(200);
  });

  it('refuses without a token (401) and with a forged one (401)', async () => {
    const approval = await ask();
    expect((await call('POST', `/v1/approvals/${approval.id}/approve`)).status).toBe(401);
    const forged = `${reviewerToken.slice(0, -4)}AAAA`;
    expect((await call('POST', `/v1/approvals/${approval.id}/approve`, { token: forged })).status).toBe(401);
    expect((await api.store.get(approval.id))?.status).toBe('pending');
  });

  it.each([
    ['the requester, even as a reviewer', REQUESTER, ['reviewers'], {}, /requested this statement/],
    [
      'a non-member of the approver group',
      'eve@example.com',
      ['engineering'],
      {},
      /membership of "reviewers"/,
    ],
    ['an agent token of a reviewer', 'bot@example.com', ['reviewers'], { pgwarden_actor: 'agent' }, /people/],
  ])('refuses %s with 403', async (_label, email, groups, claims, message) => {
    const approval = await ask();
    const token = await api.token(email, groups, claims);
    const { status, body } = await call('POST', `/v1/approvals/${approval.id}/approve`, { token });
    expect(status).toBe(403);
    expect(body['error']).toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(message) });
    expect((await api.store.get(approval.id))?.status).toBe('pending');
  });

  it('only the rule group decides when the rule names one', async () => {
    const approval = await ask({ approvers: 'dba' });
    expect(
      (await call('POST', `/v1/approvals/${approval.id}/approve`, { token: reviewerToken })).status,
    ).toBe(403);
    const dba = await api.token('dora@example.com', ['dba']);
    expect((await call('POST', `/v1/approvals/${approval.id}/approve`, { token: dba })).status).toBe(200);
  });

  it('refuses a second decision and a decision on an expired approval', async () => {
    const approval = await ask();
    expect(
      (await call('POST', `/v1/approvals/${approval.id}/approve`, { token: reviewerToken })).status,
    ).toBe(200);
    const sam = await api.token('sam@example.com', ['reviewers']);
    const second = await call('POST', `/v1/approvals/${approval.id}/deny`, { token: sam, body: {} });
    expect(second.status).toBe(403);
    expect(second.body['error']).toMatchObject({
      message: expect.stringMatching(/already approved by rita@example.com/),
    });

    const late = await ask();
    api.clock.now = new Date(Date.now() + 2 * 3600 * 1000);
    try {
      const expired = await call('POST', `/v1/approvals/${late.id}/approve`, { token: sam });
      expect(expired.status).toBe(403);
      expect(expired.body['error']).toMatchObject({ message: expect.stringMatching(/expired/) });
    } finally {
      api.clock.now = undefined;
    }
  });

  it('refuses an over-long deny reason', async () => {
    const approval = await ask();
    const { status } = await call('POST', `/v1/approvals/${approval.id}/deny`, {
      token: reviewerToken,
      body: { reason: 'x'.repeat(501) },
    });
    expect(status).toBe(400);
  });
});

describe('listing', () => {
  it('shows pending approvals to reviewers only', async () => {
    const approval = await ask();
    const { status, body } = await call('GET', '/v1/approvals?status=pending', { token: reviewerToken });
    expect(status).toBe(200);
    expect((body['approvals'] as ApprovalView[]).map((a) => a.id)).toContain(approval.id);
    const outsider = await api.token('eve@example.com', ['engineering']);
    expect((await call('GET', '/v1/approvals?status=pending', { token: outsider })).status).toBe(403);
    expect((await call('GET', '/v1/approvals?status=denied', { token: reviewerToken })).status).toBe(400);
    const one = await call('GET', `/v1/approvals/${approval.id}`, { token: reviewerToken });
    expect((one.body['approval'] as ApprovalView).text).toBe(approval.text);
  });
});

describe('the principals directory', () => {
  it('learns each principal who calls with a verified token, by (issuer, subject)', async () => {
    const token = await api.token('Ravi@Example.com', ['reviewers', 'engineering']);
    await call('GET', '/v1/approvals', { token });
    expect(
      await api.principals.get({ issuer: api.idp.issuer, subject: 'sub-Ravi@Example.com' }),
    ).toMatchObject({
      name: 'Ravi@Example.com',
      email: 'Ravi@Example.com',
      actor: 'person',
      groups: ['reviewers', 'engineering'],
    });
  });

  it('learns agents too (so they can be disabled), as agents', async () => {
    const token = await api.token('agent-x@example.com', ['reviewers'], { pgwarden_actor: 'agent' });
    await call('GET', '/v1/approvals', { token });
    expect(
      await api.principals.get({ issuer: api.idp.issuer, subject: 'sub-agent-x@example.com' }),
    ).toMatchObject({ actor: 'agent' });
  });

  it('refuses a disabled reviewer whose token is still valid', async () => {
    const token = await api.token('gone@example.com', ['reviewers']);
    expect((await call('GET', '/v1/approvals', { token })).status).toBe(200);
    await api.principals.change(
      { issuer: api.idp.issuer, subject: 'sub-gone@example.com' },
      { disabled: true, reason: 'left the company' },
      'admin@example.com',
      new Date(),
    );
    const refused = await call('GET', '/v1/approvals', { token });
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({
      error: { code: 'AUTH_DISABLED', message: expect.stringMatching(/left the company/) },
    });
    const approval = await ask();
    const decided = await call('POST', `/v1/approvals/${approval.id}/approve`, { token });
    expect(decided.status).toBe(401);
    expect((await api.store.get(approval.id))?.status).toBe('pending');
  });

  it('refuses a reviewer removed from the group after their token was issued', async () => {
    const token = await api.token('moved@example.com', ['reviewers']);
    await api.principals.change(
      { issuer: api.idp.issuer, subject: 'sub-moved@example.com' },
      { groups: ['engineering'] },
      'admin@example.com',
      new Date(Date.now() + 2_000), // after the token's iat (whole seconds)
    );
    const approval = await ask();
    const decided = await call('POST', `/v1/approvals/${approval.id}/approve`, { token });
    expect(decided.status).toBe(403);
    expect(decided.body).toMatchObject({
      error: { message: expect.stringMatching(/membership of "reviewers"/) },
    });
    expect((await api.store.get(approval.id))?.status).toBe('pending');
  });
});
