/**
 * The proxy's durable audit spool: an append-only log of JSON lines in segment files, so no
 * audit record is lost while the API is away or when the proxy stops. A shipper reads it from the
 * acknowledged offset of the oldest segment (audit-shipper.ts).
 *
 * Durability, by PGWARDEN_AUDIT_SPOOL_SYNC:
 * - 'always' (default): a statement's intent is forwarded only after fdatasync. Group commit: one
 *   write(2) + one fdatasync covers every record queued meanwhile, so concurrent sessions share the
 *   ~0.3 ms a sync costs. Survives a machine crash.
 * - 'write': the intent is written with write(2) before forwarding (it is then in the kernel and
 *   survives the proxy being killed, even with SIGKILL) and fdatasync'd every `syncIntervalMs`: a
 *   machine crash can lose the last ~10 ms of records, in exchange for no wait per statement.
 *
 * Layout: `<n>.seg` (12-digit n, JSON lines) and `<n>.ack` (decimal byte offset up to which the API
 * has stored the lines). The segment being written is zero-filled ahead of its records (prepared
 * in the background as `next-segment.tmp`), so its records end at the first NUL byte; a segment
 * is cut to its records when it is sealed or recovered. A lost or stale ack only means lines are
 * sent again, which ingest tolerates (records are keyed). A process that dies mid-write can leave a partial last line: it is cut off at
 * the next start, and its statement was not forwarded because its intent never completed.
 */
import {
  closeSync,
  constants,
  fdatasync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { auditKey, type SpoolRecord } from './audit-record.ts';
import { AuditUnavailable } from './audit-unavailable.ts';

export type SpoolSync = 'always' | 'write';

export interface AuditSpoolOptions {
  dir: string;
  sync: SpoolSync;
  /** spool size (unshipped and not yet deleted) at which new statements are refused */
  maxBytes: number;
  logger: Logger;
  /** a segment is sealed and a new one started past this size */
  segmentBytes?: number;
  /** 'write' mode: how often written records are fdatasync'd (and, in both modes, records nobody waits for) */
  syncIntervalMs?: number;
}

export { AuditUnavailable };

interface Segment {
  n: number;
  path: string;
  ackPath: string;
  /** bytes written (the active segment) or the file size (sealed) */
  size: number;
  acked: number;
  sealed: boolean;
  /** lines after `acked`, for the pending count */
  unacked: number;
}

export interface SpoolBatch {
  /** each a valid JSON line: lines that do not parse are skipped when read back from disk */
  records: SpoolRecord[];
  segment: number;
  /** offset after the last line of the batch */
  end: number;
  lines: number;
}

interface Group {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A group nobody awaited must not crash the process when it fails.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** The type and key of a record read back from disk. */
function keyed(event: AuditEvent): Omit<SpoolRecord, 'line'> {
  if (typeof event !== 'object' || event === null || typeof event.type !== 'string')
    throw new Error('not an audit event');
  return { type: event.type, key: auditKey(event) };
}

/** the zero-filled file that becomes the next segment */
const NEXT = 'next-segment.tmp';
const PREALLOCATE_CHUNK = 1024 * 1024;
const SEGMENT = /^(\d{12})\.seg$/;
const READ_CHUNK = 512 * 1024;
/** queued lines kept in memory at most while writes fail (the disk is broken, not just full) */
const MAX_QUEUED_LINES = 200_000;

const name = (n: number) => String(n).padStart(12, '0');
/**
 * Written records kept in memory so the shipper sends them without reading and parsing the file
 * again; beyond this many the oldest are read back from disk (as after a restart).
 */
const MAX_MEMORY_RECORDS = 100_000;

/** A written record still in memory: where its line ends in which segment. */
interface Remembered {
  record: SpoolRecord;
  segment: number;
  start: number;
  end: number;
}

export class AuditSpool {
  private readonly segments: Segment[] = [];
  private active!: Segment;
  private fd = -1;
  private queue: string[] = [];
  private queuedRecords: SpoolRecord[] = [];
  /** written, unshipped records in file order (a contiguous run; see MAX_MEMORY_RECORDS) */
  private memory: Remembered[] = [];
  private memoryHead = 0;
  private queuedLines = 0;
  private queuedBytes = 0;
  /** waiters for what is queued now (the next group commit) */
  private group: Group | undefined;
  private syncing = false;
  private dirty = false;
  private failing: Error | undefined;
  private full = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  /** the next segment's zero-fill in progress, and whether it is done */
  private preparing: Promise<void> | undefined;
  private nextReady = false;
  /** sealed segments' descriptors, closed once the fdatasync in flight when they were sealed ends */
  private readonly retiredFds: number[] = [];
  private readonly segmentBytes: number;
  /** measured: fdatasync calls and their total time, group sizes */
  readonly stats = { syncs: 0, syncMicros: 0, commits: 0, groupedRecords: 0, writes: 0 };

  private constructor(private readonly o: AuditSpoolOptions) {
    this.segmentBytes = o.segmentBytes ?? 8 * 1024 * 1024;
  }

  /** Opens the spool directory, repairs a torn last line, and starts a fresh segment for writes. */
  static async open(options: AuditSpoolOptions): Promise<AuditSpool> {
    const spool = new AuditSpool(options);
    await spool.recover();
    spool.timer = setInterval(() => spool.periodicSync(), options.syncIntervalMs ?? 10);
    spool.timer.unref();
    return spool;
  }

  private async recover(): Promise<void> {
    const { dir, logger } = this.o;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new Error(
        `cannot use the audit spool directory ${dir} (${(error as Error).message}): set PGWARDEN_AUDIT_SPOOL_DIR to a writable directory on a volume that outlives the process`,
      );
    }
    const numbers = (await readdir(dir))
      .map((file) => SEGMENT.exec(file)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    for (const n of numbers) {
      const path = join(dir, `${name(n)}.seg`);
      const ackPath = join(dir, `${name(n)}.ack`);
      const content = await readFile(path);
      // Records end where the preallocated zeros begin (a JSON line never holds a NUL byte).
      const zeros = content.indexOf(0);
      const written = zeros < 0 ? content.length : zeros;
      let size = written;
      if (size > 0 && content[size - 1] !== 0x0a) {
        // The process stopped inside a write: that record's statement was never forwarded.
        size = content.lastIndexOf(0x0a, size - 1) + 1;
        logger.warn('audit spool: ignored a partial record at the end of a segment', {
          segment: path,
          bytes: written - size,
        });
      }
      if (size < content.length) {
        // Sealed from now on: keep exactly its records (no zeros, no partial record).
        const handle = await open(path, 'r+');
        await handle.truncate(size);
        await handle.sync();
        await handle.close();
      }
      const ackText = await readFile(ackPath, 'utf8').catch(() => '0');
      let acked = Number.parseInt(ackText, 10);
      if (!Number.isFinite(acked) || acked < 0 || acked > size) acked = 0;
      let unacked = 0;
      for (let i = content.indexOf(0x0a, acked); i >= 0 && i < size; i = content.indexOf(0x0a, i + 1))
        unacked++;
      this.segments.push({ n, path, ackPath, size, acked, sealed: true, unacked });
    }
    const recovered = this.segments.reduce((sum, s) => sum + s.unacked, 0);
    if (recovered > 0) logger.info('audit spool: resuming unshipped records', { dir, records: recovered });
    await unlink(join(dir, NEXT)).catch(() => {}); // a preparation the last process did not finish
    this.prepareNext();
    await this.preparing;
    this.startSegment((numbers.at(-1) ?? 0) + 1);
  }

  /**
   * Zero-fills the next segment in the background (NEXT, renamed when it is taken). Overwriting
   * blocks the file already has changes no metadata, so each fdatasync flushes the records alone
   * instead of also committing the journal for the file's new size: measured here, 20–30% less
   * time per fdatasync under load, which every statement waits for in 'always' mode.
   */
  private prepareNext(): void {
    if (this.preparing || this.closed) return;
    const path = join(this.o.dir, NEXT);
    this.preparing = (async () => {
      const handle = await open(path, 'w', 0o600);
      try {
        const zeros = Buffer.alloc(Math.min(PREALLOCATE_CHUNK, this.segmentBytes));
        for (let at = 0; at < this.segmentBytes; at += zeros.length)
          await handle.write(zeros, 0, Math.min(zeros.length, this.segmentBytes - at), at);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      this.nextReady = true;
    })()
      .catch((error: unknown) => {
        // Not fatal: the next segment then starts empty and grows as records are appended.
        this.o.logger.warn('audit spool: could not prepare the next segment', { error: String(error) });
        return unlink(path).catch(() => {});
      })
      .finally(() => {
        this.preparing = undefined;
      });
  }

  private startSegment(n: number): void {
    const path = join(this.o.dir, `${name(n)}.seg`);
    if (this.nextReady) {
      this.nextReady = false;
      try {
        renameSync(join(this.o.dir, NEXT), path);
      } catch (error) {
        // Not fatal either: this segment starts empty instead.
        this.o.logger.warn('audit spool: could not use the prepared segment', { error: String(error) });
      }
    }
    // Positional writes at the segment's logical size (the file may be longer: preallocated zeros).
    this.fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o600);
    // The new file's directory entry must survive a crash too.
    const dirFd = openSync(this.o.dir, constants.O_RDONLY);
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    this.active = {
      n,
      path,
      ackPath: join(this.o.dir, `${name(n)}.ack`),
      size: 0,
      acked: 0,
      sealed: false,
      unacked: 0,
    };
    this.segments.push(this.active);
  }

  private rotate(): void {
    this.seal();
    this.dirty = false;
    this.startSegment(this.active.n + 1);
    this.prepareNext();
  }

  /** The active segment keeps exactly its records (the preallocated tail is cut), synced and closed. */
  private seal(): void {
    ftruncateSync(this.fd, this.active.size);
    fdatasyncSync(this.fd);
    // an asynchronous fdatasync of this file may still be running: close the descriptor after it
    if (this.syncing) this.retiredFds.push(this.fd);
    else closeSync(this.fd);
    this.active.sealed = true;
  }

  /** Records not yet acknowledged by the API (queued, written, or recovered from disk). */
  get pendingEvents(): number {
    let sum = this.queuedLines;
    for (const segment of this.segments) sum += segment.unacked;
    return sum;
  }

  /**
   * Unshipped bytes, which the bound applies to (on disk there may be up to one segment more: the
   * shipped head of the active segment, deleted when it is sealed).
   */
  get bytes(): number {
    let sum = this.queuedBytes;
    for (const segment of this.segments) sum += segment.size - segment.acked;
    return sum;
  }

  /**
   * The record of a statement about to be forwarded. Returns once it is durable as configured:
   * synchronously in 'write' mode, a promise in 'always' mode. Throws AuditUnavailable when the
   * spool cannot take it (full, or the disk failing): the statement must then not run.
   */
  appendDurable(record: SpoolRecord): void | Promise<void> {
    this.admit();
    this.enqueue(record);
    if (this.o.sync === 'write') {
      try {
        this.writeQueued();
      } catch (error) {
        throw new AuditUnavailable(
          '58030',
          `pgwarden cannot write its audit spool (${(error as Error).message}), so the statement was not run`,
        );
      }
      return undefined;
    }
    this.group ??= newGroup();
    const { promise } = this.group;
    if (!this.syncing) this.commit();
    return promise;
  }

  /** A record nobody waits for (a completed statement, a session event): written with the next group. */
  append(record: SpoolRecord): void {
    if (this.queuedLines >= MAX_QUEUED_LINES) {
      this.o.logger.error('audit spool: the disk keeps failing and the queue is full; a record was lost', {
        type: record.type,
      });
      return;
    }
    // Written with the next statement's intent or by the periodic tick (≤ syncIntervalMs): nobody
    // waits for it, and sharing that write(2) halves the system calls per statement.
    this.enqueue(record);
  }

  private admit(): void {
    if (this.closed)
      throw new AuditUnavailable('57P03', 'pgwarden is shutting down; the statement was not run');
    if (this.failing) {
      // Try again: the disk may be back (space freed).
      if (!this.tryWrite()) {
        throw new AuditUnavailable(
          '58030',
          `pgwarden cannot write its audit spool (${this.failing.message}), so the statement was not run`,
        );
      }
    }
    if (this.bytes >= this.o.maxBytes) {
      if (!this.full) {
        this.full = true;
        this.o.logger.error(
          'audit spool full: statements are refused until the audit API stores the spooled records',
          { dir: this.o.dir, bytes: this.bytes, maxBytes: this.o.maxBytes, pending: this.pendingEvents },
        );
      }
      throw new AuditUnavailable(
        '53100',
        'pgwarden: the audit spool is full because the audit service is unreachable, so the statement was not run (no statement runs without its audit record); try again later',
      );
    }
    if (this.full) {
      this.full = false;
      this.o.logger.info('audit spool has room again: statements are accepted', { bytes: this.bytes });
    }
  }

  private enqueue(record: SpoolRecord): void {
    const line = `${record.line}\n`;
    this.queue.push(line);
    this.queuedRecords.push(record);
    this.queuedLines++;
    this.queuedBytes += line.length;
  }

  /** write(2) of everything queued; throws on failure after undoing a partial write. */
  private writeQueued(): void {
    if (this.queue.length === 0) return;
    if (this.active.size >= this.segmentBytes) this.rotate();
    const text = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    const bytes = Buffer.from(text);
    let written = 0;
    try {
      while (written < bytes.length)
        written += writeSync(this.fd, bytes, written, bytes.length - written, this.active.size + written);
    } catch (error) {
      // Leave no partial line behind: the queue is written again whole on the next attempt.
      if (written > 0) ftruncateSync(this.fd, this.active.size);
      this.fail(error as Error);
      throw error;
    }
    this.stats.writes++;
    this.remember(this.active.n, this.active.size, bytes.length);
    this.active.size += bytes.length;
    this.active.unacked += this.queuedLines;
    this.queue = [];
    this.queuedRecords = [];
    this.queuedLines = 0;
    this.queuedBytes = 0;
    this.dirty = true;
    if (this.failing) {
      this.o.logger.info('audit spool writes work again', { dir: this.o.dir });
      this.failing = undefined;
    }
  }

  /** Keeps the records just written (queue order) in memory for the shipper. */
  private remember(segment: number, start: number, length: number): void {
    const live = this.memory.length - this.memoryHead;
    if (live + this.queue.length > MAX_MEMORY_RECORDS) {
      // The API is far behind: let the shipper read the backlog from disk and remember anew.
      this.memory = [];
      this.memoryHead = 0;
    }
    let position = start;
    const lines = this.queue;
    const single = lines.length === 1;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const bytes = single ? length : Buffer.byteLength(line);
      this.memory.push({ record: this.queuedRecords[i]!, segment, start: position, end: position + bytes });
      position += bytes;
    }
  }

  /** A batch from memory when it starts exactly where the segment's unshipped part does. */
  private batchFromMemory(segment: Segment, max: number): SpoolBatch | undefined {
    let head = this.memoryHead;
    const memory = this.memory;
    while (head < memory.length) {
      const first = memory[head]!;
      if (first.segment < segment.n || (first.segment === segment.n && first.end <= segment.acked)) head++;
      else break;
    }
    this.memoryHead = head;
    const first = memory[head];
    if (!first || first.segment !== segment.n || first.start !== segment.acked) return undefined;
    const records: SpoolRecord[] = [];
    let end = first.start;
    for (let i = head; i < memory.length && records.length < max; i++) {
      const remembered = memory[i]!;
      if (remembered.segment !== segment.n || remembered.start !== end) break;
      records.push(remembered.record);
      end = remembered.end;
    }
    return { records, segment: segment.n, end, lines: records.length };
  }

  private tryWrite(): boolean {
    try {
      this.writeQueued();
      return true;
    } catch {
      return false;
    }
  }

  private fail(error: Error): void {
    if (!this.failing) {
      this.o.logger.error('audit spool write failed: statements are refused until it works again', {
        dir: this.o.dir,
        error: error.message,
      });
    }
    this.failing = error;
  }

  /** Group commit: write what is queued, fdatasync once, release everyone who waited for it. */
  private commit(): void {
    const group = this.group;
    this.group = undefined;
    const records = this.queuedLines;
    try {
      this.writeQueued();
    } catch (error) {
      group?.reject(
        new AuditUnavailable('58030', `pgwarden cannot write its audit spool (${(error as Error).message})`),
      );
      return;
    }
    this.stats.commits++;
    this.stats.groupedRecords += records;
    this.sync((error) => {
      if (error)
        group?.reject(
          new AuditUnavailable('58030', `pgwarden cannot sync its audit spool (${error.message})`),
        );
      else group?.resolve();
    });
  }

  private sync(done: (error: Error | null) => void): void {
    this.syncing = true;
    this.dirty = false;
    const started = performance.now();
    fdatasync(this.fd, (error) => {
      this.syncing = false;
      for (const fd of this.retiredFds.splice(0)) closeSync(fd);
      this.stats.syncs++;
      this.stats.syncMicros += Math.round((performance.now() - started) * 1000);
      if (error) {
        this.dirty = true;
        this.fail(error);
      }
      done(error);
      // Statements that arrived during this sync form the next group.
      if (this.group && !this.closed) this.commit();
    });
  }

  private periodicSync(): void {
    if (this.syncing || this.closed) return;
    if (this.queue.length > 0 && !this.group) this.tryWrite();
    if (this.dirty) this.sync(() => {});
  }

  // ---- reading side (the shipper) ------------------------------------------------------------

  /** Up to `max` records from the oldest unacknowledged position, or undefined when all are shipped. */
  async readBatch(max: number): Promise<SpoolBatch | undefined> {
    for (;;) {
      const segment = this.segments[0];
      if (!segment) return undefined;
      if (segment.acked >= segment.size) {
        if (!segment.sealed) return undefined;
        await this.remove(segment);
        continue;
      }
      return this.batchFromMemory(segment, max) ?? this.readFrom(segment, max);
    }
  }

  private async readFrom(segment: Segment, max: number): Promise<SpoolBatch | undefined> {
    const handle = await open(segment.path, 'r');
    try {
      const records: SpoolRecord[] = [];
      let position = segment.acked;
      let lines = 0;
      let want = READ_CHUNK;
      while (records.length < max && position < segment.size) {
        const length = Math.min(want, segment.size - position);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        let start = 0;
        for (
          let nl = buffer.indexOf(0x0a, 0);
          nl >= 0 && nl < bytesRead && records.length < max;
          nl = buffer.indexOf(0x0a, start)
        ) {
          const text = buffer.toString('utf8', start, nl);
          start = nl + 1;
          lines++;
          try {
            // parsed for its key, and so that only valid JSON is ever sent on
            records.push({ ...keyed(JSON.parse(text)), line: text });
          } catch {
            this.o.logger.error('audit spool: skipped an unreadable record', {
              segment: segment.path,
              offset: position + start,
            });
          }
        }
        if (start === 0) {
          // A single record longer than what was read (a very long statement): read more at once.
          if (length === segment.size - position) break; // cannot happen: lines are written whole
          want *= 4;
          continue;
        }
        position += start;
      }
      return lines === 0 ? undefined : { records, segment: segment.n, end: position, lines };
    } finally {
      await handle.close();
    }
  }

  /** The API stored the batch: move the segment's ack offset (and drop the segment when done). */
  async ack(batch: SpoolBatch): Promise<void> {
    const segment = this.segments.find((s) => s.n === batch.segment);
    if (!segment || batch.end <= segment.acked) return;
    segment.acked = batch.end;
    segment.unacked = Math.max(0, segment.unacked - batch.lines);
    this.forgetShipped(segment);
    if (segment.sealed && segment.acked >= segment.size) await this.remove(segment);
    else await writeFile(segment.ackPath, String(segment.acked));
  }

  /** Drops remembered records the API has stored; compacts once the shipped head is large. */
  private forgetShipped(segment: Segment): void {
    const memory = this.memory;
    let head = this.memoryHead;
    while (head < memory.length) {
      const r = memory[head]!;
      if (r.segment < segment.n || (r.segment === segment.n && r.end <= segment.acked)) head++;
      else break;
    }
    if (head >= memory.length) {
      this.memory = [];
      this.memoryHead = 0;
    } else if (head > 4096 && head * 2 > memory.length) {
      this.memory = memory.slice(head);
      this.memoryHead = 0;
    } else this.memoryHead = head;
  }

  private async remove(segment: Segment): Promise<void> {
    await unlink(segment.path).catch(() => {});
    await unlink(segment.ackPath).catch(() => {});
    this.segments.splice(this.segments.indexOf(segment), 1);
  }

  /** Writes and syncs what is queued; the spool accepts no new statements afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    while (this.syncing) await new Promise((resolve) => setTimeout(resolve, 1));
    const group = this.group;
    this.group = undefined;
    this.closed = true;
    try {
      this.writeQueued();
      this.seal();
      group?.resolve();
    } catch (error) {
      group?.reject(error as Error);
      this.o.logger.error('audit spool: could not write the last records at shutdown', {
        error: String(error),
      });
      closeSync(this.fd);
      this.active.sealed = true;
    }
    for (const fd of this.retiredFds.splice(0)) closeSync(fd);
    await this.preparing;
    await unlink(join(this.o.dir, NEXT)).catch(() => {});
    this.nextReady = false;
    if (this.active.acked >= this.active.size) await this.remove(this.active);
  }

  /** For tests and diagnostics: the segment files with their ack offsets. */
  async describe(): Promise<Array<{ n: number; size: number; acked: number }>> {
    return Promise.all(
      this.segments.map(async (s) => ({
        n: s.n,
        size: (await stat(s.path).catch(() => ({ size: -1 }))).size,
        acked: s.acked,
      })),
    );
  }
}
