/**
 * Ships the spool to the control plane in batches, oldest first, one batch at a time: a batch is
 * acknowledged in the spool only after the API stored it, and retried with backoff until it is, so
 * the spool keeps growing (not dropping) while the API is down and drains when it is back.
 *
 * Idempotent: a statement's intent and its completed record share a key (sessionId + seq); within a
 * batch only the latest copy of a key is sent (a store may refuse one key twice in a batch), and
 * across batches order is kept, so the completed record is the one that stays.
 *
 * The store is append-only: a record whose key already holds a different record is refused
 * (AUDIT_CONFLICT) while the rest of its batch is stored. Sending it again cannot help, so the
 * batch is acknowledged and the refusal logged as an error: someone else wrote under this proxy's
 * keys, which `audit verify` then shows as a broken chain.
 */
import type { ControlPlane } from '../shared/control-plane.ts';
import { isPgWardenError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { ingestRecords, latestPerKey } from './audit-record.ts';
import type { AuditSpool } from './audit-spool.ts';

export interface AuditShipperOptions {
  spool: AuditSpool;
  controlPlane: Pick<ControlPlane, 'ingest' | 'ingestSerialized'>;
  logger: Logger;
  /** events per ingest call (the API accepts at most 500) */
  batchSize?: number;
  /** how long to wait for more records once caught up */
  intervalMs?: number;
  maxBackoffMs?: number;
}

export class AuditShipper {
  private running: Promise<void> | undefined;
  private stopped = false;
  private failures = 0;
  private wakeUp: (() => void) | undefined;
  private readonly batchSize: number;
  private readonly interval: number;
  private readonly maxBackoff: number;
  /** measured: batches and events stored, failed attempts */
  readonly stats = { batches: 0, events: 0, failedAttempts: 0, conflicts: 0 };

  constructor(private readonly o: AuditShipperOptions) {
    this.batchSize = o.batchSize ?? 500;
    this.interval = o.intervalMs ?? 100;
    this.maxBackoff = o.maxBackoffMs ?? 5_000;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Ships now instead of at the next interval. */
  wake(): void {
    this.wakeUp?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let batch: Awaited<ReturnType<AuditSpool['readBatch']>>;
      try {
        batch = await this.o.spool.readBatch(this.batchSize);
      } catch (error) {
        this.o.logger.error('audit spool could not be read', { error: String(error) });
        await this.sleep(this.backoff(++this.failures));
        continue;
      }
      if (!batch) {
        await this.sleep(this.interval);
        continue;
      }
      try {
        await ingestRecords(this.o.controlPlane, latestPerKey(batch.records));
      } catch (error) {
        if (isPgWardenError(error) && error.code === 'AUDIT_CONFLICT') {
          this.stats.conflicts++;
          this.o.logger.error('audit records refused by the append-only store; the rest was stored', {
            error: error.message,
          });
          await this.o.spool.ack(batch);
          continue;
        }
        this.failures++;
        this.stats.failedAttempts++;
        if (this.failures === 1 || this.failures % 20 === 0) {
          this.o.logger.warn('audit batch not stored; kept in the spool and retried', {
            error: String(error),
            attempts: this.failures,
            pending: this.o.spool.pendingEvents,
          });
        }
        await this.sleep(this.backoff(this.failures));
        continue;
      }
      if (this.failures > 0) {
        this.o.logger.info('audit API reachable again; draining the spool', {
          pending: this.o.spool.pendingEvents,
        });
        this.failures = 0;
      }
      this.stats.batches++;
      this.stats.events += batch.records.length;
      await this.o.spool.ack(batch);
      // Caught up: give the next batch time to fill instead of sending one record at a time.
      if (batch.records.length < this.batchSize) await this.sleep(this.interval);
    }
  }

  private backoff(failures: number): number {
    const delay = Math.min(this.maxBackoff, 100 * 2 ** Math.min(failures, 16));
    return delay / 2 + Math.random() * (delay / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        done();
      };
    });
  }

  /**
   * Ships until the spool is empty or `timeoutMs` passes (shutdown). What is left stays in the spool
   * for the next start.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.start();
    const deadline = Date.now() + timeoutMs;
    while (this.o.spool.pendingEvents > 0 && Date.now() < deadline) {
      if (this.failures === 0) this.wake();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.o.spool.pendingEvents === 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running;
  }
}
