/**
 * Statement text a client sends (Query, Parse) is checked before the parser or the server sees it:
 * it must be valid UTF-8 (the session's pinned client_encoding, and what the proxy's parser reads),
 * hold no NUL, and be no longer than the configured bound. PostgreSQL would itself refuse invalid
 * UTF-8 under client_encoding UTF8; refusing it here means a lossy decode (U+FFFD) can never be what
 * the proxy decided while other bytes go upstream. A refused text is answered with an ErrorResponse
 * and the session goes on.
 *
 * Bind parameter values are not checked: they are never lexed, policies never read them, and the
 * server validates text-format values in the client encoding when it converts them (22021).
 */
import { isUtf8 } from 'node:buffer';

export const INVALID_TEXT_RULE = 'gateway-invalid-text';
export const STATEMENT_TOO_LARGE_RULE = 'gateway-statement-too-large';

/** How much of a refused text the audit record keeps. */
const PREVIEW_BYTES = 4096;

/** A Query or Parse text the proxy will not parse or forward. */
export class StatementTextRefused extends Error {
  constructor(
    readonly sqlstate: '22021' | '54000',
    readonly ruleId: string,
    message: string,
    /** the start of the text, decoded leniently, for the audit record */
    readonly preview: string,
    /** Parse: the prepared statement's name */
    readonly statementName?: string,
  ) {
    super(message);
    this.name = 'StatementTextRefused';
  }
}

/** The statement text at body[start, end); throws StatementTextRefused when it must not go on. */
export function statementText(
  body: Buffer,
  start: number,
  end: number,
  maxBytes: number,
  statementName?: string,
): string {
  const length = end - start;
  if (length > maxBytes) {
    throw refused(
      '54000',
      STATEMENT_TOO_LARGE_RULE,
      `the statement is ${length} bytes long, more than the ${maxBytes} bytes pgwarden checks (PGWARDEN_MAX_STATEMENT_BYTES); send large values as bind parameters`,
      body,
      start,
      end,
      statementName,
    );
  }
  // a Query's body is its text and the NUL (valid UTF-8 too): checked without a view
  const valid = start === 0 && end === body.length - 1 ? isUtf8(body) : isUtf8(body.subarray(start, end));
  if (!valid) {
    throw refused(
      '22021',
      INVALID_TEXT_RULE,
      'invalid byte sequence for encoding "UTF8": pgwarden sessions use client_encoding UTF8 and take only valid UTF-8 statement text',
      body,
      start,
      end,
      statementName,
    );
  }
  return body.toString('utf8', start, end);
}

/** A Query's text must be its whole body: a NUL inside it would hide the bytes after it. */
export function nulInsideText(body: Buffer, textEnd: number): StatementTextRefused {
  return refused(
    '22021',
    INVALID_TEXT_RULE,
    'invalid byte sequence for encoding "UTF8": 0x00 (the statement text holds a NUL byte)',
    body,
    0,
    textEnd,
    undefined,
  );
}

function refused(
  sqlstate: '22021' | '54000',
  ruleId: string,
  message: string,
  body: Buffer,
  start: number,
  end: number,
  statementName: string | undefined,
): StatementTextRefused {
  const preview = body.toString('utf8', start, Math.min(end, start + PREVIEW_BYTES));
  return new StatementTextRefused(sqlstate, ruleId, message, preview, statementName);
}
