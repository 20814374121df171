/**
 * The statement decision: the SQL is analysed with PostgreSQL's own parser and the policy is
 * evaluated over that analysis. Decisions are cached by the statement's literal-insensitive shape
 * (or its exact text when the shape cannot be taken safely) and by everything about the session
 * that a policy can read, so repeated statements skip the parse. Pure apart from those bounded
 * caches: the proxy runs it in-process without a round trip and the API runs exactly the same code.
 *
 * `mask` decisions are allowed and carry the masking rule until in-flight masking exists: the
 * rows then pass unmasked, as before policies existed; deny and require_approval are enforced.
 */
import type { Decision, DecisionRequest } from './control-plane.ts';
import { DEFAULT_POLICY } from './policy/default-policy.ts';
import { evaluatePolicy } from './policy/evaluate.ts';
import type { Policy } from './policy/model.ts';
import { analyzeSql } from './sql/analyze.ts';
import type { SqlAnalysis } from './sql/facts.ts';
import { literalInsensitiveKey } from './sql/literal-key.ts';

export const DEFAULT_POLICY_VERSION = DEFAULT_POLICY.version;

export class StatementDecider {
  private readonly analyses = new Map<string, SqlAnalysis>();
  private readonly decisions = new Map<string, Decision>();

  constructor(
    private readonly policy: Policy = DEFAULT_POLICY,
    private readonly cacheSize = 10_000,
  ) {}

  get policyVersion(): string {
    return this.policy.version;
  }

  decide(request: DecisionRequest): Decision {
    const { text } = request.statement;
    // \u0001 keeps exact texts and shapes apart; \u0000 cannot occur in SQL text or names.
    const shape = literalInsensitiveKey(text) ?? `\u0001${text}`;
    const s = request.session;
    const key = `${shape}\u0000${s.principal.name}\u0000${s.principal.groups.join(',')}\u0000${s.role}\u0000${s.roles.join(',')}\u0000${s.database}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const decision = Object.freeze(this.evaluate(request, shape));
    remember(this.decisions, key, decision, this.cacheSize);
    return decision;
  }

  private evaluate(request: DecisionRequest, shape: string): Decision {
    const decision = evaluatePolicy(
      this.policy,
      this.analyse(shape, request.statement.text),
      request.session,
    );
    if (decision.action === 'mask') {
      return { action: 'allow', ruleId: decision.ruleId, policyVersion: decision.policyVersion };
    }
    return {
      action: decision.action,
      ruleId: decision.ruleId,
      ...(decision.reason === undefined ? {} : { reason: decision.reason }),
      policyVersion: decision.policyVersion,
    };
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

/** Whole-cache reset keeps the bound without per-hit bookkeeping on the hot path. */
function remember<V>(cache: Map<string, V>, key: string, value: V, size: number): void {
  if (cache.size >= size) cache.clear();
  cache.set(key, value);
}
