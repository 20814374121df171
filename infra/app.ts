/**
 * Entry point of the CDK app (`"app": "npx tsx infra/app.ts"` in cdk.json). A configuration
 * problem is printed as one readable list, without a stack trace, and exits non-zero.
 */
import { PgWardenError } from '../shared/errors.ts';
import { createPgWardenApp } from './pgwarden-app.ts';

try {
  createPgWardenApp().app.synth();
} catch (error) {
  if (!(error instanceof PgWardenError) || error.code !== 'CONFIG_INVALID') throw error;
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
}
