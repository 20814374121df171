/**
 * The approval gate on its own: a scripted approvals API and a fake clock, so every outcome of a
 * hold (released, denied, timed out, expired, used elsewhere, API down, client gone) is checked
 * without sockets. The wire behaviour is in approval-gate-wire.integration.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  type ApprovalGateOptions,
  type ApprovalsApi,
  approvalText,
  CANCELLED_RULE_ID,
  createApprovalGate,
} from '../../proxy/approval-gate.ts';
import type { HeldClient } from '../../proxy/statement-gate.ts';
import type { NoticeFields } from '../../proxy/wire/backend-writer.ts';
import type { ApprovalView, CreateApprovalRequest } from '../../shared/approvals.ts';
import type { Decision, DecisionRequest } from '../../shared/control-plane.ts';
import { PgWardenError } from '../../shared/errors.ts';

const request: DecisionRequest = {
  session: {
    sessionId: 'sess-1',
    principal: {
      name: 'alice@example.com',
      issuer: 'https://issuer.example',
      subject: 'alice@example.com',
      groups: ['engineering'],
      actor: 'agent',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'cursor',
  },
  statement: { text: 'delete from orders', protocol: 'extended', preparedName: 'p1' },
};

const held: Decision = {
  action: 'require_approval',
  ruleId: 'approve-writes-without-where',
  reason: 'UPDATE or DELETE without WHERE changes every row',
  policyVersion: 'default-1',
  approval: { approvers: 'reviewers', timeoutSeconds: 300 },
  fingerprint: 'fp-1',
};

function view(overrides: Partial<ApprovalView> = {}): ApprovalView {
  return {
    id: 'appr-1',
    status: 'pending',
    principal: 'alice@example.com',
    sessionId: 'sess-1',
    database: 'app',
    applicationName: 'cursor',
    text: 'delete from orders',
    fingerprint: 'fp-1',
    textHash: 'hash',
    ruleId: held.ruleId,
    reason: held.reason!,
    approvers: ['reviewers'],
    requestedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    holdTimeoutSeconds: 300,
    ...overrides,
  };
}

type Step = ApprovalView | Error;

/** An approvals API answering from scripts; each wait advances the fake clock by what it waited. */
class ScriptedApi implements ApprovalsApi {
  clock = 0;
  readonly requests: CreateApprovalRequest[] = [];
  readonly waits: Array<{ id: string; timeoutMs: number; signal: AbortSignal | undefined }> = [];
  constructor(
    private readonly onRequest: Step,
    private readonly onWait: (n: number, timeoutMs: number) => Step,
  ) {}
  async request(body: CreateApprovalRequest): Promise<ApprovalView> {
    this.requests.push(body);
    if (this.onRequest instanceof Error) throw this.onRequest;
    return this.onRequest;
  }
  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalView> {
    this.waits.push({ id, timeoutMs, signal });
    const step = this.onWait(this.waits.length, timeoutMs);
    if (step instanceof Error) {
      this.clock += 100;
      throw step;
    }
    this.clock += step.status === 'pending' ? timeoutMs : 10;
    return step;
  }
}

function clientSpy(signal?: AbortSignal): HeldClient & { notices: NoticeFields[]; signal?: AbortSignal } {
  const notices: NoticeFields[] = [];
  return { notices, notice: (fields) => notices.push(fields), ...(signal ? { signal } : {}) };
}

function gateOver(api: ScriptedApi, extra: Partial<ApprovalGateOptions> = {}) {
  return createApprovalGate({ client: api, now: () => api.clock, retryDelayMs: 0, ...extra });
}

/** Holds a statement whose wait never ends, then aborts the client's signal with `reason`. */
async function holdUntil(reason: 'closed' | 'cancelled') {
  const client = new AbortController();
  let waited = 0;
  const api: ApprovalsApi = {
    request: async () => view(),
    wait: (_id, _ms, signal) => {
      waited++;
      expect(signal).toBe(client.signal);
      return new Promise((_resolve, reject) =>
        signal!.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
      );
    },
  };
  const pending = createApprovalGate({ client: api }).admit(request, held, clientSpy(client.signal));
  await new Promise((r) => setTimeout(r, 10));
  client.abort(reason);
  return { decision: await pending, waited };
}

const unavailable = () => new PgWardenError('CONTROL_PLANE_UNAVAILABLE', 'cannot reach http://10.0.0.7/');

describe('the approval gate', () => {
  it('lets every decision but require_approval through synchronously and untouched', () => {
    const api = new ScriptedApi(view(), () => view());
    const gate = gateOver(api);
    for (const decision of [
      { action: 'allow', ruleId: 'default', policyVersion: 'v' },
      { action: 'deny', ruleId: 'deny-x', reason: 'no', policyVersion: 'v' },
    ] satisfies Decision[]) {
      expect(gate.admit(request, decision, clientSpy())).toBe(decision);
    }
    expect(api.requests).toHaveLength(0);
  });

  it('asks with the values of the execution, and the released decision names its approval', async () => {
    const api = new ScriptedApi(view({ status: 'approved', decidedBy: 'rita@example.com' }), () => view());
    const params = { count: 1, values: [{ value: '7', format: 'text' as const }], hash: 'f'.repeat(64) };
    const decision = await gateOver(api).admit(request, held, clientSpy(), params);
    expect(api.requests[0]?.statement).toEqual({ text: 'delete from orders', protocol: 'extended', params });
    expect(decision).toMatchObject({ action: 'allow', approvalId: 'appr-1' });
    // without values (the simple protocol) the request carries none
    await gateOver(api).admit(request, held, clientSpy());
    expect(api.requests[1]?.statement).toEqual({ text: 'delete from orders', protocol: 'extended' });
  });

  it('holds, tells the client who must approve and how, and releases on approval', async () => {
    const api = new ScriptedApi(view(), (n) =>
      n < 3 ? view() : view({ status: 'approved', decidedBy: 'rita@example.com' }),
    );
    const released: string[] = [];
    const client = clientSpy();
    const decision = await gateOver(api, { onRelease: (_r, a) => released.push(a.id) }).admit(
      request,
      held,
      client,
    );
    expect(decision).toMatchObject({ action: 'allow', ruleId: held.ruleId, policyVersion: 'default-1' });
    expect(decision.reason).toContain('approved by rita@example.com');
    expect(released).toEqual(['appr-1']);
    // the request carries the session, the statement (without the prepared name) and the rule
    expect(api.requests).toEqual([
      {
        session: request.session,
        statement: { text: 'delete from orders', protocol: 'extended' },
        decision: held,
      },
    ]);
    expect(client.notices).toHaveLength(1);
    const notice = client.notices[0]!;
    expect(notice).toMatchObject({ severity: 'NOTICE', code: '00000' });
    expect(notice.message).toContain('"reviewers"');
    expect(notice.message).toContain('appr-1');
    expect(notice.hint).toContain('npm run -s pgwarden -- approvals approve appr-1');
    expect(notice.detail).toContain(held.reason);
    expect(api.waits.map((w) => w.id)).toEqual(['appr-1', 'appr-1', 'appr-1']);
  });

  it('runs a retried statement at once when the API hands it an earlier approval', async () => {
    const api = new ScriptedApi(view({ status: 'approved', decidedBy: 'rita@example.com' }), () => {
      throw new Error('no wait expected');
    });
    const client = clientSpy();
    const decision = await gateOver(api).admit(request, held, client);
    expect(decision.action).toBe('allow');
    expect(client.notices).toHaveLength(0);
    expect(api.waits).toHaveLength(0);
  });

  it('refuses with the reviewer and their reason on deny', async () => {
    const api = new ScriptedApi(view(), () =>
      view({ status: 'denied', decidedBy: 'rita@example.com', denyReason: 'not on a Friday' }),
    );
    const decision = await gateOver(api).admit(request, held, clientSpy());
    expect(decision).toMatchObject({ action: 'deny', ruleId: held.ruleId });
    expect(decision.reason).toBe('denied by rita@example.com: not on a Friday (approval appr-1)');
  });

  it('says so when a reviewer denied without a reason', async () => {
    const api = new ScriptedApi(view(), () => view({ status: 'denied', decidedBy: 'rita@example.com' }));
    const decision = await gateOver(api).admit(request, held, clientSpy());
    expect(decision.reason).toMatch(/^denied by rita@example\.com: no reason given/);
  });

  it('long-polls in slices of at most 25 s and refuses with the approval id at the hold timeout', async () => {
    const api = new ScriptedApi(view({ holdTimeoutSeconds: 60 }), () => view());
    const decision = await gateOver(api).admit(
      request,
      { ...held, approval: { approvers: 'reviewers', timeoutSeconds: 60 } },
      clientSpy(),
    );
    expect(decision).toMatchObject({ action: 'deny', ruleId: held.ruleId });
    expect(decision.reason).toContain('appr-1');
    expect(decision.reason).toMatch(/not decided within 60 s/);
    expect(decision.reason).toMatch(/run the same statement again/);
    expect(api.waits.map((w) => w.timeoutMs)).toEqual([25_000, 25_000, 10_000]);
    expect(api.clock).toBe(60_000);
  });

  it('holds no longer than maxHoldSeconds, whatever the rule says', async () => {
    const api = new ScriptedApi(view(), () => view());
    const client = clientSpy();
    const decision = await gateOver(api, { maxHoldSeconds: 2 }).admit(request, held, client);
    expect(decision.action).toBe('deny');
    expect(api.waits.map((w) => w.timeoutMs)).toEqual([2_000]);
    expect(client.notices[0]!.message).toContain('up to 2 s');
  });

  it('uses reviewers and 300 s when the decision names no approval settings', async () => {
    const api = new ScriptedApi(view(), () => view({ status: 'approved' }));
    const { approval: _, ...bare } = held;
    await gateOver(api).admit(request, bare, clientSpy());
    expect(api.requests[0]!.decision.approval).toEqual({ approvers: 'reviewers', timeoutSeconds: 300 });
  });

  it('refuses when the approval expires or was used by another run while it waited', async () => {
    for (const [status, pattern] of [
      ['expired', /expired before anyone approved it/],
      ['consumed', /already been used/],
    ] as const) {
      const api = new ScriptedApi(view(), () => view({ status }));
      const decision = await gateOver(api).admit(request, held, clientSpy());
      expect(decision.action, status).toBe('deny');
      expect(decision.reason, status).toMatch(pattern);
    }
  });

  it('refuses at once, without notice, when the API answers the request with a decided approval', async () => {
    const api = new ScriptedApi(view({ status: 'denied', decidedBy: 'rita@example.com' }), () => view());
    const client = clientSpy();
    const decision = await gateOver(api).admit(request, held, client);
    expect(decision.action).toBe('deny');
    expect(client.notices).toHaveLength(0);
    expect(api.waits).toHaveLength(0);
  });
});

describe('the approval gate fails closed', () => {
  it('when the approvals API cannot be reached: rule no-decision (SQLSTATE 58000), no internals shown', async () => {
    const api = new ScriptedApi(unavailable(), () => view());
    const client = clientSpy();
    const decision = await gateOver(api).admit(request, held, client);
    expect(decision).toMatchObject({ action: 'deny', ruleId: 'no-decision' });
    expect(decision.reason).toMatch(/could not reach its approvals service/);
    expect(decision.reason).toContain(held.ruleId);
    expect(decision.reason).not.toContain('10.0.0.7');
    expect(client.notices).toHaveLength(0);
  });

  it('rides out waits failing briefly, then still releases on approval', async () => {
    const api = new ScriptedApi(view(), (n) => (n <= 3 ? unavailable() : view({ status: 'approved' })));
    const decision = await gateOver(api, { retryWindowMs: 1_000 }).admit(request, held, clientSpy());
    expect(decision.action).toBe('allow');
    expect(api.waits).toHaveLength(4);
  });

  it('when waits keep failing past the retry window', async () => {
    const api = new ScriptedApi(view(), () => unavailable());
    const decision = await gateOver(api, { retryWindowMs: 1_000 }).admit(request, held, clientSpy());
    expect(decision).toMatchObject({ action: 'deny', ruleId: 'no-decision' });
    expect(api.waits.length).toBeGreaterThan(5);
    expect(api.clock).toBeLessThan(2_000);
  });

  it('at once when a wait is refused for a reason that will not pass (unknown approval)', async () => {
    const api = new ScriptedApi(view(), () => new PgWardenError('NOT_FOUND', 'no approval appr-1'));
    const decision = await gateOver(api).admit(request, held, clientSpy());
    expect(decision).toMatchObject({ action: 'deny', ruleId: 'no-decision' });
    expect(api.waits).toHaveLength(1);
  });

  it('and stops waiting when the client goes away', async () => {
    const { decision, waited } = await holdUntil('closed');
    expect(decision).toMatchObject({ action: 'deny', ruleId: held.ruleId });
    expect(decision.reason).toMatch(/client disconnected while the statement waited for approval appr-1/);
    expect(waited).toBe(1);
  });

  it('and ends the hold when the client cancels it, leaving the approval open for a retry', async () => {
    const { decision } = await holdUntil('cancelled');
    expect(decision).toMatchObject({ action: 'deny', ruleId: CANCELLED_RULE_ID });
    expect(decision.reason).toMatch(
      /canceling statement due to user request while it waited for approval appr-1/,
    );
    expect(decision.reason).toMatch(/run the same statement again/);
  });
});

describe('the text an approval shows and is bound to', () => {
  const session = { sessionId: 's' } as DecisionRequest['session'];
  const held: Decision = { action: 'require_approval', ruleId: 'r', policyVersion: 'v', executes: ['p'] };
  it('SQL EXECUTE carries every text that prepared the name, so a new PREPARE asks anew', () => {
    const request = (texts: string[]): DecisionRequest => ({
      session,
      statement: { text: 'EXECUTE p', protocol: 'simple', prepared: { p: texts } },
    });
    const update = 'PREPARE p AS UPDATE t SET n = 1';
    expect(approvalText(request([update]), held)).toBe(
      `EXECUTE p\n-- "p" was prepared in this session by:\n${update}`,
    );
    expect(approvalText(request([update, 'PREPARE p AS DELETE FROM t']), held)).toContain('DELETE FROM t');
  });
  it('any other statement is shown as it is', () => {
    const request: DecisionRequest = { session, statement: { text: 'DELETE FROM t', protocol: 'simple' } };
    expect(approvalText(request, { ...held, executes: undefined } as Decision)).toBe('DELETE FROM t');
    expect(approvalText(request, held)).toBe('DELETE FROM t');
  });
});
