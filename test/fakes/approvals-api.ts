/**
 * The approvals API as deployed, minus AWS: the real routes (approvalRouteGroups) in the Hono app on a
 * real HTTP server, the real DynamoDB store and principals directory on dynalite, the real OIDC
 * verifier against a local issuer, and optionally Slack (the local Slack stand-in).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../functions/adapters/dynamodb-principal-directory.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createSlackApi } from '../../functions/adapters/slack-web-api.ts';
import { createApp } from '../../functions/api/app.ts';
import { type ApprovalsService, createApprovalsService } from '../../functions/api/approvals-service.ts';
import { DEFAULT_ACCESS_GROUPS } from '../../functions/api/auth.ts';
import { approvalRouteGroups } from '../../functions/api/routes/approval-groups.ts';
import type { ApprovalWindows } from '../../shared/approvals.ts';
import { RecordingAuditStore, RecordingQueue } from './approvals.ts';
import { fakeControlPlane } from './control-plane.ts';
import { type LocalDynamoDb, startDynamoDb } from './dynamodb.ts';
import { startTestIssuer, type TestIssuer } from './oidc-issuer.ts';
import { type FakeSlack, startFakeSlack } from './slack-api.ts';

export const SERVICE_TOKEN = 'approvals-service-token-0123456789';
export const SIGNING_SECRET = 'slack-signing-secret-for-tests';

export interface ApprovalsApi {
  url: string;
  app: ReturnType<typeof createApp>;
  service: ApprovalsService;
  store: DynamoDbApprovalStore;
  principals: DynamoDbPrincipalDirectory;
  audit: RecordingAuditStore;
  queue: RecordingQueue;
  idp: TestIssuer;
  db: LocalDynamoDb;
  slack?: FakeSlack;
  clock: { now: Date | undefined };
  /** a person's OIDC token */
  token(email: string, groups: string[], claims?: Record<string, unknown>): Promise<string>;
  stop(): Promise<void>;
}

export async function startApprovalsApi(
  options: { slack?: boolean; windows?: ApprovalWindows } = {},
): Promise<ApprovalsApi> {
  const [idp, db] = await Promise.all([startTestIssuer(), startDynamoDb()]);
  const slack = options.slack ? await startFakeSlack() : undefined;
  const tables = approvalTableNames('api-test-');
  await ensureApprovalTables(db.client, tables);
  const clock: { now: Date | undefined } = { now: undefined };
  const now = () => clock.now ?? new Date();
  const store = new DynamoDbApprovalStore(db.client, tables.approvals);
  const principals = new DynamoDbPrincipalDirectory(db.client, tables.principals);
  const audit = new RecordingAuditStore();
  const queue = new RecordingQueue();
  let ids = 0;
  const service = createApprovalsService({
    store,
    audit,
    queue,
    defaultApprovers: ['reviewers'],
    ...(options.windows === undefined ? {} : { windows: options.windows }),
    now,
    newId: () => `appr-${++ids}-${Math.random().toString(36).slice(2, 8)}`,
  });
  const verifier = createOidcVerifier({ issuer: idp.issuer, audience: idp.audience, algorithms: ['RS256'] });
  const controlPlane = fakeControlPlane();
  const routes = approvalRouteGroups({
    verifier,
    dynamodb: db.client,
    tablePrefix: 'api-test-',
    access: DEFAULT_ACCESS_GROUPS,
    serviceToken: SERVICE_TOKEN,
    controlPlane,
    now,
    newId: () => `id-${++ids}`,
    logger: { info() {}, warn() {}, error() {} },
    approvals: service,
    principals,
    ...(slack === undefined
      ? {}
      : {
          slack: {
            api: createSlackApi({ token: slack.token, apiUrl: slack.apiUrl }),
            signingSecret: SIGNING_SECRET,
          },
        }),
  });
  const app = createApp({ service: controlPlane, serviceToken: SERVICE_TOKEN, routes });
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    app,
    service,
    store,
    principals,
    audit,
    queue,
    idp,
    db,
    ...(slack === undefined ? {} : { slack }),
    clock,
    token: (email, groups, claims = {}) => idp.sign({ sub: `sub-${email}`, email, groups, ...claims }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([idp.stop(), db.stop(), slack?.stop()]);
    },
  };
}
