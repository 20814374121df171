/**
 * The proxy's audit trail: what the relay records, by PGWARDEN_AUDIT_MODE.
 * - buffered (default): every record goes to the local durable spool, a statement's intent
 *   durably (audit-spool.ts) before the statement is forwarded; a shipper sends the spool to the API.
 * - strict: a statement's intent is stored by the API (ControlPlane.ingest, awaited) before it is
 *   forwarded; if that fails the statement is refused with SQLSTATE 58000. Completed records and
 *   session events still go through the spool (they are stored shortly after, and survive restarts).
 * In both modes no statement reaches PostgreSQL without its record stored or durably spooled.
 * Completed statement records are linked into their session's hash chain on the way to the spool,
 * and the session's close carries the chain's anchor (audit-chain-state.ts).
 */
import type { ControlPlane } from '../shared/control-plane.ts';
import type { AuditEvent } from '../shared/events.ts';
import type { Logger } from '../shared/logger.ts';
import { AuditChains } from './audit-chain-state.ts';
import { ingestRecords, type SpoolRecord, spoolRecord } from './audit-record.ts';
import { AuditShipper } from './audit-shipper.ts';
import { AuditSpool, AuditUnavailable, type SpoolSync } from './audit-spool.ts';
import type { AuditSink } from './relay.ts';

export type AuditMode = 'buffered' | 'strict';

export interface AuditTrailOptions {
  mode: AuditMode;
  spoolDir: string;
  sync: SpoolSync;
  maxSpoolBytes: number;
  controlPlane: Pick<ControlPlane, 'ingest' | 'ingestSerialized'>;
  logger: Logger;
  batchSize?: number;
  shipIntervalMs?: number;
}

/** SQLSTATE of a statement refused because strict mode could not store its intent. */
export const STRICT_AUDIT_SQLSTATE = '58000';

/**
 * Strict mode's intents, stored in groups: while one ingest call is in flight the next intents
 * queue up and go together, so concurrent sessions share the API round trip.
 */
class GroupedIngest {
  private queue: SpoolRecord[] = [];
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private inFlight = false;

  constructor(
    private readonly controlPlane: Pick<ControlPlane, 'ingest' | 'ingestSerialized'>,
    private readonly max: number,
  ) {}

  store(record: SpoolRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push(record);
      this.waiters.push({ resolve, reject });
      if (!this.inFlight) this.send();
    });
  }

  private send(): void {
    const events = this.queue.splice(0, this.max);
    const waiters = this.waiters.splice(0, this.max);
    if (events.length === 0) return;
    this.inFlight = true;
    ingestRecords(this.controlPlane, events)
      .then(
        () => {
          for (const w of waiters) w.resolve();
        },
        (error: unknown) => {
          for (const w of waiters) w.reject(error);
        },
      )
      .finally(() => {
        this.inFlight = false;
        this.send();
      });
  }
}

export class AuditTrail implements AuditSink {
  private readonly strictIntents: GroupedIngest;
  readonly chains: AuditChains;

  private constructor(
    private readonly o: AuditTrailOptions,
    readonly spool: AuditSpool,
    readonly shipper: AuditShipper,
  ) {
    this.strictIntents = new GroupedIngest(o.controlPlane, o.batchSize ?? 500);
    this.chains = new AuditChains({ append: (record) => spool.append(record), logger: o.logger });
  }

  static async open(options: AuditTrailOptions): Promise<AuditTrail> {
    const spool = await AuditSpool.open({
      dir: options.spoolDir,
      sync: options.sync,
      maxBytes: options.maxSpoolBytes,
      logger: options.logger,
    });
    const shipper = new AuditShipper({
      spool,
      controlPlane: options.controlPlane,
      logger: options.logger,
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
      ...(options.shipIntervalMs === undefined ? {} : { intervalMs: options.shipIntervalMs }),
    });
    shipper.start();
    options.logger.info('audit trail', { mode: options.mode, spool: options.spoolDir, sync: options.sync });
    return new AuditTrail(options, spool, shipper);
  }

  record(event: AuditEvent): void {
    if (event.type === 'session_closed') this.chains.closed(event);
    else this.spool.append(spoolRecord(event));
  }

  /** Statement records, serialized once by the relay (see AuditSink.statements). */
  readonly statements = {
    begin: (intent: SpoolRecord): void | Promise<void> => {
      this.chains.begun(intent);
      return this.beginRecord(intent);
    },
    completed: (record: SpoolRecord): void => this.chains.completed(record),
  };

  private beginRecord(intent: SpoolRecord): void | Promise<void> {
    if (this.o.mode === 'buffered') return this.spool.appendDurable(intent);
    return this.strictIntents.store(intent).catch((error: unknown) => {
      this.o.logger.warn('strict audit: the record of intent was not stored; statement refused', {
        record: intent.key.replaceAll('\u0000', ' '),
        error: String(error),
      });
      throw new AuditUnavailable(
        STRICT_AUDIT_SQLSTATE,
        'pgwarden could not store the audit record of this statement (strict audit mode), so it was not run; try again shortly',
      );
    });
  }

  get pending(): number {
    return this.spool.pendingEvents;
  }

  /** Shutdown: write and sync the spool, ship it for up to `timeoutMs`; the rest waits in the spool. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.chains.flush();
    await this.spool.close();
    const drained = await this.shipper.drain(timeoutMs);
    await this.shipper.stop();
    if (!drained) {
      this.o.logger.warn('audit records left in the spool for the next start', {
        dir: this.o.spoolDir,
        pending: this.spool.pendingEvents,
      });
    }
  }
}
