/**
 * A real OIDC issuer for tests: node:http on 127.0.0.1 serving discovery and a JWKS, signing with
 * keys from jose. It publishes every key it ever rotated to (as real issuers keep the previous key
 * published for a while) and counts requests so tests can see what the verifier fetched.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface SignOptions {
  /** sign with this key instead of the current one (e.g. an unpublished key) */
  key?: SigningKey;
  /** seconds from now; default 300 */
  expiresIn?: number;
}

export interface TestIssuer {
  /** http://127.0.0.1:<port> */
  issuer: string;
  audience: string;
  current(): SigningKey;
  /**
   * A token with iss, aud, sub, iat, exp defaults; a claim given as undefined is left out. An
   * `email` comes with `email_verified: true` unless the claims say otherwise (as most issuers send).
   */
  sign(claims?: Record<string, unknown>, options?: SignOptions): Promise<string>;
  /** Makes a new current key (published alongside the old ones). */
  rotate(alg?: SigningKey['alg']): Promise<SigningKey>;
  /** Overrides the `issuer` the discovery document names. */
  setDiscoveryIssuer(value: string): void;
  requests: { discovery: number; jwks: number };
  stop(): Promise<void>;
}

let kidCounter = 0;

export async function newSigningKey(alg: SigningKey['alg'] = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  kidCounter += 1;
  const kid = `test-key-${kidCounter}`;
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startTestIssuer(audience = 'pgwarden'): Promise<TestIssuer> {
  const keys: SigningKey[] = [await newSigningKey()];
  const requests = { discovery: 0, jwks: 0 };
  let discoveryIssuer: string | undefined;
  let issuer = '';

  const server = createServer((req, res) => {
    const send = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      requests.discovery += 1;
      send({ issuer: discoveryIssuer ?? issuer, jwks_uri: `${issuer}/jwks` });
    } else if (req.url === '/jwks') {
      requests.jwks += 1;
      send({ keys: keys.map((k) => k.publicJwk) });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const current = () => keys[keys.length - 1]!;
  return {
    issuer,
    audience,
    current,
    requests,
    async sign(claims = {}, options = {}) {
      const key = options.key ?? current();
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer,
        aud: audience,
        sub: 'user-1',
        iat: now,
        exp: now + (options.expiresIn ?? 300),
        ...('email' in claims && !('email_verified' in claims) ? { email_verified: true } : {}),
        ...claims,
      };
      for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
      return new SignJWT(payload)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .sign(key.privateKey);
    },
    async rotate(alg = 'RS256') {
      const key = await newSigningKey(alg);
      keys.push(key);
      return key;
    },
    setDiscoveryIssuer(value) {
      discoveryIssuer = value;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
