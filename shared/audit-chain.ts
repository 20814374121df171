/**
 * The audit trail's per-session hash chain: what makes a rewritten, deleted, reordered or inserted
 * statement record visible.
 *
 * A statement record has a fixed part (the head: who, what text, which decision, when it started;
 * known before the statement is forwarded) and what the statement did (the tail: outcome, rows,
 * error, masking). The record of intent carries `headHash` = SHA-256 of the canonical head; the
 * completed record carries the same `headHash` and is one link of the session's chain:
 *
 *   recordHash = SHA-256("pgwarden-audit-chain-1" \n chainIndex \n prevHash \n headHash \n canonical tail)
 *
 * chainIndex counts the session's completed records from 1 in the order the proxy completed them
 * (a refused Parse completes before a pipelined statement still running, so that order is the
 * proxy's real order, not always seq order); prevHash is the previous link's recordHash, the first
 * link's is genesisHash(sessionId). Every link covers the decision (in the head) and the outcome
 * (in the tail); an intent that a completion replaced is covered through headHash, which the store
 * requires to be equal for the replacement. The session_closed record anchors the chain with
 * chainLength and chainHead (the last recordHash), so a deleted last record is seen too.
 *
 * What anchors the anchor: whoever can rewrite every record of a session and its close can
 * recompute the whole chain. The API cannot (conditional writes, no delete grant); the proxy logs
 * each closed session's head (chainLength, chainHead) to its own log stream, a second place an
 * auditor can compare against.
 *
 * Canonical form: JSON with object keys sorted (UTF-16 order) at every level, undefined members
 * left out: what DynamoDB gives back (maps lose their order) serializes to the same bytes.
 */
import { hash } from 'node:crypto';

export const CHAIN_VERSION = 'pgwarden-audit-chain-1';

/** Fields of a statement record that say what the statement did: the chain's tail. */
export const STATEMENT_TAIL_FIELDS: ReadonlySet<string> = new Set([
  'bytesToClient',
  'cancelled',
  'commandTag',
  'detected',
  'durationMs',
  'errorMessage',
  'errorMessageBytes',
  'errorMessageTruncated',
  'masked',
  'outcome',
  'rows',
  'sqlstate',
]);

/** The chain's own fields: neither head nor tail. */
export const STATEMENT_CHAIN_FIELDS: ReadonlySet<string> = new Set([
  'headHash',
  'chainIndex',
  'prevHash',
  'recordHash',
]);

/** Statement text and error messages are capped in the record itself, so what is hashed is what is stored. */
export const MAX_TEXT_BYTES = 128 * 1024;
export const MAX_MESSAGE_BYTES = 8 * 1024;

/** One-shot SHA-256 (crypto.hash): half the cost of createHash for a record-sized input. */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** The chain's starting point: bound to the session, so a chain cannot be moved to another one. */
export function genesisHash(sessionId: string): string {
  return sha256Hex(`${CHAIN_VERSION}\ngenesis\n${sessionId}`);
}

export function linkHash(chainIndex: number, prevHash: string, headHash: string, tailJson: string): string {
  return sha256Hex(`${CHAIN_VERSION}\n${chainIndex}\n${prevHash}\n${headHash}\n${tailJson}`);
}

/** JSON with sorted keys at every level; undefined object members are left out (as JSON.stringify does). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += value[i] === undefined ? 'null' : canonicalJson(value[i]);
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalJson(member)}`;
    first = false;
  }
  return `${out}}`;
}

/** A stored statement record split into what the chain hashes. */
export interface StatementParts {
  head: Record<string, unknown>;
  tail: Record<string, unknown>;
}

export function splitStatement(record: Readonly<Record<string, unknown>>): StatementParts {
  const head: Record<string, unknown> = {};
  const tail: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    if (STATEMENT_CHAIN_FIELDS.has(name)) continue;
    if (STATEMENT_TAIL_FIELDS.has(name)) tail[name] = value;
    else head[name] = value;
  }
  return { head, tail };
}

export function headHashOf(record: Readonly<Record<string, unknown>>): string {
  return sha256Hex(canonicalJson(splitStatement(record).head));
}

/** What is wrong with a statement record's own hashes (not its place in the chain), or undefined. */
export interface RecordHashProblem {
  field: 'headHash' | 'recordHash';
  expected: string;
  found: string;
}

export function recordHashProblem(record: Readonly<Record<string, unknown>>): RecordHashProblem | undefined {
  const { head, tail } = splitStatement(record);
  const headHash = sha256Hex(canonicalJson(head));
  if (record['headHash'] !== headHash)
    return { field: 'headHash', expected: headHash, found: String(record['headHash'] ?? '(none)') };
  if (record['recordHash'] === undefined && record['chainIndex'] === undefined) return undefined;
  const expected = linkHash(
    Number(record['chainIndex']),
    String(record['prevHash']),
    headHash,
    canonicalJson(tail),
  );
  if (record['recordHash'] !== expected)
    return { field: 'recordHash', expected, found: String(record['recordHash'] ?? '(none)') };
  return undefined;
}

/** Keeps the first `maxBytes` of a long text and says so (and how long it was). */
export function cappedText(name: string, text: string, maxBytes: number): Record<string, unknown> {
  // Three bytes per UTF-16 unit at most: short texts skip counting.
  if (text.length * 3 <= maxBytes) return { [name]: text };
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return { [name]: text };
  const buffer = Buffer.from(text);
  // Cut at a character boundary, so capping an already capped text changes nothing.
  let cut = maxBytes;
  while (cut > 0 && (buffer[cut]! & 0xc0) === 0x80) cut--;
  const head = buffer.toString('utf8', 0, cut);
  return { [name]: head, [`${name}Bytes`]: bytes, [`${name}Truncated`]: true };
}

/** The first thing wrong with a session's trail: which record, what was expected, what was found. */
export interface ChainBreak {
  seq?: number;
  eventId?: string;
  chainIndex?: number;
  problem: string;
  expected?: string;
  found?: string;
}

export interface ChainVerdict {
  sessionId: string;
  /**
   * intact: every link checks and the close anchors the chain; open: every link checks but the
   * session has no close yet (still running, or its proxy stopped before it ended); broken: see
   * firstBreak.
   */
  status: 'intact' | 'open' | 'broken';
  /** completed statement records in the chain */
  links: number;
  /** statement records read (intents included) */
  statements: number;
  firstBreak?: ChainBreak;
}

/** What verification needs of the session item (opened and closed merged, as the store keeps it). */
export interface ChainSessionItem {
  openedAt?: unknown;
  closedAt?: unknown;
  chainLength?: unknown;
  chainHead?: unknown;
}

/**
 * Checks one session's statement records (any order) against its chain and the close's anchor,
 * and names the first broken link in chain order: a changed field (the record's own hash), a
 * deleted record (a missing link or seq), records swapped or inserted (prevHash), a link after the
 * anchor or an anchor that does not match (the last records deleted or added).
 */
export function verifySessionChain(
  sessionId: string,
  session: ChainSessionItem | undefined,
  statements: ReadonlyArray<Readonly<Record<string, unknown>>>,
): ChainVerdict {
  const verdict = (status: ChainVerdict['status'], links: number, firstBreak?: ChainBreak): ChainVerdict => ({
    sessionId,
    status,
    links,
    statements: statements.length,
    ...(firstBreak && { firstBreak }),
  });
  const broken = (links: number, problem: ChainBreak) => verdict('broken', links, problem);
  const where = (record: Readonly<Record<string, unknown>>): ChainBreak => ({
    problem: '',
    ...(typeof record['seq'] === 'number' && { seq: record['seq'] }),
    ...(typeof record['eventId'] === 'string' && { eventId: record['eventId'] }),
    ...(typeof record['chainIndex'] === 'number' && { chainIndex: record['chainIndex'] }),
  });

  if (session?.openedAt === undefined) {
    return broken(0, {
      problem: 'the session has no opened record: it was not opened through the API',
    });
  }
  const links = new Map<number, Readonly<Record<string, unknown>>>();
  for (const record of statements) {
    const index = record['chainIndex'];
    if (index === undefined) {
      if (record['outcome'] === 'pending') continue; // an intent: covered through its completion
      const own = recordHashProblem(record);
      return broken(0, {
        ...where(record),
        problem: own
          ? `the record's ${own.field} does not match its fields`
          : 'a completed record that is not linked into the chain',
        ...(own && { expected: own.expected, found: own.found }),
      });
    }
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 1)
      return broken(0, { ...where(record), problem: 'chainIndex is not a positive integer' });
    if (links.has(index))
      return broken(0, { ...where(record), problem: `two records claim link ${index} (one was inserted)` });
    links.set(index, record);
  }

  let previous = genesisHash(sessionId);
  const last = Math.max(0, ...links.keys());
  for (let index = 1; index <= last; index++) {
    const record = links.get(index);
    if (record === undefined)
      return broken(index - 1, {
        chainIndex: index,
        problem: `link ${index} is missing (a record was deleted)`,
      });
    const own = recordHashProblem(record);
    if (own) {
      return broken(index - 1, {
        ...where(record),
        problem: `the record's ${own.field} does not match its fields (a field was changed)`,
        expected: own.expected,
        found: own.found,
      });
    }
    if (record['prevHash'] !== previous) {
      return broken(index - 1, {
        ...where(record),
        problem: 'prevHash is not the previous link (records were reordered, inserted or deleted)',
        expected: previous,
        found: String(record['prevHash']),
      });
    }
    previous = String(record['recordHash']);
  }

  const seqs = statements.map((r) => Number(r['seq'])).sort((a, b) => a - b);
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== i + 1) {
      return broken(last, {
        seq: i + 1,
        problem: `statement seq ${i + 1} is missing (a record was deleted)`,
        expected: String(i + 1),
        found: String(seqs[i]),
      });
    }
  }

  if (session.closedAt === undefined) return verdict('open', last);
  if (session.chainLength !== last || session.chainHead !== previous) {
    return broken(last, {
      problem: 'the close does not anchor this chain (records after the last link were deleted or added)',
      expected: `${String(session.chainLength)} links ending ${String(session.chainHead)}`,
      found: `${last} links ending ${previous}`,
    });
  }
  const pending = statements.find((r) => r['outcome'] === 'pending');
  if (pending)
    return broken(last, {
      ...where(pending),
      problem: 'a record of intent in a closed session (its completion is missing)',
    });
  return verdict('intact', last);
}
