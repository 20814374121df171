/**
 * From a policy decision to what the Decision carries for masking: the masks that apply, the content
 * detectors, and — when the statement uses a masked column where it cannot be masked — a refusal
 * (deny, or require_approval when the mask rule says so) naming the column and the reason.
 *
 * Which masks apply: every mask rule before the deciding rule whose session matchers (principals,
 * groups, roles, databases) match, whether or not the statement text names its columns. Masking is
 * done by column identity on the wire, so `select * from customers` and a view exposing `ssn` under
 * another name are masked although the SQL never says `ssn`. A mask rule's statement matchers
 * (columns, relations, kinds…) therefore do not narrow it: `mask.columns` says what is masked.
 */
import type { Decision, DecisionDetectors, DecisionMask, SessionContext } from '../control-plane.ts';
import type { PolicyDecision } from '../policy/evaluate.ts';
import { DEFAULT_APPROVAL_TIMEOUT_SECONDS, type Policy, type PolicyRule } from '../policy/model.ts';
import { type ColumnPattern, columnMatches, compileColumn } from '../policy/names.ts';
import { DEFAULT_DETECTOR_METHOD, DEFAULT_DETECTORS } from './model.ts';
import type { StatementUses, ValueUse, ValueUseKind } from './sensitive-use.ts';

export type MaskingFields = Pick<Decision, 'masks' | 'detectors'>;

export interface UnmaskableRefusal {
  action: 'deny' | 'require_approval';
  ruleId: string;
  reason: string;
  approval?: { approvers: string; timeoutSeconds: number; channel?: string };
}

/** The mask rules that apply to a session for a statement decided by `decision`. */
export function applicableMaskRules(
  policy: Policy,
  decision: Pick<PolicyDecision, 'matched'>,
  session: SessionContext,
): PolicyRule[] {
  // the last deciding rule over the message's statements bounds the search, as in evaluation
  let bound = 0;
  for (const s of decision.matched.statements) {
    // a 'mask' statement was allowed by `decidedBy`; mask rules after that one did not apply to it
    const decider = s.action === 'mask' ? (s.decidedBy ?? 'default') : s.ruleId;
    const index =
      decider === 'default' ? policy.rules.length : policy.rules.findIndex((r) => r.id === decider);
    bound = Math.max(bound, index < 0 ? policy.rules.length : index);
  }
  if (decision.matched.statements.length === 0) bound = policy.rules.length;
  return policy.rules
    .slice(0, bound + 1)
    .filter((r) => r.action === 'mask' && r.mask !== undefined && sessionMatches(r, session));
}

function sessionMatches(rule: PolicyRule, session: SessionContext): boolean {
  const m = rule.match;
  if (m.principals && !m.principals.some((p) => p.toLowerCase() === session.principal.name.toLowerCase()))
    return false;
  if (m.groups && !session.principal.groups.some((g) => m.groups?.includes(g))) return false;
  if (m.roles && !m.roles.includes(session.role) && !session.roles.some((r) => m.roles?.includes(r)))
    return false;
  if (m.databases && !m.databases.includes(session.database)) return false;
  return true;
}

export function decisionMasks(rules: PolicyRule[]): DecisionMask[] {
  return rules.map((r) => ({
    ruleId: r.id,
    columns: r.mask?.columns ?? ['*'],
    method: r.mask?.method ?? 'redact',
  }));
}

/** The policy's detectors, or the defaults when it does not say; undefined when turned off. */
export function decisionDetectors(policy: Policy): DecisionDetectors | undefined {
  const enabled = policy.detectors?.enabled ?? DEFAULT_DETECTORS;
  if (enabled.length === 0) return undefined;
  return { enabled: [...enabled], method: policy.detectors?.method ?? DEFAULT_DETECTOR_METHOD };
}

// ── unmaskable uses ──────────────────────────────────────────────────────────────────────────────

const compiledRules = new WeakMap<PolicyRule, ColumnPattern[]>();

function patternsOf(rule: PolicyRule): ColumnPattern[] {
  let patterns = compiledRules.get(rule);
  if (!patterns) {
    // a pattern that does not compile cannot come out of a validated policy: match everything
    patterns = (rule.mask?.columns ?? ['*']).map(
      (c) => compileColumn(c) ?? (compileColumn('*') as ColumnPattern),
    );
    compiledRules.set(rule, patterns);
  }
  return patterns;
}

const WHY: Record<Exclude<ValueUseKind, 'identity' | 'predicate'>, string> = {
  expression: 'inside an expression, function call, cast or aggregate, whose result cannot be masked',
  whole_row: 'through a whole-row reference, which cannot be masked column by column',
  no_identity:
    'in a result that carries no column identity (UNION / INTERSECT / EXCEPT, COPY … TO, a subquery or a function), so it cannot be masked',
  stored:
    'to copy its values into a table, view or another column, or to send them out through a notification, large object or setting, where they would no longer be masked',
  converted:
    'inside a cast or conversion, whose error message would print the value; compare it without converting it',
};

/**
 * The first use of a masked column that cannot be masked, as a refusal; undefined when every use is
 * fine. `uses` undefined (the parser rejected the message) is left to the policy, which denies it.
 */
export function unmaskableRefusal(
  uses: StatementUses | undefined,
  rules: PolicyRule[],
): UnmaskableRefusal | undefined {
  if (!uses || rules.length === 0) return undefined;
  for (const use of uses.uses) {
    if (use.kind === 'identity') continue;
    for (const rule of rules) {
      if (use.kind === 'predicate' && rule.mask?.allowInPredicates !== false) continue;
      const hit = matchingPattern(use, rule);
      if (hit !== undefined) return refusal(rule, use, hit);
    }
  }
  if (uses.unsure) {
    const rule = rules[0] as PolicyRule;
    return refusal(rule, undefined, uses.unsure);
  }
  return undefined;
}

function matchingPattern(use: ValueUse, rule: PolicyRule): string | undefined {
  for (const pattern of patternsOf(rule))
    for (const origin of use.origins) if (columnMatches(pattern, origin, 'may')) return pattern.text;
  return undefined;
}

function refusal(rule: PolicyRule, use: ValueUse | undefined, detail: string): UnmaskableRefusal {
  let reason: string;
  if (!use) reason = `masked columns (rule "${rule.id}") cannot be checked in this statement: ${detail}`;
  else if (use.kind === 'predicate')
    reason = `"${use.written}" may be the masked column ${detail} (rule "${rule.id}"), which this policy does not allow in WHERE, JOIN, GROUP BY or ORDER BY`;
  else if (use.kind === 'whole_row')
    reason = `"${use.written}" is a whole row that may contain the masked column ${detail} (rule "${rule.id}"), used ${WHY.whole_row}; select the columns themselves`;
  else
    reason = `"${use.written}" may be the masked column ${detail} (rule "${rule.id}"), used ${WHY[use.kind as keyof typeof WHY]}; select the column itself to get it masked`;
  if (rule.mask?.unmaskable === 'require_approval') {
    return {
      action: 'require_approval',
      ruleId: rule.id,
      reason,
      approval: {
        approvers: rule.mask.approvers ?? 'reviewers',
        timeoutSeconds: rule.mask.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
        ...(rule.mask.channel !== undefined && { channel: rule.mask.channel }),
      },
    };
  }
  return { action: 'deny', ruleId: rule.id, reason };
}

/**
 * The Decision with masking applied: masks and detectors on allow and require_approval, or the
 * refusal of an unmaskable use when it is more restrictive than what the policy decided.
 */
export function withMasking(
  base: Decision,
  policy: Policy,
  policyDecision: Pick<PolicyDecision, 'matched'>,
  session: SessionContext,
  uses: () => StatementUses | undefined,
): Decision {
  if (base.action === 'deny') return base;
  const rules = applicableMaskRules(policy, policyDecision, session);
  const refused = unmaskableRefusal(rules.length > 0 ? uses() : undefined, rules);
  if (refused?.action === 'deny') {
    const { approval: _approval, ...rest } = base;
    return { ...rest, action: 'deny', ruleId: refused.ruleId, reason: refused.reason };
  }
  const detectors = decisionDetectors(policy);
  const masking: MaskingFields = {
    // an approved statement runs with the same masks
    ...(rules.length > 0 && { masks: decisionMasks(rules) }),
    ...(detectors && { detectors }),
  };
  if (refused && base.action === 'allow') {
    return {
      ...base,
      action: 'require_approval',
      ruleId: refused.ruleId,
      reason: refused.reason,
      ...(refused.approval && { approval: refused.approval }),
      ...masking,
    };
  }
  return { ...base, ...masking };
}
