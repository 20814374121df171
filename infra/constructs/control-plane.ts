/**
 * The control-plane API: the Hono app (functions/api/handler.ts) as one Lambda function behind an
 * API Gateway HTTP API. Routes are explicit, so nothing but the app's own paths reaches the function.
 *
 * Who calls which route:
 * - the proxy's routes (functions/api/proxy-auth.ts PROXY_ROUTES) take API Gateway's IAM
 *   authorizer: the proxy signs each call with its task role (SigV4), only that role is granted
 *   execute-api:Invoke on them, and the app checks the authorizer's caller is that role again;
 * - people's routes (/v1/{proxy+}) reach the app, which checks their OIDC token and groups;
 * - POST /slack/events is public: Slack cannot sign with AWS credentials, so the app verifies
 *   Slack's request signature (signing secret, five-minute timestamp window) before reading the body.
 * The public routes are throttled apart from the proxy's (stage route settings), and the app limits
 * each caller on them as well (functions/api/rate-limit.ts).
 */

import { join } from 'node:path';
import { ArnFormat, type CfnElement, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  type CfnStage,
  HttpApi,
  HttpMethod,
  HttpStage,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { PROXY_ROUTES } from '../../functions/api/proxy-auth.ts';
import { REPO_ROOT } from '../repo-root.ts';
import type { PgWardenApprovals } from './approvals.ts';
import type { PgWardenAuditStore } from './audit-store.ts';
import { pgWardenFunction } from './lambda-function.ts';

export { ESM_BANNER, LIBPG_QUERY_WASM } from './lambda-function.ts';

export interface PgWardenControlPlaneProps {
  oidc: { issuer: string; audience: string; algorithms: string[]; groupsClaim: string };
  /** PGWARDEN_ROLES: `role=group1,group2;role2=group3` */
  roles: string;
  tablePrefix: string;
  auditStore: PgWardenAuditStore;
  /** PGWARDEN_AUDIT_RETENTION_DAYS: audit items expire this long after their event (TTL) */
  auditRetentionDays?: number;
  /** who may read the trail, change policies, review approvals (identity-provider groups) */
  access: { auditors: string[]; admins: string[]; reviewers: string[] };
  /** the deployment's secret (signs audit page cursors) */
  serviceToken: ISecret;
  /** the proxy tasks' role: the only caller of the proxy's routes */
  proxyRole: IRole;
  /** the approvals queue the API sends to, and Slack's secrets for /slack/events */
  approvals: PgWardenApprovals;
  slack: { channel: string; botToken: ISecret; signingSecret: ISecret };
  logRetention: RetentionDays;
  throttle?: ThrottleSettings;
}

/**
 * GET /v1/approvals/:id/wait holds a request up to 25 s; API Gateway gives an integration 30 s.
 */
const API_TIMEOUT_SECONDS = 29;
export const SLACK_EVENTS_PATH = '/slack/events';

export class PgWardenControlPlane extends Construct {
  readonly function: NodejsFunction;
  readonly api: HttpApi;
  /** base URL for PGWARDEN_API_URL (no trailing slash) */
  readonly url: string;
  /** Slack app → Interactivity & Shortcuts → Request URL */
  readonly slackRequestUrl: string;

  constructor(scope: Construct, id: string, props: PgWardenControlPlaneProps) {
    super(scope, id);
    this.function = pgWardenFunction(this, 'Function', {
      entry: join(REPO_ROOT, 'functions/api/handler.ts'),
      description: 'pgwarden control-plane API (Hono)',
      memorySize: 512,
      timeout: Duration.seconds(API_TIMEOUT_SECONDS),
      logRetention: props.logRetention,
      sqlParser: true,
      environment: {
        PGWARDEN_OIDC_ISSUER: props.oidc.issuer,
        PGWARDEN_OIDC_AUDIENCE: props.oidc.audience,
        PGWARDEN_OIDC_ALGORITHMS: props.oidc.algorithms.join(','),
        PGWARDEN_OIDC_GROUPS_CLAIM: props.oidc.groupsClaim,
        PGWARDEN_ROLES: props.roles,
        PGWARDEN_TABLE_PREFIX: props.tablePrefix,
        PGWARDEN_AUDITOR_GROUPS: props.access.auditors.join(','),
        PGWARDEN_ADMIN_GROUPS: props.access.admins.join(','),
        PGWARDEN_REVIEWER_GROUPS: props.access.reviewers.join(','),
        ...(props.auditRetentionDays === undefined
          ? {}
          : { PGWARDEN_AUDIT_RETENTION_DAYS: String(props.auditRetentionDays) }),
        PGWARDEN_APPROVALS_QUEUE_URL: props.approvals.queue.queueUrl,
        PGWARDEN_SLACK_CHANNEL: props.slack.channel,
        // Secrets are read from Secrets Manager at cold start: a value in the environment would sit
        // in plaintext in the template and in the function's configuration.
        PGWARDEN_SERVICE_TOKEN_SECRET_ARN: props.serviceToken.secretArn,
        // the proxy's routes: API Gateway's IAM authorizer, and then this role only
        PGWARDEN_PROXY_AUTH: 'iam',
        PGWARDEN_PROXY_ROLE_ARNS: props.proxyRole.roleArn,
        SLACK_BOT_TOKEN_SECRET_ARN: props.slack.botToken.secretArn,
        SLACK_SIGNING_SECRET_SECRET_ARN: props.slack.signingSecret.secretArn,
      },
    });
    const { auditStore } = props;
    auditStore.grantAuditWrite(this.function);
    auditStore.grantAuditRead(this.function);
    auditStore.grantApprovalsReadWrite(this.function);
    auditStore.grantPolicies(this.function);
    props.approvals.grantSend(this.function);
    props.serviceToken.grantRead(this.function);
    props.slack.botToken.grantRead(this.function);
    props.slack.signingSecret.grantRead(this.function);

    this.api = new HttpApi(this, 'Api', {
      description: 'pgwarden control-plane API',
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 2000, burstLimit: 4000 },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            route: '$context.routeKey',
            status: '$context.status',
            sourceIp: '$context.identity.sourceIp',
            latencyMs: '$context.responseLatency',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });

    // The stage's default throttle is the proxy's (its routes carry every statement's audit); the
    // public routes get their own, lower limits, so a flood there cannot use up the proxy's.
    (stage.node.defaultChild as CfnStage).routeSettings = {
      [`POST ${SLACK_EVENTS_PATH}`]: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 50 },
      'ANY /v1/{proxy+}': { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      'GET /healthz': { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 },
    };

    const integration = new HttpLambdaIntegration('Integration', this.function);
    const iam = new HttpIamAuthorizer();
    for (const { method, path } of PROXY_ROUTES) {
      this.api.addRoutes({ path, methods: [HttpMethod[method]], integration, authorizer: iam });
    }
    this.grantProxyInvoke(props.proxyRole);
    const routes = [
      ...this.api.addRoutes({ path: '/healthz', methods: [HttpMethod.GET], integration }),
      ...this.api.addRoutes({ path: '/v1/{proxy+}', methods: [HttpMethod.ANY], integration }),
    ];
    for (const route of routes) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          "These are people's routes: the app checks each caller's OIDC token against the issuer and the route's groups (an IAM authorizer cannot, people hold no AWS credentials); the proxy's routes take the IAM authorizer; /healthz is deliberately public.",
      });
    }
    for (const route of this.api.addRoutes({
      path: SLACK_EVENTS_PATH,
      methods: [HttpMethod.POST],
      integration,
    })) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          "Slack's servers call this route and cannot present AWS or OIDC credentials; the app verifies Slack's HMAC request signature with the signing secret (and a five-minute timestamp window) before reading the request.",
      });
    }
    this.url = this.api.apiEndpoint;
    this.slackRequestUrl = `${this.api.apiEndpoint}${SLACK_EVENTS_PATH}`;
  }

  /**
   * execute-api:Invoke for the proxy's role on exactly its routes (method and path; a path
   * parameter as `*`), not grantInvoke's, which cuts a path at its first parameter and so would also
   * name the people's approve and deny routes. The stage is `*` (this API has only `$default`).
   */
  private grantProxyInvoke(role: IRole): void {
    const stack = Stack.of(this);
    const routePath = (method: string, path: string) => `/*/${method}${path.replaceAll(/\{[^}]+\}/g, '*')}`;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['execute-api:Invoke'],
        resources: PROXY_ROUTES.map(({ method, path }) =>
          stack.formatArn({
            service: 'execute-api',
            resource: this.api.apiId,
            resourceName: routePath(method, path).slice(1),
            arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
          }),
        ),
      }),
    );
    const shown = (value: string, pseudo: string) => (Token.isUnresolved(value) ? `<AWS::${pseudo}>` : value);
    const api = stack.getLogicalId(this.api.node.defaultChild as CfnElement);
    for (const { method, path } of PROXY_ROUTES) {
      const resource = `arn:${shown(stack.partition, 'Partition')}:execute-api:${shown(stack.region, 'Region')}:${shown(stack.account, 'AccountId')}:<${api}>${routePath(method, path)}`;
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${resource}]`,
        reason:
          'execute-api:Invoke on exactly this proxy route (method and path); the wildcards are the stage (the API has only $default) and a path parameter (an approval id).',
      });
    }
  }
}
