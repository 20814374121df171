import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeSql, isSqlParserLoaded, loadSqlParser } from '../../../shared/sql/analyze.ts';

beforeAll(loadSqlParser);

describe('a message as a whole', () => {
  it('loads the parser once', async () => {
    await loadSqlParser();
    expect(isSqlParserLoaded()).toBe(true);
  });

  it('splits a simple Query into its statements, with their places in the text', () => {
    const text = 'select 1; drop table x;\n  delete from t';
    const a = analyzeSql(text);
    expect(a.parsed).toBe(true);
    expect(a.statements.map((s) => s.kind)).toEqual(['select', 'drop', 'delete']);
    expect(
      a.statements.map((s) => text.slice(s.location.start, s.location.start + s.location.length).trim()),
    ).toEqual(['select 1', 'drop table x', 'delete from t']);
  });

  it('counts offsets in characters when the text is not ASCII', () => {
    const text = "select 'ünïcødé'; select 2";
    const second = analyzeSql(text).statements[1];
    expect(
      text
        .slice(second?.location.start, (second?.location.start ?? 0) + (second?.location.length ?? 0))
        .trim(),
    ).toBe('select 2');
  });

  it('treats an empty message, whitespace, comments and bare semicolons as no statements', () => {
    for (const text of ['', '   ', ';', ';;', '-- just a comment', '/* c */']) {
      const a = analyzeSql(text);
      expect(a.parsed, JSON.stringify(text)).toBe(true);
      expect(a.statements).toEqual([]);
      expect(a.confident).toBe(true);
    }
  });

  it('ignores empty statements between real ones', () => {
    expect(analyzeSql('select 1;;select 2').statements).toHaveLength(2);
  });

  it('understands comments, including nested block comments, as PostgreSQL does', () => {
    expect(analyzeSql('select 1 /* ; drop table x */').statements).toHaveLength(1);
    expect(analyzeSql('select 1 /* /* nested */ ; drop table x */').statements).toHaveLength(1);
    expect(analyzeSql('select 1 -- ; drop table x').statements).toHaveLength(1);
    expect(analyzeSql('select 1 /* /* nested */ */; drop table x').statements.map((s) => s.kind)).toEqual([
      'select',
      'drop',
    ]);
  });

  it('reports a syntax error with its 1-based position', () => {
    const a = analyzeSql('select * from t wher x');
    expect(a.parsed).toBe(false);
    expect(a.confident).toBe(false);
    expect(a.statements).toEqual([]);
    expect(a.error).toEqual({ message: 'syntax error at or near "x"', position: 22 });
    expect(a.fingerprint).toBe('unparseable');
  });

  it('positions errors in characters, not bytes', () => {
    expect(analyzeSql("select 'é' frm t").error).toEqual({
      message: 'syntax error at or near "t"',
      position: 16,
    });
  });

  it('rejects a message with a NUL character', () => {
    const a = analyzeSql('select 1\0; drop table x');
    expect(a.parsed).toBe(false);
    expect(a.error?.message).toMatch(/NUL/);
  });

  it('never reports a deeply nested statement as confident without what is inside it', () => {
    for (const depth of [50, 1000]) {
      const sql = `select * from ${'(select * from '.repeat(depth)}secret${') x'.repeat(depth)}`;
      const a = analyzeSql(sql);
      const s = a.statements[0];
      // either the walk reached the bottom, or it says it could not (and the policy then denies)
      if (s?.confident) expect(s.relations).toEqual([{ name: 'secret', access: 'read' }]);
      else expect(a.parsed ? s?.uncertainties : [a.error?.message]).toHaveLength(1);
    }
  });

  it('one statement that is not confident makes the message not confident', () => {
    const a = analyzeSql('select 1; do $$ begin end $$');
    expect(a.statements.map((s) => s.confident)).toEqual([true, false]);
    expect(a.confident).toBe(false);
  });
});

describe('fingerprint', () => {
  it('is the same across literal values, comments, whitespace and keyword case', () => {
    const fp = analyzeSql('SELECT abalance FROM pgbench_accounts WHERE aid = 1').fingerprint;
    expect(fp).toMatch(/^[0-9a-f]{16}$/);
    for (const variant of [
      'select abalance from pgbench_accounts where aid = 2',
      'SELECT  abalance\n  FROM pgbench_accounts -- comment\n WHERE aid = /* c */ 99',
      'SeLeCt abalance FROM pgbench_accounts WHERE aid = $1',
    ]) {
      expect(analyzeSql(variant).fingerprint, variant).toBe(fp);
    }
  });

  it('differs when the structure differs', () => {
    const fp = analyzeSql('select a from t where b = 1').fingerprint;
    expect(analyzeSql('select a from t where c = 1').fingerprint).not.toBe(fp);
    expect(analyzeSql('select a from u where b = 1').fingerprint).not.toBe(fp);
    expect(analyzeSql('delete from t where b = 1').fingerprint).not.toBe(fp);
  });

  it('is blind to schema names, digits in table names and aliases (so it is no policy cache key)', () => {
    expect(analyzeSql('select * from a.t').fingerprint).toBe(analyzeSql('select * from b.t').fingerprint);
    expect(analyzeSql('select * from customers_2023').fingerprint).toBe(
      analyzeSql('select * from customers_2024').fingerprint,
    );
    expect(analyzeSql('select x.ssn from customers x, staff y').fingerprint).toBe(
      analyzeSql('select x.ssn from customers y, staff x').fingerprint,
    );
  });
});
