/**
 * Keeps the principals directory up to date with the people who call (their verified email and
 * groups), so a Slack click, which names only an email, can be mapped to identity groups.
 */
import type { PrincipalDirectory } from '../../shared/approvals/ports.ts';
import type { Principal } from '../../shared/identity.ts';
import type { Logger } from '../../shared/logger.ts';

/**
 * Best effort: the directory only serves Slack approvals, so a failure is logged and never blocks the
 * session or request at hand. Agents, and people without an email, are not remembered.
 */
export async function rememberPrincipal(
  directory: PrincipalDirectory | undefined,
  principal: Principal,
  now: () => Date,
  logger: Logger,
): Promise<void> {
  if (directory === undefined || principal.actor !== 'person' || principal.email === undefined) return;
  try {
    await directory.remember(
      {
        email: principal.email,
        name: principal.name,
        subject: principal.subject,
        issuer: principal.issuer,
        groups: principal.groups,
      },
      now(),
    );
  } catch (error) {
    logger.warn('could not update the principals directory', { error: String(error) });
  }
}
