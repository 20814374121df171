import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, loadSqlParser } from '../../../shared/sql/analyze.ts';
import { one, relations } from './helpers.ts';

beforeAll(loadSqlParser);

describe('PREPARE / EXECUTE / DEALLOCATE', () => {
  it('analyses a prepared body as if it ran', () => {
    const s = one('prepare p (int) as delete from t');
    expect(s.kind).toBe('prepare');
    expect(s.kinds).toEqual(['prepare', 'delete']);
    expect(s.prepared).toEqual({ name: 'p' });
    expect(s.noWhere).toBe(true);
    expect(relations(s)).toEqual(['t:write']);
  });

  it('resolves EXECUTE of a statement prepared earlier in the same message', () => {
    const { statements } = analyzeSql('PREPARE p AS DELETE FROM t; EXECUTE p');
    const execute = statements[1];
    expect(execute?.kind).toBe('execute');
    expect(execute?.execute).toEqual({ name: 'p', resolved: true });
    expect(execute?.kinds).toEqual(['execute', 'delete']);
    expect(execute?.noWhere).toBe(true);
  });

  it('leaves EXECUTE of an earlier message unresolved (the proxy decided it at PREPARE)', () => {
    const s = one('execute p(1)');
    expect(s.execute).toEqual({ name: 'p', resolved: false });
    expect(s.kinds).toEqual(['execute']);
    expect(s.confident).toBe(true);
  });

  it('forgets a prepared statement after DEALLOCATE', () => {
    const { statements } = analyzeSql('prepare p as delete from t; deallocate p; execute p');
    expect(statements[2]?.execute).toEqual({ name: 'p', resolved: false });
    const all = analyzeSql('prepare p as delete from t; deallocate all; execute p');
    expect(all.statements[2]?.execute?.resolved).toBe(false);
  });

  it('walks the arguments of EXECUTE', () => {
    expect(one("execute p(pg_read_file('/x'))").functions).toEqual(['pg_read_file']);
  });
});

describe('EXPLAIN', () => {
  it('EXPLAIN ANALYZE runs the statement: analysed through', () => {
    for (const sql of [
      'explain analyze delete from t',
      'EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t',
      'explain analyse delete from t',
    ]) {
      const s = one(sql);
      expect(s.kind, sql).toBe('explain');
      expect(s.kinds, sql).toEqual(['explain', 'delete']);
      expect(s.explain, sql).toEqual({ analyze: true });
      expect(s.noWhere, sql).toBe(true);
      expect(relations(s), sql).toEqual(['t:write']);
    }
  });

  it('counts any ANALYZE option, whatever its value (literal values are never read)', () => {
    expect(one('explain (analyze off) delete from t').explain).toEqual({ analyze: true });
  });

  it('plain EXPLAIN only plans: reads, no writes, but its functions are still listed', () => {
    const s = one("explain delete from t where f(pg_read_file('/x'))");
    expect(s.kinds).toEqual(['explain']);
    expect(s.explain).toEqual({ analyze: false });
    expect(s.noWhere).toBe(false);
    expect(relations(s)).toEqual(['t:read']);
    expect(s.functions).toEqual(['f', 'pg_read_file']);
    expect(one('explain delete from t').noWhere).toBe(false);
  });

  it('EXPLAIN ANALYZE EXECUTE resolves the prepared statement', () => {
    const { statements } = analyzeSql('prepare p as update t set a = 1; explain analyze execute p');
    expect(statements[1]?.kinds).toEqual(['explain', 'execute', 'update']);
    expect(statements[1]?.noWhere).toBe(true);
  });

  it('EXPLAIN ANALYZE of CREATE TABLE AS is DDL that runs', () => {
    const s = one('explain analyze create table t2 as select * from t');
    expect(s.kinds).toEqual(['explain', 'ddl']);
    expect(s.ddlObjects).toEqual(['table']);
  });
});
