/**
 * The principals directory is fed by every verified session open: Slack clicks are mapped to groups
 * through it, so it must learn people (not agents) and must never stand in the way of a session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../functions/adapters/dynamodb-principal-directory.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import type { PrincipalDirectory } from '../../shared/approvals/ports.ts';
import { RecordingAuditStore } from '../fakes/approvals.ts';
import { openSessionBody } from '../fakes/control-plane.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';
import { startTestIssuer, type TestIssuer } from '../fakes/oidc-issuer.ts';

let idp: TestIssuer;
let db: LocalDynamoDb;
let directory: DynamoDbPrincipalDirectory;
const tables = approvalTableNames('principals-test-');
const seenAt = new Date('2026-02-02T08:00:00.000Z');

beforeAll(async () => {
  [idp, db] = await Promise.all([startTestIssuer(), startDynamoDb()]);
  await ensureApprovalTables(db.client, tables);
  directory = new DynamoDbPrincipalDirectory(db.client, tables.principals);
});
afterAll(async () => Promise.all([idp.stop(), db.stop()]));

function controlPlane(principals: PrincipalDirectory) {
  return createControlPlaneService({
    verifier: createOidcVerifier({ issuer: idp.issuer, audience: idp.audience, algorithms: ['RS256'] }),
    store: new RecordingAuditStore(),
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => seenAt,
    newId: () => 'id',
    principals,
  });
}

describe('opening a session', () => {
  it('remembers the person behind a verified token by email', async () => {
    const token = await idp.sign({
      sub: 'u-7',
      email: 'Lena@Example.com',
      groups: ['engineering', 'reviewers'],
    });
    await controlPlane(directory).openSession({ ...openSessionBody, token, user: 'Lena@Example.com' });
    expect(await directory.lookup('lena@example.com')).toEqual({
      email: 'lena@example.com',
      name: 'Lena@Example.com',
      subject: 'u-7',
      issuer: idp.issuer,
      groups: ['engineering', 'reviewers'],
      seenAt: seenAt.toISOString(),
    });
  });

  it('does not remember agents, or tokens without a verified email', async () => {
    const agent = await idp.sign({
      sub: 'bot-1',
      email: 'bot@example.com',
      groups: ['engineering'],
      pgwarden_actor: 'agent',
    });
    await controlPlane(directory).openSession({ ...openSessionBody, token: agent, user: 'bot@example.com' });
    const unverified = await idp.sign({
      sub: 'u-8',
      email: 'max@example.com',
      email_verified: false,
      groups: ['engineering'],
    });
    await controlPlane(directory).openSession({ ...openSessionBody, token: unverified, user: 'u-8' });
    expect(await directory.lookup('bot@example.com')).toBeUndefined();
    expect(await directory.lookup('max@example.com')).toBeUndefined();
  });

  it('still opens the session when the directory is down', async () => {
    const broken: PrincipalDirectory = {
      remember: async () => {
        throw new Error('directory down');
      },
      lookup: async () => undefined,
    };
    const token = await idp.sign({ sub: 'u-9', email: 'ola@example.com', groups: ['engineering'] });
    const session = await controlPlane(broken).openSession({
      ...openSessionBody,
      token,
      user: 'ola@example.com',
    });
    expect(session.principal.name).toBe('ola@example.com');
  });
});
