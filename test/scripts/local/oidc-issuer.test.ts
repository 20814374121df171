import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcVerifier } from '../../../functions/adapters/oidc-verifier.ts';
import {
  createDevIssuer,
  type DevIssuer,
  readOrCreateIssuerKeys,
} from '../../../scripts/local/oidc-issuer.ts';
import { getFreePort } from '../../../scripts/local/postgres.ts';

let dataDir: string;
let server: Server;
let issuer: DevIssuer;
let issuerUrl: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-issuer-'));
  const port = await getFreePort();
  issuerUrl = `http://127.0.0.1:${port}/dev-oidc`;
  issuer = createDevIssuer({ dataDir, issuerUrl });
  // mounted the way the local runner mounts it on the API's server
  const parent = new Hono().route('/dev-oidc', issuer.app);
  server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: parent.fetch, hostname: '127.0.0.1', port }, () => resolve(s as Server));
  });
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await rm(dataDir, { recursive: true, force: true });
});

const jwksFor = () => createRemoteJWKSet(new URL(`${issuerUrl}/jwks.json`), { cooldownDuration: 0 });

describe('dev OIDC issuer', () => {
  it('publishes a discovery document naming its issuer and JWKS', async () => {
    const response = await fetch(`${issuerUrl}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as Record<string, unknown>;
    expect(doc['issuer']).toBe(issuerUrl);
    expect(doc['jwks_uri']).toBe(`${issuerUrl}/jwks.json`);
    expect(doc['id_token_signing_alg_values_supported']).toEqual(['ES256']);
  });

  it('issues tokens that verify against its JWKS with the expected claims', async () => {
    const token = await issuer.issueToken({
      email: 'Alice@Example.com',
      groups: ['engineering', 'reviewers'],
      ttlSeconds: 600,
      audience: 'pgwarden',
    });
    const { payload, protectedHeader } = await jwtVerify(token, jwksFor(), {
      issuer: issuerUrl,
      audience: 'pgwarden',
      algorithms: ['ES256'],
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(typeof protectedHeader.kid).toBe('string');
    expect(payload).toMatchObject({
      iss: issuerUrl,
      aud: 'pgwarden',
      sub: 'dev|alice@example.com',
      email: 'alice@example.com',
      groups: ['engineering', 'reviewers'],
    });
    expect(payload.exp! - payload.iat!).toBe(600);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload['pgwarden_actor']).toBeUndefined();

    const again = await issuer.issueToken({
      email: 'alice@example.com',
      groups: [],
      ttlSeconds: 60,
      audience: 'x',
    });
    const second = await jwtVerify(again, jwksFor(), { issuer: issuerUrl, audience: 'x' });
    expect(second.payload.sub).toBe(payload.sub);
    expect(second.payload.jti).not.toBe(payload.jti);
  });

  it('issues the three email shapes real issuers send; pgwarden names all three the same principal', async () => {
    const verifier = createOidcVerifier({ issuer: issuerUrl, audience: 'pgwarden', algorithms: ['ES256'] });
    const claims = async (emailClaim: 'verified' | 'unverified' | 'omitted') =>
      verifier.verify(
        await issuer.issueToken({
          email: 'ada@example.com',
          groups: ['engineering'],
          ttlSeconds: 60,
          audience: 'pgwarden',
          emailClaim,
        }),
      );
    const verified = await claims('verified');
    const unverified = await claims('unverified');
    const omitted = await claims('omitted');
    expect(verified.email).toBe('ada@example.com');
    expect(unverified.email).toBeUndefined();
    expect(omitted.email).toBeUndefined();
    for (const other of [unverified, omitted]) {
      expect({ issuer: other.issuer, subject: other.subject }).toEqual({
        issuer: verified.issuer,
        subject: 'dev|ada@example.com',
      });
    }
  });

  it('marks agent tokens', async () => {
    const token = await issuer.issueToken({
      email: 'bot@example.com',
      groups: ['engineering'],
      ttlSeconds: 60,
      audience: 'pgwarden',
      actor: 'agent',
    });
    const { payload } = await jwtVerify(token, jwksFor(), { issuer: issuerUrl, audience: 'pgwarden' });
    expect(payload['pgwarden_actor']).toBe('agent');
  });

  it('keeps its keys private and reuses them', async () => {
    const path = join(dataDir, 'issuer', 'keys.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const before = await readFile(path, 'utf8');
    const keys = await readOrCreateIssuerKeys(dataDir);
    expect(await readFile(path, 'utf8')).toBe(before);
    const jwks = (await (await fetch(`${issuerUrl}/jwks.json`)).json()) as {
      keys: Record<string, unknown>[];
    };
    expect(jwks.keys.map((k) => k['kid'])).toEqual(keys.keys.map((k) => k.kid));
    for (const key of jwks.keys) expect(key['d']).toBeUndefined();
  });

  it('rotates: new tokens use a new key, tokens signed before still verify', async () => {
    const old = await issuer.issueToken({
      email: 'a@example.com',
      groups: [],
      ttlSeconds: 60,
      audience: 'pgwarden',
    });
    await issuer.rotateKey();
    const fresh = await issuer.issueToken({
      email: 'a@example.com',
      groups: [],
      ttlSeconds: 60,
      audience: 'pgwarden',
    });
    expect(decodeProtectedHeader(fresh).kid).not.toBe(decodeProtectedHeader(old).kid);
    const jwks = jwksFor();
    await expect(jwtVerify(fresh, jwks, { issuer: issuerUrl })).resolves.toBeDefined();
    await expect(jwtVerify(old, jwks, { issuer: issuerUrl })).resolves.toBeDefined();

    // a second rotation retires the oldest key
    await issuer.rotateKey();
    const published = (await (await fetch(`${issuerUrl}/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(published.keys).toHaveLength(2);
    expect(published.keys.map((k) => k.kid)).not.toContain(decodeProtectedHeader(old).kid);
    await expect(jwtVerify(old, jwksFor(), { issuer: issuerUrl })).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('refuses a non-positive lifetime', async () => {
    await expect(
      issuer.issueToken({ email: 'a@example.com', groups: [], ttlSeconds: 0, audience: 'pgwarden' }),
    ).rejects.toThrow(/ttlSeconds/);
  });
});
