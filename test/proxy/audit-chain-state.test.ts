import { describe, expect, it } from 'vitest';
import { AuditChains } from '../../proxy/audit-chain-state.ts';
import type { SpoolRecord } from '../../proxy/audit-record.ts';
import { type RunIdentity, StatementRun } from '../../proxy/statement-run.ts';
import { genesisHash, recordHashProblem } from '../../shared/audit-chain.ts';
import { silentLogger } from '../../shared/logger.ts';
import { sessionClosed } from '../fakes/events.ts';

const who: RunIdentity = {
  session: {
    sessionId: 'sess-c',
    principal: {
      name: 'ada@example.com',
      issuer: 'https://issuer.example',
      subject: 'ada',
      groups: ['engineering'],
      actor: 'person',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'psql',
  },
};

function run(seq: number, text = `select ${seq}`): StatementRun {
  const r = new StatementRun(text, 'simple', { action: 'allow', ruleId: 'default', policyVersion: 'v1' });
  r.seq = seq;
  r.eventId = `e${seq}`;
  return r;
}

function chains(closeWaitMs = 10_000) {
  const written: SpoolRecord[] = [];
  const state = new AuditChains({ append: (r) => written.push(r), logger: silentLogger, closeWaitMs });
  const records = () => written.map((r) => JSON.parse(r.line) as Record<string, unknown>);
  return { state, written, records };
}

describe('AuditChains', () => {
  it('links completed records in completion order from the session genesis, each verifiable alone', () => {
    const { state, records } = chains();
    const a = run(1);
    const b = run(2);
    state.begun(a.intentRecord(who));
    state.begun(b.intentRecord(who));
    // seq 2 completes first (a refusal while seq 1 still runs): the chain follows the proxy's order
    state.completed(b.completedRecord(who));
    state.completed(a.completedRecord(who));
    const [first, second] = records();
    expect(first).toMatchObject({ seq: 2, chainIndex: 1, prevHash: genesisHash('sess-c') });
    expect(second).toMatchObject({ seq: 1, chainIndex: 2, prevHash: first!['recordHash'] });
    expect(recordHashProblem(first!)).toBeUndefined();
    expect(recordHashProblem(second!)).toBeUndefined();
  });

  it('anchors the close with the chain length and head, and forgets the session', () => {
    const { state, records } = chains();
    const a = run(1);
    state.begun(a.intentRecord(who));
    state.completed(a.completedRecord(who));
    state.closed(sessionClosed({ sessionId: 'sess-c' }));
    const [link, close] = records();
    expect(close).toMatchObject({ type: 'session_closed', chainLength: 1, chainHead: link!['recordHash'] });
    expect(state.open).toBe(0);
  });

  it('a session without statements closes with length 0 at its genesis', () => {
    const { state, records } = chains();
    state.closed(sessionClosed({ sessionId: 'sess-empty' }));
    expect(records()[0]).toMatchObject({ chainLength: 0, chainHead: genesisHash('sess-empty') });
  });

  it('holds the close until an intent in flight completes, so the anchor covers it', () => {
    const { state, records } = chains();
    const a = run(1);
    state.begun(a.intentRecord(who));
    state.closed(sessionClosed({ sessionId: 'sess-c' }));
    expect(records()).toHaveLength(0);
    a.failed(undefined, 'the connection closed before the statement was forwarded');
    state.completed(a.completedRecord(who));
    const [link, close] = records();
    expect(close).toMatchObject({ chainLength: 1, chainHead: link!['recordHash'] });
  });

  it('writes a held close at shutdown (flush) with the chain as it stands', () => {
    const { state, records } = chains();
    state.begun(run(1).intentRecord(who));
    state.closed(sessionClosed({ sessionId: 'sess-c' }));
    state.flush();
    expect(records()).toEqual([expect.objectContaining({ type: 'session_closed', chainLength: 0 })]);
  });

  it('writes a held close after its wait when the intent never completes', async () => {
    const { state, records } = chains(20);
    state.begun(run(1).intentRecord(who));
    state.closed(sessionClosed({ sessionId: 'sess-c' }));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(records()).toEqual([expect.objectContaining({ type: 'session_closed', chainLength: 0 })]);
  });
});
