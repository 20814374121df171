/**
 * The Lambda composition root end to end: configuration from the environment, the real verifier
 * against a local issuer, the real store against dynalite, driven by API Gateway v2 events.
 */
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../../functions/adapters/dynamodb-approval-store.ts';
import { ensureAuditTables, tableNames } from '../../../functions/adapters/dynamodb-audit-store.ts';
import { ensurePolicyTable, policyTableName } from '../../../functions/adapters/dynamodb-policy-store.ts';
import { decisionBody, openSessionBody } from '../../fakes/control-plane.ts';
import { type LocalDynamoDb, queryPartition, startDynamoDb } from '../../fakes/dynamodb.ts';
import { startTestIssuer, type TestIssuer } from '../../fakes/oidc-issuer.ts';

const serviceToken = 'handler-service-token-0123456789';
const PROXY_ROLE_ARN = 'arn:aws:iam::123456789012:role/pgwarden-proxy-task';
/** What API Gateway's IAM authorizer puts in the event once it verified the proxy's signature. */
const asProxy = {
  iam: {
    accessKey: 'ASIAEXAMPLE',
    accountId: '123456789012',
    callerId: 'AROAEXAMPLE:task',
    cognitoIdentity: null,
    principalOrgId: null,
    userArn: 'arn:aws:sts::123456789012:assumed-role/pgwarden-proxy-task/8f1e2d3c',
    userId: 'AROAEXAMPLE:task',
  },
};
let idp: TestIssuer;
let db: LocalDynamoDb;

beforeAll(async () => {
  [idp, db] = await Promise.all([startTestIssuer(), startDynamoDb()]);
  // every table the handler uses, as the stack creates them: audit trail, policies, approvals
  // (sessions record people's groups in the approvals' principals directory)
  await Promise.all([
    ensureAuditTables(db.client, tableNames('lambda-')),
    ensurePolicyTable(db.client, policyTableName('lambda-')),
    ensureApprovalTables(db.client, approvalTableNames('lambda-')),
  ]);
  vi.stubEnv('PGWARDEN_OIDC_ISSUER', idp.issuer);
  vi.stubEnv('PGWARDEN_OIDC_AUDIENCE', idp.audience);
  vi.stubEnv('PGWARDEN_ROLES', 'developer=engineering');
  vi.stubEnv('PGWARDEN_SERVICE_TOKEN', serviceToken);
  vi.stubEnv('PGWARDEN_PROXY_ROLE_ARNS', PROXY_ROLE_ARN);
  vi.stubEnv('PGWARDEN_TABLE_PREFIX', 'lambda-');
  vi.stubEnv('PGWARDEN_DYNAMODB_ENDPOINT', db.endpoint);
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
});
afterAll(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await Promise.all([idp.stop(), db.stop()]);
});

function event(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  authorizer: Record<string, unknown> = {},
): LambdaEvent {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'api.example.com', 'content-type': 'application/json', ...headers },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      authentication: null,
      authorizer,
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '10.0.0.1', userAgent: 'test' },
      requestId: 'r-1',
      routeKey: '$default',
      stage: '$default',
      time: '01/Mar/2025:12:00:00 +0000',
      timeEpoch: 1_740_830_400_000,
    },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
  };
}

describe('Lambda handler', () => {
  it('answers health checks, opens a recorded session and decides, without a warning', async () => {
    const logged: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: string) => {
      logged.push(line);
    });
    const { handler } = await import('../../../functions/api/handler.ts');

    const health = await handler(event('GET', '/healthz'));
    expect(health.statusCode).toBe(200);

    const token = await idp.sign({ email: 'ada@example.com', groups: ['engineering'] });
    const opened = await handler(event('POST', '/v1/sessions', { ...openSessionBody, token }, {}, asProxy));
    expect(opened.statusCode).toBe(200);
    const { sessionId, role } = JSON.parse(opened.body) as { sessionId: string; role: string };
    expect(role).toBe('developer');
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);

    const refused = await handler(event('POST', '/v1/sessions', { ...openSessionBody, token }));
    expect(refused.statusCode).toBe(401);
    // deployed, the old shared token opens nothing: only the IAM authorizer's proxy role does
    const bearer = await handler(
      event(
        'POST',
        '/v1/sessions',
        { ...openSessionBody, token },
        { authorization: `Bearer ${serviceToken}` },
      ),
    );
    expect(bearer.statusCode).toBe(401);
    const otherRole = {
      iam: { ...asProxy.iam, userArn: 'arn:aws:sts::123456789012:assumed-role/some-other-role/x' },
    };
    const stranger = await handler(
      event('POST', '/v1/sessions', { ...openSessionBody, token }, {}, otherRole),
    );
    expect(stranger.statusCode).toBe(401);
    expect(JSON.parse(stranger.body)).toMatchObject({ error: { code: 'AUTH_SERVICE_CREDENTIAL' } });

    await handler(event('POST', '/v1/sessions', { ...openSessionBody, token: '' }, {}, asProxy));
    const today = new Date().toISOString().slice(0, 10);
    const failures = await queryPartition(db.client, 'lambda-events', `AUTHFAIL#${today}`);
    expect(failures.map((item) => item['code']?.S)).toEqual(['AUTH_TOKEN_MISSING']);

    // Decisions read the stored current policy (none stored yet: the default pack).
    const decided = await handler(
      event(
        'POST',
        '/v1/decisions',
        { ...decisionBody, session: { ...decisionBody.session, sessionId } },
        {},
        asProxy,
      ),
    );
    expect(decided.statusCode, decided.body).toBe(200);
    expect(JSON.parse(decided.body)).toMatchObject({ action: 'allow' });

    // A missing table only shows as a warning (e.g. the principals directory): there must be none.
    const problems = logged.filter((line) => /"level":"(warn|error)"/.test(line));
    expect(problems).toEqual([]);
  });
});
