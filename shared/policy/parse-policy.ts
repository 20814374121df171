/**
 * Reads and validates a policy document (YAML, or JSON, which YAML reads as well). Every problem is
 * reported at once, each with the field's path and, for text, its line and column, so that
 * `policy validate FILE` and `PUT /v1/policies` can say exactly what to fix. Unknown keys are errors:
 * a misspelt matcher must not silently widen a rule.
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { PgWardenError } from '../errors.ts';
import { principalPattern } from '../identity.ts';
import { DEFAULT_DETECTOR_METHOD, DETECTOR_NAMES, type DetectorName } from '../masking/model.ts';
import { isSlackChannel } from '../slack-channel.ts';
import { DDL_OBJECTS, STATEMENT_KINDS } from '../sql/facts.ts';
import {
  type DetectorPolicy,
  MASK_METHODS,
  type MaskSpec,
  POLICY_ACTIONS,
  POLICY_FACTS,
  type Policy,
  type PolicyDefault,
  type PolicyMatch,
  type PolicyRule,
} from './model.ts';
import { compileColumn, compileQualified } from './names.ts';

export interface PolicyIssue {
  /** e.g. `rules[2].match.kinds[0]`; '' for the document itself */
  path: string;
  message: string;
  /** 1-based, when the policy came as text */
  line?: number;
  column?: number;
}

export class PolicyValidationError extends PgWardenError {
  readonly issues: PolicyIssue[];
  constructor(issues: PolicyIssue[]) {
    super('BAD_REQUEST', `invalid policy:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`);
    this.name = 'PolicyValidationError';
    this.issues = issues;
  }
}

export function formatIssue(issue: PolicyIssue): string {
  const where = issue.line === undefined ? '' : `line ${issue.line}, column ${issue.column ?? 1}: `;
  return `${where}${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

export type PolicyCheck = { ok: true; policy: Policy } | { ok: false; issues: PolicyIssue[] };

/** Parses and validates policy text; never throws. */
export function checkPolicyText(text: string): PolicyCheck {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const position = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line: Math.max(line, 1), column: col };
  };
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => ({
        path: '',
        message: e.message.split('\n')[0] ?? e.message,
        ...position(e.pos[0]),
      })),
    };
  }
  const locate = (path: Segment[], key: boolean) => {
    const offset = nodeOffset(doc.contents, path, key);
    return offset === undefined ? {} : position(offset);
  };
  return validate(doc.toJS({ maxAliasCount: 100 }), locate);
}

/** Parses and validates policy text; throws PolicyValidationError listing every problem. */
export function parsePolicy(text: string): Policy {
  const result = checkPolicyText(text);
  if (!result.ok) throw new PolicyValidationError(result.issues);
  return result.policy;
}

/** Validates an already-decoded policy (e.g. a JSON API body or a stored item). */
export function validatePolicy(value: unknown): Policy {
  const result = validate(value, () => ({}));
  if (!result.ok) throw new PolicyValidationError(result.issues);
  return result.policy;
}

// ── validation ───────────────────────────────────────────────────────────────────────────────────

type Segment = string | number;
type Locate = (path: Segment[], key: boolean) => { line?: number; column?: number };
type Obj = Record<string, unknown>;

const TOP_KEYS = ['version', 'description', 'default', 'rules', 'detectors'];
const DEFAULT_KEYS = ['action', 'reason', 'approvers', 'timeoutSeconds', 'channel'];
const RULE_KEYS = [
  'id',
  'description',
  'match',
  'action',
  'reason',
  'approvers',
  'timeoutSeconds',
  'channel',
  'mask',
];
const MATCH_KEYS = [
  'principals',
  'groups',
  'roles',
  'databases',
  'kinds',
  'ddlObjects',
  'relations',
  'writes',
  'columns',
  'functions',
  'facts',
] as const;
const MASK_KEYS = [
  'columns',
  'method',
  'allowInPredicates',
  'unmaskable',
  'approvers',
  'timeoutSeconds',
  'channel',
];
const DETECTOR_KEYS = ['enabled', 'method'];
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;
const MAX_TIMEOUT_SECONDS = 86_400;

function pathText(path: Segment[]): string {
  return path.reduce<string>(
    (text, s) => (typeof s === 'number' ? `${text}[${s}]` : text ? `${text}.${s}` : s),
    '',
  );
}

function isObject(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

class Validator {
  readonly issues: PolicyIssue[] = [];
  constructor(private readonly locate: Locate) {}

  fail(path: Segment[], message: string, atKey = false): undefined {
    this.issues.push({ path: pathText(path), message, ...this.locate(path, atKey) });
    return undefined;
  }

  object(value: unknown, path: Segment[], allowed: readonly string[], what: string): Obj | undefined {
    if (!isObject(value)) return this.fail(path, `${what} must be a mapping (key: value pairs)`);
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        this.fail(
          [...path, key],
          `unknown field "${key}"${suggest(key, allowed)}; expected one of: ${allowed.join(', ')}`,
          true,
        );
      }
    }
    return value;
  }

  string(value: unknown, path: Segment[], what: string): string | undefined {
    if (typeof value === 'string' && value.trim() !== '') return value;
    if (typeof value === 'number')
      return this.fail(path, `${what} must be a string: quote it, e.g. "${value}"`);
    return this.fail(path, `${what} must be a non-empty string`);
  }

  oneOf<T extends string>(
    value: unknown,
    path: Segment[],
    options: readonly T[],
    what: string,
  ): T | undefined {
    if (typeof value === 'string' && (options as readonly string[]).includes(value)) return value as T;
    const shown = typeof value === 'string' ? `"${value}"` : JSON.stringify(value);
    return this.fail(
      path,
      `unknown ${what} ${shown}${typeof value === 'string' ? suggest(value, options) : ''}; expected one of: ${options.join(', ')}`,
    );
  }

  /** A non-empty list of strings (a single string is taken as a list of one). */
  list(
    value: unknown,
    path: Segment[],
    check: (item: string, path: Segment[]) => boolean,
  ): string[] | undefined {
    const items = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(items)) return this.fail(path, 'must be a list, e.g. [a, b]');
    if (items.length === 0)
      return this.fail(path, 'an empty list matches nothing: remove the field to match anything');
    const out: string[] = [];
    items.forEach((item, i) => {
      const itemPath = typeof value === 'string' ? path : [...path, i];
      if (typeof item !== 'string' || item.trim() === '') this.fail(itemPath, 'must be a non-empty string');
      else if (check(item, itemPath)) out.push(item);
    });
    return out.length === items.length ? out : undefined;
  }

  channel(value: unknown, path: Segment[]): string | undefined {
    if (typeof value === 'string' && isSlackChannel(value)) return value;
    return this.fail(
      path,
      'must be a Slack channel ID (C0123ABCD) or name (#db-approvals: lowercase letters, digits, - and _)',
    );
  }

  timeout(value: unknown, path: Segment[]): number | undefined {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_TIMEOUT_SECONDS)
      return value;
    return this.fail(path, `must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`);
  }
}

function validate(value: unknown, locate: Locate): PolicyCheck {
  const v = new Validator(locate);
  const top = v.object(value, [], TOP_KEYS, 'the policy');
  if (!top) return { ok: false, issues: v.issues };
  const version =
    'version' in top ? v.string(top.version, ['version'], 'version') : v.fail([], 'missing field "version"');
  const fallback = 'default' in top ? validateDefault(v, top.default) : v.fail([], 'missing field "default"');
  let rules: PolicyRule[] | undefined;
  if (!('rules' in top)) v.fail([], 'missing field "rules" (use rules: [] for none)');
  else if (!Array.isArray(top.rules)) v.fail(['rules'], 'must be a list of rules');
  else rules = validateRules(v, top.rules);
  const detectors = 'detectors' in top ? validateDetectors(v, top.detectors) : undefined;
  if (v.issues.length > 0 || version === undefined || !fallback || !rules)
    return { ok: false, issues: v.issues };
  return { ok: true, policy: { version, default: fallback, rules, ...(detectors && { detectors }) } };
}

function validateDetectors(v: Validator, value: unknown): DetectorPolicy | undefined {
  const path = ['detectors'];
  const body = v.object(value, path, DETECTOR_KEYS, 'detectors');
  if (!body) return undefined;
  let enabled: DetectorName[] | undefined = [];
  if (!('enabled' in body)) v.fail(path, 'missing field "enabled" (a list of detectors; [] turns them off)');
  else if (Array.isArray(body.enabled) && body.enabled.length === 0) enabled = [];
  else
    enabled = v.list(
      body.enabled,
      [...path, 'enabled'],
      (item, p) => v.oneOf(item, p, DETECTOR_NAMES, 'detector') !== undefined,
    ) as DetectorName[] | undefined;
  const method =
    'method' in body
      ? v.oneOf(body.method, [...path, 'method'], MASK_METHODS, 'mask method')
      : DEFAULT_DETECTOR_METHOD;
  return enabled && method ? { enabled, method } : undefined;
}

function validateDefault(v: Validator, value: unknown): PolicyDefault | undefined {
  const path = ['default'];
  const body = v.object(value, path, DEFAULT_KEYS, 'default');
  if (!body) return undefined;
  if (!('action' in body)) return v.fail(path, 'missing field "action"');
  const action = v.oneOf(
    body.action,
    [...path, 'action'],
    ['allow', 'deny', 'require_approval'] as const,
    'default action',
  );
  if (!action) return undefined;
  const out: PolicyDefault = { action };
  validateOutcome(v, body, path, action, out);
  return out;
}

function validateRules(v: Validator, rules: unknown[]): PolicyRule[] | undefined {
  const seen = new Map<string, number>();
  const out: PolicyRule[] = [];
  rules.forEach((value, index) => {
    const rule = validateRule(v, value, index);
    if (rule) out.push(rule);
    const id = isObject(value) ? value.id : undefined;
    if (typeof id !== 'string') return;
    const first = seen.get(id);
    if (first !== undefined)
      v.fail(['rules', index, 'id'], `duplicate rule id "${id}" (first used by rules[${first}])`);
    else seen.set(id, index);
  });
  return out.length === rules.length ? out : undefined;
}

function validateRule(v: Validator, value: unknown, index: number): PolicyRule | undefined {
  const path: Segment[] = ['rules', index];
  const body = v.object(value, path, RULE_KEYS, 'a rule');
  if (!body) return undefined;
  const before = v.issues.length;
  let id: string | undefined;
  if (!('id' in body)) v.fail(path, 'missing field "id"');
  else if (typeof body.id !== 'string' || !RULE_ID.test(body.id)) {
    v.fail(
      [...path, 'id'],
      'must be letters, digits and _ . : - (starting with a letter or digit), at most 100',
    );
  } else if (body.id === 'default') v.fail([...path, 'id'], '"default" is reserved for the default action');
  else id = body.id;
  let match: PolicyMatch | undefined;
  if (!('match' in body)) v.fail(path, 'missing field "match" (use match: {} to match every statement)');
  else if (body.match === null)
    v.fail([...path, 'match'], 'match is empty (use match: {} to match every statement)');
  else match = validateMatch(v, body.match, [...path, 'match']);
  const action =
    'action' in body ? v.oneOf(body.action, [...path, 'action'], POLICY_ACTIONS, 'action') : undefined;
  if (!('action' in body)) v.fail(path, 'missing field "action"');
  let description: string | undefined;
  if ('description' in body)
    description = v.string(body.description, [...path, 'description'], 'description');
  const outcome: Omit<PolicyRule, 'id' | 'match' | 'action'> = {};
  if (action) validateOutcome(v, body, path, action, outcome);
  if (id === undefined || !match || !action || v.issues.length > before) return undefined;
  return { id, ...(description !== undefined && { description }), match, action, ...outcome };
}

/** reason / approvers / timeoutSeconds / mask, which depend on the action. */
function validateOutcome(
  v: Validator,
  body: Obj,
  path: Segment[],
  action: string,
  out: {
    reason?: string;
    approvers?: string;
    timeoutSeconds?: number;
    channel?: string;
    mask?: PolicyRule['mask'];
  },
): void {
  const isDefault = path.length === 1 && path[0] === 'default';
  if ('reason' in body) out.reason = v.string(body.reason, [...path, 'reason'], 'reason');
  const approval = action === 'require_approval';
  if ('approvers' in body) {
    if (!approval) v.fail([...path, 'approvers'], 'only a require_approval action takes approvers');
    else out.approvers = v.string(body.approvers, [...path, 'approvers'], 'approvers (a group name)');
  } else if (approval) v.fail(path, 'missing field "approvers": the group whose members may approve');
  if ('timeoutSeconds' in body) {
    if (!approval) v.fail([...path, 'timeoutSeconds'], 'only a require_approval action takes timeoutSeconds');
    else out.timeoutSeconds = v.timeout(body.timeoutSeconds, [...path, 'timeoutSeconds']);
  }
  if ('channel' in body) {
    if (!approval) v.fail([...path, 'channel'], 'only a require_approval action takes channel');
    else out.channel = v.channel(body.channel, [...path, 'channel']);
  }
  if ('mask' in body && !isDefault) {
    if (action !== 'mask') v.fail([...path, 'mask'], 'only a mask action takes mask');
    else out.mask = validateMask(v, body.mask, [...path, 'mask']);
  } else if (action === 'mask' && !isDefault)
    v.fail(path, 'missing field "mask" ({ columns: [...], method: ... })');
  for (const key of ['reason', 'approvers', 'timeoutSeconds', 'channel', 'mask'] as const)
    if (out[key] === undefined) delete out[key];
}

function validateMask(v: Validator, value: unknown, path: Segment[]): PolicyRule['mask'] {
  const body = v.object(value, path, MASK_KEYS, 'mask');
  if (!body) return undefined;
  if (!('columns' in body)) v.fail(path, 'missing field "columns"');
  if (!('method' in body)) v.fail(path, 'missing field "method"');
  const columns =
    'columns' in body
      ? v.list(body.columns, [...path, 'columns'], (c, p) => checkName(v, c, p, 'column'))
      : undefined;
  const method =
    'method' in body ? v.oneOf(body.method, [...path, 'method'], MASK_METHODS, 'mask method') : undefined;
  const before = v.issues.length;
  const options = validateMaskOptions(v, body, path);
  return columns && method && v.issues.length === before ? { columns, method, ...options } : undefined;
}

/** allowInPredicates, and what happens to a use that cannot be masked. */
function validateMaskOptions(
  v: Validator,
  body: Obj,
  path: Segment[],
): Pick<MaskSpec, 'allowInPredicates' | 'unmaskable' | 'approvers' | 'timeoutSeconds' | 'channel'> {
  const out: Pick<MaskSpec, 'allowInPredicates' | 'unmaskable' | 'approvers' | 'timeoutSeconds' | 'channel'> =
    {};
  if ('allowInPredicates' in body) {
    if (typeof body.allowInPredicates === 'boolean') out.allowInPredicates = body.allowInPredicates;
    else v.fail([...path, 'allowInPredicates'], 'must be true or false');
  }
  if ('unmaskable' in body) {
    const action = v.oneOf(
      body.unmaskable,
      [...path, 'unmaskable'],
      ['deny', 'require_approval'] as const,
      'unmaskable action',
    );
    if (action) out.unmaskable = action;
  }
  const approval = out.unmaskable === 'require_approval';
  if ('approvers' in body) {
    if (!approval) v.fail([...path, 'approvers'], 'only unmaskable: require_approval takes approvers');
    else out.approvers = v.string(body.approvers, [...path, 'approvers'], 'approvers (a group name)');
  } else if (approval) v.fail(path, 'missing field "approvers": the group whose members may approve');
  if ('timeoutSeconds' in body) {
    if (!approval)
      v.fail([...path, 'timeoutSeconds'], 'only unmaskable: require_approval takes timeoutSeconds');
    else out.timeoutSeconds = v.timeout(body.timeoutSeconds, [...path, 'timeoutSeconds']);
  }
  if ('channel' in body) {
    if (!approval) v.fail([...path, 'channel'], 'only unmaskable: require_approval takes channel');
    else out.channel = v.channel(body.channel, [...path, 'channel']);
  }
  for (const key of ['approvers', 'timeoutSeconds', 'channel'] as const)
    if (out[key] === undefined) delete out[key];
  return out;
}

function validateMatch(v: Validator, value: unknown, path: Segment[]): PolicyMatch | undefined {
  const body = v.object(value, path, MATCH_KEYS, 'match');
  if (!body) return undefined;
  const before = v.issues.length;
  const out: PolicyMatch = {};
  const enumCheck = (options: readonly string[], what: string) => (item: string, p: Segment[]) =>
    v.oneOf(item, p, options, what) !== undefined;
  const checks: Record<(typeof MATCH_KEYS)[number], (item: string, p: Segment[]) => boolean> = {
    principals: (item, p) => checkPrincipal(v, item, p),
    groups: () => true,
    roles: () => true,
    databases: () => true,
    kinds: enumCheck(STATEMENT_KINDS, 'statement kind'),
    ddlObjects: enumCheck(DDL_OBJECTS, 'DDL object'),
    facts: enumCheck(POLICY_FACTS, 'fact'),
    relations: (item, p) => checkName(v, item, p, 'relation'),
    writes: (item, p) => checkName(v, item, p, 'relation'),
    columns: (item, p) => checkName(v, item, p, 'column'),
    functions: (item, p) => checkName(v, item, p, 'function'),
  };
  for (const key of MATCH_KEYS) {
    if (!(key in body)) continue;
    const items = v.list(body[key], [...path, key], checks[key]);
    // biome-ignore lint/suspicious/noExplicitAny: each key's values were checked against its own vocabulary
    if (items) (out as Record<string, any>)[key] = items;
  }
  return v.issues.length === before ? out : undefined;
}

function checkPrincipal(v: Validator, text: string, path: Segment[]): boolean {
  if (principalPattern(text) !== undefined) return true;
  v.fail(
    path,
    `"${text}" names nobody: expected an email, a subject, or issuer#subject (e.g. https://idp.example.com#00u1abc)`,
  );
  return false;
}

function checkName(
  v: Validator,
  text: string,
  path: Segment[],
  what: 'relation' | 'column' | 'function',
): boolean {
  const ok = what === 'column' ? compileColumn(text) : compileQualified(text);
  if (ok) return true;
  const shape =
    what === 'column' ? 'column, table.column or schema.table.column' : `${what} or schema.${what}`;
  v.fail(
    path,
    `"${text}" is not a ${what} name: expected ${shape} (no spaces or empty parts; * is a wildcard)`,
  );
  return false;
}

function suggest(value: string, options: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const option of options) {
    const d = distance(value.toLowerCase(), option.toLowerCase());
    if (d < bestDistance) {
      best = option;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

// ── positions ────────────────────────────────────────────────────────────────────────────────────

/** Offset of the node at `path` (or of its key), for line numbers. Falls back to the nearest parent. */
function nodeOffset(root: unknown, path: Segment[], key: boolean): number | undefined {
  let node = root as Node | null | undefined;
  let offset = node?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === segment);
      if (!pair) return offset;
      if (last && key && isScalar(pair.key)) return pair.key.range?.[0] ?? offset;
      node = pair.value as Node | null;
      offset = node?.range?.[0] ?? (isScalar(pair.key) ? pair.key.range?.[0] : offset);
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment] as Node | null;
      offset = node?.range?.[0] ?? offset;
    } else return offset;
  }
  return offset;
}
