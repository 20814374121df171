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
  'shutdown',
] as const;

export type SessionEndReason = (typeof SESSION_END_REASONS)[number];

export interface SessionClosedEvent {
  type: 'session_closed';
  eventId: string;
  sessionId: string;
  at: string;
  principal: string;
  durationMs: number;
  statements: number;
  reason: SessionEndReason;
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
  principal: string;
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
}

export type AuditEvent = SessionOpenedEvent | SessionClosedEvent | AuthFailedEvent | StatementEvent;
