/**
 * Local-mode secrets (generated once, kept in `${dataDir}/secrets.json`, mode 0600): the embedded
 * PostgreSQL's passwords and the API's service token. Reads and writes are synchronous so that two
 * callers in one process cannot interleave a read-modify-write; the write is atomic (temp + rename).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Secrets = Record<string, string>;

export function secretsPath(dataDir: string): string {
  return join(dataDir, 'secrets.json');
}

export function readSecrets(dataDir: string): Secrets {
  const path = secretsPath(dataDir);
  if (!existsSync(path)) return {};
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${path} is not a JSON object; delete it to generate new local secrets`);
  }
  return parsed as Secrets;
}

/** A URL-safe random secret (no quoting needed in connection strings or SQL literals). */
export function randomSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

/** The secrets named, creating (and persisting) the missing ones. */
export function readOrCreateSecrets<K extends string>(
  dataDir: string,
  names: readonly K[],
): Record<K, string> {
  const secrets = readSecrets(dataDir);
  const missing = names.filter((name) => typeof secrets[name] !== 'string' || secrets[name] === '');
  if (missing.length > 0) {
    for (const name of missing) secrets[name] = randomSecret();
    writeSecrets(dataDir, secrets);
  }
  return Object.fromEntries(names.map((name) => [name, secrets[name]])) as Record<K, string>;
}

function writeSecrets(dataDir: string, secrets: Secrets): void {
  mkdirSync(dataDir, { recursive: true });
  const path = secretsPath(dataDir);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}
