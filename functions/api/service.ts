/**
 * The control plane's use cases behind the ControlPlane port. The HTTP app calls it, and local mode
 * calls it in-process, so both run exactly this code.
 */
import type { PrincipalDirectory } from '../../shared/approvals/ports.ts';
import type {
  ControlPlane,
  Decision,
  DecisionRequest,
  OpenSessionRequest,
  OpenSessionResponse,
  SessionCheckRequest,
  SessionCheckResponse,
} from '../../shared/control-plane.ts';
import { DEFAULT_POLICY_VERSION, StatementDecider } from '../../shared/decide.ts';
import { isAuthenticationCode, isPgWardenError, PgWardenError } from '../../shared/errors.ts';
import {
  assertStartupUserMatches,
  primaryRole,
  principalFromClaims,
  type RoleMapping,
  rolesForGroups,
} from '../../shared/identity.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import type { AuditStore, TokenVerifier } from '../../shared/ports.ts';
import type { StoredPolicySource } from './policy-source.ts';
import { currentPrincipal } from './remember-principal.ts';
import { auditEvents } from './validate.ts';

export interface ControlPlaneServiceDeps {
  verifier: TokenVerifier;
  store: AuditStore;
  roles: RoleMapping[];
  now: () => Date;
  newId: () => string;
  /** default: the built-in default policy pack */
  decider?: StatementDecider;
  /** the stored current policy; when given, decisions use its decider (the first waits for a read) */
  policies?: StoredPolicySource;
  logger?: Logger;
  /**
   * The principals directory: each token updates it, and disabled principals and newer groups it
   * holds apply to sessions (at open and at each check) and to Slack clicks. Absent: a session
   * knows only its token (local tests); every deployment and `npm start` configure it.
   */
  principals?: PrincipalDirectory;
}

export { DEFAULT_POLICY_VERSION };

export function createControlPlaneService(deps: ControlPlaneServiceDeps): ControlPlane {
  const decider = deps.policies?.decider ?? deps.decider ?? new StatementDecider();
  const logger = deps.logger ?? silentLogger;

  async function admit(request: OpenSessionRequest): Promise<OpenSessionResponse> {
    const claims = await deps.verifier.verify(request.token);
    const now = deps.now();
    // The verifier tolerates a little clock skew on exp; a session would end the moment it opened.
    if (claims.expiresAt * 1000 <= now.getTime()) {
      throw new PgWardenError(
        'AUTH_TOKEN_EXPIRED',
        `your token expired at ${new Date(claims.expiresAt * 1000).toISOString()}; get a new one`,
      );
    }
    // Before the checks below: a verified token is news about its principal even when refused.
    const principal = await currentPrincipal(deps.principals, principalFromClaims(claims), now);
    assertStartupUserMatches(principal, request.user);
    const { role, roles } = primaryRole(principal, deps.roles);
    const sessionId = deps.newId();
    // Fail closed: a session that cannot be recorded is not opened.
    await deps.store.put([
      {
        type: 'session_opened',
        eventId: deps.newId(),
        sessionId,
        at: deps.now().toISOString(),
        principal: principal.name,
        subject: principal.subject,
        issuer: principal.issuer,
        tokenId: principal.tokenId,
        groups: principal.groups,
        roles,
        role,
        actor: principal.actor,
        database: request.database,
        applicationName: request.applicationName,
        clientAddress: request.clientAddress,
        proxyId: request.proxyId,
      },
    ]);
    return { sessionId, principal, role, roles };
  }

  /** See SessionCheckRequest: only the directory knows more than the session's own token. */
  async function checkSession(request: SessionCheckRequest): Promise<SessionCheckResponse> {
    const known = await deps.principals?.get(request);
    if (known === undefined) return { status: 'active' };
    if (known.disabled !== undefined) {
      const because = known.disabled.reason ? ` (${known.disabled.reason})` : '';
      return {
        status: 'ended',
        reason: `${known.name}'s access through pgwarden was disabled on ${known.disabled.at}${because}`,
      };
    }
    if (request.groupsAsOf !== undefined && known.groupsAsOf <= request.groupsAsOf)
      return { status: 'active' };
    const roles = rolesForGroups(known.groups, deps.roles);
    if (!roles.includes(request.role)) {
      return {
        status: 'ended',
        reason: `${known.name} is no longer in a group that grants the role "${request.role}" (groups as of ${known.groupsAsOf}: ${known.groups.join(', ') || 'none'})`,
      };
    }
    return { status: 'active', groups: known.groups, roles, groupsAsOf: known.groupsAsOf };
  }

  /** Best effort: losing this record must not turn an auth error into a store error. */
  async function recordAuthFailure(request: OpenSessionRequest, failure: PgWardenError): Promise<void> {
    try {
      await deps.store.put([
        {
          type: 'auth_failed',
          eventId: deps.newId(),
          at: deps.now().toISOString(),
          user: request.user,
          database: request.database,
          applicationName: request.applicationName,
          clientAddress: request.clientAddress,
          code: failure.code,
          message: failure.message,
          proxyId: request.proxyId,
        },
      ]);
    } catch (error) {
      logger.warn('could not record a failed login', { code: failure.code, error: String(error) });
    }
  }

  return {
    async openSession(request) {
      try {
        return await admit(request);
      } catch (error) {
        if (isPgWardenError(error) && isAuthenticationCode(error.code))
          await recordAuthFailure(request, error);
        throw error;
      }
    },

    checkSession,

    currentPolicyVersion: () => decider.policyVersion,

    decide(request: DecisionRequest): Decision | Promise<Decision> {
      const loading = deps.policies?.ready();
      return loading === undefined ? decider.decide(request) : loading.then(() => decider.decide(request));
    },

    async ingest(events) {
      // In-process callers skip the HTTP validators, so the use case checks its own input.
      await deps.store.put(auditEvents(events, 'events'));
    },
  };
}
