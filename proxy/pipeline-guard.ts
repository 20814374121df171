/**
 * Closes the gap the ParameterStatus watch leaves in a pipeline. The server reports a changed
 * setting only with the ReadyForQuery that ends a cycle, so server code that switches
 * client_encoding or standard_conforming_strings (a function, a trigger, a domain check) takes
 * effect for the messages already sent behind it before the proxy can see the report: a pipelined
 * statement would then be read by the server as SJIS, say, while the proxy parsed UTF-8.
 *
 * Only text whose reading can depend on those settings is at risk: a byte ≥ 0x80 (every encoding
 * PostgreSQL accepts reads ASCII as ASCII) or a backslash (standard_conforming_strings). Such a
 * message, sent while code may have run since the pins were last verified, is:
 * - preceded by a check inside the same extended-protocol cycle (before its Sync): a hidden
 *   statement that fails unless the pins (and the session's role) still hold, so the server skips
 *   the rest of the cycle and the session ends (the relay drops the check's replies);
 * - otherwise held until every earlier statement has been answered, so the watch has read every
 *   ParameterStatus that the server sent before it.
 * Everything else passes at once: ASCII text without backslashes reads the same in every state.
 */
import { isAscii } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { serialize } from 'pg-protocol';
import type { Frame } from './wire/frame-reader.ts';

export type GuardAction = 'forward' | 'check' | 'wait';

/** Marks the check in the server's statement log. */
export const PIN_CHECK_MARK = '/* pgwarden: pinned settings check */';

const Q = 0x51;
const P = 0x50;
const B = 0x42;
const E = 0x45;
const D = 0x44;
const C = 0x43;
const S = 0x53;
const H = 0x48;
const BACKSLASH = 0x5c;

export class PipelineGuard {
  /** code may have run on the server since the pins were last verified */
  private dirty = false;
  /** extended-protocol messages were sent since the last Sync */
  private cycleOpen = false;
  /** unguessable, so no client statement or portal can hold it */
  private readonly name = `pgwarden_check_${randomBytes(8).toString('hex')}`;
  private readonly check: Buffer;

  constructor(loginUser: string | undefined) {
    this.check = Buffer.concat([
      serialize.parse({ name: this.name, text: checkSql(loginUser) }),
      serialize.bind({ portal: this.name, statement: this.name }),
      serialize.execute({ portal: this.name }),
      serialize.close({ type: 'P', name: this.name }),
      serialize.close({ type: 'S', name: this.name }),
    ]);
  }

  /**
   * Called for each client message before it is handled: forward it, send `checkMessages` first,
   * or wait until nothing is in flight (then ask again). `skipping`: the server is discarding
   * messages up to Sync, so this one will not run anyway.
   */
  before(frame: Frame, skipping: boolean): GuardAction {
    const type = frame.type;
    let action: GuardAction = 'forward';
    if (this.dirty && !skipping && stateSensitive(frame)) {
      if (!this.cycleOpen) return 'wait';
      action = 'check';
      this.dirty = false;
    }
    if (type === Q || type === P || type === B || type === E) this.dirty = true;
    if (type === P || type === B || type === E || type === D || type === C || type === H)
      this.cycleOpen = true;
    else if (type === S) this.cycleOpen = false;
    return action;
  }

  /** A ReadyForQuery with nothing else in flight: the watch has read every report before it. */
  verified(): void {
    this.dirty = false;
  }

  /** Parse, Bind, Execute and two Closes of the check; their replies: 1, 2, C, 3, 3. */
  checkMessages(): Buffer {
    return this.check;
  }
}

/** Fails (division by zero) unless the pins and the session's identity still hold. */
function checkSql(loginUser: string | undefined): string {
  const eq = 'OPERATOR(pg_catalog.=)';
  const login =
    loginUser === undefined
      ? ''
      : ` AND session_user ${eq} '${loginUser.replaceAll("'", "''")}'::pg_catalog.name`;
  return `${PIN_CHECK_MARK} SELECT 1 WHERE pg_catalog.int4div(1, pg_catalog.int4(pg_catalog.current_setting('client_encoding') ${eq} 'UTF8' AND pg_catalog.current_setting('standard_conforming_strings') ${eq} 'on' AND current_user ${eq} session_user${login})) ${eq} 0`;
}

/** Whether the server could read this message differently if a pin had moved. */
function stateSensitive(frame: Frame): boolean {
  const body = frame.body;
  switch (frame.type) {
    case Q:
      return risky(body, body.length);
    case P:
      return risky(body, nulAfter(body, nulAfter(body, 0) + 1));
    case B:
      return risky(body, nulAfter(body, nulAfter(body, 0) + 1));
    case E:
      return risky(body, nulAfter(body, 0));
    case D:
    case C:
      return risky(body, nulAfter(body, 1));
    default:
      return false;
  }
}

function nulAfter(body: Buffer, from: number): number {
  const at = body.indexOf(0, from);
  return at < 0 ? body.length : at;
}

function risky(body: Buffer, end: number): boolean {
  const part = end === body.length ? body : body.subarray(0, end);
  return !isAscii(part) || part.includes(BACKSLASH);
}
