/**
 * A released statement's result is reported to the approvals API (for the Slack message) once its
 * final audit record is shipped: matched by the approval id the record carries, once per release.
 */
import { describe, expect, it } from 'vitest';
import { ApprovedRunReporter } from '../../proxy/approvals-execution.ts';
import type { ApprovalExecutionReport, ApprovalView } from '../../shared/approvals.ts';
import type { DecisionRequest } from '../../shared/control-plane.ts';
import type { StatementEvent } from '../../shared/events.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';

const request = (sessionId: string, text: string): DecisionRequest => ({
  session: {
    sessionId,
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
  statement: { text, protocol: 'simple' },
});

const event = (sessionId: string, text: string, extra: Partial<StatementEvent> = {}): StatementEvent => ({
  type: 'statement',
  eventId: `e-${Math.random()}`,
  sessionId,
  seq: 1,
  principal: 'alice@example.com',
  database: 'app',
  applicationName: 'psql',
  text,
  protocol: 'simple',
  decision: 'allow',
  ruleId: 'approve-writes-without-where',
  startedAt: new Date().toISOString(),
  durationMs: 1,
  outcome: 'ok',
  ...extra,
});

const approval = (id: string) => ({ id }) as ApprovalView;

function setUp() {
  const reports: Array<[string, ApprovalExecutionReport]> = [];
  const reporter = new ApprovedRunReporter({
    reportExecution: async (id, report) => {
      reports.push([id, report]);
      return approval(id);
    },
  });
  const inner = new InMemoryControlPlane();
  return { reports, reporter, inner, controlPlane: reporter.watch(inner) };
}

describe('the approved-run reporter', () => {
  it('reports the result of each released statement once, after its events are stored', async () => {
    const { reports, reporter, inner, controlPlane } = setUp();
    reporter.released(request('s1', 'delete from orders'), approval('a1'));
    reporter.released(request('s1', 'delete from orders'), approval('a2'));
    await controlPlane.ingest([
      event('s1', 'delete from orders', { outcome: 'pending', approvalId: 'a1' }),
      // the same text without an approval id (another session, or a run no approval released)
      event('s2', 'delete from orders', { commandTag: 'DELETE 9', rows: 9 }),
      event('s1', 'delete from orders', { commandTag: 'DELETE 3', rows: 3, approvalId: 'a1' }),
      event('s1', 'select 1', { commandTag: 'SELECT 1', rows: 1 }),
    ]);
    await controlPlane.ingest([
      event('s1', 'delete from orders', {
        outcome: 'error',
        sqlstate: '40P01',
        errorMessage: 'deadlock',
        approvalId: 'a2',
      }),
      // a portal resumed after PortalSuspended: the same execution, reported once
      event('s1', 'delete from orders', { commandTag: 'DELETE 0', rows: 0, approvalId: 'a1' }),
    ]);
    expect(inner.events).toHaveLength(6);
    expect(reports).toEqual([
      ['a1', { commandTag: 'DELETE 3', rows: 3 }],
      ['a2', { error: '40P01: deadlock' }],
    ]);
  });

  it('reports nothing for refused runs of the same text, and never before the store took the events', async () => {
    const { reports, reporter, inner, controlPlane } = setUp();
    reporter.released(request('s1', 'drop table t'), approval('a1'));
    await controlPlane.ingest([
      event('s1', 'drop table t', { decision: 'deny', outcome: 'refused', approvalId: 'a1' }),
    ]);
    expect(reports).toEqual([]);
    inner.ingest = async () => {
      throw new Error('store down');
    };
    await expect(controlPlane.ingest([event('s1', 'drop table t', { approvalId: 'a1' })])).rejects.toThrow(
      'store down',
    );
    expect(reports).toEqual([]);
  });

  it('reports from serialized events too (the spool ships its JSON lines as written)', async () => {
    const { reports, reporter, inner } = setUp();
    const shipped: string[] = [];
    const controlPlane = reporter.watch({
      ...inner,
      openSession: inner.openSession.bind(inner),
      decide: inner.decide.bind(inner),
      ingest: inner.ingest.bind(inner),
      ingestSerialized: async (events) => {
        shipped.push(...events.map((e) => e.line));
      },
    });
    reporter.released(request('s1', 'delete from orders'), approval('a1'));
    const lines = [
      event('s1', 'delete from orders', { outcome: 'pending', approvalId: 'a1' }),
      event('s1', 'delete from orders', { commandTag: 'DELETE 3', rows: 3, approvalId: 'a1' }),
    ].map((e) => ({ type: e.type, line: JSON.stringify(e) }));
    await controlPlane.ingestSerialized!([
      { type: 'session_opened', line: '{"type":"session_opened"}' },
      ...lines,
    ]);
    expect(shipped).toHaveLength(3);
    expect(reports).toEqual([['a1', { commandTag: 'DELETE 3', rows: 3 }]]);
  });

  it('keeps the session path free of a failing report', async () => {
    const reporter = new ApprovedRunReporter({
      reportExecution: async () => {
        throw new Error('api down');
      },
    });
    const controlPlane = reporter.watch(new InMemoryControlPlane());
    reporter.released(request('s1', 'truncate t'), approval('a1'));
    await expect(
      controlPlane.ingest([event('s1', 'truncate t', { approvalId: 'a1' })]),
    ).resolves.toBeUndefined();
  });
});
