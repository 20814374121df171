/** shared/decide.ts (filed with the API that serves it). */
import { describe, expect, it } from 'vitest';
import { decideStatement } from '../../../shared/decide.ts';
import { decisionBody } from '../../fakes/control-plane.ts';

describe('decideStatement', () => {
  it('allows by the default rule and stamps the policy version it was given', () => {
    expect(decideStatement(decisionBody, 'v9')).toEqual({
      action: 'allow',
      ruleId: 'default',
      policyVersion: 'v9',
    });
  });
});
