/**
 * The approvals HTTP API (contract in /shared/approvals.ts). The proxy's routes take its AWS
 * identity (proxy-auth.ts); people's routes take their OIDC token. Deciding needs membership of the approval's own
 * approver groups (checked by the use case, so Slack and HTTP apply the same rules); listing needs
 * the reviewers group.
 */
import type { Context, Hono, MiddlewareHandler } from 'hono';
import type { PrincipalDirectory } from '../../../shared/approvals/ports.ts';
import {
  type ApprovalDecider,
  type ApprovalExecutionReport,
  type CreateApprovalRequest,
  MAX_DENY_REASON_LENGTH,
  MAX_WAIT_MS,
} from '../../../shared/approvals.ts';
import type { Decision } from '../../../shared/control-plane.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import { type Principal, principalFromClaims } from '../../../shared/identity.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import { isSlackChannel } from '../../../shared/slack-channel.ts';
import { jsonBody } from '../app.ts';
import type { ApprovalsService } from '../approvals-service.ts';
import { requireUser, userOf } from '../auth.ts';
import { type ProxyAuth, requireProxy } from '../proxy-auth.ts';
import { rememberPrincipal } from '../remember-principal.ts';
import { decisionRequest, parse } from '../validate.ts';

export interface ApprovalRoutesDeps {
  approvals: ApprovalsService;
  verifier: TokenVerifier;
  proxyAuth: ProxyAuth;
  /** groups that may list approvals */
  reviewers: readonly string[];
  /** remembers the people who call, so their Slack clicks can be mapped to their groups */
  principals?: PrincipalDirectory;
  now: () => Date;
  logger: Logger;
}

const MAX_ID_LENGTH = 200;

export function approvalRoutes(deps: ApprovalRoutesDeps): (app: Hono) => void {
  return (app) => {
    const proxyOnly = requireProxy(deps.proxyAuth);
    const reviewer = requireUser(deps.verifier, deps.reviewers, 'list approvals');
    const person = requirePerson(deps.verifier);
    const remember = rememberCaller(deps);

    app.post('/v1/approvals', proxyOnly, async (c) => {
      const approval = await deps.approvals.request(createRequest(await jsonBody(c)));
      return c.json({ approval });
    });

    app.get('/v1/approvals/:id/wait', proxyOnly, async (c) => {
      const timeoutMs = waitTimeout(c.req.query('timeoutMs'));
      // A proxy that gave up (dropped the request) must not have the one use taken on its behalf.
      const approval = await deps.approvals.wait(approvalId(c), timeoutMs, c.req.raw.signal);
      return c.json({ approval });
    });

    app.post('/v1/approvals/:id/executed', proxyOnly, async (c) => {
      const approval = await deps.approvals.reportExecution(
        approvalId(c),
        executionReport(await jsonBody(c)),
      );
      return c.json({ approval });
    });

    app.get('/v1/approvals', reviewer, remember, async (c) => {
      const status = c.req.query('status') ?? 'pending';
      if (status !== 'pending') throw new PgWardenError('BAD_REQUEST', 'status must be pending');
      return c.json({ approvals: await deps.approvals.listPending() });
    });

    app.get('/v1/approvals/:id', reviewer, remember, async (c) => {
      return c.json({ approval: await deps.approvals.get(approvalId(c)) });
    });

    app.post('/v1/approvals/:id/approve', person, remember, async (c) => {
      const approval = await deps.approvals.decide(approvalId(c), decider(userOf(c)), { verdict: 'approve' });
      return c.json({ approval });
    });

    app.post('/v1/approvals/:id/deny', person, remember, async (c) => {
      const reason = denyReason(await optionalJsonBody(c));
      const approval = await deps.approvals.decide(approvalId(c), decider(userOf(c)), {
        verdict: 'deny',
        ...(reason === undefined ? {} : { reason }),
      });
      return c.json({ approval });
    });
  };
}

export function decider(principal: Principal): ApprovalDecider {
  return {
    name: principal.name,
    ...(principal.email === undefined ? {} : { email: principal.email }),
    subject: principal.subject,
    groups: principal.groups,
    actor: principal.actor,
    via: 'api',
  };
}

/** Any person with a verified token; what they may decide is the approval's business. */
function requirePerson(verifier: TokenVerifier): MiddlewareHandler {
  return async (c, next) => {
    const token = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '')?.[1];
    if (token === undefined) {
      throw new PgWardenError(
        'AUTH_TOKEN_MISSING',
        'send your OIDC token as "Authorization: Bearer <token>" (npm run -s token -- EMAIL --groups ... locally)',
      );
    }
    c.set('principal' as never, principalFromClaims(await verifier.verify(token)) as never);
    await next();
  };
}

/** Best effort: the directory only helps Slack; it must never fail the caller's request. */
function rememberCaller(deps: ApprovalRoutesDeps): MiddlewareHandler {
  return async (c, next) => {
    await rememberPrincipal(deps.principals, userOf(c), deps.now, deps.logger);
    await next();
  };
}

function approvalId(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (id === '' || id.length > MAX_ID_LENGTH)
    throw new PgWardenError('BAD_REQUEST', 'the approval id is not valid');
  return id;
}

function waitTimeout(text: string | undefined): number {
  if (text === undefined) return MAX_WAIT_MS;
  const ms = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(ms)) {
    throw new PgWardenError('BAD_REQUEST', `timeoutMs must be an integer from 0 to ${MAX_WAIT_MS}`);
  }
  return Math.min(ms, MAX_WAIT_MS);
}

async function optionalJsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new PgWardenError('BAD_REQUEST', 'the body must be valid JSON');
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function denyReason(body: unknown): string | undefined {
  if (!isObject(body))
    throw new PgWardenError('BAD_REQUEST', 'the body must be an object like {"reason": "…"}');
  const reason = body['reason'];
  if (reason === undefined || reason === null) return undefined;
  if (typeof reason !== 'string' || reason.length > MAX_DENY_REASON_LENGTH) {
    throw new PgWardenError(
      'BAD_REQUEST',
      `reason must be a string of at most ${MAX_DENY_REASON_LENGTH} characters`,
    );
  }
  return reason;
}

function executionReport(body: unknown): ApprovalExecutionReport {
  if (!isObject(body)) throw new PgWardenError('BAD_REQUEST', 'the body must be an object');
  const { commandTag, rows, error } = body;
  if (commandTag !== undefined && typeof commandTag !== 'string')
    throw new PgWardenError('BAD_REQUEST', 'commandTag must be a string');
  if (rows !== undefined && (typeof rows !== 'number' || !Number.isSafeInteger(rows) || rows < 0))
    throw new PgWardenError('BAD_REQUEST', 'rows must be an integer ≥ 0');
  if (error !== undefined && typeof error !== 'string')
    throw new PgWardenError('BAD_REQUEST', 'error must be a string');
  return {
    ...(commandTag === undefined ? {} : { commandTag: commandTag.slice(0, 200) }),
    ...(rows === undefined ? {} : { rows }),
    ...(error === undefined ? {} : { error: error.slice(0, 1000) }),
  };
}

/** POST /v1/approvals: the decision request's own validator, plus the decision that asked for approval. */
function createRequest(body: unknown): CreateApprovalRequest {
  if (!isObject(body)) throw new PgWardenError('BAD_REQUEST', 'the body must be an object');
  const { session, statement } = parse(decisionRequest, {
    session: body['session'],
    statement: body['statement'],
  });
  return {
    session,
    statement: { text: statement.text, protocol: statement.protocol },
    decision: decision(body['decision']),
  };
}

function decision(value: unknown): Decision {
  if (!isObject(value)) throw new PgWardenError('BAD_REQUEST', 'decision must be an object');
  const bad = (field: string, expectation: string) =>
    new PgWardenError('BAD_REQUEST', `decision.${field} must be ${expectation}`);
  const { action, ruleId, reason, policyVersion, approval, fingerprint } = value;
  if (action !== 'require_approval') throw bad('action', 'require_approval');
  if (typeof ruleId !== 'string' || ruleId === '') throw bad('ruleId', 'a non-empty string');
  if (typeof policyVersion !== 'string') throw bad('policyVersion', 'a string');
  if (reason !== undefined && typeof reason !== 'string') throw bad('reason', 'a string');
  if (fingerprint !== undefined && typeof fingerprint !== 'string') throw bad('fingerprint', 'a string');
  let hold: Decision['approval'];
  if (approval !== undefined) {
    if (!isObject(approval)) throw bad('approval', 'an object');
    const { approvers, timeoutSeconds, channel } = approval;
    if (typeof approvers !== 'string' || approvers === '')
      throw bad('approval.approvers', 'a non-empty string');
    if (
      typeof timeoutSeconds !== 'number' ||
      !Number.isInteger(timeoutSeconds) ||
      timeoutSeconds < 1 ||
      timeoutSeconds > 86_400
    )
      throw bad('approval.timeoutSeconds', 'an integer from 1 to 86400');
    if (channel !== undefined && (typeof channel !== 'string' || !isSlackChannel(channel)))
      throw bad('approval.channel', 'a Slack channel ID or name');
    hold = { approvers, timeoutSeconds, ...(channel === undefined ? {} : { channel }) };
  }
  return {
    action,
    ruleId,
    policyVersion,
    ...(reason === undefined ? {} : { reason }),
    ...(fingerprint === undefined ? {} : { fingerprint }),
    ...(hold === undefined ? {} : { approval: hold }),
  };
}
