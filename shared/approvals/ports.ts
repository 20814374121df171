/**
 * Ports of the approvals use cases (adapters in functions/adapters): where approvals are stored,
 * how the notifier is told, who a Slack user is, and the few Slack Web API calls pgwarden makes.
 */
import type { ApprovalExecution, ApprovalNotification, ApprovalStatus, ApprovalView } from '../approvals.ts';

/** The fields a transition may set (never the binding: principal, text, hashes, session). */
export type ApprovalChanges = Partial<
  Pick<
    ApprovalView,
    'status' | 'expiresAt' | 'decidedBy' | 'decidedAt' | 'decidedVia' | 'denyReason' | 'consumedAt'
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

/** What pgwarden last saw in a verified OIDC token of a person, keyed by email. */
export interface KnownPrincipal {
  email: string;
  name: string;
  subject: string;
  issuer: string;
  groups: string[];
  seenAt: string;
}

export interface PrincipalDirectory {
  remember(principal: Omit<KnownPrincipal, 'seenAt'>, now: Date): Promise<void>;
  /** by email, case-insensitively */
  lookup(email: string): Promise<KnownPrincipal | undefined>;
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
