/**
 * The principals directory on dynalite: keyed by (issuer, subject), newest knowledge wins, a
 * verified email is never erased by a token without one, administrators' changes stick.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../../functions/adapters/dynamodb-principal-directory.ts';
import type { PrincipalFacts } from '../../../shared/approvals/ports.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';

const A = 'https://a.example';
const B = 'https://b.example';
const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 10, minute));

let db: LocalDynamoDb;
let directory: DynamoDbPrincipalDirectory;

beforeAll(async () => {
  db = await startDynamoDb();
  const tables = approvalTableNames('directory-test-');
  await ensureApprovalTables(db.client, tables);
  directory = new DynamoDbPrincipalDirectory(db.client, tables.principals);
});
afterAll(() => db.stop());

function facts(overrides: Partial<PrincipalFacts> & { subject: string }): PrincipalFacts {
  return { issuer: A, name: overrides.subject, actor: 'person', groups: ['engineering'], ...overrides };
}

describe('remember', () => {
  it('keeps one entry per (issuer, subject): the same subject at two issuers is two principals', async () => {
    await directory.remember(facts({ subject: 'u-1', groups: ['a-group'] }), at(0), at(0));
    await directory.remember(facts({ subject: 'u-1', issuer: B, groups: ['b-group'] }), at(0), at(0));
    expect((await directory.get({ issuer: A, subject: 'u-1' }))?.groups).toEqual(['a-group']);
    expect((await directory.get({ issuer: B, subject: 'u-1' }))?.groups).toEqual(['b-group']);
  });

  it('lets a newer token replace the groups, never an older one', async () => {
    await directory.remember(facts({ subject: 'u-2', groups: ['engineering'] }), at(10), at(10));
    await directory.remember(facts({ subject: 'u-2', groups: [] }), at(20), at(20));
    await directory.remember(facts({ subject: 'u-2', groups: ['engineering', 'admins'] }), at(15), at(30));
    expect(await directory.get({ issuer: A, subject: 'u-2' })).toMatchObject({
      groups: [],
      groupsAsOf: at(20).toISOString(),
      seenAt: at(30).toISOString(), // the stale token still says the principal was seen
    });
  });

  it('keeps the verified email when a later token carries none', async () => {
    await directory.remember(facts({ subject: 'u-3', email: 'Lena@Example.com' }), at(0), at(0));
    await directory.remember(facts({ subject: 'u-3' }), at(5), at(5));
    expect((await directory.get({ issuer: A, subject: 'u-3' }))?.email).toBe('Lena@Example.com');
    expect((await directory.findByEmail('lena@EXAMPLE.com')).map((p) => p.subject)).toEqual(['u-3']);
  });

  it('finds every principal with one verified email, across issuers', async () => {
    await directory.remember(facts({ subject: 'dup-a', email: 'twin@example.com' }), at(0), at(0));
    await directory.remember(facts({ subject: 'dup-b', issuer: B, email: 'TWIN@example.com' }), at(0), at(0));
    const found = await directory.findByEmail('twin@example.com');
    expect(found.map((p) => `${p.issuer}#${p.subject}`).sort()).toEqual([`${A}#dup-a`, `${B}#dup-b`]);
    expect(await directory.findByEmail('nobody@example.com')).toEqual([]);
  });
});

describe('actor', () => {
  it('stays person once a person token was seen; an agent token of the same principal does not change it', async () => {
    await directory.remember(facts({ subject: 'u-6', actor: 'agent' }), at(0), at(0));
    expect((await directory.get({ issuer: A, subject: 'u-6' }))?.actor).toBe('agent');
    await directory.remember(facts({ subject: 'u-6', actor: 'person' }), at(1), at(1));
    await directory.remember(facts({ subject: 'u-6', actor: 'agent' }), at(2), at(2));
    expect((await directory.get({ issuer: A, subject: 'u-6' }))?.actor).toBe('person');
  });
});

describe('change', () => {
  it('disables and enables; a token afterwards never re-enables', async () => {
    await directory.remember(facts({ subject: 'u-4' }), at(0), at(0));
    const disabled = await directory.change(
      { issuer: A, subject: 'u-4' },
      { disabled: true, reason: 'left' },
      'root',
      at(1),
    );
    expect(disabled.disabled).toEqual({ at: at(1).toISOString(), by: 'root', reason: 'left' });
    await directory.remember(facts({ subject: 'u-4' }), at(2), at(2));
    expect((await directory.get({ issuer: A, subject: 'u-4' }))?.disabled).toBeDefined();
    await directory.change({ issuer: A, subject: 'u-4' }, { disabled: false }, 'root', at(3));
    expect((await directory.get({ issuer: A, subject: 'u-4' }))?.disabled).toBeUndefined();
  });

  it('sets groups as of the change: an older token cannot bring a group back, a newer one can', async () => {
    await directory.remember(facts({ subject: 'u-5', groups: ['reviewers'] }), at(0), at(0));
    await directory.change({ issuer: A, subject: 'u-5' }, { groups: [] }, 'root', at(10));
    await directory.remember(facts({ subject: 'u-5', groups: ['reviewers'] }), at(5), at(11));
    expect((await directory.get({ issuer: A, subject: 'u-5' }))?.groups).toEqual([]);
    await directory.remember(facts({ subject: 'u-5', groups: ['reviewers'] }), at(12), at(12));
    expect((await directory.get({ issuer: A, subject: 'u-5' }))?.groups).toEqual(['reviewers']);
  });

  it('can disable a principal pgwarden has not seen yet', async () => {
    const created = await directory.change(
      { issuer: B, subject: 'future' },
      { disabled: true },
      'root',
      at(0),
    );
    expect(created).toMatchObject({ issuer: B, subject: 'future', groups: [], disabled: { by: 'root' } });
  });
});
