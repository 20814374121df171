/**
 * The local control plane and proxy, wired the way production wires them but in one process: the
 * dev issuer and the Hono API on one HTTP server (issuer under /dev-oidc), the audit store on a
 * local DynamoDB, and the proxy calling the control-plane service in-process. Shared by
 * `npm start` (scripts/start.ts) and the integration-test stack (test/fixtures/local-stack.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import {
  approvalTableNames,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../functions/adapters/dynamodb-audit-store.ts';
import {
  DynamoDbPolicyStore,
  ensurePolicyTable,
  policyTableName,
} from '../../functions/adapters/dynamodb-policy-store.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createApp } from '../../functions/api/app.ts';
import { type AccessGroups, DEFAULT_ACCESS_GROUPS } from '../../functions/api/auth.ts';
import { StoredPolicySource } from '../../functions/api/policy-source.ts';
import { apiRoutes } from '../../functions/api/routes/index.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import type { CredentialProvider, ProxyAuditOptions, UpstreamTarget } from '../../proxy/options.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import type { SessionLifetimeOptions } from '../../proxy/session-lifetime.ts';
import type { ControlPlane } from '../../shared/control-plane.ts';
import type { StatementDecider } from '../../shared/decide.ts';
import type { RoleMapping } from '../../shared/identity.ts';
import type { Logger } from '../../shared/logger.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import {
  type LocalApprovals,
  type LocalApprovalsOptions,
  localPrincipalDirectory,
  startLocalApprovals,
} from './local-approvals.ts';
import { createDevIssuer, type DevIssuer, issuerAlgorithm } from './oidc-issuer.ts';
import { getFreePort } from './postgres.ts';

export interface LocalServicesOptions {
  /** holds the issuer keys */
  dataDir: string;
  host: '127.0.0.1';
  /** 0 picks a free port */
  apiPort: number;
  /** 0 picks a free port */
  proxyPort: number;
  issuerPath: string;
  audience: string;
  roleMappings: RoleMapping[];
  dynamoEndpoint: string;
  tablePrefix: string;
  serviceToken: string;
  tls: { cert: string; key: string };
  upstream: UpstreamTarget;
  credentials: CredentialProvider;
  proxyId: string;
  /** HMAC key of the hash/fake mask methods; kept in the data dir so masked values stay stable */
  maskingKey?: Uint8Array;
  logger: Logger;
  /** default: the built-in default policy pack; it stays the policy until one is stored (PUT /v1/policies) */
  decider?: StatementDecider;
  /** how often a policy stored by another process is picked up (a PUT here applies at once); default 5 */
  policyRefreshSeconds?: number;
  /** the proxy's audit trail; default: buffered, spooled under `<dataDir>/spool` */
  audit?: ProxyAuditOptions;
  /** approvals: the proxy holds require_approval statements (absent: they are refused at once) */
  approvals?: LocalApprovalsOptions;
  /** who reads the trail, changes policies, reviews (PGWARDEN_*_GROUPS); default auditors/admins/reviewers */
  access?: AccessGroups;
  /** token expiry, maximum age and re-checks of open sessions (proxy/session-lifetime.ts) */
  lifetime?: SessionLifetimeOptions;
}

export interface LocalServices {
  api: { url: string; port: number };
  issuer: DevIssuer;
  controlPlane: ControlPlane;
  proxy: RunningProxy;
  /** present when started with `approvals` */
  approvals?: LocalApprovals;
  /** proxy (sessions ended, audit flushed), then the HTTP server and the DynamoDB client */
  stop(): Promise<void>;
}

export const apiPortHint = 'another pgwarden running? set PGWARDEN_API_PORT';
export const proxyPortHint = 'another pgwarden running? set PGWARDEN_PROXY_PORT';

/** A listener that could not bind: the message says which setting moves it. */
export class PortInUseError extends Error {
  constructor(
    readonly what: string,
    readonly port: number,
    hint: string,
  ) {
    super(`${what} cannot listen on 127.0.0.1:${port}: the port is in use (${hint})`);
    this.name = 'PortInUseError';
  }
}

/** Fails fast, before anything slow has started, when a fixed port is taken. */
export async function assertPortsFree(
  host: string,
  ports: Array<{ what: string; port: number; hint: string }>,
) {
  for (const { what, port, hint } of ports) {
    if (port === 0) continue;
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (!free) throw new PortInUseError(what, port, hint);
  }
}

export async function startLocalServices(options: LocalServicesOptions): Promise<LocalServices> {
  const { host, logger } = options;
  const access = options.access ?? DEFAULT_ACCESS_GROUPS;
  // statement decisions parse SQL with PostgreSQL's parser (WASM): load it before any session
  await loadSqlParser();
  const apiPort = options.apiPort === 0 ? await getFreePort(host) : options.apiPort;
  const apiUrl = `http://${host}:${apiPort}`;
  const issuer = createDevIssuer({ dataDir: options.dataDir, issuerUrl: `${apiUrl}${options.issuerPath}` });

  const dynamodb = new DynamoDBClient({
    endpoint: options.dynamoEndpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const cleanup: Array<() => Promise<void>> = [async () => dynamodb.destroy()];
  const stopAll = async () => {
    for (const step of cleanup.reverse().splice(0)) await step();
  };

  try {
    const names = tableNames(options.tablePrefix);
    await ensureAuditTables(dynamodb, names);
    await ensurePolicyTable(dynamodb, policyTableName(options.tablePrefix));
    // Decisions use the stored current policy; a PUT through this API switches them at once.
    const policies = new StoredPolicySource(
      new DynamoDbPolicyStore(dynamodb, policyTableName(options.tablePrefix)),
      {
        ...(options.decider && { decider: options.decider }),
        ttlMs: (options.policyRefreshSeconds ?? 5) * 1000,
        logger,
      },
    );
    await policies.ready();
    const verifier = createOidcVerifier({
      issuer: issuer.issuerUrl,
      audience: options.audience,
      algorithms: [issuerAlgorithm],
      // The dev issuer signs with a new key the moment it rotates (real issuers publish
      // ahead), so a refetch for an unknown key may come soon after the last one.
      jwksCooldownMs: 1_000,
    });
    // the principals directory: what each token taught pgwarden, and administrators' changes
    await ensureApprovalTables(dynamodb, approvalTableNames(options.tablePrefix));
    const controlPlane = createControlPlaneService({
      verifier,
      store: new DynamoDbAuditStore(dynamodb, names),
      ...(options.decider === undefined ? {} : { decider: options.decider }),
      policies,
      principals: localPrincipalDirectory(dynamodb, options.tablePrefix),
      roles: options.roleMappings,
      now: () => new Date(),
      newId: randomUUID,
      logger,
    });

    const approvals =
      options.approvals === undefined
        ? undefined
        : await startLocalApprovals(options.approvals, {
            dynamodb,
            tablePrefix: options.tablePrefix,
            controlPlane,
            defaultApprovers: access.reviewers,
            now: () => new Date(),
            newId: randomUUID,
            logger,
          });
    if (approvals) cleanup.push(approvals.stop);

    const routes = apiRoutes({
      ...approvals?.routes,
      verifier,
      dynamodb,
      tablePrefix: options.tablePrefix,
      access,
      serviceToken: options.serviceToken,
      controlPlane,
      now: () => new Date(),
      newId: randomUUID,
      logger,
      policySource: policies,
    });
    const api = createApp({ service: controlPlane, serviceToken: options.serviceToken, logger, routes });
    const root = new Hono();
    root.route(options.issuerPath, issuer.app);
    root.route('/', api);
    root.notFound((c) =>
      c.json({ error: { code: 'NOT_FOUND', message: `no route for ${c.req.method} ${c.req.path}` } }, 404),
    );
    const server = await listen(root, host, apiPort);
    cleanup.push(() => closeServer(server));
    logger.info('api listening', { url: apiUrl, issuer: issuer.issuerUrl });

    const proxy = await startProxy({
      host,
      port: options.proxyPort,
      tls: options.tls,
      allowPlaintext: false,
      upstream: options.upstream,
      credentials: options.credentials,
      controlPlane: approvals ? approvals.watch(controlPlane) : controlPlane,
      ...(approvals && { gate: approvals.gate }),
      proxyId: options.proxyId,
      ...(options.maskingKey && { maskingKey: options.maskingKey }),
      logger,
      audit: { spoolDir: join(options.dataDir, 'spool'), ...options.audit },
      ...(options.lifetime && { lifetime: options.lifetime }),
    }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') throw error;
      throw new PortInUseError('the proxy', options.proxyPort, proxyPortHint);
    });
    cleanup.push(() => proxy.close(1_000));

    return {
      api: { url: apiUrl, port: apiPort },
      issuer,
      controlPlane,
      proxy,
      ...(approvals && { approvals }),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function listen(app: Hono, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, () => {
      server.off('error', onError);
      resolve(server as Server);
    });
    const onError = (error: NodeJS.ErrnoException) => {
      server.close();
      reject(error.code === 'EADDRINUSE' ? new PortInUseError('the API', port, apiPortHint) : error);
    };
    server.once('error', onError);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
