import { describe, expect, it } from 'vitest';
import { statementKey } from '../../proxy/audit-record.ts';
import { type RunIdentity, StatementRun } from '../../proxy/statement-run.ts';
import {
  canonicalJson,
  headHashOf,
  MAX_TEXT_BYTES,
  recordHashProblem,
  splitStatement,
} from '../../shared/audit-chain.ts';
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
    expect(JSON.parse(record.line).headHash).toMatch(/^[0-9a-f]{64}$/);
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

describe('StatementRun records are canonical for the hash chain', () => {
  /** a run with every optional field set, so a head or tail key out of order shows */
  function everything(): StatementRun {
    const run = started('update orders set total = $1 where id = $2');
    run.params = { mode: 'clear', values: ['1', null], formats: ['text', 'binary'] };
    run.completed('UPDATE 1', 1);
    run.bytesToClient = 99;
    run.cancelled = true;
    run.recordMasking(
      [{ column: 'public.c.ssn', ruleId: 'r', method: 'hash', values: 1, note: 'binary as NULL' }],
      [{ detector: 'card', where: 'public.c.note', values: 2 }],
    );
    run.failed('23505', 'duplicate key');
    return run;
  }

  it('serializes head and tail with sorted keys: the line is the canonical form, field by field', () => {
    const run = everything();
    const intent = JSON.parse(run.intentRecord(who).line) as Record<string, unknown>;
    const done = run.completedRecord(who);
    const record = JSON.parse(done.line) as Record<string, unknown>;
    const { head, tail } = splitStatement(record);
    // the head as written is a prefix of the line and is already canonical
    const headJson = canonicalJson(head);
    expect(done.line.startsWith(headJson.slice(0, -1))).toBe(true);
    expect(done.chain?.tail).toBe(canonicalJson(tail));
    expect(record['headHash']).toBe(headHashOf(record));
    expect(intent['headHash']).toBe(record['headHash']);
    expect(done.chain).toMatchObject({ sessionId: 'sess-1', afterIntent: true });
  });

  it('a record without an intent says so; its head hash is the same computation', () => {
    const run = new StatementRun('drop table x', 'simple', { ...decision, action: 'deny' });
    run.seq = 1;
    run.eventId = 'e';
    const done = run.completedRecord(who);
    expect(done.chain?.afterIntent).toBe(false);
    expect(JSON.parse(done.line)['headHash']).toBe(headHashOf(JSON.parse(done.line)));
  });

  it('caps a very long text in the record itself, so what is hashed is what is stored', () => {
    const run = started(`select '${'é'.repeat(MAX_TEXT_BYTES)}'`);
    const record = JSON.parse(run.completedRecord(who).line) as StatementEvent;
    expect(record.textTruncated).toBe(true);
    expect(record.textBytes).toBe(Buffer.byteLength(run.text));
    expect(Buffer.byteLength(record.text)).toBeLessThanOrEqual(MAX_TEXT_BYTES);
    expect(record.headHash).toBe(headHashOf(record as unknown as Record<string, unknown>));
  });

  it('a changed field no longer matches the record hash (checked after linking by the sink)', () => {
    const run = everything();
    const record = JSON.parse(run.completedRecord(who).line) as Record<string, unknown>;
    record['rows'] = 2;
    expect(recordHashProblem(record)).toBeUndefined(); // unlinked: only headHash is checked
    record['text'] = 'select 1';
    expect(recordHashProblem(record)).toMatchObject({ field: 'headHash' });
  });
});
