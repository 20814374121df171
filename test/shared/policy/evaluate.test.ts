import { beforeAll, describe, expect, it } from 'vitest';
import { evaluatePolicy, policyInput } from '../../../shared/policy/evaluate.ts';
import type { Policy, PolicyRule } from '../../../shared/policy/model.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { admin, developer, session } from './sessions.ts';

beforeAll(loadSqlParser);

function policy(rules: PolicyRule[], fallback: Policy['default'] = { action: 'allow' }): Policy {
  return { version: 'test-1', default: fallback, rules };
}

function decide(p: Policy, sql: string, who = developer) {
  return evaluatePolicy(p, analyzeSql(sql), who);
}

const deny = (id: string, match: PolicyRule['match'], reason?: string): PolicyRule => ({
  id,
  match,
  action: 'deny',
  ...(reason && { reason }),
});
const allow = (id: string, match: PolicyRule['match']): PolicyRule => ({ id, match, action: 'allow' });
const approve = (id: string, match: PolicyRule['match']): PolicyRule => ({
  id,
  match,
  action: 'require_approval',
  approvers: 'dba',
});
const mask = (id: string, columns: string[], method: 'hash' | 'redact' = 'redact'): PolicyRule => ({
  id,
  match: { columns },
  action: 'mask',
  mask: { columns, method },
});

describe('rule order', () => {
  it('lets the first matching allow / deny / require_approval rule decide', () => {
    const p = policy([
      allow('reads', { kinds: ['select'] }),
      deny('no-customers', { relations: ['customers'] }),
    ]);
    expect(decide(p, 'select * from customers').ruleId).toBe('reads');
    const q = policy([
      deny('no-customers', { relations: ['customers'] }),
      allow('reads', { kinds: ['select'] }),
    ]);
    expect(decide(q, 'select * from customers')).toMatchObject({ action: 'deny', ruleId: 'no-customers' });
  });

  it('falls back to the default action with rule id "default"', () => {
    expect(decide(policy([]), 'select 1')).toEqual({
      action: 'allow',
      ruleId: 'default',
      policyVersion: 'test-1',
      masks: [],
      matched: { statementIndex: 0, statements: [{ action: 'allow', ruleId: 'default' }] },
    });
    expect(decide(policy([], { action: 'deny', reason: 'closed' }), 'select 1')).toMatchObject({
      action: 'deny',
      ruleId: 'default',
      reason: 'closed',
    });
  });

  it('gives default reasons and approval settings', () => {
    expect(decide(policy([deny('d', { kinds: ['drop'] })]), 'drop table t').reason).toBe(
      'denied by policy rule "d"',
    );
    expect(decide(policy([approve('a', { kinds: ['drop'] })]), 'drop table t')).toMatchObject({
      action: 'require_approval',
      reason: 'approval by dba is required by policy rule "a"',
      approvers: 'dba',
      timeoutSeconds: 300,
    });
    expect(
      decide(policy([], { action: 'require_approval', approvers: 'leads', timeoutSeconds: 60 }), 'select 1'),
    ).toMatchObject({
      action: 'require_approval',
      ruleId: 'default',
      approvers: 'leads',
      timeoutSeconds: 60,
      reason: 'approval by leads is required by the default policy',
    });
  });
});

describe('mask rules', () => {
  const p = policy([
    mask('ssn', ['ssn']),
    mask('cards', ['card_number'], 'hash'),
    deny('files', { functions: ['pg_read_file'] }),
  ]);

  it('do not stop the search: a later deny still wins', () => {
    expect(decide(p, "select ssn, pg_read_file('/x') from customers")).toMatchObject({
      action: 'deny',
      ruleId: 'files',
    });
  });

  it('apply every matching mask when the statement ends up allowed', () => {
    const d = decide(p, 'select ssn, card_number from customers');
    expect(d.action).toBe('mask');
    expect(d.ruleId).toBe('ssn');
    expect(d.masks).toEqual([
      { ruleId: 'ssn', columns: ['ssn'], method: 'redact' },
      { ruleId: 'cards', columns: ['card_number'], method: 'hash' },
    ]);
  });

  it('apply when a later allow rule decides', () => {
    const q = policy([mask('ssn', ['ssn']), allow('all', {})]);
    expect(decide(q, 'select ssn from t')).toMatchObject({ action: 'mask', ruleId: 'ssn' });
  });

  it('do not apply to what an earlier allow rule decided', () => {
    const q = policy([allow('admins', { roles: ['admin'] }), mask('ssn', ['ssn'])]);
    expect(decide(q, 'select ssn from t', admin).action).toBe('allow');
    expect(decide(q, 'select ssn from t').action).toBe('mask');
  });

  it('are dropped when the default denies', () => {
    expect(decide(policy([mask('ssn', ['ssn'])], { action: 'deny' }), 'select ssn from t')).toMatchObject({
      action: 'deny',
      masks: [],
    });
  });

  it('match a star or whole-row reference, which may be any column', () => {
    expect(decide(p, 'select * from customers').action).toBe('mask');
    expect(decide(p, 'select row_to_json(c) from customers c').action).toBe('mask');
    expect(decide(p, 'select count(*) from customers').action).toBe('allow');
  });

  it('are merged over the statements of a message', () => {
    const d = decide(p, 'select ssn from a; select card_number from b');
    expect(d.masks.map((m) => m.ruleId)).toEqual(['ssn', 'cards']);
  });
});

describe('several statements', () => {
  const p = policy([
    deny('no-drop', { kinds: ['drop'] }, 'no drops'),
    approve('no-truncate', { kinds: ['truncate'] }),
    mask('ssn', ['ssn']),
  ]);

  it('take the most restrictive action, deny > require_approval > mask > allow', () => {
    expect(decide(p, 'select 1; truncate t; select ssn from c').action).toBe('require_approval');
    expect(decide(p, 'select 1; truncate t; drop table t; select ssn from c')).toMatchObject({
      action: 'deny',
      ruleId: 'no-drop',
      reason: 'no drops',
    });
    expect(decide(p, 'select 1; select ssn from c').action).toBe('mask');
  });

  it('name the first statement with the winning action and list every statement', () => {
    expect(decide(p, 'select 1; drop table a; drop table b').matched).toEqual({
      statementIndex: 1,
      statements: [
        { action: 'allow', ruleId: 'default' },
        { action: 'deny', ruleId: 'no-drop' },
        { action: 'deny', ruleId: 'no-drop' },
      ],
      kinds: ['drop'],
    });
  });

  it('give an empty message the default action', () => {
    expect(decide(policy([], { action: 'deny' }), ';')).toMatchObject({
      action: 'deny',
      ruleId: 'default',
      matched: { statementIndex: null, statements: [] },
    });
    expect(decide(p, '').action).toBe('allow');
  });
});

describe('unknown means deny', () => {
  it('denies an unparseable message that no rule decides, whatever the default', () => {
    expect(decide(policy([]), 'selec 1')).toMatchObject({
      action: 'deny',
      ruleId: 'default',
      reason: 'the statement could not be parsed, and what cannot be analysed is denied',
      matched: { facts: ['unparseable', 'not_confident'] },
    });
  });

  it('denies a statement the analysis is not sure about', () => {
    expect(decide(policy([]), 'do $$ begin end $$')).toMatchObject({ action: 'deny', ruleId: 'default' });
    expect(decide(policy([]), "select query_to_xml('select 1', true, true, '')").action).toBe('deny');
  });

  it('lets an explicit rule decide unknown statements', () => {
    const p = policy([allow('admins', { roles: ['admin'] }), approve('unknown', { facts: ['unparseable'] })]);
    expect(decide(p, 'selec 1', admin).action).toBe('allow');
    expect(decide(p, 'selec 1')).toMatchObject({ action: 'require_approval', ruleId: 'unknown' });
  });

  it('still denies when only a mask rule matched', () => {
    expect(decide(policy([mask('ssn', ['ssn'])]), 'select ssn from t; do $$ begin end $$').action).toBe(
      'deny',
    );
  });
});

describe('who and where', () => {
  const p = policy([
    deny('contractors', { principals: ['Contractor@Example.com'] }),
    deny('agents', { groups: ['agents'], kinds: ['delete'] }),
    allow('dba', { roles: ['dba'] }),
    deny('prod', { databases: ['prod'] }),
  ]);

  it('matches principals case-insensitively', () => {
    expect(decide(p, 'select 1', session({ name: 'contractor@example.com' })).ruleId).toBe('contractors');
  });

  it('matches groups, together with the statement matchers', () => {
    const agent = session({ groups: ['agents'] });
    expect(decide(p, 'delete from t where id = 1', agent).ruleId).toBe('agents');
    expect(decide(p, 'select 1', agent).ruleId).toBe('default');
  });

  it('matches the primary role and every granted role', () => {
    expect(decide(p, 'select 1', session({ role: 'dba', roles: ['dba'] })).ruleId).toBe('dba');
    expect(decide(p, 'select 1', session({ role: 'developer', roles: ['developer', 'dba'] })).ruleId).toBe(
      'dba',
    );
  });

  it('matches the database', () => {
    expect(decide(p, 'select 1', session({ database: 'prod' })).ruleId).toBe('prod');
    expect(decide(p, 'select 1', session({ database: 'staging' })).ruleId).toBe('default');
  });
});

describe('statement matchers', () => {
  it('match every structural fact', () => {
    const cases: Array<[string, string]> = [
      ['delete from t', 'no_where'],
      ['update t set a = 1', 'no_where'],
      ['with x as (insert into t values (1) returning *) select * from x', 'data_modifying_cte'],
      ["copy t to program 'gzip > /tmp/x'", 'copy_program'],
      ["copy t from '/etc/passwd'", 'copy_file'],
      ['select 1; select 2', 'multiple_statements'],
      ['selec 1', 'unparseable'],
      ['do $$ begin end $$', 'not_confident'],
    ];
    for (const [sql, fact] of cases) {
      const p = policy([deny('fact', { facts: [fact as never] })]);
      expect(decide(p, sql).ruleId, sql).toBe('fact');
    }
    const none = policy([
      deny('fact', { facts: ['no_where', 'data_modifying_cte', 'copy_program', 'copy_file'] }),
    ]);
    for (const sql of [
      'delete from t where a',
      'copy t to stdout',
      'copy t from stdin',
      'with x as (select 1) select 1',
    ]) {
      expect(decide(none, sql).ruleId, sql).toBe('default');
    }
  });

  it('match DDL object types', () => {
    const p = policy([approve('indexes', { kinds: ['ddl'], ddlObjects: ['index'] })]);
    expect(decide(p, 'create index on t (a)').ruleId).toBe('indexes');
    expect(decide(p, 'create table t (a int)').ruleId).toBe('default');
  });

  it('match relations that may be meant, and written relations separately', () => {
    const p = policy([
      deny('settings', { writes: ['pg_settings'] }),
      deny('payroll', { relations: ['hr.payroll'] }),
    ]);
    expect(decide(p, 'select * from payroll').ruleId).toBe('payroll');
    expect(decide(p, 'select * from hr.payroll').ruleId).toBe('payroll');
    expect(decide(p, 'select * from sales.payroll').ruleId).toBe('default');
    expect(decide(p, "update pg_settings set setting = 'x' where name = 'role'").ruleId).toBe('settings');
    expect(decide(p, 'select * from pg_settings').ruleId).toBe('default');
  });

  it('match columns with their table', () => {
    const p = policy([deny('ssn-in-where', { columns: ['customers.ssn'] })]);
    expect(decide(p, 'select id from customers where ssn = $1').ruleId).toBe('ssn-in-where');
    expect(
      decide(p, 'select c.id from customers c join orders o on o.cid = c.id where ssn = $1').ruleId,
    ).toBe('ssn-in-where');
    expect(decide(p, 'select ssn from staff').ruleId).toBe('default');
  });

  it('report what matched', () => {
    const p = policy([deny('files', { functions: ['pg_read_file', 'pg_ls_*'], kinds: ['select'] })]);
    expect(decide(p, "select pg_ls_dir('.'), pg_read_file('/x'), now()").matched).toEqual({
      statementIndex: 0,
      statements: [{ action: 'deny', ruleId: 'files' }],
      kinds: ['select'],
      functions: ['pg_ls_dir', 'pg_read_file'],
    });
  });
});

describe('allow rules only allow what they name', () => {
  const p = policy(
    [
      allow('reports', { relations: ['reports', 'public.summaries'] }),
      allow('reads', { kinds: ['select'] }),
      allow('scratch-writes', { writes: ['scratch_*'] }),
    ],
    { action: 'deny' },
  );

  it('needs every relation of the statement to be listed', () => {
    expect(decide(p, 'insert into reports select * from reports').ruleId).toBe('reports');
    expect(decide(p, 'insert into reports select * from customers').ruleId).toBe('default');
  });

  it('needs every kind of the statement to be listed (a data-modifying CTE is a delete too)', () => {
    expect(decide(p, 'select * from customers').ruleId).toBe('reads');
    expect(
      decide(p, 'with x as (delete from customers where id = 1 returning *) select * from x').ruleId,
    ).toBe('default');
    expect(decide(p, 'explain analyze delete from customers where id = 1').ruleId).toBe('default');
  });

  it('needs the statement to have the listed kind of thing at all', () => {
    expect(decide(p, 'insert into scratch_a values (1)').ruleId).toBe('scratch-writes');
    expect(decide(p, 'set search_path = x').ruleId).toBe('default');
  });

  it('does not take an unqualified name for a schema-qualified pattern', () => {
    expect(decide(p, 'delete from public.summaries where a').ruleId).toBe('reports');
    expect(decide(p, 'delete from summaries where a').ruleId).toBe('default');
  });
});

describe('policy input', () => {
  it('holds only structure: literals, comments and layout do not change it', () => {
    const a = policyInput(analyzeSql("select ssn from customers where id = 1 and name = 'x'"));
    const b = policyInput(analyzeSql('SELECT ssn\n FROM customers -- hi\n WHERE id = $1 AND name = $2'));
    expect(a).toEqual(b);
  });

  it('works from a parsed YAML policy', () => {
    const p = parsePolicy(
      'version: "9"\ndefault: { action: allow }\nrules:\n  - { id: d, match: { kinds: [drop] }, action: deny }\n',
    );
    expect(evaluatePolicy(p, analyzeSql('drop table t'), developer)).toMatchObject({
      action: 'deny',
      ruleId: 'd',
      policyVersion: '9',
    });
  });
});
