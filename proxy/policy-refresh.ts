/**
 * Hot reload of the policy in the proxy, which decides in-process: polls GET /v1/proxy/policies/current
 * (signed with the proxy's AWS identity)
 * with If-None-Match every interval and swaps the decider's policy at once (setPolicy: the next
 * statement uses it, no cached decision of the old one survives). An answer that is not a valid
 * policy is logged and ignored: the last good policy stays in force. Until the first policy has
 * been read, `ready` is false and the proxy refuses statements (fail closed).
 */
import type { StatementDecider } from '../shared/decide.ts';
import type { Logger } from '../shared/logger.ts';
import { validatePolicy } from '../shared/policy/parse-policy.ts';
import type { FetchLike } from './aws-sigv4.ts';

export interface PolicyRefreshOptions {
  apiUrl: string;
  /** signs each request (aws-sigv4.ts signingFetch) */
  fetch: FetchLike;
  decider: StatementDecider;
  intervalMs: number;
  logger: Logger;
  /** per request; default 5 s */
  timeoutMs?: number;
}

export type RefreshOutcome = 'changed' | 'unchanged' | 'invalid' | 'failed';

export class PolicyRefresher {
  private etag: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RefreshOutcome> | undefined;
  ready = false;

  constructor(private readonly o: PolicyRefreshOptions) {}

  /** One poll; never throws (a failure keeps the policy in force). */
  refresh(): Promise<RefreshOutcome> {
    this.running ??= this.poll().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.refresh(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<RefreshOutcome> {
    const { logger } = this.o;
    let response: Response;
    try {
      response = await this.o.fetch(`${this.o.apiUrl.replace(/\/+$/, '')}/v1/proxy/policies/current`, {
        headers: this.etag === undefined ? {} : { 'if-none-match': this.etag },
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 5_000),
      });
    } catch (error) {
      logger.warn('policy refresh failed; keeping the policy in force', {
        version: this.ready ? this.o.decider.policyVersion : null,
        error: String(error),
      });
      return 'failed';
    }
    if (response.status === 304) return 'unchanged';
    if (!response.ok) {
      logger.warn('policy refresh failed; keeping the policy in force', { status: response.status });
      await response.body?.cancel();
      return 'failed';
    }
    try {
      const body = (await response.json()) as { policy?: unknown; version?: unknown };
      if (typeof body.version !== 'string' || body.version === '')
        throw new Error('the answer names no version');
      const policy = { ...validatePolicy(body.policy), version: body.version };
      const previous = this.ready ? this.o.decider.policyVersion : null;
      this.etag = response.headers.get('etag') ?? undefined;
      this.ready = true;
      if (previous === policy.version) return 'unchanged';
      this.o.decider.setPolicy(policy);
      logger.info('policy in force', { version: policy.version, previous });
      return 'changed';
    } catch (error) {
      logger.error('the API sent a policy that does not validate; keeping the last good one', {
        version: this.ready ? this.o.decider.policyVersion : null,
        error: error instanceof Error ? error.message : String(error),
      });
      return 'invalid';
    }
  }
}
