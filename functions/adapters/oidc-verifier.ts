/**
 * TokenVerifier over an OIDC issuer (jose): discovery → remote JWKS → jwtVerify, and jose's errors
 * translated into PgWardenError codes with messages a person can act on. Messages never contain the
 * token itself: it is a bearer credential and error texts end up in logs and on clients' screens.
 */
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { DEFAULT_ALGORITHMS, SIGNING_ALGORITHMS } from '../../shared/config.ts';
import { isPgWardenError, PgWardenError } from '../../shared/errors.ts';
import type { VerifiedClaims } from '../../shared/identity.ts';
import type { TokenVerifier } from '../../shared/ports.ts';

export interface OidcVerifierOptions {
  issuer: string;
  audience: string;
  /** allow-list; only asymmetric algorithms are accepted (see SIGNING_ALGORITHMS) */
  algorithms?: string[];
  groupsClaim?: string;
  /**
   * The issuer puts only addresses it has verified in `email` (a workforce IdP whose users cannot
   * set their own address) and so may omit `email_verified`. Default false: an email counts only
   * with `email_verified: true`.
   */
  emailsVerified?: boolean;
  clockToleranceSeconds?: number;
  fetch?: typeof fetch;
  currentDate?: () => Date;
  /**
   * After a JWKS fetch, an unknown `kid` triggers no new fetch for this long, so a stream of forged
   * kids cannot hammer the issuer; a rotated key is picked up on the first token after it.
   */
  jwksCooldownMs?: number;
  /** per HTTP request to the issuer (discovery, JWKS) */
  timeoutMs?: number;
}

/** Far above any real ID/access token; refuses a multi-megabyte "password" before parsing it. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export function createOidcVerifier(options: OidcVerifierOptions): TokenVerifier {
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  const refused = algorithms.filter((alg) => !SIGNING_ALGORITHMS.includes(alg));
  if (refused.length > 0 || algorithms.length === 0) {
    throw new PgWardenError(
      'CONFIG_INVALID',
      `token algorithms must be asymmetric; refused: ${refused.join(', ')}`,
    );
  }
  const issuer = options.issuer;
  const groupsClaim = options.groupsClaim ?? 'groups';
  const fetchImpl = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 5_000;

  // One discovery + JWKS cache per verifier (a Lambda keeps it across warm invocations). A failed
  // discovery is forgotten so the next connection retries instead of failing until a cold start.
  let keySource: Promise<JWTVerifyGetKey> | undefined;
  const keys = (): Promise<JWTVerifyGetKey> => {
    if (keySource === undefined) {
      const attempt = discoverJwksUri(issuer, fetchImpl, timeoutMs).then((jwksUri) =>
        guardKeyFetch(
          createRemoteJWKSet(jwksUri, {
            timeoutDuration: timeoutMs,
            cooldownDuration: options.jwksCooldownMs ?? 10_000,
            [customFetch]: fetchImpl,
          }),
          issuer,
        ),
      );
      keySource = attempt;
      attempt.catch(() => {
        if (keySource === attempt) keySource = undefined;
      });
    }
    return keySource;
  };

  return {
    async verify(token: string): Promise<VerifiedClaims> {
      const compact = token.trim();
      if (compact === '') {
        throw new PgWardenError(
          'AUTH_TOKEN_MISSING',
          'no token was sent: use your OIDC token as the password',
        );
      }
      if (compact.length > MAX_TOKEN_LENGTH) {
        throw new PgWardenError('AUTH_TOKEN_INVALID', 'the password is too long to be a token');
      }
      const getKey = await keys();
      const tolerance = options.clockToleranceSeconds ?? 30;
      const now = options.currentDate?.() ?? new Date();
      try {
        const { payload } = await jwtVerify(compact, getKey, {
          issuer,
          audience: options.audience,
          algorithms,
          clockTolerance: tolerance,
          requiredClaims: ['exp', 'sub'],
          currentDate: now,
        });
        assertIssuedInThePast(payload, now, tolerance);
        return claimsFrom(payload, issuer, groupsClaim, options.emailsVerified ?? false);
      } catch (error) {
        throw translate(error, { issuer, audience: options.audience, algorithms });
      }
    },
  };
}

async function discoverJwksUri(issuer: string, fetchImpl: typeof fetch, timeoutMs: number): Promise<URL> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let document: unknown;
  try {
    const response = await fetchImpl(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    document = await response.json();
  } catch (cause) {
    throw unavailable(`cannot read the discovery document of ${issuer} (${describe(cause)})`, cause);
  }
  const found = document as { issuer?: unknown; jwks_uri?: unknown } | null;
  // OIDC Discovery §4.3: the document must name exactly the issuer it was fetched for.
  if (found?.issuer !== issuer) {
    throw unavailable(
      `the discovery document at ${url} names issuer "${String(found?.issuer)}", not "${issuer}"`,
    );
  }
  const jwksUri = typeof found.jwks_uri === 'string' ? URL.parse(found.jwks_uri) : null;
  if (jwksUri === null || (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:')) {
    throw unavailable(`the discovery document of ${issuer} has no usable jwks_uri`);
  }
  return jwksUri;
}

/** Key-set failures that are the issuer's (unreachable, bad JSON) become AUTH_ISSUER_UNAVAILABLE. */
function guardKeyFetch(jwks: JWTVerifyGetKey, issuer: string): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (error) {
      const tokenProblem =
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys ||
        error instanceof errors.JOSENotSupported;
      if (tokenProblem) throw error;
      throw unavailable(`cannot fetch the signing keys of ${issuer} (${describe(error)})`, error);
    }
  };
}

function claimsFrom(
  payload: JWTPayload,
  issuer: string,
  groupsClaim: string,
  emailsVerified: boolean,
): VerifiedClaims {
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw new PgWardenError('AUTH_TOKEN_INVALID', 'the token names no subject ("sub" claim)');
  }
  // An address the issuer does not vouch for could be anyone's: it names nobody (OIDC Core §5.1:
  // without email_verified true, the address may not be the person's). Only the boolean counts.
  const verified =
    payload['email_verified'] === true || (emailsVerified && payload['email_verified'] !== false);
  const email =
    typeof payload['email'] === 'string' && payload['email'] !== '' && verified
      ? payload['email']
      : undefined;
  return {
    issuer,
    subject: payload.sub,
    ...(email === undefined ? {} : { email }),
    groups: groupsFrom(payload[groupsClaim]),
    ...(typeof payload.jti === 'string' ? { tokenId: payload.jti } : {}),
    ...(typeof payload.iat === 'number' && Number.isFinite(payload.iat) ? { issuedAt: payload.iat } : {}),
    expiresAt: payload.exp as number, // required and type-checked by jwtVerify
    actor: payload['pgwarden_actor'] === 'agent' || payload['act'] !== undefined ? 'agent' : 'person',
  };
}

/**
 * A token's iat says when the issuer asserted its groups, and newer knowledge outranks older in
 * the principals directory: a token "issued" in the future (an issuer's clock far ahead, or a
 * forged-looking claim) would outrank changes made after it was really minted. Refused beyond the
 * clock tolerance, so it cannot.
 */
function assertIssuedInThePast(payload: JWTPayload, now: Date, toleranceSeconds: number): void {
  if (typeof payload.iat !== 'number') return;
  if (payload.iat * 1000 > now.getTime() + toleranceSeconds * 1000) {
    throw new PgWardenError(
      'AUTH_TOKEN_NOT_YET_VALID',
      `your token says it was issued at ${isoTime(payload.iat)}, in the future; check the identity provider's clock`,
    );
  }
}

function groupsFrom(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((group) => typeof group === 'string')) return value;
  return [];
}

interface Expected {
  issuer: string;
  audience: string;
  algorithms: string[];
}

function translate(error: unknown, expected: Expected): PgWardenError {
  if (isPgWardenError(error)) return error;
  const invalid = (message: string) => new PgWardenError('AUTH_TOKEN_INVALID', message, { cause: error });
  if (error instanceof errors.JWTExpired) {
    return new PgWardenError(
      'AUTH_TOKEN_EXPIRED',
      `your token expired at ${isoTime(error.payload.exp)}; get a new one`,
      { cause: error },
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason, payload } = error;
    if (reason === 'missing') return invalid(`the token has no "${claim}" claim`);
    if (claim === 'nbf') {
      return new PgWardenError(
        'AUTH_TOKEN_NOT_YET_VALID',
        `your token is not valid before ${isoTime(payload.nbf)}; check this computer's clock`,
        { cause: error },
      );
    }
    if (claim === 'iss') {
      return new PgWardenError(
        'AUTH_WRONG_ISSUER',
        `the token was issued by "${clip(payload.iss)}", but pgwarden accepts tokens from "${expected.issuer}"`,
        { cause: error },
      );
    }
    if (claim === 'aud') {
      return new PgWardenError(
        'AUTH_WRONG_AUDIENCE',
        `the token is meant for "${clip(payload.aud)}", not for pgwarden ("${expected.audience}"); request a token for pgwarden`,
        { cause: error },
      );
    }
    return invalid(`the token's "${claim}" claim is not acceptable`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new PgWardenError(
      'AUTH_ALGORITHM_NOT_ALLOWED',
      `the token is signed with an algorithm pgwarden does not accept (accepted: ${expected.algorithms.join(', ')})`,
      { cause: error },
    );
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalid(
      `the token's signature does not verify: it was altered or not issued by ${expected.issuer}`,
    );
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return invalid(`the token is signed with a key that ${expected.issuer} does not publish`);
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return invalid('the password is not a well-formed signed token (JWT)');
  }
  return invalid('the token could not be verified');
}

function unavailable(message: string, cause?: unknown): PgWardenError {
  return new PgWardenError('AUTH_ISSUER_UNAVAILABLE', `${message}; try again shortly`, { cause });
}

function isoTime(seconds: unknown): string {
  return typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : 'an unknown time';
}

/** Claim values are signature-verified here but still the issuer's data: keep messages bounded. */
function clip(value: unknown): string {
  const text = Array.isArray(value) ? value.join(', ') : String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
