/**
 * The principals directory between tokens. A token is the issuer's word at the moment it was
 * issued (iat); the directory keeps the newest word pgwarden has of each (issuer, subject): the
 * latest token it saw, or an administrator's change made since (disable, new groups). Every
 * verified token goes through here, so each one makes pgwarden's knowledge fresher, and a token
 * older than that knowledge cannot take it back:
 * - a disabled principal is refused, whatever its token says;
 * - groups asserted after the token was issued replace the token's (a removal reaches a token
 *   minted before it);
 * - a verified email seen earlier for the same (issuer, subject) is kept as `knownEmail`, so the
 *   person's rules still apply to a token that carries none.
 * Fail closed: when the directory is configured and cannot be read, the caller is refused.
 */
import type { PrincipalDirectory } from '../../shared/approvals/ports.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { Principal } from '../../shared/identity.ts';

export async function currentPrincipal(
  directory: PrincipalDirectory | undefined,
  principal: Principal,
  now: Date,
): Promise<Principal> {
  if (directory === undefined) return principal;
  const asOf = assertedAt(principal, now);
  const known = await directory.get(principal);
  await directory.remember(
    {
      issuer: principal.issuer,
      subject: principal.subject,
      name: principal.name,
      ...(principal.email === undefined ? {} : { email: principal.email }),
      actor: principal.actor,
      groups: principal.groups,
    },
    asOf,
    now,
  );
  if (known?.disabled !== undefined) {
    const because = known.disabled.reason ? ` (${known.disabled.reason})` : '';
    throw new PgWardenError(
      'AUTH_DISABLED',
      `${principal.name}'s access through pgwarden was disabled on ${known.disabled.at}${because}; ask an administrator`,
    );
  }
  const newer = known !== undefined && known.groupsAsOf > asOf.toISOString();
  const knownEmail = principal.email === undefined ? known?.email : undefined;
  return {
    ...principal,
    ...(newer ? { groups: known.groups, groupsAsOf: known.groupsAsOf } : { groupsAsOf: asOf.toISOString() }),
    ...(knownEmail === undefined ? {} : { knownEmail }),
  };
}

/**
 * When the token's groups were asserted: its iat, never later than now (an issuer whose clock runs
 * ahead must not make its tokens outrank a change made since); now when the token has no iat.
 */
function assertedAt(principal: Principal, now: Date): Date {
  const iat = principal.groupsAsOf === undefined ? Number.NaN : Date.parse(principal.groupsAsOf);
  return Number.isFinite(iat) && iat < now.getTime() ? new Date(iat) : now;
}
