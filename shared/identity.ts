/**
 * Who is asking: the verified principal of a token, and the roles its groups map to.
 * Pure: the token has already been verified by an adapter (functions/adapters/oidc-verifier.ts).
 *
 * A person is (issuer, subject): the only pair an OIDC issuer promises never to reassign. An email
 * is a display name; it takes part in a decision only when the issuer verified it, and then only
 * as documented below (rules, the startup user, Slack's mapping). Two tokens of one person share
 * (issuer, subject) whatever else they carry, so they are one principal everywhere.
 */
import { PgWardenError } from './errors.ts';

/** Claims of a verified OIDC token that pgwarden uses. */
export interface VerifiedClaims {
  issuer: string;
  subject: string;
  /** only an address the issuer vouches for (see functions/adapters/oidc-verifier.ts) */
  email?: string;
  groups: string[];
  tokenId?: string;
  /** seconds since the epoch: when the issuer asserted these claims (absent when the token has no iat) */
  issuedAt?: number;
  /** seconds since the epoch */
  expiresAt: number;
  /** 'agent' when the token says it was issued to an automated client, otherwise 'person' */
  actor: 'person' | 'agent';
}

/** The identity of a principal: issued by `issuer`, which names it `subject`. */
export interface PrincipalId {
  issuer: string;
  subject: string;
}

export interface Principal extends PrincipalId {
  /** Display only (audit, Slack, messages): the verified email, else the subject. Never an identity. */
  name: string;
  /** verified by the issuer, in this token */
  email?: string;
  /**
   * A verified email this (issuer, subject) presented in an earlier token (the principals
   * directory) when this token carries none: restrictive rules that name it still apply.
   */
  knownEmail?: string;
  groups: string[];
  /** when `groups` were asserted (ISO time): the token's iat, or a newer principals-directory entry */
  groupsAsOf?: string;
  tokenId?: string;
  expiresAt: number;
  actor: 'person' | 'agent';
}

/** What a decision reads of the principal (sent with every decision request). */
export type SessionPrincipal = Pick<
  Principal,
  'name' | 'issuer' | 'subject' | 'email' | 'knownEmail' | 'groups' | 'actor'
>;

/** Ordered: the first mapping whose group the principal has is its primary role. */
export interface RoleMapping {
  role: string;
  groups: string[];
}

export function principalFromClaims(claims: VerifiedClaims): Principal {
  return {
    name: claims.email ?? claims.subject,
    subject: claims.subject,
    ...(claims.email === undefined ? {} : { email: claims.email }),
    issuer: claims.issuer,
    groups: claims.groups,
    ...(claims.issuedAt === undefined ? {} : { groupsAsOf: new Date(claims.issuedAt * 1000).toISOString() }),
    ...(claims.tokenId === undefined ? {} : { tokenId: claims.tokenId }),
    expiresAt: claims.expiresAt,
    actor: claims.actor,
  };
}

/** The fields a decision needs, copied so the session's view can be refreshed without touching the response. */
export function sessionPrincipal(principal: Principal): SessionPrincipal {
  return {
    name: principal.name,
    issuer: principal.issuer,
    subject: principal.subject,
    ...(principal.email === undefined ? {} : { email: principal.email }),
    ...(principal.knownEmail === undefined ? {} : { knownEmail: principal.knownEmail }),
    groups: principal.groups,
    actor: principal.actor,
  };
}

/**
 * One string per principal: `issuer#subject`. An issuer identifier has no fragment (OpenID
 * Connect Discovery §2, checked by the configuration), so the first `#` separates the two parts.
 */
export function principalKey(id: PrincipalId): string {
  return `${id.issuer}#${id.subject}`;
}

export function samePrincipal(a: PrincipalId, b: PrincipalId): boolean {
  return a.issuer === b.issuer && a.subject === b.subject;
}

/** Emails compare case-insensitively (pgwarden never tells two mailboxes apart by case). */
export function sameEmail(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}

/**
 * The startup `user` must name the principal: its email when this token's issuer verified it
 * (case-insensitively), or its subject (exactly). A token without a verified email connects with
 * user=<subject>; an unverified address is not accepted, so nobody can claim one with a token.
 */
export function assertStartupUserMatches(principal: Principal, startupUser: string): void {
  const user = startupUser.trim();
  if (sameEmail(principal.email, user) || principal.subject === user) return;
  const expected = principal.email ?? principal.subject;
  const why =
    principal.email === undefined
      ? ' (the token carries no email its issuer verified, so pgwarden knows you by your subject)'
      : '';
  throw new PgWardenError(
    'AUTH_USER_MISMATCH',
    `the connection's user "${startupUser}" does not match the token's identity "${expected}"${why}; connect with user=${expected}`,
  );
}

/** All roles the principal's groups grant, in mapping order (the first one is primary). */
export function rolesForGroups(groups: readonly string[], mappings: readonly RoleMapping[]): string[] {
  const held = new Set(groups);
  return mappings.filter((m) => m.groups.some((g) => held.has(g))).map((m) => m.role);
}

export function primaryRole(
  principal: Pick<Principal, 'groups'>,
  mappings: readonly RoleMapping[],
): { role: string; roles: string[] } {
  const roles = rolesForGroups(principal.groups, mappings);
  const role = roles[0];
  if (role === undefined) {
    throw new PgWardenError(
      'AUTH_NO_ROLE',
      `none of your groups (${principal.groups.join(', ') || 'none'}) grants database access through pgwarden`,
    );
  }
  return { role, roles };
}

// ── naming principals in policy rules ─────────────────────────────────────────────────────────────

/**
 * How a rule's `principals` entry names people:
 * - `https://issuer.example#subject`: exactly that (issuer, subject), the unambiguous form;
 * - `ada@example.com` (has an `@`): the person whose issuer verified that email;
 * - anything else: a subject, at any trusted issuer (with several issuers, prefer the first form).
 */
export type PrincipalPattern =
  | { kind: 'id'; issuer: string; subject: string }
  | { kind: 'email'; email: string }
  | { kind: 'subject'; subject: string };

/** undefined when the entry names nobody (empty, or an issuer form without subject). */
export function principalPattern(text: string): PrincipalPattern | undefined {
  const entry = text.trim();
  if (entry === '') return undefined;
  if (/^https?:\/\//i.test(entry)) {
    const hash = entry.indexOf('#');
    if (hash < 0) return undefined;
    const issuer = entry.slice(0, hash);
    const subject = entry.slice(hash + 1);
    if (subject === '' || URL.parse(issuer) === null || issuer.includes('?')) return undefined;
    return { kind: 'id', issuer, subject };
  }
  if (entry.includes('@')) return { kind: 'email', email: entry.toLowerCase() };
  return { kind: 'subject', subject: entry };
}

/**
 * Whether `pattern` names `principal`. `restrictive` rules (deny, require_approval, mask) also
 * match on what is known less strongly, so a person cannot step out of them with another token of
 * theirs: an email this (issuer, subject) verified earlier, and subjects case-insensitively (also
 * a subject that is itself an email address). Rules that allow match only on this token's
 * verified identity: nothing stale or unverified ever widens access.
 */
export function principalMatches(
  pattern: PrincipalPattern,
  principal: SessionPrincipal,
  restrictive: boolean,
): boolean {
  switch (pattern.kind) {
    case 'id':
      return pattern.issuer === principal.issuer && pattern.subject === principal.subject;
    case 'email':
      if (sameEmail(principal.email, pattern.email)) return true;
      return (
        restrictive &&
        (sameEmail(principal.knownEmail, pattern.email) || sameEmail(principal.subject, pattern.email))
      );
    case 'subject':
      if (pattern.subject === principal.subject) return true;
      return restrictive && pattern.subject.toLowerCase() === principal.subject.toLowerCase();
  }
}
