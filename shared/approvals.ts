/**
 * Approvals: the state machine of a statement held for a human decision, pure (the time is an
 * argument; storage, queues and Slack are adapters). One approval is bound to the exact statement
 * (parser fingerprint + SHA-256 of the exact text + SHA-256 of the exact parameter values, see
 * approvals/params.ts), the requesting principal, the session and the database, and releases one
 * execution of it. It moves only along:
 *
 *   pending ──approve──► approved ──consume (once, before expiresAt)──► consumed
 *      │ └────deny────► denied
 *      └──(expiresAt passes)──► expired        approved ──(expiresAt passes unused)──► expired
 *
 * `expiresAt` is the deadline of the current stage: while pending, the last moment it can be decided;
 * once approved, the last moment the statement may run (the validity window of a retry). The store
 * guards every transition with a conditional write on `status`, so two clicks cannot both win.
 *
 * HTTP contract (functions/api/routes/approvals.ts):
 * - POST /v1/approvals {session, statement, decision} (service token) → {approval}. status 'approved'
 *   in this response means THIS call took the one use of an earlier approval: forward at once.
 * - GET /v1/approvals/:id/wait?timeoutMs=N (service token, N ≤ 25000) → {approval} once it is no
 *   longer pending, or after N ms still 'pending'. status 'approved' means this wait took the one use
 *   (the record is now consumed); 'consumed' means someone else already used it: do not forward.
 * - POST /v1/approvals/:id/executed {commandTag?, rows?, error?} (service token, optional) → {approval}:
 *   the proxy reports the outcome so the Slack message can say "executed: DELETE 3".
 * - GET /v1/approvals?status=pending, POST /v1/approvals/:id/approve, POST /v1/approvals/:id/deny
 *   {reason?} (people, OIDC token) → {approvals} / {approval}.
 */
import { createHash } from 'node:crypto';
import { type ApprovalParam, type ApprovalParams, NO_PARAMS_HASH } from './approvals/params.ts';
import type { Decision, SessionContext, StatementProtocol } from './control-plane.ts';
import { PgWardenError } from './errors.ts';
import { type PrincipalId, sameEmail, samePrincipal } from './identity.ts';
import { DEFAULT_APPROVAL_TIMEOUT_SECONDS } from './policy/model.ts';

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired', 'consumed'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** The longest a single wait request is held open (API Gateway/Lambda answer within 29 s). */
export const MAX_WAIT_MS = 25_000;
/** Across processes a waiter re-reads the record at most this often. */
export const WAIT_RECHECK_MS = 250;

export interface ApprovalExecution {
  at: string;
  commandTag?: string;
  rows?: number;
  /** the statement failed after it was released */
  error?: string;
}

/** An approval as stored and as the API returns it (ApprovalView in the contract). */
export interface ApprovalView {
  id: string;
  status: ApprovalStatus;
  /** the requester's display name (verified email, else subject): shown, never compared */
  principal: string;
  /**
   * The requester: who may not decide it. Absent only in approvals stored before identities were
   * bound; nobody can decide those (pgwarden cannot tell who asked).
   */
  requesterIssuer?: string;
  requesterSubject?: string;
  /** the requester's verified email, if known: a decider with the same verified email asked too */
  requesterEmail?: string;
  /** person or agent: the Slack message says which */
  actor?: 'person' | 'agent';
  sessionId: string;
  database: string;
  applicationName: string;
  /** the exact statement text */
  text: string;
  protocol?: StatementProtocol;
  fingerprint: string;
  /** SHA-256 (hex) of the exact text */
  textHash: string;
  /**
   * paramsHash() of the exact parameter values (types, formats, bytes) the approval releases;
   * NO_PARAMS_HASH without parameters. Absent only in approvals stored before it existed.
   */
  paramsHash?: string;
  /** the parameter values as the reviewer sees them (masked where a mask rule covers them) */
  params?: { count: number; values: ApprovalParam[] };
  ruleId: string;
  /** why it needs approval (the rule's reason) */
  reason: string;
  policyVersion?: string;
  /** groups whose members may decide (any of them) */
  approvers: string[];
  /** the Slack channel the rule asks in; absent: PGWARDEN_SLACK_CHANNEL */
  channel?: string;
  requestedAt: string;
  /** see the module comment: decision deadline while pending, use deadline once approved */
  expiresAt: string;
  /** how long the proxy holds the statement on the wire before answering with the approval id */
  holdTimeoutSeconds: number;
  /** the decider's display name; decidedByIssuer/decidedBySubject say who it was */
  decidedBy?: string;
  decidedByIssuer?: string;
  decidedBySubject?: string;
  decidedAt?: string;
  /** where the decision was made */
  decidedVia?: 'api' | 'slack';
  denyReason?: string;
  consumedAt?: string;
  execution?: ApprovalExecution;
  /** where the notifier posted the Slack message */
  slack?: { channel: string; ts: string };
}

/** Body of POST /v1/approvals (the proxy, after a require_approval decision). */
export interface CreateApprovalRequest {
  session: SessionContext;
  /** params: the values of the one execution asked for (extended protocol) */
  statement: { text: string; protocol: StatementProtocol; params?: ApprovalParams };
  decision: Decision;
}

export interface ApprovalResponse {
  approval: ApprovalView;
}

export interface ApprovalListResponse {
  approvals: ApprovalView[];
}

/** Body of POST /v1/approvals/:id/deny */
export interface DenyApprovalBody {
  reason?: string;
}

/** Body of POST /v1/approvals/:id/executed */
export type ApprovalExecutionReport = Omit<ApprovalExecution, 'at'>;

/** The SQS message the notifier consumes: "make Slack show this approval's current state". */
export interface ApprovalNotification {
  approvalId: string;
}

/** Who decides: a verified person (OIDC token, or Slack user mapped through the principals directory). */
export interface ApprovalDecider extends PrincipalId {
  /** display only */
  name: string;
  /** verified by the issuer (or, from Slack, the directory's verified email) */
  email?: string;
  groups: readonly string[];
  actor: 'person' | 'agent';
  via: 'api' | 'slack';
}

export interface ApprovalWindows {
  /** how long a pending approval can still be decided (at least the hold timeout) */
  decisionSeconds: number;
  /** how long an approval stays usable once approved (a retry after the hold timed out) */
  useSeconds: number;
}

export const DEFAULT_APPROVAL_WINDOWS: ApprovalWindows = { decisionSeconds: 3600, useSeconds: 900 };

export const MAX_DENY_REASON_LENGTH = 500;

export function approvalTextHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * What a retry must share with an earlier approval to use it: the same requester (issuer, subject),
 * database, fingerprint, exact text and exact parameter values. Hashed so the index key stays short
 * whatever the names.
 */
export function approvalRetryKey(
  approval: Pick<
    ApprovalView,
    | 'principal'
    | 'requesterIssuer'
    | 'requesterSubject'
    | 'database'
    | 'fingerprint'
    | 'textHash'
    | 'paramsHash'
  >,
): string {
  const requester =
    approval.requesterIssuer === undefined || approval.requesterSubject === undefined
      ? ['name', approval.principal.toLowerCase()]
      : [approval.requesterIssuer, approval.requesterSubject];
  return createHash('sha256')
    .update(
      JSON.stringify([
        ...requester,
        approval.database,
        approval.fingerprint,
        approval.textHash,
        approval.paramsHash ?? NO_PARAMS_HASH,
      ]),
    )
    .digest('hex');
}

/** A new pending approval for a require_approval decision. */
export function newApproval(
  request: CreateApprovalRequest,
  options: { id: string; now: Date; defaultApprovers: readonly string[]; windows?: ApprovalWindows },
): ApprovalView {
  const { session, statement, decision } = request;
  if (decision.action !== 'require_approval') {
    throw new PgWardenError(
      'BAD_REQUEST',
      `decision.action must be require_approval to ask for an approval (got ${decision.action})`,
    );
  }
  const approvers = decision.approval?.approvers
    ? [decision.approval.approvers]
    : [...options.defaultApprovers];
  if (approvers.length === 0) throw new PgWardenError('CONFIG_INVALID', 'no approver group is configured');
  const holdTimeoutSeconds = decision.approval?.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS;
  const windows = options.windows ?? DEFAULT_APPROVAL_WINDOWS;
  const textHash = approvalTextHash(statement.text);
  const requesterEmail = session.principal.email ?? session.principal.knownEmail;
  return {
    id: options.id,
    status: 'pending',
    principal: session.principal.name,
    requesterIssuer: session.principal.issuer,
    requesterSubject: session.principal.subject,
    ...(requesterEmail === undefined ? {} : { requesterEmail }),
    actor: session.principal.actor,
    sessionId: session.sessionId,
    database: session.database,
    applicationName: session.applicationName,
    text: statement.text,
    protocol: statement.protocol,
    // Without a parser fingerprint the exact text is the statement's identity.
    fingerprint: decision.fingerprint ?? `text:${textHash}`,
    textHash,
    paramsHash: statement.params?.hash ?? NO_PARAMS_HASH,
    ...(statement.params !== undefined && {
      params: { count: statement.params.count, values: statement.params.values },
    }),
    ruleId: decision.ruleId,
    reason: decision.reason ?? `rule "${decision.ruleId}" requires approval`,
    policyVersion: decision.policyVersion,
    approvers,
    ...(decision.approval?.channel !== undefined && { channel: decision.approval.channel }),
    requestedAt: options.now.toISOString(),
    expiresAt: addSeconds(options.now, Math.max(windows.decisionSeconds, holdTimeoutSeconds)),
    holdTimeoutSeconds,
  };
}

/** The status as of `now`: a pending or approved approval past its deadline has expired. */
export function effectiveStatus(approval: ApprovalView, now: Date): ApprovalStatus {
  const lapsed = now.getTime() >= Date.parse(approval.expiresAt);
  if (lapsed && (approval.status === 'pending' || approval.status === 'approved')) return 'expired';
  return approval.status;
}

/** The approval as of `now` (status made effective). */
export function asOf(approval: ApprovalView, now: Date): ApprovalView {
  const status = effectiveStatus(approval, now);
  return status === approval.status ? approval : { ...approval, status };
}

/**
 * The requester is the same (issuer, subject), whatever token or name they decide with. A verified
 * email shared with the requester counts too (one mailbox, two accounts: at two issuers, say): it
 * only ever refuses more. Display names are never compared. An approval without a recorded
 * requester (stored before identities were bound) has everyone as a possible requester.
 */
export function isRequester(
  approval: Pick<ApprovalView, 'requesterIssuer' | 'requesterSubject' | 'requesterEmail'>,
  who: Pick<ApprovalDecider, 'issuer' | 'subject' | 'email'>,
): boolean {
  if (approval.requesterIssuer === undefined || approval.requesterSubject === undefined) return true;
  const requester = { issuer: approval.requesterIssuer, subject: approval.requesterSubject };
  return samePrincipal(requester, who) || sameEmail(approval.requesterEmail, who.email);
}

/**
 * Why `who` may not decide `approval` now, or undefined when they may. Checked before the
 * conditional write; the write re-checks status and deadline atomically.
 */
export function decisionRefusal(approval: ApprovalView, who: ApprovalDecider, now: Date): string | undefined {
  const status = effectiveStatus(approval, now);
  if (status === 'expired') return `approval ${approval.id} has expired; it can no longer be decided`;
  if (status !== 'pending') {
    const by = approval.decidedBy ? ` by ${approval.decidedBy}` : '';
    return `approval ${approval.id} was already ${status}${by}; it cannot be decided again`;
  }
  if (who.actor !== 'person') return `approvals are decided by people; ${who.name} is an automated client`;
  if (approval.requesterIssuer === undefined || approval.requesterSubject === undefined)
    return `approval ${approval.id} does not record who asked, so nobody can decide it; run the statement again to ask anew`;
  if (isRequester(approval, who)) return `${who.name} requested this statement and cannot decide on it`;
  if (!who.groups.some((group) => approval.approvers.includes(group))) {
    return `${who.name} may not decide approval ${approval.id}: that needs membership of ${approval.approvers.map((g) => `"${g}"`).join(' or ')}`;
  }
  return undefined;
}

export type Verdict = { verdict: 'approve' } | { verdict: 'deny'; reason?: string };

/** The decided approval, or FORBIDDEN saying why not. */
export function decideApproval(
  approval: ApprovalView,
  who: ApprovalDecider,
  verdict: Verdict,
  now: Date,
  windows: ApprovalWindows = DEFAULT_APPROVAL_WINDOWS,
): ApprovalView {
  const refusal = decisionRefusal(approval, who, now);
  if (refusal !== undefined) throw new PgWardenError('FORBIDDEN', refusal);
  const decided = {
    ...approval,
    decidedBy: who.name,
    decidedByIssuer: who.issuer,
    decidedBySubject: who.subject,
    decidedAt: now.toISOString(),
    decidedVia: who.via,
  };
  if (verdict.verdict === 'approve') {
    return { ...decided, status: 'approved', expiresAt: addSeconds(now, windows.useSeconds) };
  }
  const reason = verdict.reason?.trim().slice(0, MAX_DENY_REASON_LENGTH);
  return { ...decided, status: 'denied', ...(reason ? { denyReason: reason } : {}) };
}

/** An approved approval's one use, or undefined when it cannot be used (any other state, or lapsed). */
export function consumeApproval(approval: ApprovalView, now: Date): ApprovalView | undefined {
  if (effectiveStatus(approval, now) !== 'approved') return undefined;
  return { ...approval, status: 'consumed', consumedAt: now.toISOString() };
}

/** A lapsed pending/approved approval made 'expired', or undefined when it has not lapsed. */
export function expireApproval(approval: ApprovalView, now: Date): ApprovalView | undefined {
  if (effectiveStatus(approval, now) !== 'expired' || approval.status === 'expired') return undefined;
  return { ...approval, status: 'expired' };
}

function addSeconds(date: Date, seconds: number): string {
  return new Date(date.getTime() + seconds * 1000).toISOString();
}

/**
 * What the proxy needs from the approvals service: implemented over HTTP (the routes above) and
 * in-process by functions/api/approvals-service.ts (local mode), so a hold gate can use either.
 */
export interface ApprovalsPort {
  /** POST /v1/approvals */
  request(request: CreateApprovalRequest): Promise<ApprovalView>;
  /** GET /v1/approvals/:id/wait; `signal` aborted = the caller gave up (the use is then not taken) */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalView>;
  /** POST /v1/approvals/:id/executed */
  reportExecution(id: string, report: ApprovalExecutionReport): Promise<ApprovalView>;
}
