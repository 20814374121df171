/**
 * The prepared statements and portals of a session as the server holds them, so that nothing the
 * proxy has no decision for runs: a Bind of a statement, or an Execute or Describe of a portal, that
 * the proxy did not see created (and allowed) is refused.
 *
 * The relay reads client messages ahead of the server's replies, so an object is recorded when its
 * Parse or Bind is forwarded and confirmed when the server answers it (ParseComplete, BindComplete).
 * If the server fails it, or skips it after an earlier error in the pipeline, the record goes. A
 * later message of the same pipeline may rely on a record not yet confirmed: if that record fails,
 * the server skips the later message too, up to Sync. A message after a Sync (or Query) may not:
 * it waits until the record is confirmed or gone (`epoch`, the relay's count of those boundaries).
 */
import type { Decision } from '../shared/control-plane.ts';
import type { CapturedParams } from './audit-params.ts';

/** Something the server has still to confirm; waiters run once it is settled. */
export interface Settling {
  settled: boolean;
  /** the relay's epoch when it was forwarded */
  epoch: number;
  waiters?: Array<() => void>;
}

export function settle(item: Settling): void {
  if (item.settled) return;
  item.settled = true;
  const waiters = item.waiters;
  item.waiters = undefined;
  if (waiters) for (const wake of waiters) wake();
}

export function whenSettled(item: Settling): Promise<void> {
  if (item.settled) return Promise.resolve();
  return new Promise((resolve) => {
    item.waiters ??= [];
    item.waiters.push(resolve);
  });
}

/** A prepared statement the proxy let through (or will hold at Bind), and what a portal of it runs. */
export interface PreparedStatement extends Settling {
  text: string;
  decision: Decision;
  /** its name ('' = unnamed) */
  statement: string;
  /** the parameter type OIDs its Parse declared (shown with a held Bind's values) */
  paramTypes?: number[];
  /**
   * A Parse of a statement that needs approval is kept back until its Bind is decided, so nothing
   * of it reaches the server (no lock on its tables) while a reviewer decides; any other message
   * sends it first.
   */
  deferred?: Buffer;
  /** prepared by SQL PREPARE: decided at Bind as `EXECUTE name` (prepared-memory.ts) */
  sql?: true;
}

/** How far the one execution an approval released has gone in its portal. */
export interface ApprovedExecution extends Settling {
  approvalId: string;
  /** released: bound, not run yet; running: an Execute is in flight; suspended: may go on */
  state: 'released' | 'running' | 'suspended' | 'done';
}

/** A portal the proxy let through: what its Executes run, with which parameters. */
export interface Portal extends Settling {
  statement: PreparedStatement;
  text: string;
  decision: Decision;
  /** Bind parameters, as the audit records them */
  params?: CapturedParams;
  /** bound after an approval: its one execution */
  approved?: ApprovedExecution;
}

/** A statement prepared by SQL PREPARE in a forwarded message. */
export function sqlPrepared(
  name: string,
  text: string,
  decision: Decision,
  epoch: number,
): PreparedStatement {
  return { text, decision, statement: name, sql: true, settled: true, epoch };
}

/**
 * The transaction ended (ReadyForQuery 'I') after the Sync or Query of `epoch`: the server dropped
 * every portal bound before it (only SQL cursors WITH HOLD survive, and those are not portals the
 * proxy knows).
 */
export function dropEndedPortals(portals: Map<string, Portal>, epoch: number): void {
  // the common case, once per transaction on the hot path: only the unnamed portal, no iterator
  const unnamed = portals.size === 1 ? portals.get('') : undefined;
  if (unnamed) {
    if (unnamed.epoch < epoch) portals.delete('');
    return;
  }
  for (const [name, portal] of portals) if (portal.epoch < epoch) portals.delete(name);
}
