/**
 * The approvals HTTP API (contract in /shared/approvals.ts). The proxy's routes take its AWS
 * identity (proxy-auth.ts); people's routes take their OIDC token. Deciding needs membership of the approval's own
 * approver groups (checked by the use case, so Slack and HTTP apply the same rules); listing needs
 * the reviewers group.
 */
import type { Context, Hono, MiddlewareHandler } from 'hono';
import {
  type ApprovalParam,
  type ApprovalParams,
  MAX_PARAM_CHARS,
  MAX_SHOWN_PARAMS,
} from '../../../shared/approvals/params.ts';
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
import type { Principal } from '../../../shared/identity.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import { isSlackChannel } from '../../../shared/slack-channel.ts';
import { jsonBody } from '../app.ts';
import type { ApprovalsService } from '../approvals-service.ts';
import { requireUser, userOf, verifiedCaller } from '../auth.ts';
import { type ProxyAuth, requireProxy } from '../proxy-auth.ts';
import { decisionRequest, parse } from '../validate.ts';

export interface ApprovalRoutesDeps {
  approvals: ApprovalsService;
  verifier: TokenVerifier;
  proxyAuth: ProxyAuth;
  /** groups that may list approvals */
  reviewers: readonly string[];
  /**
   * Each caller's token updates it (so their Slack clicks can be mapped), and what it knows now
   * (disabled, groups removed since the token) applies to the call
   */
  principals?: PrincipalDirectory;
  now: () => Date;
  logger: Logger;
}

const MAX_ID_LENGTH = 200;

export function approvalRoutes(deps: ApprovalRoutesDeps): (app: Hono) => void {
  return (app) => {
    const proxyOnly = requireProxy(deps.proxyAuth);
    const current = { ...(deps.principals && { principals: deps.principals }), now: deps.now };
    const reviewer = requireUser(deps.verifier, deps.reviewers, 'list approvals', current);
    const person = requirePerson(deps.verifier, current);

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

    app.get('/v1/approvals', reviewer, async (c) => {
      const status = c.req.query('status') ?? 'pending';
      if (status !== 'pending') throw new PgWardenError('BAD_REQUEST', 'status must be pending');
      return c.json({ approvals: await deps.approvals.listPending() });
    });

    app.get('/v1/approvals/:id', reviewer, async (c) => {
      return c.json({ approval: await deps.approvals.get(approvalId(c)) });
    });

    app.post('/v1/approvals/:id/approve', person, async (c) => {
      const approval = await deps.approvals.decide(approvalId(c), decider(userOf(c)), { verdict: 'approve' });
      return c.json({ approval });
    });

    app.post('/v1/approvals/:id/deny', person, async (c) => {
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
    issuer: principal.issuer,
    subject: principal.subject,
    // an email verified earlier for this (issuer, subject) also counts: it only ever refuses more
    ...((principal.email ?? principal.knownEmail) === undefined
      ? {}
      : { email: principal.email ?? principal.knownEmail }),
    groups: principal.groups,
    actor: principal.actor,
    via: 'api',
  };
}

/** Any person with a verified token; what they may decide is the approval's business. */
function requirePerson(
  verifier: TokenVerifier,
  current: Parameters<typeof verifiedCaller>[2],
): MiddlewareHandler {
  return async (c, next) => {
    c.set('principal' as never, (await verifiedCaller(c, verifier, current)) as never);
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
  const params = statementParams((body['statement'] as Record<string, unknown>)['params']);
  return {
    session,
    statement: { text: statement.text, protocol: statement.protocol, ...(params && { params }) },
    decision: decision(body['decision']),
  };
}

const HASH = /^[0-9a-f]{64}$/;
const PARAM_FIELDS = new Set(['value', 'format', 'type', 'masked', 'truncated']);

/** statement.params: the values of the execution asked for, as the proxy rendered them. */
function statementParams(value: unknown): ApprovalParams | undefined {
  if (value === undefined) return undefined;
  const bad = (expectation: string) => new PgWardenError('BAD_REQUEST', `statement.params ${expectation}`);
  if (!isObject(value)) throw bad('must be an object');
  const { count, values, hash } = value;
  if (typeof hash !== 'string' || !HASH.test(hash)) throw bad('.hash must be 64 lowercase hex digits');
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > 65_535)
    throw bad('.count must be an integer from 0 to 65535');
  if (!Array.isArray(values) || values.length > Math.min(count, MAX_SHOWN_PARAMS))
    throw bad(`.values must be a list of at most min(count, ${MAX_SHOWN_PARAMS}) values`);
  return { count, hash, values: values.map((v, i) => shownParam(v, `.values[${i}]`, bad)) };
}

function shownParam(value: unknown, at: string, bad: (expectation: string) => PgWardenError): ApprovalParam {
  if (!isObject(value) || Object.keys(value).some((k) => !PARAM_FIELDS.has(k)))
    throw bad(`${at} is not a parameter`);
  const { value: shown, format, type, masked, truncated } = value;
  const short = (v: unknown, max: number) => typeof v === 'string' && v.length <= max;
  if (shown !== null && !short(shown, MAX_PARAM_CHARS))
    throw bad(`${at}.value must be null or a short string`);
  if (format !== 'text' && format !== 'binary') throw bad(`${at}.format must be text or binary`);
  if (type !== undefined && !short(type, 64)) throw bad(`${at}.type must be a short string`);
  if (masked !== undefined && !short(masked, 200)) throw bad(`${at}.masked must be a short string`);
  if (truncated !== undefined && truncated !== true) throw bad(`${at}.truncated must be true when present`);
  return {
    value: shown as string | null,
    format,
    ...(type === undefined ? {} : { type: type as string }),
    ...(masked === undefined ? {} : { masked: masked as string }),
    ...(truncated === true ? { truncated } : {}),
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
