/** Valid audit events with readable defaults; tests override only what they are about. */
import type {
  AuthFailedEvent,
  SessionClosedEvent,
  SessionOpenedEvent,
  StatementEvent,
} from '../../shared/events.ts';

export function sessionOpened(overrides: Partial<SessionOpenedEvent> = {}): SessionOpenedEvent {
  return {
    type: 'session_opened',
    eventId: 'evt-open-1',
    sessionId: 'sess-1',
    at: '2025-03-01T10:00:00.000Z',
    principal: 'ada@example.com',
    subject: 'user-1',
    issuer: 'https://issuer.example',
    groups: ['engineering'],
    roles: ['developer'],
    role: 'developer',
    actor: 'person',
    database: 'app',
    applicationName: 'psql',
    clientAddress: '10.0.0.7',
    proxyId: 'proxy-a',
    ...overrides,
  };
}

export function sessionClosed(overrides: Partial<SessionClosedEvent> = {}): SessionClosedEvent {
  return {
    type: 'session_closed',
    eventId: 'evt-close-1',
    sessionId: 'sess-1',
    at: '2025-03-01T10:05:00.000Z',
    principal: 'ada@example.com',
    durationMs: 300_000,
    statements: 3,
    reason: 'client_terminate',
    ...overrides,
  };
}

export function statement(seq: number, overrides: Partial<StatementEvent> = {}): StatementEvent {
  return {
    type: 'statement',
    eventId: `evt-stmt-${seq}`,
    sessionId: 'sess-1',
    seq,
    principal: 'ada@example.com',
    database: 'app',
    applicationName: 'psql',
    text: `select ${seq}`,
    protocol: 'simple',
    decision: 'allow',
    ruleId: 'default',
    startedAt: new Date(Date.UTC(2025, 2, 1, 10, 0, seq)).toISOString(),
    durationMs: 2,
    commandTag: 'SELECT 1',
    rows: 1,
    ...overrides,
  };
}

export function authFailed(overrides: Partial<AuthFailedEvent> = {}): AuthFailedEvent {
  return {
    type: 'auth_failed',
    eventId: 'evt-fail-1',
    at: '2025-03-01T09:59:00.000Z',
    user: 'mallory@example.com',
    database: 'app',
    applicationName: '',
    clientAddress: '10.0.0.9',
    code: 'AUTH_TOKEN_EXPIRED',
    message: 'your token expired',
    proxyId: 'proxy-a',
    ...overrides,
  };
}
