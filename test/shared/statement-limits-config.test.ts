/** shared/config.ts: PGWARDEN_MAX_STATEMENT_BYTES and PGWARDEN_MAX_MASKED_ROW_BYTES. */
import { describe, expect, it } from 'vitest';
import { statementLimitsFromEnv } from '../../shared/config.ts';

function read(env: Record<string, string>): {
  limits: ReturnType<typeof statementLimitsFromEnv>;
  problems: string[];
} {
  const problems: string[] = [];
  return { limits: statementLimitsFromEnv(env, problems), problems };
}

describe('statementLimitsFromEnv', () => {
  it('defaults to 1 MiB statements and 16 MiB masked rows', () => {
    expect(read({})).toEqual({
      limits: { maxStatementBytes: 1024 * 1024, maxMaskedRowBytes: 16 * 1024 * 1024 },
      problems: [],
    });
  });

  it('reads both', () => {
    expect(
      read({ PGWARDEN_MAX_STATEMENT_BYTES: '65536', PGWARDEN_MAX_MASKED_ROW_BYTES: '1048576' }).limits,
    ).toEqual({ maxStatementBytes: 65536, maxMaskedRowBytes: 1048576 });
  });

  it.each([
    ['PGWARDEN_MAX_STATEMENT_BYTES', 'lots'],
    ['PGWARDEN_MAX_STATEMENT_BYTES', '100'],
    ['PGWARDEN_MAX_STATEMENT_BYTES', String(65 * 1024 * 1024)],
    ['PGWARDEN_MAX_MASKED_ROW_BYTES', '1.5'],
    ['PGWARDEN_MAX_MASKED_ROW_BYTES', '-1'],
  ])('refuses %s=%s', (name, value) => {
    expect(read({ [name]: value }).problems).toEqual([expect.stringContaining(name)]);
  });
});
