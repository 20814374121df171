import { describe, expect, it } from 'vitest';
import { isPgWardenError } from '../../../shared/errors.ts';
import {
  checkPolicyText,
  formatIssue,
  type PolicyIssue,
  PolicyValidationError,
  parsePolicy,
  validatePolicy,
} from '../../../shared/policy/parse-policy.ts';

function issues(text: string): PolicyIssue[] {
  const result = checkPolicyText(text);
  if (result.ok) throw new Error('expected the policy to be invalid');
  return result.issues;
}

/** `line:column path: message` for compact assertions. */
function brief(text: string): string[] {
  return issues(text).map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
}

const VALID = `
version: "2025-06-01"
description: test policy
default:
  action: allow
rules:
  - id: no-drop
    description: drops wait for a reviewer
    match:
      kinds: [drop, truncate]
      relations: public.orders
    action: require_approval
    approvers: dba
    timeoutSeconds: 600
    reason: ask the DBAs
  - id: mask-ssn
    match: { columns: [customers.ssn] }
    action: mask
    mask: { columns: [customers.ssn], method: hash }
  - id: everything
    match: {}
    action: deny
`;

describe('parsePolicy: valid documents', () => {
  it('reads YAML into the plain policy form, a single value becoming a list', () => {
    expect(parsePolicy(VALID)).toEqual({
      version: '2025-06-01',
      default: { action: 'allow' },
      rules: [
        {
          id: 'no-drop',
          description: 'drops wait for a reviewer',
          match: { kinds: ['drop', 'truncate'], relations: ['public.orders'] },
          action: 'require_approval',
          approvers: 'dba',
          timeoutSeconds: 600,
          reason: 'ask the DBAs',
        },
        {
          id: 'mask-ssn',
          match: { columns: ['customers.ssn'] },
          action: 'mask',
          mask: { columns: ['customers.ssn'], method: 'hash' },
        },
        { id: 'everything', match: {}, action: 'deny' },
      ],
    });
  });

  it('reads JSON too', () => {
    const json = JSON.stringify({
      version: '7',
      default: { action: 'require_approval', approvers: 'leads' },
      rules: [{ id: 'r', match: { functions: ['pg_*'], facts: ['no_where'] }, action: 'deny', reason: 'no' }],
    });
    expect(parsePolicy(json)).toEqual({
      version: '7',
      default: { action: 'require_approval', approvers: 'leads' },
      rules: [{ id: 'r', match: { functions: ['pg_*'], facts: ['no_where'] }, action: 'deny', reason: 'no' }],
    });
  });

  it('validates an already decoded value the same way', () => {
    const policy = parsePolicy(VALID);
    expect(validatePolicy(JSON.parse(JSON.stringify(policy)))).toEqual(policy);
  });
});

describe('parsePolicy: errors name the line, the column and the field', () => {
  it('reports YAML syntax errors with their line', () => {
    const [first] = issues(
      'version: "1"\ndefault: { action: allow }\nrules:\n  - id: x\n    match: { kinds: [select }\n',
    );
    expect(first?.line).toBe(5);
    expect(first?.path).toBe('');
  });

  it('reports duplicate keys', () => {
    expect(brief('version: "1"\ndefault: { action: allow }\nrules: []\nversion: "2"\n')).toEqual([
      '4:1 : Map keys must be unique',
    ]);
  });

  it('requires version, default and rules', () => {
    expect(brief('description: nothing else\n')).toEqual([
      '1:1 : missing field "version"',
      '1:1 : missing field "default"',
      '1:1 : missing field "rules" (use rules: [] for none)',
    ]);
    expect(brief('- a list\n')).toEqual(['1:1 : the policy must be a mapping (key: value pairs)']);
  });

  it('asks for a quoted version and suggests the right action', () => {
    expect(brief('version: 1\ndefault:\n  action: allw\nrules: []\n')).toEqual([
      '1:10 version: version must be a string: quote it, e.g. "1"',
      '3:11 default.action: unknown default action "allw" (did you mean "allow"?); expected one of: allow, deny, require_approval',
    ]);
  });

  it('reports every problem in the rules at once', () => {
    const text = [
      'version: "1"',
      'default: { action: allow }',
      'rules:',
      '  - id: a',
      '    match:',
      '      kinds: [selct, drop]',
      '      relation: [x]',
      '    action: deny',
      '  - id: a',
      '    match: {}',
      '    action: require_approval',
      '    timeoutSeconds: 0',
      '  - id: m',
      '    match: { columns: [ssn] }',
      '    action: mask',
      '    mask: { columns: ["a b"], method: blur }',
      '  - match: { facts: [no_wher] }',
      '    action: maybe',
    ].join('\n');
    expect(brief(text)).toEqual([
      '7:7 rules[0].match.relation: unknown field "relation" (did you mean "relations"?); expected one of: principals, groups, roles, databases, kinds, ddlObjects, relations, writes, columns, functions, facts',
      expect.stringMatching(
        /^6:15 rules\[0\]\.match\.kinds\[0\]: unknown statement kind "selct" \(did you mean "select"\?\)/,
      ),
      '9:5 rules[1]: missing field "approvers": the group whose members may approve',
      '12:21 rules[1].timeoutSeconds: must be a whole number of seconds from 1 to 86400',
      '9:9 rules[1].id: duplicate rule id "a" (first used by rules[0])',
      '16:23 rules[2].mask.columns[0]: "a b" is not a column name: expected column, table.column or schema.table.column (no spaces or empty parts; * is a wildcard)',
      '16:39 rules[2].mask.method: unknown mask method "blur"; expected one of: redact, partial, hash, null, fake',
      '17:5 rules[3]: missing field "id"',
      expect.stringMatching(
        /^17:22 rules\[3\]\.match\.facts\[0\]: unknown fact "no_wher" \(did you mean "no_where"\?\)/,
      ),
      expect.stringMatching(/^18:13 rules\[3\]\.action: unknown action "maybe"/),
    ]);
  });

  it('rejects fields that do not belong to the action', () => {
    const text = [
      'version: "1"',
      'default: { action: deny, approvers: x }',
      'rules:',
      '  - id: r',
      '    match: {}',
      '    action: allow',
      '    approvers: x',
      '    timeoutSeconds: 5',
      '    mask: { columns: [a], method: hash }',
      '  - id: m',
      '    match: {}',
      '    action: mask',
    ].join('\n');
    expect(brief(text)).toEqual([
      '2:37 default.approvers: only a require_approval action takes approvers',
      '7:16 rules[0].approvers: only a require_approval action takes approvers',
      '8:21 rules[0].timeoutSeconds: only a require_approval action takes timeoutSeconds',
      '9:11 rules[0].mask: only a mask action takes mask',
      '10:5 rules[1]: missing field "mask" ({ columns: [...], method: ... })',
    ]);
  });

  it('takes a Slack channel for approvals only, as an ID or a channel name', () => {
    const ok = parsePolicy(
      [
        'version: "1"',
        'default: { action: require_approval, approvers: dba, channel: C0123ABCDE }',
        'rules:',
        '  - id: payments-ddl',
        '    match: { kinds: [ddl] }',
        '    action: require_approval',
        '    approvers: payments-leads',
        '    channel: "#payments-db-approvals"',
        '  - id: cards',
        '    match: {}',
        '    action: mask',
        '    mask: { columns: [card], method: redact, unmaskable: require_approval, approvers: r, channel: sec_ops }',
      ].join('\n'),
    );
    expect(ok.default.channel).toBe('C0123ABCDE');
    expect(ok.rules[0]?.channel).toBe('#payments-db-approvals');
    expect(ok.rules[1]?.mask?.channel).toBe('sec_ops');
    const text = [
      'version: "1"',
      'default: { action: deny, channel: C0123ABCDE }',
      'rules:',
      '  - id: r',
      '    match: {}',
      '    action: require_approval',
      '    approvers: x',
      '    channel: "#Payments Approvals"',
      '  - id: s',
      '    match: {}',
      '    action: require_approval',
      '    approvers: x',
      '    channel: 42',
      '  - id: m',
      '    match: {}',
      '    action: mask',
      '    mask: { columns: [a], method: hash, channel: ops }',
    ].join('\n');
    const slack =
      'must be a Slack channel ID (C0123ABCD) or name (#db-approvals: lowercase letters, digits, - and _)';
    expect(brief(text)).toEqual([
      '2:35 default.channel: only a require_approval action takes channel',
      `8:14 rules[0].channel: ${slack}`,
      `13:14 rules[1].channel: ${slack}`,
      '17:50 rules[2].mask.channel: only unmaskable: require_approval takes channel',
    ]);
  });

  it('rejects empty lists, empty match, a reserved id and bad names', () => {
    const text = [
      'version: "1"',
      'default: { action: allow }',
      'rules:',
      '  - id: default',
      '    match: { relations: [] }',
      '    action: deny',
      '  - id: "bad id"',
      '    match:',
      '    action: deny',
      '  - id: ok',
      '    match: { relations: [a.b.c], functions: [".x"], columns: [a.b.c.d], roles: [1] }',
      '    action: deny',
    ].join('\n');
    expect(brief(text)).toEqual([
      '4:9 rules[0].id: "default" is reserved for the default action',
      '5:25 rules[0].match.relations: an empty list matches nothing: remove the field to match anything',
      '7:9 rules[1].id: must be letters, digits and _ . : - (starting with a letter or digit), at most 100',
      '8:11 rules[1].match: match is empty (use match: {} to match every statement)',
      '11:81 rules[2].match.roles[0]: must be a non-empty string',
      '11:26 rules[2].match.relations[0]: "a.b.c" is not a relation name: expected relation or schema.relation (no spaces or empty parts; * is a wildcard)',
      '11:63 rules[2].match.columns[0]: "a.b.c.d" is not a column name: expected column, table.column or schema.table.column (no spaces or empty parts; * is a wildcard)',
      '11:46 rules[2].match.functions[0]: ".x" is not a function name: expected function or schema.function (no spaces or empty parts; * is a wildcard)',
    ]);
  });

  it('throws a PolicyValidationError (BAD_REQUEST) whose message lists the issues', () => {
    try {
      parsePolicy('version: "1"\ndefault: { action: nope }\nrules: []\n');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(PolicyValidationError);
      expect(isPgWardenError(error) && error.code).toBe('BAD_REQUEST');
      expect((error as Error).message).toBe(
        'invalid policy:\n  line 2, column 20: default.action: unknown default action "nope"; expected one of: allow, deny, require_approval',
      );
    }
  });

  it('reports decoded values by path only', () => {
    expect(() =>
      validatePolicy({ version: '1', default: { action: 'allow' }, rules: [{ id: 'x' }] }),
    ).toThrow(/rules\[0\]: missing field "match"/);
    expect(formatIssue({ path: 'rules[0]', message: 'm' })).toBe('rules[0]: m');
  });
});
