import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { latestPerKey, spoolRecord as rec } from '../../proxy/audit-record.ts';
import { AuditShipper } from '../../proxy/audit-shipper.ts';
import { AuditSpool, AuditUnavailable } from '../../proxy/audit-spool.ts';
import type { AuditEvent, StatementEvent } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';

const dirs: string[] = [];
const spools: AuditSpool[] = [];
afterEach(async () => {
  for (const spool of spools.splice(0)) await spool.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-spool-'));
  dirs.push(dir);
  return dir;
}

async function openSpool(dir: string, extra: Partial<Parameters<typeof AuditSpool.open>[0]> = {}) {
  const spool = await AuditSpool.open({
    dir,
    sync: 'always',
    maxBytes: 1024 ** 3,
    logger: silentLogger,
    ...extra,
  });
  spools.push(spool);
  return spool;
}

function statement(seq: number, outcome: StatementEvent['outcome'] = 'ok', sessionId = 's1'): StatementEvent {
  return {
    type: 'statement',
    eventId: `${sessionId}-${seq}`,
    sessionId,
    seq,
    principal: 'ada@example.com',
    database: 'app',
    applicationName: 'psql',
    text: `select ${seq}`,
    protocol: 'simple',
    decision: 'allow',
    ruleId: 'default',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 1,
    outcome,
  };
}

async function readAll(spool: AuditSpool): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for (let batch = await spool.readBatch(500); batch; batch = await spool.readBatch(500)) {
    out.push(...batch.records.map((r) => JSON.parse(r.line) as AuditEvent));
    await spool.ack(batch);
  }
  return out;
}

describe('AuditSpool', () => {
  it('makes an intent durable before it resolves, and reads records back in order', async () => {
    const dir = tempDir();
    const spool = await openSpool(dir);
    const durable = spool.appendDurable(rec(statement(1, 'pending')));
    expect(durable).toBeInstanceOf(Promise);
    await durable;
    // On disk (not just queued) once the promise resolved.
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.seg'));
    expect(readFileSync(join(dir, segment!), 'utf8')).toContain('"outcome":"pending"');
    spool.append(rec(statement(1, 'ok')));
    spool.append(rec(statement(2, 'ok')));
    await new Promise((resolve) => setTimeout(resolve, 30));
    const events = (await readAll(spool)) as StatementEvent[];
    expect(events.map((e) => `${e.seq}:${e.outcome}`)).toEqual(['1:pending', '1:ok', '2:ok']);
    expect(spool.pendingEvents).toBe(0);
  });

  it('group commit: one fdatasync covers every intent queued while the previous one ran', async () => {
    const spool = await openSpool(tempDir());
    const waits: Array<void | Promise<void>> = [];
    for (let i = 1; i <= 200; i++) waits.push(spool.appendDurable(rec(statement(i, 'pending'))));
    await Promise.all(waits);
    // The first intent syncs alone; the 199 queued behind it share the next sync.
    expect(spool.stats.commits).toBeLessThanOrEqual(3);
    expect(spool.stats.groupedRecords).toBe(200);
    expect(spool.pendingEvents).toBe(200);
  });

  it("'write' mode writes the intent before returning, without waiting for a sync", async () => {
    const dir = tempDir();
    const spool = await openSpool(dir, { sync: 'write' });
    expect(spool.appendDurable(rec(statement(1, 'pending')))).toBeUndefined();
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.seg'));
    expect(readFileSync(join(dir, segment!), 'utf8')).toContain('"seq":1');
  });

  it('ships written records from memory exactly as the file holds them, across segments', async () => {
    const dir = tempDir();
    const spool = await openSpool(dir, { sync: 'write', segmentBytes: 600 });
    // non-ASCII text: offsets are bytes, not characters
    for (let seq = 1; seq <= 12; seq++)
      spool.appendDurable(rec({ ...statement(seq), text: `select 'é${seq}'` }));
    await spool.close();
    const shipped = await readAll(spool);
    expect(shipped.map((e) => (e as StatementEvent).seq)).toEqual([...Array(12).keys()].map((i) => i + 1));
    // a fresh process (no memory) reads the same records from the files: nothing was acknowledged
    // beyond what the memory batches covered, and nothing is left over
    const reopened = await openSpool(dir);
    expect(await readAll(reopened)).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.seg'))).toHaveLength(1);
  });

  it('falls back to reading the file for what memory does not hold, in order', async () => {
    const dir = tempDir();
    const first = await openSpool(dir, { sync: 'write' });
    for (let seq = 1; seq <= 3; seq++) first.appendDurable(rec(statement(seq)));
    await first.close();
    // the next process remembers only what it writes itself; the older records come from disk
    const spool = await openSpool(dir, { sync: 'write' });
    for (let seq = 4; seq <= 6; seq++) spool.appendDurable(rec(statement(seq)));
    const shipped = await readAll(spool);
    expect(shipped.map((e) => (e as StatementEvent).seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('resumes after a restart from the acknowledged offset, and drops fully shipped segments', async () => {
    const dir = tempDir();
    const first = await openSpool(dir, { segmentBytes: 600 });
    for (let i = 1; i <= 10; i++) await first.appendDurable(rec(statement(i, 'pending')));
    const batch = await first.readBatch(2);
    expect(batch?.records).toHaveLength(2);
    await first.ack(batch!);
    await first.close();
    spools.splice(spools.indexOf(first), 1);

    const second = await openSpool(dir);
    expect(second.pendingEvents).toBe(8);
    const rest = (await readAll(second)) as StatementEvent[];
    expect(rest.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    // Only the active (empty) segment is left.
    expect(readdirSync(dir).filter((f) => f.endsWith('.seg'))).toHaveLength(1);
  });

  it('ignores a partial last line left by a crash mid-write, keeping every whole record', async () => {
    const dir = tempDir();
    const first = await openSpool(dir);
    await first.appendDurable(rec(statement(1, 'pending')));
    await first.appendDurable(rec(statement(2, 'pending')));
    await first.close();
    spools.splice(spools.indexOf(first), 1);
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.seg'));
    appendFileSync(join(dir, segment!), '{"type":"statement","eventId":"torn","sess');

    const warnings: string[] = [];
    const second = await openSpool(dir, {
      logger: { ...silentLogger, warn: (message) => warnings.push(message) },
    });
    const events = (await readAll(second)) as StatementEvent[];
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
    expect(warnings.join()).toContain('partial record');
    // Later records are not glued to the torn one.
    await second.appendDurable(rec(statement(3, 'pending')));
    expect(((await readAll(second)) as StatementEvent[]).map((e) => e.seq)).toEqual([3]);
  });

  it('writes into a zero-filled segment and, after a crash, recovers the records up to the zeros', async () => {
    const dir = tempDir();
    const first = await openSpool(dir, { segmentBytes: 64 * 1024 });
    for (let seq = 1; seq <= 3; seq++) await first.appendDurable(rec(statement(seq, 'pending')));
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.seg'));
    const onDisk = readFileSync(join(dir, segment!));
    // preallocated: the file is the segment's full size, the records first and zeros after them
    expect(onDisk.length).toBe(64 * 1024);
    const end = onDisk.indexOf(0);
    expect(onDisk.subarray(0, end).toString().trim().split('\n')).toHaveLength(3);
    expect(onDisk.subarray(end).every((byte) => byte === 0)).toBe(true);

    // a crash: the process is gone without closing; a new one opens the same directory
    spools.splice(spools.indexOf(first), 1);
    const second = await openSpool(dir, { segmentBytes: 64 * 1024 });
    // the recovered segment holds exactly its records now
    expect(readFileSync(join(dir, segment!)).length).toBe(end);
    expect(((await readAll(second)) as StatementEvent[]).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('cuts a record torn before the zeros of a preallocated segment', async () => {
    const dir = tempDir();
    const whole = `${JSON.stringify(statement(1, 'pending'))}\n`;
    const torn = JSON.stringify(statement(2, 'pending')).slice(0, 40);
    writeFileSync(
      join(dir, '000000000001.seg'),
      Buffer.concat([Buffer.from(whole + torn), Buffer.alloc(4096)]),
    );
    const warnings: string[] = [];
    const spool = await openSpool(dir, {
      logger: { ...silentLogger, warn: (message) => warnings.push(message) },
    });
    expect(((await readAll(spool)) as StatementEvent[]).map((e) => e.seq)).toEqual([1]);
    expect(warnings.join()).toContain('partial record');
  });

  it('rotates into the segment prepared in the background, and seals the full one to its records', async () => {
    const dir = tempDir();
    const spool = await openSpool(dir, { sync: 'write', segmentBytes: 2048 });
    for (let seq = 1; seq <= 40; seq++) {
      spool.appendDurable(rec(statement(seq, 'pending')));
      // let the next segment's zero-fill finish between rotations
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const segments = readdirSync(dir)
      .filter((f) => f.endsWith('.seg'))
      .sort();
    expect(segments.length).toBeGreaterThan(2);
    const sizes = segments.map((f) => readFileSync(join(dir, f)));
    // sealed segments end with their last record; the active one is preallocated
    for (const sealed of sizes.slice(0, -1)) {
      expect(sealed.indexOf(0)).toBe(-1);
      expect(sealed.at(-1)).toBe(0x0a);
    }
    expect(sizes.at(-1)!.length).toBeGreaterThanOrEqual(2048);
    expect(((await readAll(spool)) as StatementEvent[]).map((e) => e.seq)).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
  });

  it('refuses new intents with SQLSTATE 53100 when full, logs it once, and still keeps completions', async () => {
    const errors: string[] = [];
    const spool = await openSpool(tempDir(), {
      maxBytes: 2000,
      logger: { ...silentLogger, error: (message) => errors.push(message) },
    });
    let refused: unknown;
    for (let i = 1; i <= 50 && refused === undefined; i++) {
      try {
        await spool.appendDurable(rec(statement(i, 'pending')));
      } catch (error) {
        refused = error;
      }
    }
    expect(refused).toBeInstanceOf(AuditUnavailable);
    expect((refused as AuditUnavailable).sqlstate).toBe('53100');
    expect(() => spool.appendDurable(rec(statement(99, 'pending')))).toThrow(/audit spool is full/);
    expect(errors.filter((m) => m.includes('audit spool full'))).toHaveLength(1);
    // A statement already running still gets its completed record.
    const before = spool.pendingEvents;
    spool.append(rec(statement(1, 'ok')));
    expect(spool.pendingEvents).toBe(before + 1);
    // Shipping makes room again.
    await readAll(spool);
    await spool.close();
    spools.splice(spools.indexOf(spool), 1);
    const reopened = await openSpool(spool['o'].dir, { maxBytes: 2000 });
    await expect(reopened.appendDurable(rec(statement(100, 'pending')))).resolves.toBeUndefined();
  });
});

describe('latestPerKey', () => {
  it('keeps the last copy of a statement key (the completed record over its intent)', () => {
    const events = [
      statement(1, 'pending'),
      statement(2, 'pending'),
      statement(1, 'ok'),
      statement(1, 'pending', 's2'),
    ];
    const kept = latestPerKey(events.map(rec)).map((r) => JSON.parse(r.line) as StatementEvent);
    expect(kept.map((e) => `${e.sessionId}/${e.seq}:${e.outcome}`)).toEqual([
      's1/2:pending',
      's1/1:ok',
      's2/1:pending',
    ]);
  });
});

describe('AuditShipper', () => {
  it('keeps records while ingest fails and ships each key once per batch when it works again', async () => {
    const spool = await openSpool(tempDir());
    const stored: AuditEvent[][] = [];
    let down = true;
    const shipper = new AuditShipper({
      spool,
      logger: silentLogger,
      intervalMs: 5,
      maxBackoffMs: 20,
      controlPlane: {
        ingest: async (events) => {
          if (down) throw new Error('API down');
          stored.push(events);
        },
      },
    });
    shipper.start();
    for (let i = 1; i <= 30; i++) {
      await spool.appendDurable(rec(statement(i, 'pending')));
      spool.append(rec(statement(i, 'ok')));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stored).toHaveLength(0);
    expect(spool.pendingEvents).toBe(60);
    down = false;
    expect(await shipper.drain(5_000)).toBe(true);
    await shipper.stop();
    const all = stored.flat() as StatementEvent[];
    for (const batch of stored) {
      const keys = batch.map((e) => (e as StatementEvent).seq);
      expect(new Set(keys).size).toBe(keys.length);
    }
    const last = new Map(all.map((e) => [e.seq, e.outcome]));
    expect(last.size).toBe(30);
    expect([...last.values()].every((o) => o === 'ok')).toBe(true);
  });
});
