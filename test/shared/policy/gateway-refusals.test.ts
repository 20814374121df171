/**
 * The gateway's own refusals (shared/policy/gateway-refusals.ts): every way to change a setting
 * pgwarden owns is refused before any policy rule is read, under a policy that allows everything
 * and for an admin under the default pack. Every bypass found stays here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRequest, SessionContext } from '../../../shared/control-plane.ts';
import { StatementDecider } from '../../../shared/decide.ts';
import { GATEWAY_PINNED_SETTING_RULE } from '../../../shared/policy/gateway-refusals.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { admin, developer } from './sessions.ts';

beforeAll(loadSqlParser);

const ALLOW_ALL = parsePolicy(`
version: allow-all
default: { action: allow }
rules:
  - { id: everyone, match: { kinds: [${['select', 'set', 'reset', 'set_role', 'set_session_authorization', 'ddl', 'alter_system', 'update', 'explain', 'prepare', 'discard', 'transaction', 'show'].join(', ')}] }, action: allow }
`);

const request = (text: string, session: SessionContext = developer): DecisionRequest => ({
  session,
  statement: { text, protocol: 'simple' },
});

const refused: Record<string, string[]> = {
  client_encoding: [
    "set client_encoding = 'SJIS'",
    'SET client_encoding TO sjis',
    "set session client_encoding = 'LATIN1'",
    "set local client_encoding = 'GBK'",
    "SET NAMES 'SJIS'",
    'set names',
    'set client_encoding to default',
    'reset client_encoding',
    'set "Client_Encoding" = \'SJIS\'',
    'set "CLIENT_ENCODING" = \'BIG5\'',
    "set client_encoding = 'UTF8', 'SJIS'",
    'set client_encoding from current',
  ],
  standard_conforming_strings: [
    'set standard_conforming_strings = off',
    'set standard_conforming_strings to 0',
    'set local standard_conforming_strings = false',
    "set standard_conforming_strings = 't'",
    'reset standard_conforming_strings',
    'set "STANDARD_conforming_strings" = off',
  ],
  backslash_quote: [
    'set backslash_quote = on',
    'set backslash_quote = safe_encoding',
    'reset backslash_quote',
  ],
  role: [
    'set role postgres',
    'set role none',
    'reset role',
    'set "ROLE" = postgres',
    'set session role postgres',
    'SET LOCAL ROLE postgres',
    'set role to default',
  ],
  session_authorization: [
    'set session authorization postgres',
    'set session authorization default',
    'reset session authorization',
    'set session_authorization = postgres',
  ],
  set_config: [
    "select set_config('client_encoding', 'SJIS', false)",
    "select pg_catalog.set_config('ROLE', 'postgres', true)",
    "select set_config('Standard_Conforming_Strings', 'off', false)",
    "select set_config(' role ', 'postgres', false)",
    "select set_config('session_authorization', 'postgres', false)",
    "select set_config('backslash_quote', 'on', false)",
    // a name that is not a string constant may be any of them
    "select set_config(name, 'x', false) from pg_settings",
    'select set_config($1, $2, false)',
    "select set_config('role'::text, 'postgres', false)",
    "select set_config('ro' || 'le', 'postgres', false)",
    "select set_config(lower('ROLE'), 'postgres', false)",
    "select set_config(setting_name => 'role', new_value => 'postgres', is_local => false)",
    "select * from set_config('role', 'postgres', false)",
    "select * from rows from (set_config('client_encoding', 'SJIS', false))",
    "with c as (select set_config('role', 'postgres', false)) select 1",
    "select 1 where set_config('client_encoding', 'SJIS', false) is not null",
    "select (select set_config('role', 'postgres', false))",
    "values (set_config('client_encoding', 'SJIS', false))",
    "prepare p as select set_config('role', 'postgres', false)",
    "explain analyze select set_config('role', 'postgres', false)",
    "create view v as select set_config('role', 'postgres', false)",
    "create table t (a text default set_config('role', 'postgres', false))",
    "create function f() returns text language sql begin atomic select set_config('role', 'postgres', false); end",
  ],
  pg_settings: [
    "update pg_settings set setting = 'SJIS' where name = 'client_encoding'",
    "update pg_catalog.pg_settings set setting = 'off' where name = 'standard_conforming_strings'",
    "update pg_settings set setting = 'x' where name = 'search_path'",
    "with u as (update pg_settings set setting = 'SJIS' where name = 'client_encoding' returning 1) select * from u",
    "explain analyze update pg_settings set setting = 'SJIS' where name = 'client_encoding'",
    "create rule r as on insert to t do also update pg_settings set setting = 'SJIS' where name = 'client_encoding'",
  ],
  'SET clauses': [
    "create function f() returns int language sql set client_encoding = 'SJIS' as 'select 1'",
    "create function f() returns int language sql set \"Client_Encoding\" = 'SJIS' as 'select 1'",
    "create procedure p() language sql set role = 'postgres' as 'select 1'",
    'alter function f() set standard_conforming_strings = off',
    'alter function f() reset client_encoding',
    'alter procedure p() set role = postgres',
    'alter routine r() set session_authorization = postgres',
    "alter role app_rw set client_encoding = 'SJIS'",
    "alter user bob in database app set standard_conforming_strings = 'off'",
    'alter role all set role = postgres',
    "alter role app_rw set names 'SJIS'",
    'alter database app set backslash_quote = on',
    'alter database app reset standard_conforming_strings',
    "alter system set client_encoding = 'SJIS'",
    'alter system reset standard_conforming_strings',
  ],
  aggregates: [
    "create aggregate a(text, bool) (sfunc = set_config, stype = text, initcond = 'role')",
    "create aggregate a(text, bool) (sfunc = pg_catalog.set_config, stype = text, initcond = 'client_encoding')",
    'create aggregate a(text) (sfunc = f, stype = text, finalfunc = "SET_CONFIG")',
  ],
  // the analysis stops walking (RangeError) part way: what it did not see may change anything
  'nested too deeply': [
    `select ${'array['.repeat(2000)}set_config('role', 'postgres', false)${']'.repeat(2000)}`,
  ],
  'in a longer message': [
    "select 1; set client_encoding = 'SJIS'",
    'set search_path = public; set role postgres; select 1',
    "begin; set local client_encoding = 'SJIS'; commit",
    // the value of each SET is read from its own statement
    "set client_encoding = 'UTF8'; set client_encoding = 'SJIS'",
    "set client_encoding = 'SJIS'; set client_encoding = 'UTF8'",
  ],
  'values that only look like UTF8': [
    "set client_encoding = 'UTF.8'",
    "set client_encoding = 'utf8mb4'",
    "set standard_conforming_strings = 'o'",
  ],
};

describe('refused by the gateway under a policy that allows everything', () => {
  const decider = new StatementDecider(ALLOW_ALL);
  for (const [group, texts] of Object.entries(refused)) {
    it.each(texts)(`${group}: %s`, (text) => {
      const decision = decider.decide(request(text));
      expect(decision).toMatchObject({ action: 'deny', ruleId: GATEWAY_PINNED_SETTING_RULE });
      expect(decision.reason).toMatch(/pgwarden/);
    });
  }
});

describe('refused for admins under the default pack', () => {
  const decider = new StatementDecider();
  it.each([
    'set role postgres',
    "select set_config('role', 'postgres', false)",
    "set client_encoding = 'SJIS'",
    'set standard_conforming_strings = off',
    "alter role app_rw set client_encoding = 'SJIS'",
  ])('%s', (text) => {
    expect(decider.decide(request(text, admin))).toMatchObject({
      action: 'deny',
      ruleId: GATEWAY_PINNED_SETTING_RULE,
    });
  });

  it('and the reason says why', () => {
    expect(decider.decide(request("set client_encoding = 'SJIS'", admin)).reason).toBe(
      'pgwarden sessions use client_encoding UTF8 so that it parses what the server runs',
    );
    expect(decider.decide(request('select set_config($1, $2, false)', admin)).reason).toMatch(
      /not a string constant .* write the name as a constant/,
    );
  });
});

describe('allowed by the gateway (the policy decides)', () => {
  const decider = new StatementDecider(ALLOW_ALL);
  it.each([
    // the pinned value itself (libpq's PQsetClientEncoding, Rails)
    "set client_encoding = 'UTF8'",
    'SET client_encoding TO utf8',
    "set client_encoding = 'unicode'",
    "set client_encoding = 'UTF-8'",
    "set names 'utf8'",
    "set local client_encoding = 'UTF8'",
    "set client_encoding = U&'\\0055TF8'",
    "set client_encoding = 'UTF8'; set client_encoding = 'unicode'",
    'set standard_conforming_strings = on',
    'set standard_conforming_strings = true',
    'set standard_conforming_strings to 1',
    // restore the values verified at connect
    'reset all',
    'discard all',
    'alter role app_rw reset all',
    'alter system reset all',
    // settings the gateway does not own (shared/session-settings.ts CLIENT_SETTINGS_REVIEWED)
    'set search_path = other, public',
    "set schema 'other'",
    'set escape_string_warning = off',
    'set array_nulls = off',
    "set datestyle = 'German'",
    "set default_text_search_config = 'simple'",
    'set xml option document',
    'set row_security = off',
    'set session_replication_role = replica',
    'set transaction isolation level serializable',
    'set time zone utc',
    "select set_config('app.tenant', '42', false)",
    "select set_config('search_path', 'other', false)",
    "select current_setting('role'), current_setting('client_encoding')",
    'show client_encoding',
    'show role',
    "select name, setting from pg_settings where name = 'client_encoding'",
    'alter function f() set search_path = public',
  ])('%s', (text) => {
    expect(decider.decide(request(text))).toMatchObject({ action: 'allow', ruleId: 'everyone' });
  });
});

describe('decisions that read a value are cached by exact text', () => {
  it('UTF8 first, then SJIS with the same shape', () => {
    const decider = new StatementDecider(ALLOW_ALL);
    for (let i = 0; i < 2; i++) {
      expect(decider.decide(request("set client_encoding = 'UTF8'")).action).toBe('allow');
      expect(decider.decide(request("set client_encoding = 'SJIS'")).action).toBe('deny');
      expect(decider.decide(request("set client_encoding = 'utf8'")).action).toBe('allow');
      expect(decider.decide(request("set client_encoding = 'LATIN1'")).action).toBe('deny');
    }
  });

  it('SJIS first, then UTF8', () => {
    const decider = new StatementDecider(ALLOW_ALL);
    expect(decider.decide(request('set standard_conforming_strings = 0')).action).toBe('deny');
    expect(decider.decide(request('set standard_conforming_strings = 1')).action).toBe('allow');
    expect(decider.decide(request('set standard_conforming_strings = 0')).action).toBe('deny');
  });

  it('and after the caches were reset by their bound', () => {
    const decider = new StatementDecider(ALLOW_ALL, 2);
    const cases: Array<[string, string]> = [
      ["set client_encoding = 'UTF8'", 'allow'],
      ["set client_encoding = 'SJIS'", 'deny'],
      ['select 1', 'allow'],
      ['select 2', 'allow'],
    ];
    for (let round = 0; round < 3; round++)
      for (const [text, action] of cases) expect(decider.decide(request(text)).action).toBe(action);
  });
});
