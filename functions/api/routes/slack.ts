/**
 * POST /slack/events: Slack's interactivity requests (Approve, Deny, the deny dialog, View full
 * text). The signature is verified on the raw body before anything is parsed. A Slack user is mapped
 * to a pgwarden identity by their Slack-confirmed email through the principals directory: exactly
 * one (issuer, subject) whose issuer verified that email, not disabled, with groups known no longer
 * ago than maxGroupsAgeSeconds (slack knows nothing of groups; a stale entry could be a reviewer
 * removed since). Then
 * the same use case as the HTTP API decides (approver group, never the requester, once, in time).
 * Refusals are shown to the clicking user only (ephemeral); the message is updated with the outcome.
 * Everything happens before the 200, well within Slack's 3 seconds (a few DynamoDB and Slack calls).
 */
import type { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { PrincipalDirectory, SlackApi } from '../../../shared/approvals/ports.ts';
import {
  approvalMessage,
  DENY_REASON_BLOCK,
  denyModal,
  fullTextModal,
} from '../../../shared/approvals/slack-blocks.ts';
import { parseSlackInteraction, type SlackMessageRef } from '../../../shared/approvals/slack-interaction.ts';
import type { ApprovalDecider, ApprovalView } from '../../../shared/approvals.ts';
import { DEFAULT_REVIEWER_GROUPS_MAX_AGE_SECONDS } from '../../../shared/config.ts';
import { isPgWardenError, PgWardenError } from '../../../shared/errors.ts';
import { principalKey, sameEmail } from '../../../shared/identity.ts';
import type { Logger } from '../../../shared/logger.ts';
import { verifySlackSignature } from '../../adapters/slack-signature.ts';
import type { ApprovalsService } from '../approvals-service.ts';

export interface SlackRoutesDeps {
  approvals: ApprovalsService;
  slack: SlackApi;
  signingSecret: string;
  principals: PrincipalDirectory;
  now: () => Date;
  logger: Logger;
  /**
   * PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS: a reviewer's groups must have been asserted (a token's
   * iat, or an administrator's change) no longer ago than this; default 300, the same bound as an
   * open session's re-check
   */
  maxGroupsAgeSeconds?: number;
}

/** Slack's interaction payloads are small; a view submission with a long reason stays far below. */
const MAX_SLACK_BODY_BYTES = 256 * 1024;

export function slackRoutes(deps: SlackRoutesDeps): (app: Hono) => void {
  const maxAgeMs = (deps.maxGroupsAgeSeconds ?? DEFAULT_REVIEWER_GROUPS_MAX_AGE_SECONDS) * 1000;

  /** The pgwarden identity behind a Slack user, or why there is none. */
  async function reviewerFor(userId: string): Promise<ApprovalDecider | string> {
    const { email, confirmed } = await deps.slack.userEmail(userId);
    if (email === undefined)
      return 'pgwarden could not read your Slack email (the app needs users:read.email)';
    if (!confirmed) return `your Slack email ${email} is not confirmed, so pgwarden cannot tell who you are`;
    const signIn =
      'sign in to pgwarden with a fresh token (connect through the gateway or run a pgwarden command)';
    const matches = (await deps.principals.findByEmail(email)).filter((p) => sameEmail(p.email, email));
    if (matches.length > 1) {
      const who = matches.map((p) => principalKey(p)).join(', ');
      return `${matches.length} pgwarden identities have the verified email ${email} (${who}), so pgwarden cannot tell which one you are and takes no decision from Slack; decide with the CLI and your own token, or ask an administrator to disable the identity that is not yours`;
    }
    const match = matches[0];
    // The index is eventually consistent: what counts is the entry itself, read consistently.
    const known = match === undefined ? undefined : await deps.principals.get(match);
    if (known === undefined || !sameEmail(known.email, email))
      return `pgwarden does not know anyone whose identity provider verified ${email}: ${signIn} so it learns who you are, then click again`;
    if (known.disabled !== undefined)
      return `your access through pgwarden was disabled on ${known.disabled.at}; ask an administrator`;
    if (known.actor !== 'person') return `${email} is an automated client; approvals are decided by people`;
    const age = deps.now().getTime() - Date.parse(known.groupsAsOf);
    if (!(age <= maxAgeMs)) {
      return `pgwarden last learned your groups at ${known.groupsAsOf}, more than ${Math.round(maxAgeMs / 60_000)} minutes ago, and groups change: ${signIn}, then click again`;
    }
    return {
      name: known.name,
      email: known.email ?? email,
      issuer: known.issuer,
      subject: known.subject,
      groups: known.groups,
      actor: 'person',
      via: 'slack',
    };
  }

  /** The audit trail also keeps attempts by people pgwarden could not identify. */
  async function unknown(approvalId: string, userId: string, reason: string): Promise<void> {
    await deps.approvals
      .recordRefusal(approvalId, `slack:${userId}`, 'slack', reason)
      .catch((error: unknown) =>
        deps.logger.warn('could not record a refused Slack click', { error: String(error) }),
      );
  }

  async function tell(message: SlackMessageRef, userId: string, text: string): Promise<void> {
    await deps.slack
      .postEphemeral(message.channel, userId, `:warning: ${text}`)
      .catch((error: unknown) =>
        deps.logger.warn('could not tell a Slack user why', { error: String(error) }),
      );
  }

  async function show(message: SlackMessageRef, approval: ApprovalView): Promise<void> {
    await deps.slack
      .updateMessage(message.channel, message.ts, approvalMessage(approval, deps.now()))
      .catch((error: unknown) =>
        deps.logger.warn('could not update the Slack message', {
          approvalId: approval.id,
          error: String(error),
        }),
      );
  }

  /** Shows the refusal privately and brings the message up to date (e.g. already decided, expired). */
  async function refused(message: SlackMessageRef, userId: string, approvalId: string, error: unknown) {
    if (!isPgWardenError(error) || (error.code !== 'FORBIDDEN' && error.code !== 'NOT_FOUND')) throw error;
    await tell(message, userId, error.message);
    if (error.code === 'FORBIDDEN') {
      const current = await deps.approvals.get(approvalId).catch(() => undefined);
      if (current !== undefined && current.status !== 'pending') await show(message, current);
    }
  }

  return (app) => {
    app.post(
      '/slack/events',
      bodyLimit({
        maxSize: MAX_SLACK_BODY_BYTES,
        onError: (c) =>
          c.json({ error: { code: 'BAD_REQUEST', message: 'the Slack request is too large' } }, 413),
      }),
      async (c) => {
        const body = await c.req.text();
        verifySlackSignature(
          {
            signature: c.req.header('x-slack-signature'),
            timestamp: c.req.header('x-slack-request-timestamp'),
            body,
          },
          deps.signingSecret,
          deps.now().getTime(),
        );
        const interaction = parseSlackInteraction(body, c.req.header('content-type'));

        switch (interaction.kind) {
          case 'url_verification':
            return c.json({ challenge: interaction.challenge });
          case 'ignored':
            return c.body(null, 200);
          case 'deny_submission': {
            const who = await reviewerFor(interaction.userId);
            const refusal = typeof who === 'string' ? who : undefined;
            if (refusal !== undefined) await unknown(interaction.approvalId, interaction.userId, refusal);
            if (typeof who !== 'string') {
              try {
                const denied = await deps.approvals.decide(interaction.approvalId, who, {
                  verdict: 'deny',
                  ...(interaction.reason === undefined ? {} : { reason: interaction.reason }),
                });
                await show(interaction.message, denied);
                return c.body(null, 200); // closes the dialog
              } catch (error) {
                if (!isPgWardenError(error) || (error.code !== 'FORBIDDEN' && error.code !== 'NOT_FOUND'))
                  throw error;
                return c.json({ response_action: 'errors', errors: { [DENY_REASON_BLOCK]: error.message } });
              }
            }
            return c.json({ response_action: 'errors', errors: { [DENY_REASON_BLOCK]: refusal } });
          }
          case 'action': {
            const { approvalId, userId, message } = interaction;
            const who = await reviewerFor(userId);
            if (typeof who === 'string') {
              if (interaction.action !== 'view_text') await unknown(approvalId, userId, who);
              await tell(message, userId, who);
              return c.body(null, 200);
            }
            try {
              if (interaction.action === 'approve') {
                await show(message, await deps.approvals.decide(approvalId, who, { verdict: 'approve' }));
              } else if (interaction.action === 'deny') {
                // Check before the dialog, so nobody types a reason only to be refused.
                const refusal = await deps.approvals.refusal(approvalId, who);
                if (refusal !== undefined) throw new PgWardenError('FORBIDDEN', refusal);
                await deps.slack.openView(
                  interaction.triggerId,
                  denyModal(await deps.approvals.get(approvalId), message),
                );
              } else {
                const approval = await deps.approvals.get(approvalId);
                if (!who.groups.some((group) => approval.approvers.includes(group))) {
                  throw new PgWardenError(
                    'FORBIDDEN',
                    `the full text is shown to ${approval.approvers.join(' or ')} only`,
                  );
                }
                await deps.slack.openView(interaction.triggerId, fullTextModal(approval));
              }
            } catch (error) {
              await refused(message, userId, approvalId, error);
            }
            return c.body(null, 200);
          }
        }
      },
    );
  };
}
