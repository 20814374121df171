import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcVerifier, type OidcVerifierOptions } from '../../../functions/adapters/oidc-verifier.ts';
import { PgWardenError } from '../../../shared/errors.ts';
import { newSigningKey, startTestIssuer, type TestIssuer } from '../../fakes/oidc-issuer.ts';

let idp: TestIssuer;

beforeAll(async () => {
  idp = await startTestIssuer();
});
afterAll(async () => {
  await idp.stop();
});

function verifier(overrides: Partial<OidcVerifierOptions> = {}) {
  return createOidcVerifier({ issuer: idp.issuer, audience: idp.audience, ...overrides });
}

/** The PgWardenError a verification fails with (fails the test if it succeeds). */
async function failure(outcome: unknown): Promise<PgWardenError> {
  const error = await Promise.resolve(outcome).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PgWardenError);
  return error as PgWardenError;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function replacePart(token: string, index: number, part: string): string {
  const parts = token.split('.');
  parts[index] = part;
  return parts.join('.');
}

describe('createOidcVerifier', () => {
  it('accepts a valid token and maps its claims', async () => {
    const token = await idp.sign({ email: 'ada@example.com', groups: ['engineering', 'admins'], jti: 't-1' });
    const claims = await verifier().verify(token);
    expect(claims).toEqual({
      issuer: idp.issuer,
      subject: 'user-1',
      email: 'ada@example.com',
      groups: ['engineering', 'admins'],
      tokenId: 't-1',
      issuedAt: expect.any(Number),
      expiresAt: expect.any(Number),
      actor: 'person',
    });
  });

  it('verifies ES256 tokens from a rotated-to EC key', async () => {
    const issuer = await startTestIssuer();
    try {
      await issuer.rotate('ES256');
      const claims = await createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden' }).verify(
        await issuer.sign({ sub: 'ec-user' }),
      );
      expect(claims.subject).toBe('ec-user');
    } finally {
      await issuer.stop();
    }
  });

  it('says when an expired token expired', async () => {
    const exp = Math.floor(Date.now() / 1000) - 3600;
    const token = await idp.sign({ exp });
    const error = await failure(verifier().verify(token));
    expect(error.code).toBe('AUTH_TOKEN_EXPIRED');
    expect(error.message).toContain(new Date(exp * 1000).toISOString());
    expect(error.message).not.toContain(token);
  });

  it('honours the clock tolerance and the injected clock', async () => {
    const exp = Math.floor(Date.now() / 1000) - 10;
    const token = await idp.sign({ exp });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    const later = new Date((exp + 60) * 1000);
    const error = await failure(verifier({ currentDate: () => later }).verify(token));
    expect(error.code).toBe('AUTH_TOKEN_EXPIRED');
  });

  it('rejects a token whose nbf is in the future', async () => {
    const nbf = Math.floor(Date.now() / 1000) + 3600;
    const error = await failure(verifier().verify(await idp.sign({ nbf, exp: nbf + 600 })));
    expect(error.code).toBe('AUTH_TOKEN_NOT_YET_VALID');
    expect(error.message).toContain(new Date(nbf * 1000).toISOString());
  });

  it('requires an expiry', async () => {
    const error = await failure(verifier().verify(await idp.sign({ exp: undefined })));
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
    expect(error.message).toContain('"exp"');
  });

  it('rejects a token with a tampered payload', async () => {
    const token = await idp.sign({ groups: ['engineering'] });
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    const forged = replacePart(token, 1, b64({ ...payload, groups: ['admins'] }));
    const error = await failure(verifier().verify(forged));
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
    expect(error.message).toContain('signature');
    expect(error.message).not.toContain(forged);
  });

  it('rejects a token with a tampered signature', async () => {
    const token = await idp.sign();
    const signature = token.split('.')[2]!;
    // Change a middle character: the last one may only carry padding bits.
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    const error = await failure(verifier().verify(replacePart(token, 2, flipped)));
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
  });

  it('rejects a malformed token', async () => {
    const error = await failure(verifier().verify('not-a-token'));
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
    expect(error.message).not.toContain('not-a-token');
  });

  it('rejects a token from another issuer', async () => {
    const error = await failure(verifier().verify(await idp.sign({ iss: 'https://evil.example' })));
    expect(error.code).toBe('AUTH_WRONG_ISSUER');
    expect(error.message).toContain('https://evil.example');
  });

  it('rejects a token for another audience', async () => {
    const error = await failure(verifier().verify(await idp.sign({ aud: 'some-other-app' })));
    expect(error.code).toBe('AUTH_WRONG_AUDIENCE');
    expect(error.message).toContain('some-other-app');
  });

  it('rejects alg none', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, aud: idp.audience, sub: 'user-1', exp: now + 300 };
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    const error = await failure(verifier().verify(token));
    expect(error.code).toBe('AUTH_ALGORITHM_NOT_ALLOWED');
  });

  it('rejects HS256 signed with the public key (algorithm confusion)', async () => {
    const key = idp.current();
    const pem = createPublicKey({ key: key.publicJwk as JsonWebKey, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    const token = await new SignJWT({ iss: idp.issuer, aud: idp.audience, sub: 'user-1' })
      .setProtectedHeader({ alg: 'HS256', kid: key.kid })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(String(pem)));
    const error = await failure(verifier().verify(token));
    expect(error.code).toBe('AUTH_ALGORITHM_NOT_ALLOWED');
  });

  it('refuses to be configured with HMAC or none', () => {
    expect(() => verifier({ algorithms: ['RS256', 'HS256'] })).toThrow(/HS256/);
    expect(() => verifier({ algorithms: ['none'] })).toThrow(PgWardenError);
  });

  it('rejects a token signed by a key the issuer does not publish', async () => {
    const stranger = await newSigningKey();
    const error = await failure(
      verifier({ jwksCooldownMs: 0 }).verify(await idp.sign({}, { key: stranger })),
    );
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
    expect(error.message).toContain('does not publish');
  });

  it('picks up a rotated key on the first token that uses it', async () => {
    const issuer = await startTestIssuer();
    try {
      const check = createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden', jwksCooldownMs: 0 });
      await check.verify(await issuer.sign());
      expect(issuer.requests.jwks).toBe(1);
      await issuer.rotate();
      await expect(check.verify(await issuer.sign({ sub: 'after-rotation' }))).resolves.toMatchObject({
        subject: 'after-rotation',
      });
      expect(issuer.requests.jwks).toBe(2);
    } finally {
      await issuer.stop();
    }
  });

  it('does not refetch the keys for unknown kids during the cooldown', async () => {
    const issuer = await startTestIssuer();
    try {
      const check = createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden' });
      await check.verify(await issuer.sign());
      const stranger = await newSigningKey();
      for (let i = 0; i < 3; i += 1) {
        const error = await failure(check.verify(await issuer.sign({}, { key: stranger })));
        expect(error.code).toBe('AUTH_TOKEN_INVALID');
      }
      expect(issuer.requests).toEqual({ discovery: 1, jwks: 1 });
    } finally {
      await issuer.stop();
    }
  });

  it('reports an unreachable issuer as AUTH_ISSUER_UNAVAILABLE', async () => {
    const issuer = await startTestIssuer();
    const token = await issuer.sign();
    await issuer.stop();
    const error = await failure(
      createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden', timeoutMs: 2_000 }).verify(token),
    );
    expect(error.code).toBe('AUTH_ISSUER_UNAVAILABLE');
    expect(error.message).toContain(issuer.issuer);
  });

  it('reports unreachable signing keys as AUTH_ISSUER_UNAVAILABLE', async () => {
    const failingJwks: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/jwks')) throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    const error = await failure(verifier({ fetch: failingJwks }).verify(await idp.sign()));
    expect(error.code).toBe('AUTH_ISSUER_UNAVAILABLE');
  });

  it('retries discovery after a failure instead of caching it', async () => {
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      calls += 1;
      if (calls === 1) throw new TypeError('fetch failed');
      return fetch(input, init);
    };
    const check = verifier({ fetch: flaky });
    const token = await idp.sign();
    expect((await failure(check.verify(token))).code).toBe('AUTH_ISSUER_UNAVAILABLE');
    await expect(check.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('refuses a discovery document that names another issuer', async () => {
    const issuer = await startTestIssuer();
    try {
      issuer.setDiscoveryIssuer('https://impostor.example');
      const error = await failure(
        createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden' }).verify(await issuer.sign()),
      );
      expect(error.code).toBe('AUTH_ISSUER_UNAVAILABLE');
      expect(error.message).toContain('impostor.example');
    } finally {
      await issuer.stop();
    }
  });

  it('caches discovery and keys across verifications', async () => {
    const issuer = await startTestIssuer();
    try {
      const check = createOidcVerifier({ issuer: issuer.issuer, audience: 'pgwarden' });
      await Promise.all([check.verify(await issuer.sign()), check.verify(await issuer.sign())]);
      await check.verify(await issuer.sign());
      expect(issuer.requests).toEqual({ discovery: 1, jwks: 1 });
    } finally {
      await issuer.stop();
    }
  });

  it.each([
    ['an array of strings', ['a', 'b'], ['a', 'b']],
    ['a single string', 'a', ['a']],
    ['a number', 42, []],
    ['an array with a non-string', ['a', 1], []],
    ['an object', { a: true }, []],
    ['absent', undefined, []],
  ])('reads groups given as %s', async (_label, groups, expected) => {
    const claims = await verifier().verify(await idp.sign({ groups }));
    expect(claims.groups).toEqual(expected);
  });

  it('reads groups from a configured claim', async () => {
    const claims = await verifier({ groupsClaim: 'roles' }).verify(
      await idp.sign({ roles: ['dba'], groups: ['x'] }),
    );
    expect(claims.groups).toEqual(['dba']);
  });

  it('uses only string emails, and not unverified ones', async () => {
    expect((await verifier().verify(await idp.sign({ email: 42 }))).email).toBeUndefined();
    const unverified = await idp.sign({ email: 'ceo@example.com', email_verified: false });
    expect((await verifier().verify(unverified)).email).toBeUndefined();
  });

  it.each([
    ['pgwarden_actor agent', { pgwarden_actor: 'agent' }, 'agent'],
    ['an act claim', { act: { sub: 'cursor' } }, 'agent'],
    ['pgwarden_actor person', { pgwarden_actor: 'person' }, 'person'],
    ['no marker', {}, 'person'],
  ])('marks the actor from %s', async (_label, extra, actor) => {
    expect((await verifier().verify(await idp.sign(extra))).actor).toBe(actor);
  });

  it('requires a subject', async () => {
    const error = await failure(verifier().verify(await idp.sign({ sub: undefined })));
    expect(error.code).toBe('AUTH_TOKEN_INVALID');
  });

  it.each(['', '   '])('reports a missing token (%j)', async (token) => {
    const error = await failure(verifier().verify(token));
    expect(error.code).toBe('AUTH_TOKEN_MISSING');
  });
});
