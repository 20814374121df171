import { describe, expect, it } from 'vitest';
import type { DecisionMask } from '../../../shared/control-plane.ts';
import { maskServerDetail } from '../../../shared/masking/server-messages.ts';

const masks: DecisionMask[] = [{ ruleId: 'mask-ssn', columns: ['customers.ssn'], method: 'partial' }];

describe('maskServerDetail', () => {
  it('hides a failing row whenever masks apply (it names no columns)', () => {
    expect(maskServerDetail('Failing row contains (1, null, 123-45-6789, 4111 1111 1111 1111).', masks)).toBe(
      'Failing row contains (values hidden by pgwarden).',
    );
    expect(maskServerDetail('Partition key of the failing row contains (ssn) = (123-45-6789).', masks)).toBe(
      'Partition key of the failing row contains (values hidden by pgwarden).',
    );
  });

  it('hides key values when a key column may be masked, and leaves other keys alone', () => {
    expect(maskServerDetail('Key (ssn)=(123-45-6789) already exists.', masks)).toBe(
      'Key (ssn)=(values hidden by pgwarden) already exists.',
    );
    expect(maskServerDetail('Key (id, lower(ssn))=(1, 123-45-6789) already exists.', masks)).toBe(
      'Key (id, lower(ssn))=(values hidden by pgwarden) already exists.',
    );
    expect(maskServerDetail('Key (customer_id)=(5) is not present in table "customers".', masks)).toBe(
      'Key (customer_id)=(5) is not present in table "customers".',
    );
    expect(maskServerDetail('Key (ssn)=(1) conflicts with existing key (ssn)=(123-45-6789).', masks)).toBe(
      'Key (ssn)=(values hidden by pgwarden) conflicts with existing key (ssn)=(values hidden by pgwarden).',
    );
  });

  it('changes nothing without masks', () => {
    const detail = 'Failing row contains (1, null, 123-45-6789).';
    expect(maskServerDetail(detail, undefined)).toBe(detail);
    expect(maskServerDetail(detail, [])).toBe(detail);
  });
});
