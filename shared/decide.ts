/**
 * The statement decision: the SQL is analysed with PostgreSQL's own parser and the policy is
 * evaluated over that analysis. Pure apart from a bounded cache of analyses by exact text (the
 * parse is the expensive part, and extended-protocol clients repeat the same text), so the proxy
 * can run it in-process without a round trip and the API runs exactly the same code.
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

export const DEFAULT_POLICY_VERSION = DEFAULT_POLICY.version;

export class StatementDecider {
  private readonly analyses = new Map<string, SqlAnalysis>();

  constructor(
    private readonly policy: Policy = DEFAULT_POLICY,
    private readonly cacheSize = 10_000,
  ) {}

  get policyVersion(): string {
    return this.policy.version;
  }

  decide(request: DecisionRequest): Decision {
    const decision = evaluatePolicy(this.policy, this.analyse(request.statement.text), request.session);
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

  private analyse(text: string): SqlAnalysis {
    let analysis = this.analyses.get(text);
    if (analysis === undefined) {
      analysis = analyzeSql(text);
      // Whole-cache reset keeps the bound without per-hit bookkeeping on the hot path.
      if (this.analyses.size >= this.cacheSize) this.analyses.clear();
      this.analyses.set(text, analysis);
    }
    return analysis;
  }
}
