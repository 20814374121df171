/**
 * pgwarden's Lambda functions: TypeScript entry points bundled locally by esbuild into one ESM file
 * (no Docker), Node.js 22 on ARM64, their own log group, and a role that may write only there
 * (AWSLambdaBasicExecutionRole would allow every log group). Grants are added by the caller.
 */
import { join } from 'node:path';
import { type Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { REPO_ROOT } from '../repo-root.ts';

/**
 * Gives CommonJS dependencies (and emscripten's loader) `require` and `__dirname` inside an ESM
 * bundle, where esbuild leaves them undefined; the proxy image's Dockerfile uses the same banner.
 */
export const ESM_BANNER =
  "import { createRequire as __pgwCreateRequire } from 'node:module'; import { fileURLToPath as __pgwFileURLToPath } from 'node:url'; const require = __pgwCreateRequire(import.meta.url); const __filename = __pgwFileURLToPath(import.meta.url); const __dirname = __pgwFileURLToPath(new URL('.', import.meta.url));";
export const LIBPG_QUERY_WASM = 'node_modules/libpg-query/wasm/libpg-query.wasm';

export interface PgWardenFunctionProps {
  /** absolute path of the TypeScript module exporting `handler` */
  entry: string;
  description: string;
  timeout: Duration;
  memorySize: number;
  logRetention: RetentionDays;
  environment: Record<string, string>;
  /** the function analyses SQL: ship libpg-query's WebAssembly beside the bundle */
  sqlParser?: boolean;
}

export function pgWardenFunction(scope: Construct, id: string, props: PgWardenFunctionProps): NodejsFunction {
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const role = new Role(scope, `${id}Role`, {
    assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    description: props.description,
  });
  role.addToPolicy(
    new PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  const fn = new NodejsFunction(scope, id, {
    entry: props.entry,
    handler: 'handler',
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: Runtime.NODEJS_22_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    description: props.description,
    environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
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
        afterBundling: (inputDir: string, outputDir: string) =>
          props.sqlParser === true
            ? [
                `node -e "require('node:fs').copyFileSync(process.argv[1], process.argv[2])" "${join(inputDir, LIBPG_QUERY_WASM)}" "${join(outputDir, 'libpg-query.wasm')}"`,
              ]
            : [],
      },
    },
  });
  Validations.of(fn).acknowledge({
    id: 'AwsSolutions-L1',
    reason:
      'Node.js 22 is the runtime pgwarden is built and tested for (the proxy image runs node:22 too); newer runtimes are adopted deliberately.',
  });
  return fn;
}
