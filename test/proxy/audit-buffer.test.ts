import { describe, expect, it } from 'vitest';
import { AuditBuffer } from '../../proxy/audit-buffer.ts';
import type { AuditEvent } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';
import { statement } from '../fakes/events.ts';

function sink(failFirst: number) {
  const batches: AuditEvent[][] = [];
  let calls = 0;
  return {
    batches,
    ingest: async (events: AuditEvent[]) => {
      calls++;
      if (calls <= failFirst) throw new Error('control plane down');
      batches.push([...events]);
    },
  };
}

describe('AuditBuffer', () => {
  it('ships events in batches of the configured size, in order', async () => {
    const target = sink(0);
    const buffer = new AuditBuffer({
      controlPlane: target,
      logger: silentLogger,
      batchSize: 3,
      flushIntervalMs: 5,
    });
    for (let i = 1; i <= 7; i++) buffer.record(statement(i));
    await buffer.flush();
    expect(target.batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(target.batches.flat().map((e) => (e.type === 'statement' ? e.seq : 0))).toEqual([
      1, 2, 3, 4, 5, 6, 7,
    ]);
    expect(buffer.pending).toBe(0);
  });

  it('keeps a failed batch and delivers it exactly once when the control plane is back', async () => {
    const target = sink(2);
    const buffer = new AuditBuffer({
      controlPlane: target,
      logger: silentLogger,
      batchSize: 10,
      flushIntervalMs: 5,
    });
    for (let i = 1; i <= 4; i++) buffer.record(statement(i));
    await buffer.flush(5_000);
    expect(target.batches.flat()).toHaveLength(4);
    expect(buffer.pending).toBe(0);
  });

  it('is bounded: beyond maxBuffered it drops (and says so) instead of growing without limit', async () => {
    const target = sink(Number.POSITIVE_INFINITY);
    const errors: string[] = [];
    const buffer = new AuditBuffer({
      controlPlane: target,
      logger: { ...silentLogger, error: (m) => errors.push(m) },
      batchSize: 100,
      maxBuffered: 5,
    });
    for (let i = 1; i <= 8; i++) buffer.record(statement(i));
    expect(buffer.pending).toBe(5);
    expect(errors[0]).toMatch(/dropped/);
    await buffer.flush(50);
  });
});
