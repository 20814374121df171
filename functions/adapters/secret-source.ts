/**
 * Reads a configured secret: the value itself (local mode, tests), or a Secrets Manager secret read
 * once per cold start.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretSource } from '../../shared/config.ts';
import { PgWardenError } from '../../shared/errors.ts';

export async function resolveSecret(source: SecretSource, what: string): Promise<string> {
  if ('value' in source) return source.value;
  const secrets = new SecretsManagerClient({});
  try {
    const { SecretString } = await secrets.send(new GetSecretValueCommand({ SecretId: source.secretArn }));
    const value = SecretString?.trim() ?? '';
    if (value === '') throw new PgWardenError('CONFIG_INVALID', `the ${what} secret is empty`);
    return value;
  } finally {
    secrets.destroy();
  }
}
