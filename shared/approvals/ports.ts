/**
 * Ports of the approvals use cases (adapters in functions/adapters): where approvals are stored,
 * how the notifier is told, who a Slack user is, and the few Slack Web API calls pgwarden makes.
 */
import type { ApprovalExecution, ApprovalNotification, ApprovalStatus, ApprovalView } from '../approvals.ts';
import type { PrincipalId } from '../identity.ts';

/** The fields a transition may set (never the binding: principal, text, hashes, session). */
export type ApprovalChanges = Partial<
  Pick<
    ApprovalView,
    | 'status'
    | 'expiresAt'
    | 'decidedBy'
    | 'decidedByIssuer'
    | 'decidedBySubject'
    | 'decidedAt'
    | 'decidedVia'
    | 'denyReason'
    | 'consumedAt'
  >
>;

export interface ApprovalStore {
  /** undefined when there is no such approval; always a strongly consistent read */
  get(id: string): Promise<ApprovalView | undefined>;
  /** Stores a new approval; fails if the id exists. */
  create(approval: ApprovalView): Promise<void>;
  /**
   * Applies `changes` only if the stored status is still `from` (and, with `unexpiredAt`, its
   * deadline is still after that time). false when the condition failed: someone else won.
   */
  transition(
    id: string,
    from: ApprovalStatus,
    changes: ApprovalChanges,
    options?: { unexpiredAt?: Date },
  ): Promise<boolean>;
  /** Records the Slack message once; false when one is already recorded (a concurrent notifier). */
  setSlackMessage(id: string, slack: { channel: string; ts: string }): Promise<boolean>;
  /** Records what the released statement did; only on a consumed approval. */
  setExecution(id: string, execution: ApprovalExecution): Promise<boolean>;
  /** Approvals (any status) bound to the same retry key (see approvalRetryKey), newest first. */
  findByRetryKey(retryKey: string): Promise<ApprovalView[]>;
  /** Stored status 'pending' (some may have lapsed), newest first. */
  listByStatus(status: ApprovalStatus, limit: number): Promise<ApprovalView[]>;
}

export interface ApprovalQueue {
  enqueue(notification: ApprovalNotification): Promise<void>;
  /**
   * The same notification, delivered after `delaySeconds` (at most 900, SQS's limit): how the
   * notifier looks at a pending approval again when it lapses, so Slack shows it expired unasked.
   */
  enqueueLater?(notification: ApprovalNotification, delaySeconds: number): Promise<void>;
}

/**
 * What pgwarden knows of one principal, keyed by (issuer, subject): what its latest token said, and
 * what an administrator (or the IdP's provisioning, through the admin route) changed since.
 */
export interface KnownPrincipal {
  issuer: string;
  subject: string;
  /** display name */
  name: string;
  /** the latest email its issuer verified (a token without one never erases it) */
  email?: string;
  actor: 'person' | 'agent';
  groups: string[];
  /**
   * When `groups` were asserted (ISO): the iat of the token that carried them, or the time of the
   * administrator's change. Older knowledge never replaces newer.
   */
  groupsAsOf: string;
  /** last time a verified token of this principal was presented */
  seenAt: string;
  /** set by an administrator: no session, API call or Slack click of this principal is accepted */
  disabled?: { at: string; by: string; reason?: string };
}

/** What a verified token tells the directory. */
export type PrincipalFacts = Pick<
  KnownPrincipal,
  'issuer' | 'subject' | 'name' | 'email' | 'actor' | 'groups'
>;

/** An administrator's change: disable (with a reason) or enable, and/or set the groups. */
export interface PrincipalChange {
  disabled?: boolean;
  reason?: string;
  groups?: string[];
}

export interface PrincipalDirectory {
  /**
   * Records a verified token's facts; its groups replace the stored ones only when `asOf` (the
   * token's iat) is not older than `groupsAsOf`. Never touches `disabled`.
   */
  remember(facts: PrincipalFacts, asOf: Date, now: Date): Promise<void>;
  /** strongly consistent */
  get(id: PrincipalId): Promise<KnownPrincipal | undefined>;
  /** principals whose verified email is `email` (case-insensitive); eventually consistent */
  findByEmail(email: string): Promise<KnownPrincipal[]>;
  /** an administrator's change, effective at `now`; creates the entry if pgwarden has not seen it yet */
  change(id: PrincipalId, change: PrincipalChange, by: string, now: Date): Promise<KnownPrincipal>;
}

/** Block Kit message content: `text` is the notification fallback, `blocks` the layout. */
export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

export interface SlackApi {
  postMessage(channel: string, message: SlackMessage): Promise<{ channel: string; ts: string }>;
  updateMessage(channel: string, ts: string, message: SlackMessage): Promise<void>;
  /** A message only `user` sees (refusals of a click). */
  postEphemeral(channel: string, user: string, text: string): Promise<void>;
  /** users.info: the profile email and whether Slack has confirmed it */
  userEmail(userId: string): Promise<{ email?: string; confirmed: boolean }>;
  openView(triggerId: string, view: unknown): Promise<void>;
}
