/**
 * Approval fixtures: a require_approval request as the proxy sends it, deciders, and an in-memory
 * audit store and queue that record what they were given.
 */

import { type ApprovalParams, paramsHash } from '../../shared/approvals/params.ts';
import type { ApprovalQueue } from '../../shared/approvals/ports.ts';
import type { ApprovalDecider, CreateApprovalRequest } from '../../shared/approvals.ts';
import type { AuditEvent } from '../../shared/events.ts';
import type { AuditStore } from '../../shared/ports.ts';

export const REQUESTER = 'dev@example.com';
export const ISSUER = 'https://issuer.example';
/** the requester's subject at ISSUER */
export const REQUESTER_SUBJECT = 'sub|dev';

export function approvalRequest(
  overrides: {
    text?: string;
    /** display name; a name with an @ is also the requester's verified email */
    principal?: string;
    /** default: REQUESTER_SUBJECT */
    subject?: string;
    issuer?: string;
    actor?: 'person' | 'agent';
    database?: string;
    sessionId?: string;
    fingerprint?: string;
    approvers?: string;
    timeoutSeconds?: number;
    channel?: string;
    params?: ApprovalParams;
    protocol?: 'simple' | 'extended';
  } = {},
): CreateApprovalRequest {
  return {
    session: {
      sessionId: overrides.sessionId ?? 'session-1',
      principal: {
        name: overrides.principal ?? REQUESTER,
        issuer: overrides.issuer ?? ISSUER,
        subject: overrides.subject ?? REQUESTER_SUBJECT,
        ...((overrides.principal ?? REQUESTER).includes('@') && { email: overrides.principal ?? REQUESTER }),
        groups: ['engineering'],
        actor: overrides.actor ?? 'person',
      },
      role: 'developer',
      roles: ['developer'],
      database: overrides.database ?? 'shop',
      applicationName: 'psql',
    },
    statement: {
      text: overrides.text ?? 'delete from orders where id = 7',
      protocol: overrides.protocol ?? 'simple',
      ...(overrides.params && { params: overrides.params }),
    },
    decision: {
      action: 'require_approval',
      ruleId: 'deletes-need-approval',
      reason: 'deletes on orders need a reviewer',
      policyVersion: 'v1',
      approval: {
        approvers: overrides.approvers ?? 'reviewers',
        timeoutSeconds: overrides.timeoutSeconds ?? 30,
        ...(overrides.channel === undefined ? {} : { channel: overrides.channel }),
      },
      fingerprint: overrides.fingerprint ?? 'fp-delete-orders',
    },
  };
}

export function reviewer(overrides: Partial<ApprovalDecider> = {}): ApprovalDecider {
  return {
    name: 'rita@example.com',
    email: 'rita@example.com',
    issuer: ISSUER,
    subject: 'sub|rita',
    groups: ['reviewers'],
    actor: 'person',
    via: 'api',
    ...overrides,
  };
}

export class RecordingAuditStore implements AuditStore {
  readonly events: AuditEvent[] = [];
  failing = false;
  async put(events: readonly AuditEvent[]): Promise<void> {
    if (this.failing) throw new Error('audit store down');
    this.events.push(...events);
  }
  steps(approvalId?: string): string[] {
    return this.events
      .filter((e) => e.type === 'approval' && (approvalId === undefined || e.approvalId === approvalId))
      .map((e) => (e.type === 'approval' ? e.step : ''));
  }
}

export class RecordingQueue implements ApprovalQueue {
  readonly sent: string[] = [];
  failing = false;
  async enqueue(notification: { approvalId: string }): Promise<void> {
    if (this.failing) throw new Error('queue down');
    this.sent.push(notification.approvalId);
  }
}

/** The parameters of an extended-protocol execution as the proxy sends them, from text values. */
export function textParams(...values: Array<string | null>): ApprovalParams {
  const raw = values.map((v) => ({ type: 0, format: 0, bytes: v === null ? null : Buffer.from(v) }));
  return {
    count: values.length,
    values: values.map((value) => ({ value, format: 'text' as const })),
    hash: paramsHash(raw),
  };
}
