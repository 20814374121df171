/**
 * The approvals route groups (HTTP API and, when Slack is configured, /slack/events) over ONE
 * approvals service, so a decision made through either wakes a wait served by this process at once.
 */
import { approvalTableNames, DynamoDbApprovalStore } from '../../adapters/dynamodb-approval-store.ts';
import { DynamoDbPrincipalDirectory } from '../../adapters/dynamodb-principal-directory.ts';
import { createApprovalsService } from '../approvals-service.ts';
import { localProxyAuth } from '../proxy-auth.ts';
import { approvalRoutes } from './approvals.ts';
import type { RouteContext, RouteGroup } from './index.ts';
import { slackRoutes } from './slack.ts';

export function approvalRouteGroups(ctx: RouteContext): RouteGroup[] {
  const tables = approvalTableNames(ctx.tablePrefix);
  const approvals =
    ctx.approvals ??
    createApprovalsService({
      store: new DynamoDbApprovalStore(ctx.dynamodb, tables.approvals),
      audit: { put: (events) => ctx.controlPlane.ingest([...events]) },
      ...(ctx.approvalsQueue === undefined ? {} : { queue: ctx.approvalsQueue }),
      defaultApprovers: ctx.access.reviewers,
      now: ctx.now,
      newId: ctx.newId,
      logger: ctx.logger,
    });
  const principals = ctx.principals ?? new DynamoDbPrincipalDirectory(ctx.dynamodb, tables.principals);
  const groups: RouteGroup[] = [
    approvalRoutes({
      approvals,
      verifier: ctx.verifier,
      proxyAuth: ctx.proxyAuth ?? localProxyAuth(ctx.serviceToken),
      reviewers: ctx.access.reviewers,
      principals,
      now: ctx.now,
      logger: ctx.logger,
    }),
  ];
  if (ctx.slack !== undefined) {
    groups.push(
      slackRoutes({
        approvals,
        slack: ctx.slack.api,
        signingSecret: ctx.slack.signingSecret,
        principals,
        now: ctx.now,
        logger: ctx.logger,
        ...(ctx.slack.maxGroupsAgeSeconds === undefined
          ? {}
          : { maxGroupsAgeSeconds: ctx.slack.maxGroupsAgeSeconds }),
      }),
    );
  }
  return groups;
}
