import { describe, expect, it } from 'vitest';
import { composeGates, type HeldClient, type StatementGate } from '../../proxy/statement-gate.ts';
import type { Decision, DecisionRequest } from '../../shared/control-plane.ts';

const request = {
  session: {
    sessionId: 's',
    principal: {
      name: 'alice@example.com',
      issuer: 'https://issuer.example',
      subject: 'alice@example.com',
      groups: [],
      actor: 'person',
    },
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'psql',
  },
  statement: { text: 'select 1', protocol: 'simple' },
} satisfies DecisionRequest;
const allow: Decision = { action: 'allow', ruleId: 'default', policyVersion: 'v1' };
const client: HeldClient = { notice: () => {} };

const tagging = (tag: string, seen: string[]): StatementGate => ({
  admit: (_request, decision) => {
    seen.push(`${tag}:${decision.ruleId}`);
    return { ...decision, ruleId: `${decision.ruleId}+${tag}` };
  },
});

describe('composeGates', () => {
  it('is absent when there is no gate, so the relay skips the step entirely', () => {
    expect(composeGates([])).toBeUndefined();
  });

  it('runs gates in order, each seeing the previous decision, and stays synchronous', () => {
    const seen: string[] = [];
    const gate = composeGates([tagging('a', seen), tagging('b', seen)]);
    const result = gate?.admit(request, allow, client);
    expect(result).toEqual({ ...allow, ruleId: 'default+a+b' });
    expect(seen).toEqual(['a:default', 'b:default+a']);
  });

  it('chains through a gate that holds, and a later gate still sees the released decision', async () => {
    const seen: string[] = [];
    const holding: StatementGate = {
      admit: async (_request, decision) => ({ ...decision, action: 'deny', reason: 'held and denied' }),
    };
    const gate = composeGates([holding, tagging('after', seen)]);
    const result = gate?.admit(request, allow, client);
    expect(result).toBeInstanceOf(Promise);
    await expect(result).resolves.toMatchObject({ action: 'deny', ruleId: 'default+after' });
    expect(seen).toEqual(['after:default']);
  });
});
