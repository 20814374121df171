import { describe, expect, it } from 'vitest';
import type { DecisionMask } from '../../../shared/control-plane.ts';
import { maskPlanFor } from '../../../shared/masking/model.ts';

const masks: DecisionMask[] = [
  { ruleId: 'mask-ssn', columns: ['ssn', 'social_security_number'], method: 'partial' },
  { ruleId: 'mask-billing', columns: ['billing.cards.number', 'payments.*_token'], method: 'hash' },
  { ruleId: 'mask-anything-secret', columns: ['*secret*'], method: 'redact' },
  { ruleId: 'later-ssn', columns: ['customers.ssn'], method: 'null' },
];

const id = (schema: string, table: string, column: string) => ({ schema, table, column });

describe('maskPlanFor', () => {
  it('matches a bare column name in any table and schema, case-insensitively', () => {
    expect(maskPlanFor(masks, id('public', 'customers', 'ssn'))).toEqual({
      method: 'partial',
      ruleId: 'mask-ssn',
    });
    expect(maskPlanFor(masks, id('hr', 'people', 'SSN'))).toEqual({ method: 'partial', ruleId: 'mask-ssn' });
    expect(maskPlanFor(masks, id('hr', 'people', 'Social_Security_Number'))?.ruleId).toBe('mask-ssn');
  });

  it('matches table.column in any schema, and schema.table.column only in that schema', () => {
    expect(maskPlanFor(masks, id('anything', 'payments', 'stripe_token'))).toEqual({
      method: 'hash',
      ruleId: 'mask-billing',
    });
    expect(maskPlanFor(masks, id('billing', 'cards', 'number'))?.ruleId).toBe('mask-billing');
    expect(maskPlanFor(masks, id('public', 'cards', 'number'))).toBeUndefined();
    expect(maskPlanFor(masks, id('billing', 'other', 'number'))).toBeUndefined();
  });

  it('applies * wildcards inside a name part', () => {
    expect(maskPlanFor(masks, id('public', 'keys', 'top_secret_value'))?.ruleId).toBe('mask-anything-secret');
    expect(maskPlanFor(masks, id('public', 'payments', 'token'))).toBeUndefined();
  });

  it('takes the first mask in policy order', () => {
    expect(maskPlanFor(masks, id('public', 'customers', 'ssn'))?.ruleId).toBe('mask-ssn');
    expect(maskPlanFor(masks.slice(3), id('public', 'customers', 'ssn'))?.ruleId).toBe('later-ssn');
  });

  it('masks nothing without masks, and nothing that no pattern names', () => {
    expect(maskPlanFor(undefined, id('public', 'customers', 'ssn'))).toBeUndefined();
    expect(maskPlanFor([], id('public', 'customers', 'ssn'))).toBeUndefined();
    expect(maskPlanFor(masks, id('public', 'customers', 'name'))).toBeUndefined();
    expect(maskPlanFor(masks, id('public', 'ssn', 'id'))).toBeUndefined();
  });

  it('fails closed on a pattern that does not compile: it masks every column', () => {
    const broken: DecisionMask[] = [{ ruleId: 'broken', columns: ['a b'], method: 'redact' }];
    expect(maskPlanFor(broken, id('public', 't', 'anything'))?.ruleId).toBe('broken');
  });
});
