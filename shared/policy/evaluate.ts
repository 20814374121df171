/**
 * Policy evaluation: a pure function of the policy, the statement analysis and the session.
 *
 * Per statement, rules are tried in order:
 * - the first matching allow, deny or require_approval rule decides the statement;
 * - a matching mask rule does not stop the search: its masks are collected, and apply if the
 *   statement ends up allowed (the action is then 'mask');
 * - no deciding rule: the default action, except that a statement the parser rejected or the
 *   analysis could not fully classify is denied (unknown means deny).
 * A message gets the most restrictive action over its statements (deny > require_approval > mask >
 * allow); the first statement with that action names the rule and reason.
 *
 * List matchers compare differently by action. Deny, require_approval and mask rules match when ANY
 * of the statement's values (kinds, relations, columns, functions, DDL objects) may match a listed
 * pattern. Allow rules match only when the statement has such values and EVERY one of them surely
 * matches a listed pattern: `allow relations: [reports]` never lets through a statement that also
 * touches another table. See names.ts for qualified and unqualified names.
 *
 * Evaluation reads only `policyInput(analysis)`: kinds, DDL objects, relation/column/function names and
 * structural facts, never literal values. The same projection keys the decision cache.
 */
import { createHash } from 'node:crypto';
import type { SessionContext } from '../control-plane.ts';
import { type PrincipalPattern, principalMatches, principalPattern } from '../identity.ts';
import type { ColumnFact, DdlObject, RelationName, SqlAnalysis, StatementKind } from '../sql/facts.ts';
import {
  ACTION_RANK,
  DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  type MaskMethod,
  type Policy,
  type PolicyAction,
  type PolicyFact,
  type PolicyMatch,
  type PolicyRule,
} from './model.ts';
import {
  type Certainty,
  type ColumnPattern,
  columnMatches,
  compileColumn,
  compileQualified,
  functionMatches,
  type QualifiedPattern,
  relationMatches,
} from './names.ts';

// ── what evaluation reads ─────────────────────────────────────────────────────────────────────────

export type PolicyColumn = Pick<ColumnFact, 'name' | 'relation' | 'candidates' | 'opaque'>;

export interface PolicyStatementInput {
  kinds: StatementKind[];
  ddlObjects: DdlObject[];
  relations: RelationName[];
  /** the relations among `relations` that it writes */
  writes: RelationName[];
  columns: PolicyColumn[];
  functions: string[];
  facts: PolicyFact[];
}

/** The part of an analysis that a decision depends on, in a canonical order. */
export interface PolicyInput {
  statements: PolicyStatementInput[];
}

const UNPARSEABLE: PolicyStatementInput = {
  kinds: ['unknown'],
  ddlObjects: [],
  relations: [],
  writes: [],
  columns: [],
  functions: [],
  facts: ['unparseable', 'not_confident'],
};

/** Unique values in a fixed order, so that equal structure gives equal input (and cache key). */
function canonical<T>(values: T[], keyOf: (value: T) => string): T[] {
  const byKey = new Map<string, T>();
  for (const v of values) byKey.set(keyOf(v), v);
  return [...byKey.keys()].sort().map((k) => byKey.get(k) as T);
}

const sameString = (s: string) => s;
// NUL cannot occur in a name
const relationKey = (r: RelationName) => (r.schema === undefined ? r.name : `${r.schema}\u0000${r.name}`);
const columnKey = (c: PolicyColumn) =>
  `${c.name}\u0000${c.relation ? relationKey(c.relation) : ''}\u0000${c.candidates?.map(relationKey).join('\u0001') ?? ''}\u0000${c.opaque ? 1 : 0}`;

const inputs = new WeakMap<SqlAnalysis, PolicyInput>();

/** The policy input of an analysis (computed once per analysis object). */
export function policyInput(analysis: SqlAnalysis): PolicyInput {
  let input = inputs.get(analysis);
  if (!input) {
    input = project(analysis);
    inputs.set(analysis, input);
  }
  return input;
}

function project(analysis: SqlAnalysis): PolicyInput {
  if (!analysis.parsed) return { statements: [UNPARSEABLE] };
  const many = analysis.statements.length > 1;
  return {
    statements: analysis.statements.map((s) => {
      const facts: PolicyFact[] = [];
      if (s.noWhere) facts.push('no_where');
      if (s.dataModifyingCte) facts.push('data_modifying_cte');
      if (s.copy?.program) facts.push('copy_program');
      if (s.copy && !s.copy.program && s.copy.filename !== undefined) facts.push('copy_file');
      if (many) facts.push('multiple_statements');
      if (!s.confident) facts.push('not_confident');
      return {
        kinds: canonical(s.kinds, sameString),
        ddlObjects: canonical(s.ddlObjects, sameString),
        relations: canonical(s.relations.map(relationName), relationKey),
        writes: canonical(s.relations.filter((r) => r.access === 'write').map(relationName), relationKey),
        columns: canonical(s.columns.map(policyColumn), columnKey),
        functions: canonical(s.functions, sameString),
        facts,
      };
    }),
  };
}

function relationName(r: RelationName): RelationName {
  return r.schema === undefined ? { name: r.name } : { schema: r.schema, name: r.name };
}

function policyColumn(c: ColumnFact): PolicyColumn {
  return {
    name: c.name,
    ...(c.relation && { relation: c.relation }),
    ...(c.candidates && { candidates: c.candidates }),
    ...(c.opaque && { opaque: c.opaque }),
  };
}

// ── the decision ──────────────────────────────────────────────────────────────────────────────────

export interface MaskDirective {
  ruleId: string;
  /** column patterns, as in the rule */
  columns: string[];
  method: MaskMethod;
}

/** What the deciding rule matched, for the audit record. */
export interface MatchedFacts {
  /** index of the deciding statement; null when the message holds none */
  statementIndex: number | null;
  /** each statement's own action and rule */
  /**
   * each statement's own action and rule; for 'mask', `decidedBy` is the allow rule (or 'default')
   * that allowed it, which bounds the mask rules that apply (shared/masking/policy-masks.ts)
   */
  statements: Array<{ action: PolicyAction; ruleId: string; decidedBy?: string }>;
  kinds?: string[];
  ddlObjects?: string[];
  relations?: string[];
  writes?: string[];
  columns?: string[];
  functions?: string[];
  facts?: PolicyFact[];
}

/**
 * Decision (control-plane.ts) with 'mask' as a fourth action, plus what an approval or the masking
 * step needs and what matched.
 */
export interface PolicyDecision {
  action: PolicyAction;
  /** the deciding rule; 'default' when none matched */
  ruleId: string;
  reason?: string;
  policyVersion: string;
  /** require_approval */
  approvers?: string;
  timeoutSeconds?: number;
  /** require_approval: the Slack channel the rule names, if any */
  channel?: string;
  /** every mask that applies to the message (non-empty exactly when the action is 'mask') */
  masks: MaskDirective[];
  matched: MatchedFacts;
}

// ── compiled rules ────────────────────────────────────────────────────────────────────────────────

interface CompiledRule {
  rule: PolicyRule;
  certainty: Certainty;
  principals?: PrincipalPattern[];
  groups?: Set<string>;
  roles?: Set<string>;
  databases?: Set<string>;
  kinds?: Set<string>;
  ddlObjects?: Set<string>;
  relations?: QualifiedPattern[];
  writes?: QualifiedPattern[];
  columns?: ColumnPattern[];
  functions?: QualifiedPattern[];
  facts?: Set<string>;
}

/** Compiled once per policy object: treat a Policy as immutable once it has been evaluated. */
const compiledPolicies = new WeakMap<Policy, CompiledRule[]>();

function compiled(policy: Policy): CompiledRule[] {
  let rules = compiledPolicies.get(policy);
  if (!rules) {
    rules = policy.rules.map(compileRule);
    compiledPolicies.set(policy, rules);
  }
  return rules;
}

function compileRule(rule: PolicyRule): CompiledRule {
  const m: PolicyMatch = rule.match;
  const set = (values: string[] | undefined, lower = false) =>
    values && new Set(lower ? values.map((v) => v.toLowerCase()) : values);
  const patterns = <T>(values: string[] | undefined, compile: (text: string) => T | undefined) =>
    values?.map((text) => {
      const pattern = compile(text);
      if (pattern === undefined)
        throw new Error(`rule ${rule.id}: invalid name pattern "${text}" (validate the policy first)`);
      return pattern;
    });
  return {
    rule,
    certainty: rule.action === 'allow' ? 'surely' : 'may',
    principals: patterns(m.principals, principalPattern),
    groups: set(m.groups),
    roles: set(m.roles),
    databases: set(m.databases),
    kinds: set(m.kinds),
    ddlObjects: set(m.ddlObjects),
    relations: patterns(m.relations, compileQualified),
    writes: patterns(m.writes, compileQualified),
    columns: patterns(m.columns, compileColumn),
    functions: patterns(m.functions, compileQualified),
    facts: set(m.facts),
  };
}

function sessionMatches(rule: CompiledRule, session: SessionContext): boolean {
  const principals = rule.principals;
  if (principals) {
    // restrictive rules also catch the person's other tokens (see principalMatches)
    const restrictive = rule.rule.action !== 'allow';
    if (!principals.some((p) => principalMatches(p, session.principal, restrictive))) return false;
  }
  const groups = rule.groups;
  if (groups && !session.principal.groups.some((g) => groups.has(g))) return false;
  const roles = rule.roles;
  if (roles && !roles.has(session.role) && !session.roles.some((r) => roles.has(r))) return false;
  if (rule.databases && !rule.databases.has(session.database)) return false;
  return true;
}

/**
 * One list matcher: 'may' → the values that match (none: no match); 'surely' → all values, when
 * there are some and each one matches.
 */
function listMatch<T>(values: T[], test: (value: T) => boolean, certainty: Certainty): T[] | undefined {
  if (certainty === 'may') {
    const hits = values.filter(test);
    return hits.length > 0 ? hits : undefined;
  }
  return values.length > 0 && values.every(test) ? values : undefined;
}

function nameOf(r: RelationName): string {
  return r.schema === undefined ? r.name : `${r.schema}.${r.name}`;
}

function columnText(c: PolicyColumn): string {
  return c.relation ? `${nameOf(c.relation)}.${c.name}` : c.name;
}

/** What a rule matched in a statement, or undefined when it does not match. */
function statementMatches(
  rule: CompiledRule,
  s: PolicyStatementInput,
): Omit<MatchedFacts, 'statementIndex' | 'statements'> | undefined {
  const c = rule.certainty;
  const out: Omit<MatchedFacts, 'statementIndex' | 'statements'> = {};
  if (rule.kinds) {
    const kinds = rule.kinds;
    const hits = listMatch(s.kinds, (k) => kinds.has(k), c);
    if (!hits) return undefined;
    out.kinds = hits;
  }
  if (rule.ddlObjects) {
    const objects = rule.ddlObjects;
    const hits = listMatch(s.ddlObjects, (o) => objects.has(o), c);
    if (!hits) return undefined;
    out.ddlObjects = hits;
  }
  if (rule.relations) {
    const patterns = rule.relations;
    const hits = listMatch(s.relations, (r) => patterns.some((p) => relationMatches(p, r, c)), c);
    if (!hits) return undefined;
    out.relations = hits.map(nameOf);
  }
  if (rule.writes) {
    const patterns = rule.writes;
    const hits = listMatch(s.writes, (r) => patterns.some((p) => relationMatches(p, r, c)), c);
    if (!hits) return undefined;
    out.writes = hits.map(nameOf);
  }
  if (rule.columns) {
    const patterns = rule.columns;
    const hits = listMatch(s.columns, (col) => patterns.some((p) => columnMatches(p, col, c)), c);
    if (!hits) return undefined;
    out.columns = canonical(hits.map(columnText), sameString);
  }
  if (rule.functions) {
    const patterns = rule.functions;
    const hits = listMatch(s.functions, (f) => patterns.some((p) => functionMatches(p, f, c)), c);
    if (!hits) return undefined;
    out.functions = hits;
  }
  if (rule.facts) {
    const facts = rule.facts;
    // facts are properties, not a list of things the statement touches: any listed one will do
    const hits = s.facts.filter((f) => facts.has(f));
    if (hits.length === 0) return undefined;
    out.facts = hits;
  }
  return out;
}

interface StatementOutcome {
  action: PolicyAction;
  decidedBy?: string;
  ruleId: string;
  reason?: string;
  approvers?: string;
  timeoutSeconds?: number;
  channel?: string;
  masks: MaskDirective[];
  detail: Omit<MatchedFacts, 'statementIndex' | 'statements'>;
}

function decideOne(
  policy: Policy,
  rules: CompiledRule[],
  s: PolicyStatementInput,
  session: SessionContext,
): StatementOutcome {
  const masks: MaskDirective[] = [];
  let firstMask: { rule: PolicyRule; detail: StatementOutcome['detail'] } | undefined;
  for (const compiledRule of rules) {
    if (!sessionMatches(compiledRule, session)) continue;
    const detail = statementMatches(compiledRule, s);
    if (!detail) continue;
    const rule = compiledRule.rule;
    if (rule.action === 'mask') {
      if (rule.mask) masks.push({ ruleId: rule.id, columns: rule.mask.columns, method: rule.mask.method });
      firstMask ??= { rule, detail };
      continue;
    }
    if (rule.action === 'allow' && firstMask) {
      return {
        action: 'mask',
        ruleId: firstMask.rule.id,
        decidedBy: rule.id,
        masks,
        detail: firstMask.detail,
      };
    }
    return { ...outcomeOf(rule.id, rule, rule.action), masks, detail };
  }
  if (s.facts.includes('unparseable') || s.facts.includes('not_confident')) {
    const reason = s.facts.includes('unparseable')
      ? 'the statement could not be parsed, and what cannot be analysed is denied'
      : 'the statement could not be fully analysed, and what cannot be analysed is denied';
    return { action: 'deny', ruleId: 'default', reason, masks: [], detail: { facts: s.facts } };
  }
  const fallback = policy.default;
  if (fallback.action === 'allow' && firstMask) {
    return {
      action: 'mask',
      ruleId: firstMask.rule.id,
      decidedBy: 'default',
      masks,
      detail: firstMask.detail,
    };
  }
  return { ...outcomeOf('default', fallback, fallback.action), masks, detail: {} };
}

function outcomeOf(
  ruleId: string,
  source: { reason?: string; approvers?: string; timeoutSeconds?: number; channel?: string },
  action: Exclude<PolicyAction, 'mask'>,
): Pick<StatementOutcome, 'action' | 'ruleId' | 'reason' | 'approvers' | 'timeoutSeconds' | 'channel'> {
  const label = ruleId === 'default' ? 'the default policy' : `policy rule "${ruleId}"`;
  switch (action) {
    case 'allow':
      return { action, ruleId };
    case 'deny':
      return { action, ruleId, reason: source.reason ?? `denied by ${label}` };
    case 'require_approval': {
      const approvers = source.approvers ?? 'reviewers';
      return {
        action,
        ruleId,
        reason: source.reason ?? `approval by ${approvers} is required by ${label}`,
        approvers,
        timeoutSeconds: source.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
        ...(source.channel !== undefined && { channel: source.channel }),
      };
    }
  }
}

export function evaluatePolicy(
  policy: Policy,
  analysis: SqlAnalysis,
  session: SessionContext,
): PolicyDecision {
  return evaluatePolicyInput(policy, policyInput(analysis), session);
}

/** evaluatePolicy over an already projected analysis. */
export function evaluatePolicyInput(
  policy: Policy,
  input: PolicyInput,
  session: SessionContext,
): PolicyDecision {
  const rules = compiled(policy);
  const outcomes = input.statements.map((s) => decideOne(policy, rules, s, session));
  const statements = outcomes.map((o) => ({
    action: o.action,
    ruleId: o.ruleId,
    ...(o.decidedBy !== undefined && { decidedBy: o.decidedBy }),
  }));
  if (outcomes.length === 0) {
    // an empty message runs nothing; it still gets the default action
    const fallback = policy.default;
    return {
      ...outcomeOf('default', fallback, fallback.action),
      policyVersion: policy.version,
      masks: [],
      matched: { statementIndex: null, statements },
    };
  }
  let index = 0;
  outcomes.forEach((o, i) => {
    if (ACTION_RANK[o.action] > ACTION_RANK[(outcomes[index] as StatementOutcome).action]) index = i;
  });
  const decider = outcomes[index] as StatementOutcome;
  const masks = decider.action === 'mask' ? mergeMasks(outcomes) : [];
  const { detail, masks: _ignored, decidedBy: _decidedBy, ...decision } = decider;
  return {
    ...decision,
    policyVersion: policy.version,
    masks,
    matched: { statementIndex: index, statements, ...detail },
  };
}

function mergeMasks(outcomes: StatementOutcome[]): MaskDirective[] {
  const byRule = new Map<string, MaskDirective>();
  for (const o of outcomes) for (const m of o.masks) byRule.set(m.ruleId, m);
  return [...byRule.values()];
}

/**
 * A key under which a decision may be cached: the same key always yields the same decision. It is
 * built from exactly what evaluation reads (the policy input, the principal's identity, verified
 * emails, groups and roles,
 * the database and the policy version), hashed. It deliberately does not use the parser's
 * fingerprint, which ignores schema names, digits in table names and alias names: two statements
 * with one fingerprint can touch different tables.
 * It covers evaluatePolicy only: the masking check that StatementDecider adds (unmaskable uses,
 * shared/masking/sensitive-use.ts) reads the whole parse tree (`ssn` and `ssn::text` have the same
 * policy input), so a decision with masking must be cached by statement text or shape, as it is.
 */
export function decisionCacheKey(
  analysis: SqlAnalysis,
  session: SessionContext,
  policyVersion: string,
): string {
  return decisionCacheKeyOf(policyInput(analysis), session, policyVersion);
}

export function decisionCacheKeyOf(
  input: PolicyInput,
  session: SessionContext,
  policyVersion: string,
): string {
  const material = JSON.stringify([
    policyVersion,
    session.principal.issuer,
    session.principal.subject,
    session.principal.email?.toLowerCase() ?? null,
    session.principal.knownEmail?.toLowerCase() ?? null,
    [...session.principal.groups].sort(),
    session.role,
    [...session.roles].sort(),
    session.database,
    input.statements,
  ]);
  return createHash('sha256').update(material).digest('base64url');
}
