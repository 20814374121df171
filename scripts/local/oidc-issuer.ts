/**
 * The development OIDC issuer: just enough of an identity provider for local mode (discovery and
 * a JWKS) plus a way to mint tokens. Keys live in `${dataDir}/issuer/keys.json` (0600) so the
 * token command, run as another process, signs with the keys the running API trusts. Every read
 * checks the file's mtime, so a rotation by one process is seen by the others.
 */
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Hono } from 'hono';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

export const issuerAlgorithm = 'ES256';
/** Keys kept published after a rotation, so tokens signed before it still verify until they expire. */
const publishedKeys = 2;

export interface IssuerKey {
  kid: string;
  createdAt: string;
  /** private JWK (includes the public members) */
  privateJwk: JWK;
}

/** Newest first: `keys[0]` signs, all are published. */
export interface IssuerKeys {
  keys: IssuerKey[];
}

export interface TokenRequest {
  email: string;
  groups: readonly string[];
  ttlSeconds: number;
  audience: string;
  /** 'agent' marks a token issued to an automated client (an AI agent) */
  actor?: 'person' | 'agent';
  /**
   * How the token carries the email, as real issuers differ: 'verified' (default, with
   * email_verified true), 'unverified' (email_verified false) or 'omitted' (no email claim at all, as
   * in many access tokens). The subject is `dev|<email>` in every case: one person, one subject.
   */
  emailClaim?: 'verified' | 'unverified' | 'omitted';
  /** defaults to the current time */
  now?: Date;
}

export interface DevIssuer {
  issuerUrl: string;
  /** serves `/.well-known/openid-configuration` and `/jwks.json`; mount it at the issuer URL's path */
  app: Hono;
  issueToken(request: TokenRequest): Promise<string>;
  /** a new signing key; the previous one stays published */
  rotateKey(): Promise<void>;
}

export function issuerKeysPath(dataDir: string): string {
  return join(dataDir, 'issuer', 'keys.json');
}

export async function readOrCreateIssuerKeys(dataDir: string): Promise<IssuerKeys> {
  const path = issuerKeysPath(dataDir);
  if (existsSync(path)) return parseKeys(path);
  const keys: IssuerKeys = { keys: [await newKey()] };
  // first writer wins: another process creating keys at the same moment must not be overwritten
  return writeKeys(path, keys, { exclusive: true }) ? keys : parseKeys(path);
}

export function createDevIssuer(options: { dataDir: string; issuerUrl: string }): DevIssuer {
  const issuerUrl = options.issuerUrl.replace(/\/+$/, '');
  const path = issuerKeysPath(options.dataDir);
  let cache: { version: string; keys: IssuerKeys } | undefined;

  const currentKeys = async (): Promise<IssuerKeys> => {
    if (!existsSync(path)) await readOrCreateIssuerKeys(options.dataDir);
    const { ino, mtimeMs } = statSync(path);
    const version = `${ino}:${mtimeMs}`;
    if (cache?.version !== version) cache = { version, keys: parseKeys(path) };
    return cache.keys;
  };

  const app = new Hono();
  app.get('/.well-known/openid-configuration', (c) =>
    c.json({
      issuer: issuerUrl,
      jwks_uri: `${issuerUrl}/jwks.json`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [issuerAlgorithm],
      claims_supported: [
        'iss',
        'aud',
        'sub',
        'email',
        'groups',
        'iat',
        'nbf',
        'exp',
        'jti',
        'pgwarden_actor',
      ],
    }),
  );
  app.get('/jwks.json', async (c) => {
    const { keys } = await currentKeys();
    c.header('Cache-Control', 'public, max-age=60');
    return c.json({ keys: keys.map(publicJwk) });
  });

  return {
    issuerUrl,
    app,
    async issueToken(request) {
      const { keys } = await currentKeys();
      return signToken(keys[0]!, issuerUrl, request);
    },
    async rotateKey() {
      const { keys } = await currentKeys();
      writeKeys(path, { keys: [await newKey(), ...keys].slice(0, publishedKeys) });
      cache = undefined;
    },
  };
}

/** Signs a token with the given key; shared by the issuer and the token command. */
export async function signToken(key: IssuerKey, issuerUrl: string, request: TokenRequest): Promise<string> {
  if (!Number.isFinite(request.ttlSeconds) || request.ttlSeconds <= 0) {
    throw new Error(`ttlSeconds must be a positive number (got ${request.ttlSeconds})`);
  }
  const email = request.email.trim().toLowerCase();
  const now = Math.floor((request.now ?? new Date()).getTime() / 1000);
  const emailClaim = request.emailClaim ?? 'verified';
  const claims: Record<string, unknown> =
    emailClaim === 'omitted'
      ? { groups: [...request.groups] }
      : { email, email_verified: emailClaim === 'verified', groups: [...request.groups] };
  // read by functions/adapters/oidc-verifier.ts to tell agent traffic from human traffic
  if (request.actor === 'agent') claims['pgwarden_actor'] = 'agent';
  return new SignJWT(claims)
    .setProtectedHeader({ alg: issuerAlgorithm, kid: key.kid, typ: 'JWT' })
    .setIssuer(issuerUrl.replace(/\/+$/, ''))
    .setAudience(request.audience)
    .setSubject(`dev|${email}`)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + Math.floor(request.ttlSeconds))
    .setJti(randomUUID())
    .sign(await importJWK(key.privateJwk, issuerAlgorithm));
}

async function newKey(): Promise<IssuerKey> {
  const { privateKey } = await generateKeyPair(issuerAlgorithm, { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(privateJwk);
  return {
    kid,
    createdAt: new Date().toISOString(),
    privateJwk: { ...privateJwk, kid, alg: issuerAlgorithm },
  };
}

function publicJwk(key: IssuerKey): JWK {
  const { d: _private, ...rest } = key.privateJwk;
  return { ...rest, kid: key.kid, alg: issuerAlgorithm, use: 'sig' };
}

function parseKeys(path: string): IssuerKeys {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<IssuerKeys>;
  const valid =
    Array.isArray(parsed.keys) &&
    parsed.keys.length > 0 &&
    parsed.keys.every((k) => typeof k?.kid === 'string' && typeof k.privateJwk?.d === 'string');
  if (!valid) throw new Error(`${path} holds no usable issuer keys; delete it to generate new ones`);
  return parsed as IssuerKeys;
}

/** Atomic replace; with `exclusive`, false (and nothing written) when the file already exists. */
function writeKeys(path: string, keys: IssuerKeys, options: { exclusive?: boolean } = {}): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  writeFileSync(temp, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600 });
  chmodSync(temp, 0o600);
  if (!options.exclusive) {
    renameSync(temp, path);
    return true;
  }
  try {
    linkSync(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
}
