/**
 * The API's route groups beyond the proxy's own (sessions, decisions, events): audit queries,
 * policies, approvals, Slack. One list, used by the Lambda handler and by local mode alike, so both
 * serve the same routes. Each group applies its own auth per route (see ../auth.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Hono } from 'hono';
import type { ApprovalQueue, PrincipalDirectory, SlackApi } from '../../../shared/approvals/ports.ts';
import type { ControlPlane } from '../../../shared/control-plane.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import { approvalTableNames } from '../../adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../adapters/dynamodb-principal-directory.ts';
import type { ApprovalsService } from '../approvals-service.ts';
import type { AccessGroups } from '../auth.ts';
import type { StoredPolicySource } from '../policy-source.ts';
import type { ProxyAuth } from '../proxy-auth.ts';
import { approvalRouteGroups } from './approval-groups.ts';
import { auditRouteGroup } from './audit.ts';
import { policyRouteGroup } from './policies.ts';
import { principalRoutes } from './principals.ts';

export interface RouteContext {
  /** verifies people's OIDC tokens (the same issuer and audience the proxy accepts) */
  verifier: TokenVerifier;
  dynamodb: DynamoDBClient;
  tablePrefix: string;
  access: AccessGroups;
  /** the deployment's secret (signs audit cursors; locally, the proxy's signing secret) */
  serviceToken: string;
  /** how the proxy's routes authenticate (deployed: 'iam'); default: the local SigV4 key pair */
  proxyAuth?: ProxyAuth;
  controlPlane: ControlPlane;
  now: () => Date;
  newId: () => string;
  logger: Logger;
  /** the policy source the API decides with: PUTs reach it at once (default: the policies table) */
  policySource?: StoredPolicySource;
  /**
   * Approvals: a prebuilt service (default: built from dynamodb + tablePrefix, auditing through
   * controlPlane.ingest, queueing to approvalsQueue). Pass one to share it with an in-process proxy.
   */
  approvals?: ApprovalsService;
  /** where approval changes are queued for the Slack notifier (absent: nothing is posted to Slack) */
  approvalsQueue?: ApprovalQueue;
  /** Slack interactivity: POST /slack/events is served only when this is given */
  slack?: { api: SlackApi; signingSecret: string; maxGroupsAgeSeconds?: number };
  /** maps Slack users (by email) to groups (default: the <prefix>principals table) */
  principals?: PrincipalDirectory;
}

export type RouteGroup = (app: Hono) => void;

export function apiRoutes(context: RouteContext): RouteGroup[] {
  // one directory for every group: people's calls are checked against it (disabled, groups)
  const principals =
    context.principals ??
    new DynamoDbPrincipalDirectory(context.dynamodb, approvalTableNames(context.tablePrefix).principals);
  const ctx = { ...context, principals };
  return [
    policyRouteGroup(ctx),
    auditRouteGroup(ctx), // GET /v1/audit/events, GET /v1/sessions/:id (auditors)
    ...approvalRouteGroups(ctx), // approvals API + /slack/events
    principalRoutes({ verifier: ctx.verifier, admins: ctx.access.admins, principals, now: ctx.now }),
  ];
}
