/**
 * Who is asking: the verified principal of a token, and the roles its groups map to.
 * Pure: the token has already been verified by an adapter (functions/adapters/oidc-verifier.ts).
 */
import { PgWardenError } from './errors.ts';

/** Claims of a verified OIDC token that pgwarden uses. */
export interface VerifiedClaims {
  issuer: string;
  subject: string;
  email?: string;
  groups: string[];
  tokenId?: string;
  /** seconds since the epoch */
  expiresAt: number;
  /** 'agent' when the token says it was issued to an automated client, otherwise 'person' */
  actor: 'person' | 'agent';
}

export interface Principal {
  /** What the audit trail shows and what the startup `user` must match: email, else subject. */
  name: string;
  subject: string;
  email?: string;
  issuer: string;
  groups: string[];
  tokenId?: string;
  expiresAt: number;
  actor: 'person' | 'agent';
}

/** Ordered: the first mapping whose group the principal has is its primary role. */
export interface RoleMapping {
  role: string;
  groups: string[];
}

export function principalFromClaims(claims: VerifiedClaims): Principal {
  return {
    name: claims.email ?? claims.subject,
    subject: claims.subject,
    email: claims.email,
    issuer: claims.issuer,
    groups: claims.groups,
    tokenId: claims.tokenId,
    expiresAt: claims.expiresAt,
    actor: claims.actor,
  };
}

/** The startup `user` must name the principal (its email, case-insensitively, or its subject). */
export function assertStartupUserMatches(principal: Principal, startupUser: string): void {
  const user = startupUser.trim();
  const matchesEmail = principal.email !== undefined && principal.email.toLowerCase() === user.toLowerCase();
  if (matchesEmail || principal.subject === user) return;
  throw new PgWardenError(
    'AUTH_USER_MISMATCH',
    `the connection's user "${startupUser}" does not match the token's identity "${principal.name}"; connect with user=${principal.name}`,
  );
}

/** All roles the principal's groups grant, in mapping order (the first one is primary). */
export function rolesForGroups(groups: readonly string[], mappings: readonly RoleMapping[]): string[] {
  const held = new Set(groups);
  return mappings.filter((m) => m.groups.some((g) => held.has(g))).map((m) => m.role);
}

export function primaryRole(
  principal: Principal,
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
