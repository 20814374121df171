/**
 * SET search_path is left to clients (shared/session-settings.ts CLIENT_SETTINGS_REVIEWED): names
 * resolve through it, so policies never trust it. A rule naming `public.secrets` still catches every
 * way of naming that table, whatever the session's search_path; an allow rule with a schema lets
 * an unqualified name through only when it names no schema.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRequest } from '../../../shared/control-plane.ts';
import { StatementDecider } from '../../../shared/decide.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { developer } from './sessions.ts';

beforeAll(loadSqlParser);

const request = (text: string): DecisionRequest => ({
  session: developer,
  statement: { text, protocol: 'simple' },
});

describe('a deny rule naming public.secrets', () => {
  const decider = new StatementDecider(
    parsePolicy(`
version: secrets
default: { action: allow }
rules:
  - { id: no-secrets, match: { relations: [public.secrets] }, action: deny, reason: secrets are off limits }
`),
  );

  it('lets the session change its search_path', () => {
    expect(decider.decide(request('set search_path = attacker, public')).action).toBe('allow');
    expect(decider.decide(request("select set_config('search_path', 'attacker', false)")).action).toBe(
      'allow',
    );
  });

  it.each([
    'select * from secrets',
    'select * from "secrets"',
    'select * from public.secrets',
    'select * from PUBLIC.SECRETS',
    'select * from "public"."secrets"',
    'select * from app.public.secrets',
    'select * from (select * from secrets) s',
    'with s as (select * from secrets) select * from s',
    'delete from secrets where id = 1',
    'set search_path = attacker, public; select * from secrets',
  ])('still denies %s, whatever search_path says', (text) => {
    expect(decider.decide(request(text))).toMatchObject({ action: 'deny', ruleId: 'no-secrets' });
  });

  it('and a table of that name in another schema is another table', () => {
    expect(decider.decide(request('select * from attacker.secrets')).action).toBe('allow');
  });
});

describe('an allow rule naming public.reports', () => {
  const decider = new StatementDecider(
    parsePolicy(`
version: reports
default: { action: deny }
rules:
  - { id: reports, match: { relations: [public.reports] }, action: allow }
`),
  );

  it('allows the qualified name', () => {
    expect(decider.decide(request('select * from public.reports')).action).toBe('allow');
  });

  it('does not allow the unqualified name, which search_path could point anywhere', () => {
    expect(decider.decide(request('select * from reports'))).toMatchObject({
      action: 'deny',
      ruleId: 'default',
    });
  });
});
