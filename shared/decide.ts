/**
 * The statement decision: a pure function of the request and the policy version, so the proxy can
 * cache it by fingerprint + principal + version and run it in-process without a round trip.
 */
import type { Decision, DecisionRequest } from './control-plane.ts';

/** The version of the built-in allow-all decision. */
export const DEFAULT_POLICY_VERSION = 'default';

/** For now every statement is allowed; the policy engine's issue replaces this body. */
export function decideStatement(_request: DecisionRequest, policyVersion: string): Decision {
  return { action: 'allow', ruleId: 'default', policyVersion };
}
