/**
 * An in-memory control plane for proxy tests: accepts one known token per principal, decides
 * with a function the test supplies, and keeps every ingested event for assertions.
 */
import { randomUUID } from 'node:crypto';
import type {
  ControlPlane,
  Decision,
  DecisionRequest,
  OpenSessionRequest,
  OpenSessionResponse,
} from '../../shared/control-plane.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { AuditEvent, StatementEvent } from '../../shared/events.ts';

export const allowAll = (): Decision => ({ action: 'allow', ruleId: 'default', policyVersion: 'test' });

export class InMemoryControlPlane implements ControlPlane {
  readonly events: AuditEvent[] = [];
  readonly decisions: DecisionRequest[] = [];
  sessionsOpened = 0;
  /** token → principal name */
  readonly tokens = new Map<string, string>([['good-token', 'alice@example.com']]);
  decider: (request: DecisionRequest) => Decision | Promise<Decision> = allowAll;

  async openSession(request: OpenSessionRequest): Promise<OpenSessionResponse> {
    if (!request.token) throw new PgWardenError('AUTH_TOKEN_MISSING', 'no token was given as the password');
    const name = this.tokens.get(request.token);
    if (!name) throw new PgWardenError('AUTH_TOKEN_INVALID', 'the token is not valid');
    if (name !== request.user) throw new PgWardenError('AUTH_USER_MISMATCH', `user must be ${name}`);
    this.sessionsOpened++;
    return {
      sessionId: randomUUID(),
      principal: {
        name,
        subject: name,
        email: name,
        issuer: 'https://issuer.test',
        groups: ['engineering'],
        // an hour from now: the proxy ends a session at its token's exp
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
        actor: 'person',
      },
      role: 'developer',
      roles: ['developer'],
    };
  }

  decide(request: DecisionRequest): Decision | Promise<Decision> {
    this.decisions.push(request);
    return this.decider(request);
  }

  async ingest(events: AuditEvent[]): Promise<void> {
    this.events.push(...events);
  }

  statements(): StatementEvent[] {
    return this.events.filter((e): e is StatementEvent => e.type === 'statement');
  }
}
