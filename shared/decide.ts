/**
 * The statement decision: the SQL is analysed with PostgreSQL's own parser and the policy is
 * evaluated over that analysis. Decisions are cached by the statement's literal-insensitive shape
 * (or its exact text when the shape cannot be taken safely) and by everything about the session
 * that a policy can read, so repeated statements skip the parse. Pure apart from those bounded
 * caches: the proxy runs it in-process without a round trip and the API runs exactly the same code.
 *
 * `mask` decisions are allowed and carry the masks that apply to the session (masking/policy-masks.ts);
 * a masked column used where the wire cannot mask it (an expression, a whole row, UNION, COPY …) turns
 * the decision into a deny (or require_approval) naming the column. The masks depend on the session,
 * which is part of the cache key.
 */
import type { Decision, DecisionRequest, SessionContext } from './control-plane.ts';
import { throughPrepared } from './decide-prepared.ts';
import { withMasking } from './masking/policy-masks.ts';
import { collectValueUses } from './masking/sensitive-use.ts';
import { DEFAULT_POLICY } from './policy/default-policy.ts';
import { evaluatePolicy, type PolicyDecision } from './policy/evaluate.ts';
import { gatewayRefusal, readsLiteralValues } from './policy/gateway-refusals.ts';
import { DEFAULT_APPROVAL_TIMEOUT_SECONDS, type Policy } from './policy/model.ts';
import { analyzeSql } from './sql/analyze.ts';
import type { SqlAnalysis } from './sql/facts.ts';
import { literalInsensitiveKey } from './sql/literal-key.ts';

export const DEFAULT_POLICY_VERSION = DEFAULT_POLICY.version;

export class StatementDecider {
  private readonly analyses = new Map<string, SqlAnalysis>();
  /**
   * By session key, then by statement shape, so only the shape is hashed per statement. Holds the
   * current policy's decisions only: setPolicy empties it.
   */
  private readonly decisions = new Map<string, Map<string, Decision>>();
  /** decisions cached over all sessions, bounded by cacheSize */
  private cachedDecisions = 0;
  /** per session object; recomputed when a re-check replaced its principal or roles */
  private readonly sessionKeys = new WeakMap<
    SessionContext,
    { principal: SessionContext['principal']; roles: readonly string[]; key: string }
  >();
  /** shapes whose decision reads a literal (SET client_encoding = '…'): decided by exact text */
  private readonly literalShapes = new Set<string>();

  constructor(
    private policy: Policy = DEFAULT_POLICY,
    private readonly cacheSize = 10_000,
  ) {}

  get policyVersion(): string {
    return this.policy.version;
  }

  get currentPolicy(): Policy {
    return this.policy;
  }

  /**
   * Swaps the policy at once (hot reload): the next decision uses it. Cached decisions are dropped
   * here (the policy changes nowhere else), so no decision of the old policy is served again.
   * Analyses do not depend on the policy and are kept.
   */
  setPolicy(policy: Policy): void {
    if (policy === this.policy) return;
    this.policy = policy;
    this.decisions.clear();
    this.cachedDecisions = 0;
  }

  decide(request: DecisionRequest): Decision {
    const { text } = request.statement;
    // \u0001 keeps exact texts and shapes apart; \u0000 cannot occur in SQL text or names.
    let shape = literalInsensitiveKey(text) ?? `\u0001${text}`;
    if (this.literalShapes.has(shape)) shape = `\u0001${text}`;
    const sessionKey = this.sessionKey(request.session);
    let forSession = this.decisions.get(sessionKey);
    let decision = forSession?.get(shape);
    if (decision === undefined) {
      const analysis = this.analyse(shape, text);
      if (shape[0] !== '\u0001' && readsLiteralValues(analysis)) {
        // the gateway reads this statement's value: the decision holds for this exact text only
        if (this.literalShapes.size >= this.cacheSize) this.literalShapes.clear();
        this.literalShapes.add(shape);
        shape = `\u0001${text}`;
      }
      decision = Object.freeze(describe(this.evaluate(request, analysis), analysis));
      // Whole-cache reset keeps the bound without per-hit bookkeeping on the hot path.
      if (this.cachedDecisions >= this.cacheSize) {
        this.decisions.clear();
        this.cachedDecisions = 0;
        forSession = undefined;
      }
      if (forSession === undefined) {
        forSession = new Map();
        this.decisions.set(sessionKey, forSession);
      }
      forSession.set(shape, decision);
      this.cachedDecisions++;
    }
    // EXECUTE of a statement prepared in an earlier message: decided through what it runs (rare).
    return decision.executes === undefined ? decision : throughPrepared(this, request, decision);
  }

  /**
   * Everything evaluation reads of the session. The principal is its identity and verified emails,
   * never its display name: two principals can show the same name (a subject that looks like
   * another person's email) and must never share decisions.
   */
  private sessionKey(s: SessionContext): string {
    const known = this.sessionKeys.get(s);
    if (known !== undefined && known.principal === s.principal && known.roles === s.roles) return known.key;
    const p = s.principal;
    const key = JSON.stringify([
      p.issuer,
      p.subject,
      p.email?.toLowerCase() ?? null,
      p.knownEmail?.toLowerCase() ?? null,
      p.groups,
      s.role,
      s.roles,
      s.database,
    ]);
    this.sessionKeys.set(s, { principal: p, roles: s.roles, key });
    return key;
  }

  private evaluate(request: DecisionRequest, analysis: SqlAnalysis): Decision {
    // before any rule: what no policy may allow (a change of a setting the gateway owns)
    const refused = gatewayRefusal(analysis, request.statement.text);
    if (refused) return { action: 'deny', ...refused, policyVersion: this.policy.version };
    const decision = evaluatePolicy(this.policy, analysis, request.session);
    const base: Decision =
      decision.action === 'mask'
        ? { action: 'allow', ruleId: decision.ruleId, policyVersion: decision.policyVersion }
        : {
            action: decision.action,
            ruleId: decision.ruleId,
            ...(decision.reason === undefined ? {} : { reason: decision.reason }),
            policyVersion: decision.policyVersion,
            ...approvalOf(decision),
          };
    // masks and detectors for the results; a masked column used where it cannot be masked is refused
    return withMasking(base, this.policy, decision, request.session, () =>
      collectValueUses(request.statement.text),
    );
  }

  private analyse(shape: string, text: string): SqlAnalysis {
    let analysis = this.analyses.get(shape);
    if (analysis === undefined) {
      analysis = analyzeSql(text);
      remember(this.analyses, shape, analysis, this.cacheSize);
    }
    return analysis;
  }
}

function approvalOf(decision: PolicyDecision): Pick<Decision, 'approval'> {
  if (decision.action !== 'require_approval') return {};
  return {
    approval: {
      approvers: decision.approvers ?? 'reviewers',
      timeoutSeconds: decision.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
      ...(decision.channel !== undefined && { channel: decision.channel }),
    },
  };
}

/**
 * What the audit record and later steps need about the message, added once per cached decision:
 * the parser's fingerprint (computed once per cached analysis), the statement kinds, and the
 * prepared statements it creates or runs.
 */
function describe(decision: Decision, analysis: SqlAnalysis): Decision {
  const kinds = new Set<string>();
  const prepares: string[] = [];
  const executes: string[] = [];
  if (!analysis.parsed) kinds.add('unknown');
  for (const s of analysis.statements) {
    for (const kind of s.kinds) kinds.add(kind);
    if (s.prepared) prepares.push(s.prepared.name);
    if (s.execute && !s.execute.resolved) executes.push(s.execute.name);
  }
  return {
    ...decision,
    fingerprint: analysis.fingerprint,
    kinds: [...kinds],
    ...(prepares.length > 0 && { prepares }),
    ...(executes.length > 0 && { executes }),
  };
}

/** Whole-cache reset keeps the bound without per-hit bookkeeping on the hot path. */
function remember<V>(cache: Map<string, V>, key: string, value: V, size: number): void {
  if (cache.size >= size) cache.clear();
  cache.set(key, value);
}
