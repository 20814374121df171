/**
 * The contract between the proxy and the control-plane API. The proxy depends on the
 * `ControlPlane` port only; it is implemented over HTTP (proxy/control-plane-http.ts) and
 * in-process for local mode (functions/api/in-process.ts), both running the same use cases.
 */

import type { AuditEvent, SerializedAuditEvent } from './events.ts';
import type { Principal, SessionPrincipal } from './identity.ts';

export interface OpenSessionRequest {
  /** the OIDC token the client sent as its password */
  token: string;
  /** the startup packet's `user` */
  user: string;
  database: string;
  applicationName: string;
  clientAddress: string;
  proxyId: string;
}

export interface OpenSessionResponse {
  sessionId: string;
  principal: Principal;
  /** primary role: selects the upstream credentials */
  role: string;
  roles: string[];
}

/** What the proxy knows about the session, sent with every decision so the API stays stateless. */
export interface SessionContext {
  sessionId: string;
  /** who asks: (issuer, subject) and what decisions read; groups are refreshed by session checks */
  principal: SessionPrincipal;
  role: string;
  roles: string[];
  database: string;
  applicationName: string;
}

export type StatementProtocol = 'simple' | 'extended';

export interface DecisionRequest {
  session: SessionContext;
  statement: {
    text: string;
    protocol: StatementProtocol;
    /** prepared statement name for extended-protocol Parse ('' = unnamed) */
    preparedName?: string;
    /**
     * The session's prepared statements by name (SQL PREPARE and named Parse share one namespace in
     * PostgreSQL): every text that prepared each name, so an EXECUTE in a later message is decided
     * through what it runs. Missing or unknown name: that EXECUTE is denied.
     */
    prepared?: PreparedTexts;
  };
}

/** Prepared-statement name → the texts that prepared it in this session (see DecisionRequest). */
export type PreparedTexts = Readonly<Record<string, readonly string[]>>;

export type DecisionAction = 'allow' | 'deny' | 'require_approval';

/** A policy mask that applies to the statement's results (see shared/policy/evaluate.ts). */
export interface DecisionMask {
  ruleId: string;
  /** column patterns, as in the rule: `column`, `table.column` or `schema.table.column` */
  columns: string[];
  method: 'redact' | 'partial' | 'hash' | 'null' | 'fake';
}

/** Content detectors for a statement's results (names: shared/masking/model.ts DETECTOR_NAMES). */
export interface DecisionDetectors {
  enabled: Array<'card' | 'ssn' | 'email' | 'phone' | 'iban' | 'aws_access_key' | 'jwt' | 'private_key'>;
  method: 'redact' | 'partial' | 'hash' | 'null' | 'fake';
}

export interface Decision {
  action: DecisionAction;
  /** the rule that decided; 'default' when no rule matched */
  ruleId: string;
  /** shown to the client on deny / require_approval */
  reason?: string;
  policyVersion: string;
  /** require_approval: the group whose members may approve, and how long the statement is held */
  /** channel: the Slack channel the rule names (PGWARDEN_SLACK_CHANNEL when absent) */
  approval?: { approvers: string; timeoutSeconds: number; channel?: string };
  /** allow with masking: the masks that apply to the results (absent or empty: nothing to mask) */
  masks?: DecisionMask[];
  /**
   * content detectors to run over every text value of the results (shared/masking/detectors.ts);
   * absent: none. Set on allow and require_approval decisions.
   */
  detectors?: DecisionDetectors;
  /** the parser's fingerprint of the statement text (same across literal values and comments) */
  fingerprint?: string;
  /** statement kinds of the message, for the audit record */
  kinds?: string[];
  /** names the message prepares with SQL PREPARE: the proxy remembers them for later EXECUTEs */
  prepares?: string[];
  /** names the message EXECUTEs without preparing them itself (decided through `prepared`) */
  executes?: string[];
  /** set by the proxy's approval gate on a statement an approval released: that approval's id */
  approvalId?: string;
}

/**
 * The proxy's periodic question about an open session (every PGWARDEN_SESSION_RECHECK_SECONDS):
 * may this principal still hold this role, and with which groups?
 */
export interface SessionCheckRequest {
  sessionId: string;
  issuer: string;
  subject: string;
  /** the role the session logged in with upstream */
  role: string;
  /** when the session's groups were asserted (ISO): the token's iat, then each check's `groupsAsOf` */
  groupsAsOf?: string;
}

export type SessionCheckResponse =
  /** groups (and the roles they grant) present only when the control plane knows newer ones */
  | { status: 'active'; groups?: string[]; roles?: string[]; groupsAsOf?: string }
  /** the session must end: `reason` is shown to the client */
  | { status: 'ended'; reason: string };

export interface ControlPlane {
  openSession(request: OpenSessionRequest): Promise<OpenSessionResponse>;
  /**
   * Re-checks an open session against what the control plane knows now (principals directory:
   * disabled principals, group changes). Absent: sessions are bounded by their token only.
   */
  checkSession?(request: SessionCheckRequest): Promise<SessionCheckResponse>;
  /** May answer synchronously (in-process, cached) so the hot path need not allocate a promise. */
  decide(request: DecisionRequest): Decision | Promise<Decision>;
  /**
   * The policy version decide() applies now, where that is known in-process: a statement prepared
   * under another version is decided again at Bind (hot reload must reach named statements too).
   */
  currentPolicyVersion?(): string;
  /** Durably store a batch of events; idempotent by event id. */
  ingest(events: AuditEvent[]): Promise<void>;
  /**
   * The same for events already serialized as JSON, where the transport can send the bytes as
   * they are (HTTP); callers fall back to ingest() with parsed events when it is absent.
   */
  ingestSerialized?(events: readonly SerializedAuditEvent[]): Promise<void>;
}
