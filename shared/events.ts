/**
 * Audit events: what the proxy reports and the API stores. Every event carries a unique id so
 * a retried batch is idempotent. Times are ISO-8601 strings (UTC) to stay readable in exports.
 */
import type { DecisionAction, StatementProtocol } from './control-plane.ts';

export interface SessionOpenedEvent {
  type: 'session_opened';
  eventId: string;
  sessionId: string;
  at: string;
  principal: string;
  subject: string;
  issuer: string;
  tokenId?: string;
  groups: string[];
  roles: string[];
  role: string;
  actor: 'person' | 'agent';
  database: string;
  upstreamUser?: string;
  applicationName: string;
  clientAddress: string;
  proxyId: string;
}

export const SESSION_END_REASONS = [
  'client_terminate',
  'network_loss',
  'upstream_closed',
  'upstream_unavailable',
  'protocol_error',
  /** the server reported a pinned setting or the session's identity changed (proxy/session-pins.ts) */
  'pinned_setting_changed',
  'shutdown',
  /** pgwarden ended it: the token expired, the maximum session age passed, or access was revoked */
  'token_expired',
  'max_age',
  'access_revoked',
  /** the server ended the backend (FATAL 57P01, e.g. pg_terminate_backend or a fast shutdown) */
  'admin_kill',
  /** refused at open: the principal already held as many sessions as the proxy allows */
  'connection_limit',
] as const;

export type SessionEndReason = (typeof SESSION_END_REASONS)[number];

export interface SessionClosedEvent {
  type: 'session_closed';
  eventId: string;
  sessionId: string;
  at: string;
  principal: string;
  issuer?: string;
  subject?: string;
  durationMs: number;
  statements: number;
  reason: SessionEndReason;
  /** the database login the gateway used for this session (known to the proxy only) */
  upstreamUser?: string;
  /**
   * The anchor of the session's hash chain (shared/audit-chain.ts): how many completed statement
   * records it has and the last one's recordHash (the genesis hash when there are none).
   */
  chainLength?: number;
  chainHead?: string;
}

/** A connection that never became a session: the record of who tried and why it failed. */
export interface AuthFailedEvent {
  type: 'auth_failed';
  eventId: string;
  at: string;
  user: string;
  database: string;
  applicationName: string;
  clientAddress: string;
  code: string;
  message: string;
  proxyId: string;
}

export interface StatementEvent {
  type: 'statement';
  eventId: string;
  sessionId: string;
  /** 1-based order within the session */
  seq: number;
  /** display name (verified email, else subject); issuer + subject say who it was */
  principal: string;
  issuer?: string;
  subject?: string;
  database: string;
  applicationName: string;
  text: string;
  protocol: StatementProtocol;
  preparedName?: string;
  decision: DecisionAction;
  ruleId: string;
  startedAt: string;
  durationMs: number;
  commandTag?: string;
  rows?: number;
  sqlstate?: string;
  errorMessage?: string;
  /**
   * 'pending': the record of intent, written before the statement is forwarded; the completed
   * record has the same key (sessionId + seq) and eventId and replaces it. Absent in older records.
   */
  outcome?: StatementOutcome;
  /** the parser's fingerprint (same across literal values), when the decision carried one */
  fingerprint?: string;
  kinds?: string[];
  policyVersion?: string;
  /** extended protocol: the portal that ran the statement ('' = unnamed) */
  portalName?: string;
  /** the approval that released this execution (a require_approval statement) */
  approvalId?: string;
  /**
   * Bind parameters as configured (PGWARDEN_AUDIT_PARAMS): 'hashed' = SHA-256 hex of each value's
   * bytes, 'clear' = the value (text format as UTF-8, binary format as base64); null = SQL NULL.
   */
  params?: Array<string | null>;
  paramsMode?: 'hashed' | 'clear';
  /** per parameter, present only when some parameter was sent in binary format */
  paramFormats?: Array<'text' | 'binary'>;
  /** bytes of the server's reply relayed to the client for this statement */
  bytesToClient?: number;
  /** the client sent a CancelRequest while the statement was in flight */
  cancelled?: boolean;
  /** the database login the gateway used */
  upstreamUser?: string;
  actor?: 'person' | 'agent';
  /** result columns pgwarden masked: which column, by which rule and method, how many values (never a value) */
  masked?: MaskedColumnRecord[];
  /** content detector hits: which detector, where (a result column or error/notice/notification/copy), how many */
  detected?: DetectorHitRecord[];
  /** the statement text was longer than the record keeps: its length in bytes (text holds the start) */
  textBytes?: number;
  textTruncated?: true;
  errorMessageBytes?: number;
  errorMessageTruncated?: true;
  /**
   * Hash chain (shared/audit-chain.ts). headHash: SHA-256 of the fixed part, in the intent and the
   * completed record alike (the store lets a completion replace only an intent with the same one).
   * chainIndex, prevHash, recordHash: the completed record's link in its session's chain.
   */
  headHash?: string;
  chainIndex?: number;
  prevHash?: string;
  recordHash?: string;
}

/** One masked result column in a statement's record. */
export interface MaskedColumnRecord {
  /** schema.table.column as the catalog names it */
  column: string;
  ruleId: string;
  method: string;
  values: number;
  /** why the method differs from the rule's (e.g. a binary-format column sent as NULL) */
  note?: string;
}

/** One detector's hits in a statement's record. */
export interface DetectorHitRecord {
  detector: string;
  /** a result column (schema.table.column or its output name) or a channel: error, notice, notification, copy */
  where: string;
  values: number;
}

export const STATEMENT_OUTCOMES = ['pending', 'ok', 'error', 'refused'] as const;
export type StatementOutcome = (typeof STATEMENT_OUTCOMES)[number];

export const APPROVAL_STEPS = [
  'requested',
  'reused',
  'notified',
  'approved',
  'denied',
  'refused',
  'expired',
  'consumed',
  'executed',
] as const;
export type ApprovalStep = (typeof APPROVAL_STEPS)[number];

/**
 * One step of an approval (shared/approvals.ts): requested, posted to Slack, decided, refused (an
 * attempt to decide that was not allowed), expired, consumed by the released statement, executed.
 */
export interface ApprovalEvent {
  type: 'approval';
  eventId: string;
  at: string;
  approvalId: string;
  step: ApprovalStep;
  /** the session that asked for the approval */
  sessionId: string;
  /** the requester's display name */
  principal: string;
  /** the requester (absent in records of approvals stored before identities were bound) */
  issuer?: string;
  subject?: string;
  /** who took the step: a reviewer's display name, or 'pgwarden' for the product's own steps */
  by: string;
  /** the reviewer who took the step, when a person did */
  byIssuer?: string;
  bySubject?: string;
  via: 'api' | 'slack' | 'proxy' | 'notifier';
  database: string;
  ruleId: string;
  fingerprint: string;
  textHash: string;
  /** the exact parameter values the approval is bound to (shared/approvals/params.ts) */
  paramsHash?: string;
  /** deny reason, or why an attempt was refused */
  reason?: string;
  /** one readable line: what happened */
  message: string;
}

/**
 * An audit event already serialized: `line` is its JSON (one line, no newline). The proxy's spool
 * writes each record once as JSON and ships those bytes as they are, instead of serializing the
 * same event again for every hop (a third of the proxy's audit cost per statement).
 */
export interface SerializedAuditEvent {
  type: AuditEvent['type'];
  line: string;
}

export type AuditEvent =
  | SessionOpenedEvent
  | SessionClosedEvent
  | AuthFailedEvent
  | StatementEvent
  | ApprovalEvent;
