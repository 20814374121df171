/**
 * The control-plane API: the Hono app (functions/api/handler.ts) as one Lambda function behind an
 * API Gateway HTTP API. Routes are explicit, so nothing but the app's own paths reaches the function.
 *
 * Authorisation: /v1 is called by the proxy with `Authorization: Bearer <service token>`; the token
 * is a generated Secrets Manager secret that the app compares in constant time. API Gateway's IAM
 * (SigV4) authorisation would claim the same header, so it needs the proxy to sign its requests
 * first (see README.md, "Deploy to AWS"). /slack/events will be public and verified by Slack's signature.
 */

import { join } from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  HttpApi,
  HttpMethod,
  HttpStage,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { REPO_ROOT } from '../repo-root.ts';
import type { PgWardenAuditStore } from './audit-store.ts';

/**
 * Gives CommonJS dependencies (and emscripten's loader) `require` and `__dirname` inside an ESM
 * bundle, where esbuild leaves them undefined; the proxy image's Dockerfile uses the same banner.
 */
export const ESM_BANNER =
  "import { createRequire as __pgwCreateRequire } from 'node:module'; import { fileURLToPath as __pgwFileURLToPath } from 'node:url'; const require = __pgwCreateRequire(import.meta.url); const __filename = __pgwFileURLToPath(import.meta.url); const __dirname = __pgwFileURLToPath(new URL('.', import.meta.url));";
export const LIBPG_QUERY_WASM = 'node_modules/libpg-query/wasm/libpg-query.wasm';

export interface PgWardenControlPlaneProps {
  oidc: { issuer: string; audience: string; algorithms: string[]; groupsClaim: string };
  /** PGWARDEN_ROLES: `role=group1,group2;role2=group3` */
  roles: string;
  tablePrefix: string;
  auditStore: PgWardenAuditStore;
  /** the proxy's credential for /v1 */
  serviceToken: ISecret;
  logRetention: RetentionDays;
  throttle?: ThrottleSettings;
}

export class PgWardenControlPlane extends Construct {
  readonly function: NodejsFunction;
  readonly api: HttpApi;
  /** base URL for PGWARDEN_API_URL (no trailing slash) */
  readonly url: string;

  constructor(scope: Construct, id: string, props: PgWardenControlPlaneProps) {
    super(scope, id);
    const logGroup = new LogGroup(this, 'FunctionLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // An own role instead of AWSLambdaBasicExecutionRole: logs go to this one log group only.
    const role = new Role(this, 'FunctionRole', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: 'pgwarden control-plane API function',
    });
    role.addToPolicy(
      new PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );

    this.function = new NodejsFunction(this, 'Function', {
      entry: join(REPO_ROOT, 'functions/api/handler.ts'),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: 512,
      timeout: Duration.seconds(10),
      role,
      logGroup,
      description: 'pgwarden control-plane API (Hono)',
      environment: {
        PGWARDEN_OIDC_ISSUER: props.oidc.issuer,
        PGWARDEN_OIDC_AUDIENCE: props.oidc.audience,
        PGWARDEN_OIDC_ALGORITHMS: props.oidc.algorithms.join(','),
        PGWARDEN_OIDC_GROUPS_CLAIM: props.oidc.groupsClaim,
        PGWARDEN_ROLES: props.roles,
        PGWARDEN_TABLE_PREFIX: props.tablePrefix,
        // The handler reads the token from Secrets Manager at cold start: a value in the environment
        // would sit in plaintext in the template and in the function's configuration.
        PGWARDEN_SERVICE_TOKEN_SECRET_ARN: props.serviceToken.secretArn,
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        // The SDK is bundled at the locked version the tests ran with, not the runtime's copy.
        externalModules: [],
        mainFields: ['module', 'main'],
        banner: ESM_BANNER,
        // libpg-query loads its WebAssembly from beside the bundle (emscripten's __dirname).
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            `node -e "require('node:fs').copyFileSync(process.argv[1], process.argv[2])" "${join(inputDir, LIBPG_QUERY_WASM)}" "${join(outputDir, 'libpg-query.wasm')}"`,
          ],
        },
      },
    });
    props.auditStore.grantAuditWrite(this.function);
    props.serviceToken.grantRead(this.function);
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime pgwarden is built and tested for (the proxy image runs node:22 too); newer runtimes are adopted deliberately.',
    });

    this.api = new HttpApi(this, 'Api', {
      description: 'pgwarden control-plane API',
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    new HttpStage(this, 'DefaultStage', {
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

    const integration = new HttpLambdaIntegration('Integration', this.function);
    const routes = [
      ...this.api.addRoutes({ path: '/healthz', methods: [HttpMethod.GET], integration }),
      ...this.api.addRoutes({ path: '/v1/{proxy+}', methods: [HttpMethod.ANY], integration }),
      // Approvals issue: POST /slack/events (public; the app verifies Slack's request signature).
    ];
    for (const route of routes) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'The app authenticates every /v1 call with the service token from Secrets Manager (constant-time compare) and /healthz is deliberately public; SigV4 needs the proxy to sign requests (README.md, "Deploy to AWS").',
      });
    }
    this.url = this.api.apiEndpoint;
  }
}
