/**
 * Refusals the gateway makes before any policy is read, whatever an admin writes: statements that
 * would change a setting pgwarden owns (shared/session-settings.ts). Those settings decide how the
 * server reads statement text (client_encoding, standard_conforming_strings, backslash_quote) or
 * who the session is (role, session_authorization); a client that changed them could make the
 * server run something other than what pgwarden parsed, or run it as someone else.
 *
 * Every way the proxy can see is refused: SET / SET SESSION / SET LOCAL / RESET of the name in any
 * case or quoting, SET NAMES, SET ROLE, SET SESSION AUTHORIZATION, SET clauses of functions,
 * procedures, roles, databases and ALTER SYSTEM, set_config() naming it (or naming a setting with
 * anything but a string constant), writes to pg_settings, and aggregates built on set_config. What
 * the proxy cannot see (a server function that changes them) is caught by the ParameterStatus
 * watch (proxy/session-pins.ts), which ends the session.
 *
 * Allowed on purpose:
 * - `SET client_encoding = 'UTF8'` and `SET standard_conforming_strings = on` (the pinned value
 *   itself: libpq's PQsetClientEncoding and Rails send it). The value is read from the exact text,
 *   so such a decision is cached by exact text, never by the literal-blind shape (decide.ts).
 * - RESET ALL and DISCARD ALL: they restore each setting's reset value, which is the value the
 *   session had when it started (startup parameters are reset values), and the proxy verified
 *   those against the pins at connect (proxy/session-pins.ts); role and session_authorization are
 *   not touched by RESET ALL, and DISCARD ALL's SET SESSION AUTHORIZATION DEFAULT returns to the
 *   gateway's own login. ALTER ROLE / DATABASE … RESET ALL and ALTER SYSTEM RESET ALL only drop
 *   stored defaults; sessions pin their own values at connect, and a reload that changed a running
 *   session would be reported and end it.
 * - set_config('some.name', …) with a constant name that pgwarden does not own: it is SET by
 *   another name, and the policy decides it (the default pack still denies set_config as a whole,
 *   because policies never read literal values).
 */

import {
  GATEWAY_OWNED_SETTINGS,
  gatewayOwnedReason,
  matchesPin,
  PINNED_SETTINGS,
} from '../session-settings.ts';
import type { SettingChange, SqlAnalysis } from '../sql/facts.ts';
import { parseSql } from '../sql/parser.ts';
import { unwrap } from '../sql/tree.ts';

/** The rule id of every refusal below, in decisions and audit records. */
export const GATEWAY_PINNED_SETTING_RULE = 'gateway-pinned-setting';

export interface GatewayRefusal {
  ruleId: string;
  reason: string;
}

const OWNED = Object.keys(GATEWAY_OWNED_SETTINGS).join(', ');

/** Why the gateway refuses this message whatever the policy says, or undefined. */
export function gatewayRefusal(analysis: SqlAnalysis, text: string): GatewayRefusal | undefined {
  let exact: unknown[] | undefined;
  for (let i = 0; i < analysis.statements.length; i++) {
    for (const change of analysis.statements[i]!.settingChanges) {
      const reason = refusalOf(change, () => {
        exact ??= exactStatements(text);
        return setValues(exact[i]);
      });
      if (reason !== undefined) return { ruleId: GATEWAY_PINNED_SETTING_RULE, reason };
    }
  }
  return undefined;
}

/**
 * Whether the gateway's answer depends on a literal value (a SET of a pinned setting to a
 * constant): such a decision must be cached by the exact text, not by the literal-blind shape.
 */
export function readsLiteralValues(analysis: SqlAnalysis): boolean {
  return analysis.statements.some((s) => s.settingChanges.some((c) => pinnedValueCheck(c)));
}

function pinnedValueCheck(change: SettingChange): boolean {
  return (
    change.sessionValue === true && change.name !== undefined && Object.hasOwn(PINNED_SETTINGS, change.name)
  );
}

function refusalOf(change: SettingChange, values: () => string[] | undefined): string | undefined {
  switch (change.via) {
    case 'pg_settings':
      return `writing to pg_settings can change settings pgwarden owns (${OWNED}); use SET for ordinary settings`;
    case 'aggregate':
      return `an aggregate built on set_config can change settings pgwarden owns (${OWNED})`;
    case 'unknown':
      return 'the statement is nested too deeply for pgwarden to see which settings it changes';
    case 'set_config':
      if (change.name === undefined)
        return `set_config with a setting name that is not a string constant can change settings pgwarden owns (${OWNED}); write the name as a constant`;
      break;
    case 'set':
      break;
  }
  if (change.name === undefined) return undefined;
  const reason = gatewayOwnedReason(change.name);
  if (reason === undefined) return undefined;
  if (pinnedValueCheck(change)) {
    // SET client_encoding = 'UTF8' asks for what the session already has
    const given = values();
    if (given?.length === 1 && matchesPin(change.name, given[0]!)) return undefined;
  }
  return reason;
}

/** The message's statements as the parser reads its exact text (rare: a SET of a pinned setting). */
function exactStatements(text: string): unknown[] {
  const outcome = parseSql(text);
  return outcome.ok ? (outcome.tree.stmts ?? []).map((raw) => raw.stmt) : [];
}

/** The constant values of a top-level `SET name = …`, as text; undefined when not that shape. */
function setValues(statement: unknown): string[] | undefined {
  const set = unwrap(statement);
  if (set?.[0] !== 'VariableSetStmt' || set[1].kind !== 'VAR_SET_VALUE') return undefined;
  const values: string[] = [];
  for (const arg of (set[1].args ?? []) as unknown[]) {
    const constant = unwrap(arg);
    if (constant?.[0] !== 'A_Const') return undefined;
    const value = constantText(constant[1]);
    if (value === undefined) return undefined;
    values.push(value);
  }
  return values;
}

function constantText(body: Record<string, unknown>): string | undefined {
  const field = (name: string, key: string) => (body[name] as Record<string, unknown> | undefined)?.[key];
  if (body.sval !== undefined)
    return typeof field('sval', 'sval') === 'string' ? (field('sval', 'sval') as string) : undefined;
  // protobuf JSON leaves out zero: `{ ival: {} }` is 0
  if (body.ival !== undefined) return String(field('ival', 'ival') ?? 0);
  if (body.fval !== undefined)
    return typeof field('fval', 'fval') === 'string' ? (field('fval', 'fval') as string) : undefined;
  if (body.boolval !== undefined) return field('boolval', 'boolval') === true ? 'true' : 'false';
  return undefined;
}
