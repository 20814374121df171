/**
 * `pgwarden principals …` against the real API (routes from apiRoutes, the dev issuer's tokens,
 * the principals directory on dynalite): an administrator finds a person by email and disables
 * them; the person's still-valid token is refused from then on; only admins may do it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../functions/adapters/dynamodb-audit-store.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createApp } from '../../functions/api/app.ts';
import { DEFAULT_ACCESS_GROUPS } from '../../functions/api/auth.ts';
import { apiRoutes } from '../../functions/api/routes/index.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import { principalsCommand } from '../../scripts/cli/principals.ts';
import { createDevIssuer, type DevIssuer, issuerAlgorithm } from '../../scripts/local/oidc-issuer.ts';
import { getFreePort } from '../../scripts/local/postgres.ts';
import type { ControlPlane } from '../../shared/control-plane.ts';
import { silentLogger } from '../../shared/logger.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';

const audience = 'pgwarden';
const serviceToken = 'principals-cli-service-token-0123456789';
const prefix = 'pcli-';

let dir: string;
let dynamo: LocalDynamoDb;
let issuer: DevIssuer;
let server: Server;
let controlPlane: ControlPlane;
let apiUrl = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgwarden-principals-cli-'));
  dynamo = await startDynamoDb();
  const port = await getFreePort('127.0.0.1');
  apiUrl = `http://127.0.0.1:${port}`;
  issuer = createDevIssuer({ dataDir: dir, issuerUrl: `${apiUrl}/dev-oidc` });
  await ensureAuditTables(dynamo.client, tableNames(prefix));
  await ensureApprovalTables(dynamo.client, approvalTableNames(prefix));
  const verifier = createOidcVerifier({ issuer: issuer.issuerUrl, audience, algorithms: [issuerAlgorithm] });
  controlPlane = createControlPlaneService({
    verifier,
    store: new DynamoDbAuditStore(dynamo.client, tableNames(prefix)),
    roles: [{ role: 'developer', groups: ['engineering'] }],
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
  });
  const routes = apiRoutes({
    verifier,
    dynamodb: dynamo.client,
    tablePrefix: prefix,
    access: DEFAULT_ACCESS_GROUPS,
    serviceToken,
    controlPlane,
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
    logger: silentLogger,
  });
  const root = new Hono();
  root.route('/dev-oidc', issuer.app);
  root.route('/', createApp({ service: controlPlane, serviceToken, routes }));
  server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: root.fetch, hostname: '127.0.0.1', port }, () => resolve(s as Server));
  });
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await dynamo?.stop();
  await rm(dir, { recursive: true, force: true });
});

const token = (email: string, groups: string[]) =>
  issuer.issueToken({ email, groups, ttlSeconds: 600, audience });

async function cli(args: string[], bearer: string) {
  let out = '';
  let err = '';
  const code = await principalsCommand(args, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    env: { PGWARDEN_API_URL: apiUrl, PGWARDEN_TOKEN: bearer },
  });
  return { code, out, err };
}

async function listApprovals(bearer: string): Promise<number> {
  return (
    await fetch(`${apiUrl}/v1/approvals?status=pending`, { headers: { authorization: `Bearer ${bearer}` } })
  ).status;
}

describe('pgwarden principals', () => {
  it('finds a person by email and disables them: their valid token is refused from then on', async () => {
    const admin = await token('root@example.com', ['admins']);
    const reviewer = await token('rita@example.com', ['reviewers']);
    expect(await listApprovals(reviewer)).toBe(200); // pgwarden learns rita from this call

    const shown = await cli(['show', '--email', 'RITA@example.com'], admin);
    expect(shown).toMatchObject({ code: 0, err: '' });
    expect(shown.out).toContain(
      `${issuer.issuerUrl}#dev|rita@example.com  rita@example.com <rita@example.com>`,
    );
    expect(shown.out).toContain('status   enabled');

    const disabled = await cli(
      [
        'disable',
        '--issuer',
        issuer.issuerUrl,
        '--subject',
        'dev|rita@example.com',
        '--reason',
        'left the team',
      ],
      admin,
    );
    expect(disabled.code).toBe(0);
    expect(disabled.out).toMatch(/status {3}disabled on .* by root@example.com: left the team/);
    expect(await listApprovals(reviewer)).toBe(401);

    await cli(['enable', '--issuer', issuer.issuerUrl, '--subject', 'dev|rita@example.com'], admin);
    expect(await listApprovals(reviewer)).toBe(200);
  });

  it('sets groups: a token issued before the change no longer carries the removed group', async () => {
    const admin = await token('root@example.com', ['admins']);
    const reviewer = await token('sam@example.com', ['reviewers']);
    expect(await listApprovals(reviewer)).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the change must be after the token's iat (seconds)
    const changed = await cli(
      ['groups', '--issuer', issuer.issuerUrl, '--subject', 'dev|sam@example.com', '--groups', 'engineering'],
      admin,
    );
    expect(changed.out).toContain('groups   engineering');
    expect(await listApprovals(reviewer)).toBe(403);
  });

  it('is for admins only', async () => {
    const engineer = await token('eve@example.com', ['engineering']);
    const result = await cli(
      ['disable', '--issuer', issuer.issuerUrl, '--subject', 'dev|root@example.com'],
      engineer,
    );
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/refused: .*manage principals/);
  });
});
