/**
 * The stored current policy for the API's own decisions (/v1/decisions, and the in-process control
 * plane of local mode). Read once before the first decision (which waits for it: without a policy
 * nothing is decided, so a store outage at start fails closed), then re-read in the background at
 * most every `ttlMs` while decisions keep using the last good policy. A PUT in the same process
 * hands its new version over at once (`accept`).
 */
import { StatementDecider } from '../../shared/decide.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import { DEFAULT_POLICY } from '../../shared/policy/default-policy.ts';
import type { Policy } from '../../shared/policy/model.ts';
import type { PolicyStore, StoredPolicy } from '../../shared/policy/stored.ts';

export const DEFAULT_POLICY_TTL_MS = 5_000;

export interface StoredPolicySourceOptions {
  /** decides with the current policy; default: a new StatementDecider */
  decider?: StatementDecider;
  /** the policy when none is stored; default: the built-in default pack */
  fallback?: Policy;
  ttlMs?: number;
  /** monotonic milliseconds */
  clock?: () => number;
  logger?: Logger;
}

export class StoredPolicySource {
  readonly decider: StatementDecider;
  readonly fallback: Policy;
  private readonly ttlMs: number;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private loadedAt: number | undefined;
  private loading: Promise<void> | undefined;
  private acceptedSeq = 0;

  constructor(
    readonly store: PolicyStore,
    options: StoredPolicySourceOptions = {},
  ) {
    this.fallback = options.fallback ?? options.decider?.currentPolicy ?? DEFAULT_POLICY;
    this.decider = options.decider ?? new StatementDecider(this.fallback);
    this.ttlMs = options.ttlMs ?? DEFAULT_POLICY_TTL_MS;
    this.clock = options.clock ?? (() => performance.now());
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * undefined when a policy is in place (a stale one is refreshed in the background meanwhile);
   * before the first successful read, a promise that settles with it (rejects if the store fails).
   */
  ready(): Promise<void> | undefined {
    if (this.loadedAt === undefined) return this.load();
    if (this.clock() - this.loadedAt >= this.ttlMs) {
      this.load().catch((error: unknown) =>
        this.logger.warn('policy refresh failed; deciding with the last good policy', {
          version: this.decider.policyVersion,
          error: String(error),
        }),
      );
    }
    return undefined;
  }

  /** Takes a version just stored (or read) as the current one. */
  accept(stored: StoredPolicy | undefined): void {
    const policy = stored?.policy ?? this.fallback;
    // a read that started before a PUT in this process may answer after it: never go back
    const seq = stored === undefined ? 0 : storeSeq(stored.version);
    if (seq < this.acceptedSeq) return;
    this.acceptedSeq = seq;
    if (policy.version !== this.decider.policyVersion)
      this.logger.info('policy in force', { version: policy.version });
    this.decider.setPolicy(policy);
    this.loadedAt = this.clock();
  }

  private load(): Promise<void> {
    this.loading ??= this.store
      .current()
      .then(
        (stored) => this.accept(stored),
        (error: unknown) => {
          // keep the last good policy; try again after another TTL
          if (this.loadedAt !== undefined) this.loadedAt = this.clock();
          throw error;
        },
      )
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}

/** The store's sequence number of a version (`v12` → 12; see dynamodb-policy-store.ts). */
function storeSeq(version: string): number {
  const match = /^v(\d+)$/.exec(version);
  return match ? Number(match[1]) : 0;
}
