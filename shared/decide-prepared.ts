/**
 * SQL `EXECUTE name` of a statement prepared in an earlier message. The analysis of the EXECUTE
 * alone says nothing about what runs, and deciding it at PREPARE time is not enough: the policy may
 * have changed since (hot reload), and a PREPARE that failed upstream (the name was taken) must not
 * vouch for the statement that really holds the name. So the proxy remembers every text that
 * prepared each name in the session (never forgetting one, so a stale or failed PREPARE can only
 * make the decision stricter), and the EXECUTE gets the most restrictive decision over its own and
 * all of those, under the current policy. A name the proxy never saw prepared is denied.
 */
import type { Decision, DecisionMask, DecisionRequest } from './control-plane.ts';
import { ACTION_RANK } from './policy/model.ts';

export interface Decides {
  decide(request: DecisionRequest): Decision;
}

export const UNKNOWN_PREPARED_RULE = 'unknown-prepared-statement';

/**
 * Stands in for texts the proxy stopped remembering (it bounds the memory of a session): an
 * EXECUTE of a name with this text is denied, since what it runs is no longer known.
 */
export const PREPARED_OVERFLOW = '\u0000pgwarden: too many prepared texts';

export function throughPrepared(decider: Decides, request: DecisionRequest, decision: Decision): Decision {
  const { executes, ...own } = decision;
  let result: Decision = own;
  for (const name of executes ?? []) {
    const prepared = request.statement.prepared;
    // own keys only: EXECUTE "constructor" must not find Object.prototype's
    const texts = prepared && Object.hasOwn(prepared, name) ? prepared[name] : undefined;
    if (texts === undefined || texts.length === 0) {
      return {
        ...own,
        action: 'deny',
        ruleId: UNKNOWN_PREPARED_RULE,
        reason: `EXECUTE ${name}: pgwarden did not see "${name}" prepared in this session, so it cannot check what it runs; PREPARE it through pgwarden first`,
      };
    }
    for (const text of texts) {
      if (text === PREPARED_OVERFLOW) {
        return {
          ...own,
          action: 'deny',
          ruleId: UNKNOWN_PREPARED_RULE,
          reason: `EXECUTE ${name}: this session prepared too many statements for pgwarden to remember what "${name}" runs; use a new session`,
        };
      }
      // Without `prepared`: a PREPARE message that itself EXECUTEs another earlier name is denied
      // rather than followed, so chains (and cycles) of prepared statements end here.
      const body = decider.decide({
        session: request.session,
        statement: { text, protocol: request.statement.protocol },
      });
      result = stricter(result, body, name);
    }
  }
  // kept: an approval of the EXECUTE shows, and is bound to, the texts it runs (proxy/approval-gate.ts)
  return Object.freeze({ ...result, executes });
}

function stricter(current: Decision, body: Decision, name: string): Decision {
  const masks = mergeMasks(current.masks, body.masks);
  const base: Decision =
    ACTION_RANK[body.action] > ACTION_RANK[current.action]
      ? {
          ...current,
          action: body.action,
          ruleId: body.ruleId,
          reason: `EXECUTE ${name}: ${body.reason ?? 'the prepared statement is not allowed by policy'}`,
          ...(body.approval && { approval: body.approval }),
        }
      : current;
  const kinds = [...new Set([...(current.kinds ?? []), ...(body.kinds ?? [])])];
  return { ...base, kinds, ...(masks.length > 0 && { masks }) };
}

function mergeMasks(a: DecisionMask[] | undefined, b: DecisionMask[] | undefined): DecisionMask[] {
  const byRule = new Map<string, DecisionMask>();
  for (const m of [...(a ?? []), ...(b ?? [])]) byRule.set(m.ruleId, m);
  return [...byRule.values()];
}
