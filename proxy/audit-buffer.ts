/**
 * Collects audit events in memory and ships them to the control plane in batches, off the
 * statement path; a failed batch is kept and retried with backoff. Only for a proxy started
 * without a spool directory (tests, embedding): it is bounded and lost with the process. Every
 * deployment and `npm start` use the durable spool instead (audit-trail.ts).
 */
import type { ControlPlane } from '../shared/control-plane.ts';
import type { AuditEvent } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import type { AuditSink } from './relay.ts';

export interface AuditBufferOptions {
  controlPlane: Pick<ControlPlane, 'ingest'>;
  logger: Logger;
  batchSize?: number;
  flushIntervalMs?: number;
  /** events held at most while the control plane is unreachable */
  maxBuffered?: number;
}

export class AuditBuffer implements AuditSink {
  private queue: AuditEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private dropped = 0;
  private readonly batchSize: number;
  private readonly interval: number;
  private readonly maxBuffered: number;

  constructor(private readonly o: AuditBufferOptions) {
    this.batchSize = o.batchSize ?? 500;
    this.interval = o.flushIntervalMs ?? 100;
    // ~500 bytes an event: 200k events bound the buffer near 100 MB while the API is away.
    this.maxBuffered = o.maxBuffered ?? 200_000;
  }

  record(event: AuditEvent): void {
    if (this.queue.length >= this.maxBuffered) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 10_000 === 0) {
        this.o.logger.error('audit buffer full: events are being dropped', { dropped: this.dropped });
      }
      return;
    }
    this.queue.push(event);
    if (this.queue.length >= this.batchSize && !this.inFlight) this.ship();
    else if (!this.timer && !this.inFlight) this.timer = setTimeout(() => this.ship(), this.interval);
  }

  get pending(): number {
    return this.queue.length;
  }

  private ship(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.slice(0, this.batchSize);
    this.inFlight = this.o.controlPlane.ingest(batch).then(
      () => {
        this.queue.splice(0, batch.length);
        this.failures = 0;
      },
      (error) => {
        this.failures++;
        this.o.logger.warn('audit batch not stored; will retry', {
          error: String(error),
          pending: this.queue.length,
        });
      },
    );
    this.inFlight.finally(() => {
      this.inFlight = undefined;
      if (this.queue.length === 0) return;
      const delay = this.failures > 0 ? Math.min(30_000, 100 * 2 ** this.failures) : 0;
      if (delay === 0 && this.queue.length >= this.batchSize) this.ship();
      else this.timer = setTimeout(() => this.ship(), delay || this.interval);
    });
  }

  /** Ships everything buffered (shutdown); resolves when done or when `timeoutMs` passes. */
  async flush(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length > 0 || this.inFlight) && Date.now() < deadline) {
      if (!this.inFlight) this.ship();
      await (this.inFlight ?? new Promise((r) => setTimeout(r, 50)));
      if (this.failures > 0) await new Promise((r) => setTimeout(r, 100));
    }
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
