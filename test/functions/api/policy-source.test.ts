/** functions/api/policy-source.ts: the API's view of the stored current policy. */
import { beforeAll, describe, expect, it } from 'vitest';
import { StoredPolicySource } from '../../../functions/api/policy-source.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import { DEFAULT_POLICY } from '../../../shared/policy/default-policy.ts';
import { parsePolicy } from '../../../shared/policy/parse-policy.ts';
import type { PolicyStore, StoredPolicy } from '../../../shared/policy/stored.ts';
import { loadSqlParser } from '../../../shared/sql/analyze.ts';

beforeAll(async () => {
  await loadSqlParser();
});

function stored(seq: number): StoredPolicy {
  const text = `version: mine\ndefault: { action: allow }\nrules: []\n`;
  return {
    version: `v${seq}`,
    policy: { ...parsePolicy(text), version: `v${seq}` },
    text,
    declaredVersion: 'mine',
    storedAt: 'now',
    storedBy: 'admin@example.com',
  };
}

/** A store whose answers the test controls, one read at a time. */
class ScriptedStore implements PolicyStore {
  reads = 0;
  answer: () => Promise<StoredPolicy | undefined> = async () => undefined;
  current(): Promise<StoredPolicy | undefined> {
    this.reads++;
    return this.answer();
  }
  put(): Promise<StoredPolicy> {
    throw new Error('not used');
  }
  history(): Promise<never[]> {
    throw new Error('not used');
  }
}

const warnings: string[] = [];
const logger: Logger = { info: () => {}, warn: (m) => warnings.push(m), error: () => {} };

describe('StoredPolicySource', () => {
  it('waits for the first read, then answers synchronously until the TTL passes', async () => {
    const store = new ScriptedStore();
    store.answer = async () => stored(1);
    let now = 0;
    const source = new StoredPolicySource(store, { ttlMs: 1000, clock: () => now, logger });
    const first = source.ready();
    expect(first).toBeInstanceOf(Promise);
    await first;
    expect(source.decider.policyVersion).toBe('v1');
    now = 999;
    expect(source.ready()).toBeUndefined();
    expect(store.reads).toBe(1);
    // stale: decisions go on with v1 while v2 is read in the background
    store.answer = async () => stored(2);
    now = 1000;
    expect(source.ready()).toBeUndefined();
    expect(source.decider.policyVersion).toBe('v1');
    await new Promise((r) => setImmediate(r));
    expect(source.decider.policyVersion).toBe('v2');
    expect(store.reads).toBe(2);
  });

  it('uses the fallback while nothing is stored', async () => {
    const store = new ScriptedStore();
    const source = new StoredPolicySource(store, { logger });
    await source.ready();
    expect(source.decider.policyVersion).toBe(DEFAULT_POLICY.version);
  });

  it('fails closed when the first read fails, and keeps the last good policy when a later one does', async () => {
    const store = new ScriptedStore();
    store.answer = async () => Promise.reject(new PgWardenError('STORE_UNAVAILABLE', 'down'));
    let now = 0;
    const source = new StoredPolicySource(store, { ttlMs: 10, clock: () => now, logger });
    await expect(source.ready()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.answer = async () => stored(3);
    await source.ready();
    expect(source.decider.policyVersion).toBe('v3');
    store.answer = async () => Promise.reject(new PgWardenError('STORE_UNAVAILABLE', 'down again'));
    now = 100;
    expect(source.ready()).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(source.decider.policyVersion).toBe('v3');
    expect(warnings.some((w) => /keeping|last good/.test(w))).toBe(true);
  });

  it('never goes back to an older version when a slow read answers after a PUT', async () => {
    const store = new ScriptedStore();
    let release: (value: StoredPolicy) => void = () => {};
    store.answer = () => new Promise((resolve) => (release = resolve));
    const source = new StoredPolicySource(store, { logger });
    const loading = source.ready();
    source.accept(stored(5)); // the PUT in this process
    release(stored(4)); // the read that started before it
    await loading;
    expect(source.decider.policyVersion).toBe('v5');
  });
});
