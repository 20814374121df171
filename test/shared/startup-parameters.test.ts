/**
 * shared/startup-parameters.ts: the startup packet read as PostgreSQL reads it, checked by
 * allow-list. Every spelling here was tried as a way around the list; each stays.
 */
import { describe, expect, it } from 'vitest';
import {
  checkStartupParameters,
  parseStartupOptions,
  splitOptions,
} from '../../shared/startup-parameters.ts';

const base = { user: 'alice@example.com', database: 'app' };

function check(extra: Record<string, string>) {
  return checkStartupParameters(new Map(Object.entries({ ...base, ...extra })));
}

function settings(extra: Record<string, string>): Record<string, string> {
  const result = check(extra);
  if (!result.ok) throw new Error(`refused: ${result.refusal.message}`);
  return Object.fromEntries(result.startup.settings);
}

function refusal(extra: Record<string, string>) {
  const result = check(extra);
  if (result.ok) throw new Error(`accepted: ${JSON.stringify([...result.startup.settings])}`);
  return result.refusal;
}

describe('splitOptions (pg_split_opts)', () => {
  it.each([
    ['-c a=1 -c b=2', ['-c', 'a=1', '-c', 'b=2']],
    ['  -c\ta=1\n\r\v\f--b=2  ', ['-c', 'a=1', '--b=2']],
    ['-c application_name=a\\ b', ['-c', 'application_name=a b']],
    ['-c x=a\\\\b', ['-c', 'x=a\\b']],
    ['-c x=\\r\\o\\le', ['-c', 'x=role']],
    ['-c x=end\\', ['-c', 'x=end']],
    ['', []],
    ['   ', []],
  ])('%j → %j', (text, args) => {
    expect(splitOptions(text)).toEqual(args);
  });
});

describe('parseStartupOptions', () => {
  it('reads -c name=value, -cname=value and --name=value, with - in names read as _', () => {
    expect(
      parseStartupOptions('-c search_path=foo -cstatement_timeout=5 --lock-timeout=7 --DateStyle=ISO,\\ MDY'),
    ).toEqual([
      ['search_path', 'foo'],
      ['statement_timeout', '5'],
      ['lock_timeout', '7'],
      ['datestyle', 'ISO, MDY'],
    ]);
  });

  it('keeps everything after the first = as the value', () => {
    expect(parseStartupOptions('--search_path=a=b')).toEqual([['search_path', 'a=b']]);
  });

  it.each(['-D /tmp', '-P', '-e', '-o -F', '-s', '-Pcrole=x', '--', '-', '-B 10', '-ec role=x'])(
    'refuses the server switch in %j with 42501',
    (options) => {
      expect(() => parseStartupOptions(options)).toThrow(/switch/);
      expect(refusal({ options }).code).toBe('42501');
    },
  );

  it.each(['-c', '-c role', '--role', 'role=x', '-c a=1 stray', '-cfoo'])(
    'refuses malformed %j with 08P01',
    (options) => {
      expect(refusal({ options }).code).toBe('08P01');
    },
  );
});

describe('checkStartupParameters', () => {
  it('passes what node-postgres, psql and pgbench send', () => {
    expect(
      settings({
        application_name: 'psql',
        client_encoding: 'UTF8',
        options: '--search_path=foo',
        statement_timeout: '1234',
        lock_timeout: '10',
        idle_in_transaction_session_timeout: '1000',
      }),
    ).toEqual({
      search_path: 'foo',
      application_name: 'psql',
      statement_timeout: '1234',
      lock_timeout: '10',
      idle_in_transaction_session_timeout: '1000',
    });
  });

  it('never passes a pinned setting on: the gateway sets those itself', () => {
    expect(
      settings({
        client_encoding: 'utf-8',
        standard_conforming_strings: 'on',
        options: '-c client_encoding=UNICODE',
      }),
    ).toEqual({});
  });

  it('accepts SQL_ASCII, which psql sends in a terminal under LANG=C (the session still gets UTF8)', () => {
    expect(settings({ client_encoding: 'SQL_ASCII' })).toEqual({});
    expect(settings({ client_encoding: 'sql-ascii' })).toEqual({});
  });

  it.each(['LATIN1', 'SJIS', 'GBK', 'BIG5', 'WIN1252', 'auto', '', 'UTF16'])(
    'refuses client_encoding=%j saying how to fix it',
    (value) => {
      const r = refusal({ client_encoding: value });
      expect(r.code).toBe('42501');
      expect(r.message).toContain('PGCLIENTENCODING=UTF8');
    },
  );

  it.each([
    [{ role: 'app_admin' }, 'role'],
    [{ ROLE: 'app_admin' }, 'role'],
    [{ Role: 'app_admin' }, 'role'],
    [{ session_authorization: 'postgres' }, 'session_authorization'],
    [{ options: '-c role=app_admin' }, 'role'],
    [{ options: '-crole=app_admin' }, 'role'],
    [{ options: '--role=app_admin' }, 'role'],
    [{ options: '-c ROLE=app_admin' }, 'role'],
    [{ options: '-c r\\ole=app_admin' }, 'role'],
    [{ options: '--session-authorization=postgres' }, 'session_authorization'],
    [{ options: '-c search_path=foo -c role=app_admin' }, 'role'],
    [{ standard_conforming_strings: 'off' }, 'standard_conforming_strings'],
    [{ options: '-c standard_conforming_strings=off' }, 'standard_conforming_strings'],
    [{ backslash_quote: 'on' }, 'backslash_quote'],
    [{ escape_string_warning: 'off' }, 'escape_string_warning'],
    [{ search_path_x: 'y' }, 'search_path_x'],
    [{ 'pgwarden.anything': 'y' }, 'pgwarden.anything'],
    [{ 'search-path': 'foo' }, 'search-path'],
    [{ ' application_name': 'x' }, ' application_name'],
    [{ USER: 'postgres' }, 'user'],
    [{ Database: 'postgres' }, 'database'],
    [{ Options: '-c role=x' }, 'options'],
    [{ '_PQ_.x': '1' }, '_pq_.x'],
    [{ session_preload_libraries: 'x' }, 'session_preload_libraries'],
    [
      { default_transaction_isolation: 'serializable', transaction_read_only: 'off' },
      'transaction_read_only',
    ],
  ])('refuses %j with 42501, naming %j', (extra, name) => {
    const r = refusal(extra as Record<string, string>);
    expect(r.code).toBe('42501');
    expect(r.message).toContain(`"${name}"`);
  });

  it('an escaped space keeps "-c role=…" inside the application name, which is then just text', () => {
    expect(settings({ options: '-c application_name=x\\ -c\\ role=app_admin' })).toEqual({
      application_name: 'x -c role=app_admin',
    });
  });

  it('refuses a setting given twice at the top level under two spellings (08P01)', () => {
    expect(refusal({ application_name: 'a', APPLICATION_NAME: 'b' }).code).toBe('08P01');
  });

  it('applies the server precedence: options first, later wins, top-level keys last', () => {
    expect(
      settings({
        options: '-c application_name=a -c application_name=b -c search_path=s',
        application_name: 'c',
      }),
    ).toEqual({ application_name: 'c', search_path: 's' });
    expect(settings({ options: '-c application_name=a -c application_name=b' })).toEqual({
      application_name: 'b',
    });
  });

  it('a forbidden value is refused even when an allowed one for the same name follows', () => {
    expect(
      refusal({ options: '-c standard_conforming_strings=off', standard_conforming_strings: 'on' }).code,
    ).toBe('42501');
  });

  it('reports _pq_ extensions for negotiation, never as settings', () => {
    const result = check({ '_pq_.compression': 'on', application_name: 'x' });
    expect(result.ok && result.startup.protocolExtensions).toEqual(['_pq_.compression']);
    expect(result.ok && Object.fromEntries(result.startup.settings)).toEqual({ application_name: 'x' });
  });

  it('refuses replication unless it says false', () => {
    expect(refusal({ replication: 'database' }).code).toBe('0A000');
    expect(refusal({ replication: 'true' }).code).toBe('0A000');
    expect(refusal({ replication: 'on' }).code).toBe('0A000');
    expect(settings({ replication: 'false' })).toEqual({});
    expect(settings({ replication: 'OFF' })).toEqual({});
  });

  it('defaults the database to the user and refuses a missing user (28000)', () => {
    const result = checkStartupParameters(new Map([['user', 'alice@example.com']]));
    expect(result.ok && result.startup.database).toBe('alice@example.com');
    expect(checkStartupParameters(new Map([['database', 'app']]))).toMatchObject({
      ok: false,
      refusal: { code: '28000' },
    });
  });

  it('refuses a database name the server would cut to another name', () => {
    expect(check({ database: 'd'.repeat(63) }).ok).toBe(true);
    expect(refusal({ database: `${'d'.repeat(63)}x` }).code).toBe('42501');
    expect(refusal({ database: 'é'.repeat(32) }).code).toBe('42501');
  });
});
