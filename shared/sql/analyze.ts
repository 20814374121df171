/**
 * `analyzeSql`: what a message (one simple Query, or one Parse) does, statement by statement, from
 * PostgreSQL's own parse tree. Pure and synchronous once `loadSqlParser()` has resolved.
 */
import type { RawStmt } from 'libpg-query';
import { type Body, classify } from './classify.ts';
import { StatementCollector } from './collect.ts';
import type { SqlAnalysis, StatementFacts } from './facts.ts';
import { fingerprintSql, parseSql } from './parser.ts';
import { unwrap } from './tree.ts';

export { isSqlParserLoaded, loadSqlParser } from './parser.ts';

export function analyzeSql(text: string): SqlAnalysis {
  const outcome = parseSql(text);
  if (!outcome.ok) {
    const position = outcome.cursor === undefined ? undefined : outcome.cursor + 1;
    return {
      parsed: false,
      error: { message: outcome.message, ...(position !== undefined && { position }) },
      statements: [],
      confident: false,
      fingerprint: 'unparseable',
    };
  }
  // PREPAREd earlier in the same message, so that `PREPARE p AS …; EXECUTE p` is analysed through.
  const prepared = new Map<string, StatementFacts>();
  const offsets = new Offsets(text);
  const statements = (outcome.tree.stmts ?? []).map((raw) => analyzeStatement(raw, prepared, offsets));
  let fingerprint: string | undefined;
  return {
    parsed: true,
    statements,
    confident: statements.every((s) => s.confident),
    get fingerprint() {
      fingerprint ??= fingerprintSql(text);
      return fingerprint;
    },
  };
}

function analyzeStatement(
  raw: RawStmt,
  prepared: Map<string, StatementFacts>,
  offsets: Offsets,
): StatementFacts {
  const [type, body] = unwrap(raw.stmt) ?? ['', {} as Body];
  const { kind, ddlObject, setting } = classify(type, body);
  const collector = new StatementCollector((name) => prepared.get(name));
  collector.kinds.add(kind);
  if (ddlObject) collector.ddlObjects.add(ddlObject);
  if (kind === 'unknown') collector.uncertain(`statement type ${type || '(none)'} is not recognised`);
  try {
    collector.walk(type, body);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    collector.uncertain('the statement is nested too deeply to analyse');
    // the walk stopped part way: a set_config or SET clause may sit in the part not seen
    collector.unseenSettings();
  }
  const facts: StatementFacts = {
    kind,
    ...(ddlObject && { ddlObject }),
    ...(setting !== undefined && { setting }),
    ...collector.result(),
    ...((type === 'UpdateStmt' || type === 'DeleteStmt') && { hasWhere: body.whereClause !== undefined }),
    location: offsets.statement(raw.stmt_location ?? 0, raw.stmt_len ?? 0),
  };
  trackPrepared(type, body, facts, prepared);
  return facts;
}

function trackPrepared(
  type: string,
  body: Body,
  facts: StatementFacts,
  prepared: Map<string, StatementFacts>,
): void {
  if (type === 'PrepareStmt' && typeof body.name === 'string') prepared.set(body.name, facts);
  if (type === 'DeallocateStmt') {
    if (body.isall) prepared.clear();
    else if (typeof body.name === 'string') prepared.delete(body.name);
  }
}

/** The parser counts UTF-8 bytes; JavaScript strings count UTF-16 code units. */
class Offsets {
  private readonly bytes: Uint8Array | undefined;
  constructor(private readonly text: string) {
    this.bytes = /^[\x00-\x7f]*$/.test(text) ? undefined : new TextEncoder().encode(text);
  }

  private toChar(byteOffset: number): number {
    if (!this.bytes) return byteOffset;
    return new TextDecoder().decode(this.bytes.subarray(0, byteOffset)).length;
  }

  statement(byteStart: number, byteLength: number): { start: number; length: number } {
    const start = this.toChar(byteStart);
    const end = byteLength === 0 ? this.text.length : this.toChar(byteStart + byteLength);
    return { start, length: end - start };
  }
}
