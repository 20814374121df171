/**
 * The one door to PostgreSQL's own parser: libpg-query, the real grammar compiled to WASM (no native
 * build). `loadSqlParser()` is awaited once at start; after that parsing is synchronous.
 */

import type { ParseResult } from 'libpg-query';
import { fingerprintSync, loadModule, parseSync } from 'libpg-query';
import { PgWardenError } from '../errors.ts';

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads the WASM parser (~25 ms, once per process). Safe to call more than once. */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  return loading;
}

export function isSqlParserLoaded(): boolean {
  return loaded;
}

function assertLoaded(): void {
  if (!loaded)
    throw new PgWardenError('INTERNAL', 'the SQL parser is not loaded: await loadSqlParser() at start');
}

export type ParseOutcome =
  | { ok: true; tree: ParseResult }
  | {
      ok: false;
      message: string /** 0-based character (code point) offset, as PostgreSQL counts */;
      cursor?: number;
    };

/** Parses a message; a syntax error is an outcome, not an exception. */
export function parseSql(text: string): ParseOutcome {
  assertLoaded();
  // The parser reads a C string and would stop at the first NUL; PostgreSQL rejects such a message.
  if (text.includes('\0')) return { ok: false, message: 'the statement text contains a NUL character' };
  // libpg-query refuses '' outright; PostgreSQL answers it with EmptyQueryResponse.
  if (text === '') return { ok: true, tree: { stmts: [] } };
  try {
    return { ok: true, tree: parseSync(text) };
  } catch (error) {
    const details = (error as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, message, cursor: details?.cursorPosition };
  }
}

/** The parser's fingerprint of a message; 'unparseable' when the parser rejects it. */
export function fingerprintSql(text: string): string {
  assertLoaded();
  if (text.includes('\0')) return 'unparseable';
  try {
    return fingerprintSync(text);
  } catch {
    return 'unparseable';
  }
}
