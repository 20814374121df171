/**
 * The approvals use cases over the real DynamoDB store (dynalite): asking, long-poll waits woken in
 * process and by re-reads across processes, the one use of an approval, retries, expiry, audit.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { type ApprovalsService, createApprovalsService } from '../../functions/api/approvals-service.ts';
import {
  approvalRequest,
  REQUESTER,
  RecordingAuditStore,
  RecordingQueue,
  reviewer,
  textParams,
} from '../fakes/approvals.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';

let db: LocalDynamoDb;
let store: DynamoDbApprovalStore;
const tables = approvalTableNames('service-test-');
let clock: Date;
let audit: RecordingAuditStore;
let queue: RecordingQueue;
let service: ApprovalsService;
let ids = 0;
let textCounter = 0;

function makeService(overrides: { recheckMs?: number } = {}): ApprovalsService {
  return createApprovalsService({
    store,
    audit,
    queue,
    defaultApprovers: ['reviewers'],
    windows: { decisionSeconds: 600, useSeconds: 120 },
    now: () => clock,
    newId: () => `id-${++ids}`,
    ...overrides,
  });
}

/** Each test asks about its own statement, so retry lookups never see another test's approvals. */
function request(overrides: Parameters<typeof approvalRequest>[0] = {}) {
  return approvalRequest({ text: `delete from orders where id = ${++textCounter}`, ...overrides });
}

const advance = (seconds: number) => {
  clock = new Date(clock.getTime() + seconds * 1000);
};

beforeAll(async () => {
  db = await startDynamoDb();
  await ensureApprovalTables(db.client, tables);
  store = new DynamoDbApprovalStore(db.client, tables.approvals);
});
afterAll(() => db.stop());
beforeEach(() => {
  clock = new Date('2026-03-01T10:00:00.000Z');
  audit = new RecordingAuditStore();
  queue = new RecordingQueue();
  service = makeService();
});

describe('asking for approval', () => {
  it('creates a pending approval, records it and queues the Slack notification', async () => {
    const approval = await service.request(request());
    expect(approval).toMatchObject({ status: 'pending', principal: REQUESTER, approvers: ['reviewers'] });
    expect(await store.get(approval.id)).toEqual(approval);
    expect(queue.sent).toEqual([approval.id]);
    expect(audit.steps(approval.id)).toEqual(['requested']);
    expect(audit.events[0]).toMatchObject({
      type: 'approval',
      by: REQUESTER,
      via: 'proxy',
      sessionId: 'session-1',
    });
  });

  it('reuses a still-pending approval when the same statement is asked for again', async () => {
    const same = request();
    const first = await service.request(same);
    const again = await service.request({ ...same, session: { ...same.session, sessionId: 'session-2' } });
    expect(again.id).toBe(first.id);
    expect(queue.sent).toEqual([first.id]);
  });

  it('still answers when the notification cannot be queued (the CLI can decide)', async () => {
    queue.failing = true;
    expect((await service.request(request())).status).toBe('pending');
  });
});

describe('waiting', () => {
  it('is woken at once by a decision in the same process, and that wait takes the one use', async () => {
    // Re-reads are an hour apart and the wait lasts 20 s, so only the in-process wake can release it.
    service = makeService({ recheckMs: 3_600_000 });
    const approval = await service.request(request());
    const waiting = service.wait(approval.id, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const released = await waiting;
    expect(released).toMatchObject({ id: approval.id, status: 'approved', decidedBy: 'rita@example.com' });
    expect((await store.get(approval.id))?.status).toBe('consumed');
    expect(audit.steps(approval.id)).toEqual(['requested', 'approved', 'consumed']);
    // the trail says who asked and who decided by issuer and subject, not only by display name
    expect(audit.events.find((e) => e.type === 'approval' && e.step === 'approved')).toMatchObject({
      by: 'rita@example.com',
      byIssuer: 'https://issuer.example',
      bySubject: 'sub|rita',
      issuer: 'https://issuer.example',
      subject: 'sub|dev',
    });
    expect(await store.get(approval.id)).toMatchObject({
      decidedByIssuer: 'https://issuer.example',
      decidedBySubject: 'sub|rita',
    });
    // a second wait (or a retry) cannot use it again
    expect((await service.wait(approval.id, 0)).status).toBe('consumed');
    expect((await service.request(request({ text: approval.text }))).id).not.toBe(approval.id);
  });

  it('sees a decision made by another process within the re-read interval', async () => {
    const here = makeService({ recheckMs: 100 });
    const elsewhere = makeService();
    const approval = await here.request(request());
    const waiting = here.wait(approval.id, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await elsewhere.decide(approval.id, reviewer(), { verdict: 'deny', reason: 'not now' });
    // The wait lasts 10 s and nothing wakes it in this process: only a re-read can see the denial.
    const answer = await waiting;
    expect(answer).toMatchObject({ status: 'denied', denyReason: 'not now', decidedBy: 'rita@example.com' });
  });

  it('does not miss a decision made between its read and its sleep', async () => {
    let racing = false;
    let service: ApprovalsService | undefined;
    // Reads the record, then (once) lets a reviewer decide before the wait sees the stale answer.
    const racyStore = new Proxy(store, {
      get(target, property) {
        if (property === 'get') {
          return async (id: string) => {
            const value = await target.get(id);
            if (racing) {
              racing = false;
              await service!.decide(id, reviewer(), { verdict: 'approve' });
            }
            return value;
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    service = createApprovalsService({
      store: racyStore,
      audit,
      defaultApprovers: ['reviewers'],
      now: () => clock,
      newId: () => `id-${++ids}`,
      recheckMs: 10_000, // a missed wake-up would cost the whole timeout
    });
    const approval = await service.request(request());
    racing = true;
    // re-reads are 10 s apart and the wait lasts 5 s: only the wake-up can make it 'approved'
    expect((await service.wait(approval.id, 5_000)).status).toBe('approved');
  });

  it('returns the approval still pending after the timeout', async () => {
    const approval = await service.request(request());
    const started = performance.now();
    expect((await service.wait(approval.id, 300)).status).toBe('pending');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  // a 0 ms wait that slept instead would run into this test's 5 s limit
  it('answers a 0 ms wait at once', { timeout: 5_000 }, async () => {
    const approval = await service.request(request());
    expect((await service.wait(approval.id, 0)).status).toBe('pending');
  });

  it('does not take the use for a caller that gave up', async () => {
    const approval = await service.request(request());
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const gone = new AbortController();
    gone.abort();
    expect((await service.wait(approval.id, 1_000, gone.signal)).status).toBe('approved');
    expect((await store.get(approval.id))?.status).toBe('approved');
  });

  // the wait lasts 20 s; one that ignored the abort would run into this test's 5 s limit
  it('stops waiting when the caller aborts', { timeout: 5_000 }, async () => {
    const approval = await service.request(request());
    const caller = new AbortController();
    const waiting = service.wait(approval.id, 20_000, caller.signal);
    setTimeout(() => caller.abort(), 50);
    expect((await waiting).status).toBe('pending');
  });

  it('answers NOT_FOUND for an unknown approval', async () => {
    await expect(service.wait('missing', 0)).rejects.toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });
});

describe('a retry after the hold timed out', () => {
  it('passes once when approved, within the use window', async () => {
    const ask = request();
    const approval = await service.request(ask);
    expect((await service.wait(approval.id, 0)).status).toBe('pending'); // the hold timed out
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const retry = await service.request({ ...ask, session: { ...ask.session, sessionId: 'session-9' } });
    expect(retry).toMatchObject({ id: approval.id, status: 'approved' });
    // the next retry is a new request
    const third = await service.request(ask);
    expect(third.id).not.toBe(approval.id);
    expect(third.status).toBe('pending');
  });

  it('passes for the same person with another token (no email: another display name)', async () => {
    const ask = request();
    const approval = await service.request(ask);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const retry = await service.request(request({ text: ask.statement.text, principal: 'sub|dev' }));
    expect(retry).toMatchObject({ id: approval.id, status: 'approved' });
  });

  it('does not pass for another principal, database or text', async () => {
    const ask = request();
    const approval = await service.request(ask);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    for (const other of [
      request({ text: ask.statement.text, principal: 'mallory@example.com', subject: 'sub|mallory' }),
      // the same subject at another issuer is someone else
      request({ text: ask.statement.text, issuer: 'https://other-issuer.example' }),
      request({ text: ask.statement.text, database: 'prod' }),
      request({ text: `${ask.statement.text} ` }),
    ]) {
      expect((await service.request(other)).status).toBe('pending');
    }
    expect((await store.get(approval.id))?.status).toBe('approved');
  });

  it('does not pass after the use window; the approval is then expired', async () => {
    const ask = request();
    const approval = await service.request(ask);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    advance(121);
    const retry = await service.request(ask);
    expect(retry.status).toBe('pending');
    expect(retry.id).not.toBe(approval.id);
    expect((await store.get(approval.id))?.status).toBe('expired');
  });

  it('lets only one of two concurrent retries use the approval', async () => {
    const ask = request();
    const approval = await service.request(ask);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const [a, b] = await Promise.all([makeService().request(ask), makeService().request(ask)]);
    expect([a, b].filter((r) => r.id === approval.id && r.status === 'approved')).toHaveLength(1);
  });
});

describe('one approval, one execution of the values the reviewer saw', () => {
  it('binds the approval to the parameter values: other values ask again, the same values pass once', async () => {
    const text = `update orders set total = $1 where id = ${++textCounter}`;
    const ask = request({ text, protocol: 'extended', params: textParams('10', null) });
    const approval = await service.request(ask);
    expect(approval).toMatchObject({
      paramsHash: ask.statement.params?.hash,
      params: {
        count: 2,
        values: [
          { value: '10', format: 'text' },
          { value: null, format: 'text' },
        ],
      },
    });
    expect((await store.get(approval.id))?.params).toEqual(approval.params);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    for (const other of [textParams('11', null), textParams('10', ''), textParams('10'), textParams()]) {
      const retry = await service.request(request({ text, protocol: 'extended', params: other }));
      expect(retry.id).not.toBe(approval.id);
      expect(retry.status).toBe('pending');
    }
    expect((await service.request(ask)).status).toBe('approved');
    expect((await service.request(ask)).status).toBe('pending');
    const steps = audit.events.filter((e) => e.type === 'approval' && e.approvalId === approval.id);
    expect(steps.map((e) => (e.type === 'approval' ? e.paramsHash : undefined))).toEqual(
      steps.map(() => ask.statement.params?.hash),
    );
  });

  it('lets exactly one of eight concurrent retries (eight proxies) run', async () => {
    const ask = request({ protocol: 'extended', params: textParams('1') });
    const approval = await service.request(ask);
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const retries = await Promise.all(Array.from({ length: 8 }, () => makeService().request(ask)));
    expect(retries.filter((r) => r.status === 'approved').map((r) => r.id)).toEqual([approval.id]);
    expect((await store.get(approval.id))?.status).toBe('consumed');
  });

  it('releases exactly one of two connections waiting on the same approval', async () => {
    const ask = request();
    const approval = await service.request(ask);
    // a second connection retried while it was pending: it waits on the same approval
    expect((await makeService().request(ask)).id).toBe(approval.id);
    const waits = [makeService().wait(approval.id, 10_000), makeService().wait(approval.id, 10_000)];
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    const statuses = (await Promise.all(waits)).map((a) => a.status).sort();
    expect(statuses).toEqual(['approved', 'consumed']);
  });

  it('lets one of two clicks of the same reviewer win, and approve-then-deny cannot undo it', async () => {
    const approval = await service.request(request());
    const clicks = await Promise.allSettled([
      makeService().decide(approval.id, reviewer(), { verdict: 'approve' }),
      makeService().decide(approval.id, reviewer(), { verdict: 'approve' }),
    ]);
    expect(clicks.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    await expect(service.decide(approval.id, reviewer(), { verdict: 'deny' })).rejects.toThrow(
      /already approved/,
    );
    expect((await store.get(approval.id))?.status).toBe('approved');
  });
});

describe('deciding', () => {
  it('refuses the requester, non-members, agents, second decisions and expired approvals, and records each refusal', async () => {
    const approval = await service.request(request());
    const refused = async (who: ReturnType<typeof reviewer>, pattern: RegExp, id = approval.id) => {
      await expect(service.decide(id, who, { verdict: 'approve' })).rejects.toThrow(pattern);
    };
    await refused(reviewer({ name: REQUESTER, email: REQUESTER }), /requested this statement/);
    await refused(reviewer({ groups: ['engineering'] }), /membership/);
    await refused(reviewer({ actor: 'agent' }), /people/);
    await service.decide(approval.id, reviewer(), { verdict: 'deny', reason: 'no' });
    await refused(reviewer({ name: 'sam@example.com', email: 'sam@example.com' }), /already denied/);
    expect(audit.steps(approval.id)).toEqual([
      'requested',
      'refused',
      'refused',
      'refused',
      'denied',
      'refused',
    ]);

    const late = await service.request(request());
    advance(601);
    await refused(reviewer(), /expired/, late.id);
    expect((await store.get(late.id))?.status).toBe('expired');
    expect(audit.steps(late.id)).toEqual(['requested', 'expired', 'refused']);
    expect(queue.sent.filter((id) => id === late.id)).toHaveLength(2); // posted, then shown expired
  });

  it('lets exactly one of two concurrent approvers win', async () => {
    const approval = await service.request(request());
    const results = await Promise.allSettled([
      makeService().decide(approval.id, reviewer(), { verdict: 'approve' }),
      makeService().decide(approval.id, reviewer({ name: 'sam@example.com', email: 'sam@example.com' }), {
        verdict: 'deny',
      }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(loser.reason).toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/already/) });
  });

  it('lists pending approvals only, marking lapsed ones expired', async () => {
    const open = await service.request(request());
    const decided = await service.request(request());
    await service.decide(decided.id, reviewer(), { verdict: 'approve' });
    const listed = (await service.listPending(1000)).map((a) => a.id);
    expect(listed).toContain(open.id);
    expect(listed).not.toContain(decided.id);
    advance(601);
    expect((await service.listPending(1000)).map((a) => a.id)).not.toContain(open.id);
    expect((await store.get(open.id))?.status).toBe('expired');
  });
});

describe('reporting the execution', () => {
  it('stores what the released statement did, records it and updates Slack', async () => {
    const approval = await service.request(request());
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    await service.wait(approval.id, 0);
    const reported = await service.reportExecution(approval.id, { commandTag: 'DELETE 1', rows: 1 });
    expect(reported.execution).toMatchObject({ commandTag: 'DELETE 1', rows: 1 });
    expect(audit.steps(approval.id)).toEqual(['requested', 'approved', 'consumed', 'executed']);
    expect(queue.sent.filter((id) => id === approval.id).length).toBe(4);
  });

  it('refuses a report for an approval nothing ran under', async () => {
    const approval = await service.request(request());
    await expect(service.reportExecution(approval.id, { commandTag: 'DELETE 1' })).rejects.toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST' }),
    );
  });
});
