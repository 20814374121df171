import { describe, expect, it } from 'vitest';
import { statementKey } from '../../proxy/audit-record.ts';
import { type RunIdentity, StatementRun } from '../../proxy/statement-run.ts';
import type { Decision } from '../../shared/control-plane.ts';
import type { StatementEvent } from '../../shared/events.ts';

const who: RunIdentity = {
  session: {
    sessionId: 'sess-1',
    principal: {
      name: 'ada@example.com',
      issuer: 'https://issuer.example',
      subject: 'ada@example.com',
      groups: ['engineering'],
      actor: 'agent',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'Cursor "agent"\u2028',
  },
  upstreamUser: 'app_rw',
};

const decision: Decision = {
  action: 'allow',
  ruleId: 'reads',
  policyVersion: 'v7',
  fingerprint: 'abc123',
  kinds: ['select'],
};

function started(text: string): StatementRun {
  const run = new StatementRun(text, 'extended', decision, 'stmt_1');
  run.seq = 42;
  run.eventId = 'evt-42';
  run.portalName = '';
  run.params = { mode: 'hashed', values: ['deadbeef', null] };
  return run;
}

/** the serialized record without its timing, which differs between two reads of the clock */
function parsed(line: string): Omit<StatementEvent, 'durationMs'> {
  const { durationMs: _, ...rest } = JSON.parse(line) as StatementEvent;
  return rest;
}

function parsedEvent(run: StatementRun): StatementEvent {
  return JSON.parse(JSON.stringify(run.toEvent(who))) as StatementEvent;
}

function withoutTiming(event: StatementEvent): Omit<StatementEvent, 'durationMs'> {
  const { durationMs: _, ...rest } = JSON.parse(JSON.stringify(event)) as StatementEvent;
  return rest;
}

describe('StatementRun serialized records', () => {
  it('serializes the intent exactly as the intent event, keyed by session and seq', () => {
    const run = started(`select $1, 'quote " backslash \\ newline \n tab \t' -- é ✓`);
    const record = run.intentRecord(who);
    expect(record.type).toBe('statement');
    expect(record.key).toBe(statementKey('sess-1', 42));
    expect(record.line).not.toContain('\n');
    // before anything ran, the record of intent is the event with outcome 'pending' and no duration
    expect(JSON.parse(record.line)).toEqual({ ...parsedEvent(run), outcome: 'pending', durationMs: 0 });
  });

  it('completes the record with what happened after the intent, under the same key', () => {
    const run = started('delete from orders where id = $1');
    const intent = run.intentRecord(who);
    run.completed('DELETE 3', 3);
    run.bytesToClient = 120;
    run.cancelled = true;
    run.recordMasking(
      [{ column: 'public.customers.ssn', ruleId: 'mask-ssn', method: 'redact', values: 2 }],
      [{ detector: 'email', where: 'error', values: 1 }],
    );
    run.failed('57014', 'canceling statement due to user request');
    const done = run.completedRecord(who);
    expect(done.key).toBe(intent.key);
    expect(parsed(done.line)).toEqual(withoutTiming(run.toEvent(who)));
    const event = JSON.parse(done.line) as StatementEvent;
    expect(event).toMatchObject({ outcome: 'error', commandTag: 'DELETE 3', rows: 3, cancelled: true });
    expect(typeof event.durationMs).toBe('number');
    // no key appears twice: the completed record is not the intent with fields appended again
    const keys = [...done.line.matchAll(/"(\w+)":/g)].map((m) => m[1]);
    expect(keys.filter((k) => k === 'outcome')).toHaveLength(1);
  });

  it('serializes a statement that never had an intent (refused) in one go', () => {
    const run = new StatementRun('drop table customers', 'simple', {
      action: 'deny',
      ruleId: 'no-ddl',
      reason: 'DDL needs approval',
      policyVersion: 'v7',
    });
    run.seq = 3;
    run.eventId = 'evt-3';
    const record = run.completedRecord(who);
    expect(parsed(record.line)).toEqual(withoutTiming(run.toEvent(who)));
    expect(JSON.parse(record.line)).toMatchObject({ decision: 'deny', outcome: 'refused', ruleId: 'no-ddl' });
  });
});
