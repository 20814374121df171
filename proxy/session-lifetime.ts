/**
 * A session lives no longer than its token, nor than the maximum session age, and loses what its
 * principal lost within minutes: the proxy ends it with a FATAL that says why, at the token's `exp`
 * (the token is the authority: a statement still running then is cancelled on the server, and an
 * open transaction is rolled back as on any disconnect), at PGWARDEN_MAX_SESSION_SECONDS after it
 * opened, or when a re-check through the control plane (every PGWARDEN_SESSION_RECHECK_SECONDS)
 * says the principal was disabled or no longer holds a group behind the session's role. A re-check
 * that finds newer groups refreshes the ones decisions read.
 *
 * SQLSTATE 57P01 (admin_shutdown), the code PostgreSQL itself ends a backend with on an
 * administrator's command: every driver already treats it as "this connection is gone, open
 * another", and psql and node-postgres print the message. Reconnecting needs a fresh token, or
 * fails with a clear authentication error.
 */
import type { ControlPlane, SessionContext } from '../shared/control-plane.ts';
import type { SessionEndReason } from '../shared/events.ts';
import type { Principal } from '../shared/identity.ts';
import type { Logger } from '../shared/logger.ts';
import type { NoticeFields } from './wire/backend-writer.ts';

export interface SessionLifetimeOptions {
  /** PGWARDEN_MAX_SESSION_SECONDS; default 12 h */
  maxSessionSeconds?: number;
  /** PGWARDEN_SESSION_RECHECK_SECONDS; default 300; 0 turns re-checks off */
  recheckSeconds?: number;
}

/** What the lifetime ends: the relay (proxy/relay.ts). */
export interface Terminable {
  terminate(fields: NoticeFields, reason: SessionEndReason): void;
}

export interface SessionLifetimeDeps {
  relay: Terminable;
  /** the relay's session: groups and roles are replaced in place when a check brings newer ones */
  session: SessionContext;
  principal: Pick<Principal, 'expiresAt' | 'groupsAsOf'>;
  options?: SessionLifetimeOptions;
  controlPlane: Pick<ControlPlane, 'checkSession'>;
  logger: Logger;
  /** interrupts a statement the server is still running (a CancelRequest upstream) */
  cancelUpstream: () => void;
  /** ms since the epoch; default Date.now */
  now?: () => number;
}

const DEFAULT_MAX_SESSION_SECONDS = 12 * 3600;
const DEFAULT_RECHECK_SECONDS = 300;
/** setTimeout's limit (a longer delay fires at once): far deadlines are reached in steps */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** without a successful check for this many intervals, the session is not trusted any longer */
const MISSED_CHECKS_TOLERATED = 3;
const TERMINATED = '57P01';

export class SessionLifetime {
  private readonly now: () => number;
  private readonly openedAt: number;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private lastConfirmed: number;
  private groupsAsOf: string | undefined;
  private stopped = false;

  constructor(private readonly d: SessionLifetimeDeps) {
    this.now = d.now ?? Date.now;
    this.openedAt = this.now();
    this.lastConfirmed = this.openedAt;
    this.groupsAsOf = d.principal.groupsAsOf;
  }

  /** After the relay started; nothing happens when the session already ended. */
  start(): void {
    if (this.stopped) return;
    this.armDeadline();
    const recheckMs = (this.d.options?.recheckSeconds ?? DEFAULT_RECHECK_SECONDS) * 1000;
    if (recheckMs > 0 && this.d.controlPlane.checkSession !== undefined) {
      this.recheckTimer = setInterval(() => void this.recheck(recheckMs), recheckMs);
      this.recheckTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.deadlineTimer);
    clearInterval(this.recheckTimer);
  }

  /** The earlier of the token's expiry and the maximum age, and what the client is told then. */
  private deadline(): { at: number; reason: SessionEndReason; message: string } {
    const expiresAt = this.d.principal.expiresAt * 1000;
    const maxSeconds = this.d.options?.maxSessionSeconds ?? DEFAULT_MAX_SESSION_SECONDS;
    const oldest = this.openedAt + maxSeconds * 1000;
    if (expiresAt <= oldest) {
      return {
        at: expiresAt,
        reason: 'token_expired',
        message: `pgwarden: your token expired at ${new Date(expiresAt).toISOString()}; reconnect with a fresh token`,
      };
    }
    return {
      at: oldest,
      reason: 'max_age',
      message: `pgwarden: this session reached pgwarden's maximum session age (${maxSeconds} s); reconnect with a fresh token`,
    };
  }

  private armDeadline(): void {
    const deadline = this.deadline();
    const wait = deadline.at - this.now();
    if (wait <= 0) {
      this.end(deadline.message, deadline.reason);
      return;
    }
    this.deadlineTimer = setTimeout(() => this.armDeadline(), Math.min(wait, MAX_TIMER_MS));
    this.deadlineTimer.unref();
  }

  private async recheck(intervalMs: number): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    const { session } = this.d;
    try {
      const answer = await this.d.controlPlane.checkSession!({
        sessionId: session.sessionId,
        issuer: session.principal.issuer,
        subject: session.principal.subject,
        role: session.role,
        ...(this.groupsAsOf === undefined ? {} : { groupsAsOf: this.groupsAsOf }),
      });
      this.lastConfirmed = this.now();
      if (answer.status === 'ended') {
        this.end(`pgwarden: ${answer.reason}; the session was ended`, 'access_revoked');
      } else if (answer.groups !== undefined && answer.roles !== undefined) {
        session.principal = { ...session.principal, groups: answer.groups };
        session.roles = answer.roles;
        this.groupsAsOf = answer.groupsAsOf ?? this.groupsAsOf;
      }
    } catch (error) {
      this.d.logger.warn('could not re-check a session', {
        sessionId: session.sessionId,
        error: String(error),
      });
      const unconfirmedMs = this.now() - this.lastConfirmed;
      if (unconfirmedMs > MISSED_CHECKS_TOLERATED * intervalMs) {
        this.end(
          `pgwarden: your access could not be confirmed for ${Math.round(unconfirmedMs / 1000)} s (the control plane is unreachable); reconnect`,
          'access_revoked',
        );
      }
    } finally {
      this.checking = false;
    }
  }

  private end(message: string, reason: SessionEndReason): void {
    if (this.stopped) return;
    this.stop();
    this.d.logger.info('session ended by pgwarden', { sessionId: this.d.session.sessionId, reason });
    this.d.cancelUpstream();
    this.d.relay.terminate({ severity: 'FATAL', code: TERMINATED, message }, reason);
  }
}
