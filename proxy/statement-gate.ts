/**
 * What happens between a statement's decision and its forwarding. The relay asks the control
 * plane for a decision, then hands it to the gate, which may hold the statement (approvals:
 * notice the client, wait for a reviewer) or refuse it (strict audit: the record of intent could
 * not be stored). Gates compose in order; each sees the previous one's decision.
 */
import type { ApprovalParams } from '../shared/approvals/params.ts';
import type { Decision, DecisionRequest } from '../shared/control-plane.ts';
import type { NoticeFields } from './wire/backend-writer.ts';

/** The part of the client connection a gate may use while it holds a statement. */
export interface HeldClient {
  /** Sends a NoticeResponse at the next message boundary, after earlier results. */
  notice(fields: NoticeFields): void;
  /**
   * Aborted while the statement is held when the connection closes (reason 'closed') or the client
   * cancels it with a CancelRequest (reason 'cancelled'): a gate that waits stops waiting.
   */
  readonly signal?: AbortSignal;
}

export interface StatementGate {
  /**
   * Synchronous when the gate has nothing to wait for, so the hot path allocates no promise.
   * `params`: the parameter values of the one execution being admitted (a Bind), when it has any.
   */
  admit(
    request: DecisionRequest,
    decision: Decision,
    client: HeldClient,
    params?: ApprovalParams,
  ): Decision | Promise<Decision>;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

/** Runs gates in order, staying synchronous as long as every gate answers synchronously. */
export function composeGates(gates: readonly StatementGate[]): StatementGate | undefined {
  if (gates.length === 0) return undefined;
  if (gates.length === 1) return gates[0];
  return {
    admit(request, decision, client, params) {
      let current: Decision | Promise<Decision> = decision;
      for (const gate of gates) {
        current = isPromise(current)
          ? current.then((d) => gate.admit(request, d, client, params))
          : gate.admit(request, current, client, params);
      }
      return current;
    },
  };
}
