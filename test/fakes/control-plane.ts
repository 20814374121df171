/**
 * A scripted ControlPlane: records what it was asked and answers from plain functions, so HTTP tests
 * exercise routing, validation and error mapping without a verifier or a store.
 */
import type {
  ControlPlane,
  Decision,
  DecisionRequest,
  OpenSessionRequest,
  OpenSessionResponse,
} from '../../shared/control-plane.ts';
import type { AuditEvent } from '../../shared/events.ts';

export interface FakeControlPlane extends ControlPlane {
  calls: { openSession: OpenSessionRequest[]; decide: DecisionRequest[]; ingest: AuditEvent[][] };
}

export const openedSession: OpenSessionResponse = {
  sessionId: 'sess-42',
  principal: {
    name: 'ada@example.com',
    subject: 'user-1',
    email: 'ada@example.com',
    issuer: 'https://issuer.example',
    groups: ['engineering'],
    expiresAt: 1_900_000_000,
    actor: 'person',
  },
  role: 'developer',
  roles: ['developer'],
};

export function fakeControlPlane(
  behaviour: {
    openSession?: (request: OpenSessionRequest) => Promise<OpenSessionResponse>;
    decide?: (request: DecisionRequest) => Decision | Promise<Decision>;
    ingest?: (events: AuditEvent[]) => Promise<void>;
  } = {},
): FakeControlPlane {
  const calls: FakeControlPlane['calls'] = { openSession: [], decide: [], ingest: [] };
  return {
    calls,
    async openSession(request) {
      calls.openSession.push(request);
      return behaviour.openSession ? behaviour.openSession(request) : openedSession;
    },
    decide(request) {
      calls.decide.push(request);
      return behaviour.decide
        ? behaviour.decide(request)
        : { action: 'allow', ruleId: 'default', policyVersion: 'test' };
    },
    async ingest(events) {
      calls.ingest.push(events);
      if (behaviour.ingest) await behaviour.ingest(events);
    },
  };
}

export const openSessionBody: OpenSessionRequest = {
  token: 'eyJ.token.sig',
  user: 'ada@example.com',
  database: 'app',
  applicationName: 'psql',
  clientAddress: '10.0.0.7',
  proxyId: 'proxy-a',
};

export const decisionBody: DecisionRequest = {
  session: {
    sessionId: 'sess-42',
    principal: {
      name: 'ada@example.com',
      issuer: 'https://issuer.example',
      subject: 'ada@example.com',
      groups: ['engineering'],
      actor: 'person',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'psql',
  },
  statement: { text: 'select 1', protocol: 'simple' },
};
