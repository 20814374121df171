/**
 * Builds the CDK app: configuration from context, the stack, and the cdk-nag AwsSolutions checks
 * (a finding that is not acknowledged with a reason fails synthesis). Used by infra/app.ts (the
 * `cdk` CLI) and by the tests, which pass their context and output directory directly.
 */
import { App, type Environment, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PgWardenError } from '../shared/errors.ts';
import { pgWardenConfigFromContext } from './config.ts';
import { PgWardenStack } from './pgwarden-stack.ts';

export interface PgWardenAppOptions {
  /** context values (tests); the CLI passes cdk.json and -c values through the environment */
  context?: Record<string, unknown>;
  outdir?: string;
  /** target account/region; defaults to the CLI's CDK_DEFAULT_ACCOUNT/REGION (unset: env-agnostic) */
  env?: Environment;
}

export function createPgWardenApp(options: PgWardenAppOptions = {}): { app: App; stack: PgWardenStack } {
  const app = new App({
    ...(options.context === undefined ? {} : { context: options.context }),
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
  });
  const config = pgWardenConfigFromContext((key) => app.node.tryGetContext(key));
  const env = options.env ?? {
    account: process.env['CDK_DEFAULT_ACCOUNT'],
    region: process.env['CDK_DEFAULT_REGION'],
  };
  if (config.network.vpcId !== undefined && (env.account === undefined || env.region === undefined)) {
    throw new PgWardenError(
      'CONFIG_INVALID',
      'vpcId needs the target account and region to look the VPC up: run cdk with AWS credentials and a region (or set CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION)',
    );
  }
  const stack = new PgWardenStack(app, config.stackName, {
    config,
    env,
    description: 'pgwarden: identity-aware PostgreSQL gateway (proxy, control plane, audit trail)',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
