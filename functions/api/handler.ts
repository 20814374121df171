/**
 * Lambda composition root: the only place that reads process.env and constructs SDK clients for the
 * API. Everything is built once per container, so warm invocations reuse the JWKS cache and the
 * DynamoDB connections.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { handle } from 'hono/aws-lambda';
import {
  type ApiConfig,
  accessGroupsFromEnv,
  apiConfigFromEnv,
  approvalsConfigFromEnv,
  auditStoreConfigFromEnv,
  readConfigParts,
  serviceTokenProblem,
} from '../../shared/config.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { approvalTableNames } from '../adapters/dynamodb-approval-store.ts';
import { DynamoDbAuditStore, tableNames } from '../adapters/dynamodb-audit-store.ts';
import { DynamoDbPolicyStore, policyTableName } from '../adapters/dynamodb-policy-store.ts';
import { DynamoDbPrincipalDirectory } from '../adapters/dynamodb-principal-directory.ts';
import { createOidcVerifier } from '../adapters/oidc-verifier.ts';
import { createApp } from './app.ts';
import { approvalsRouteContext } from './approvals-wiring.ts';
import { StoredPolicySource } from './policy-source.ts';
import { apiRoutes } from './routes/index.ts';
import { createControlPlaneService } from './service.ts';

/** One JSON object per line on stdout: CloudWatch Logs Insights can query the fields. */
const logger: Logger = {
  info: (message, fields) => console.log(JSON.stringify({ level: 'info', message, ...fields })),
  warn: (message, fields) => console.log(JSON.stringify({ level: 'warn', message, ...fields })),
  error: (message, fields) => console.log(JSON.stringify({ level: 'error', message, ...fields })),
};

// every problem of every part reported at once (a cold start that fails names them all)
const { config, approvalsConfig, access, auditStoreConfig } = readConfigParts({
  config: () => apiConfigFromEnv(process.env),
  approvalsConfig: () => approvalsConfigFromEnv(process.env),
  // who reads the trail, changes policies, reviews approvals (PGWARDEN_AUDITOR/ADMIN/REVIEWER_GROUPS)
  access: () => accessGroupsFromEnv(process.env),
  // how long the trail is kept (PGWARDEN_AUDIT_RETENTION_DAYS)
  auditStoreConfig: () => auditStoreConfigFromEnv(process.env),
});
await loadSqlParser();
const dynamodb = new DynamoDBClient(
  config.dynamoDbEndpoint === undefined ? {} : { endpoint: config.dynamoDbEndpoint },
);

const verifier = createOidcVerifier(config.oidc);
// /v1/decisions decides with the stored current policy, re-read at most every few seconds.
const policies = new StoredPolicySource(
  new DynamoDbPolicyStore(dynamodb, policyTableName(config.tablePrefix)),
  { logger },
);
const service = createControlPlaneService({
  verifier,
  store: new DynamoDbAuditStore(dynamodb, tableNames(config.tablePrefix), {
    retentionDays: auditStoreConfig.retentionDays,
  }),
  roles: config.roles,
  now: () => new Date(),
  newId: randomUUID,
  logger,
  policies,
  // Slack approvals map clickers to groups through the people seen here.
  principals: new DynamoDbPrincipalDirectory(dynamodb, approvalTableNames(config.tablePrefix).principals),
});

/** The token the proxy presents: from the environment, or read once per cold start from Secrets Manager. */
async function resolveServiceToken(source: ApiConfig['serviceToken']): Promise<string> {
  if ('value' in source) return source.value;
  const secrets = new SecretsManagerClient({});
  const { SecretString } = await secrets.send(new GetSecretValueCommand({ SecretId: source.secretArn }));
  secrets.destroy();
  const token = SecretString?.trim() ?? '';
  const problem = serviceTokenProblem(token);
  if (problem) throw new PgWardenError('CONFIG_INVALID', `the service token secret ${problem}`);
  return token;
}

const serviceToken = await resolveServiceToken(config.serviceToken);
const routes = apiRoutes({
  verifier,
  dynamodb,
  tablePrefix: config.tablePrefix,
  access,
  serviceToken,
  controlPlane: service,
  now: () => new Date(),
  newId: randomUUID,
  logger,
  policySource: policies,
  proxyAuth: config.proxyAuth,
  // approvals: the notifier queue and Slack interactivity (/slack/events), when configured
  ...(await approvalsRouteContext(approvalsConfig)),
});
const app = createApp({ service, serviceToken, proxyAuth: config.proxyAuth, logger, routes });
export const handler = handle(app);
