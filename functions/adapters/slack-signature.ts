/**
 * Slack request authenticity: Bolt's verifySlackRequest (v0 HMAC-SHA256 of `v0:<timestamp>:<body>`
 * with the signing secret, constant-time compare, stale timestamps refused), run on the raw body
 * BEFORE anything parses it. Bolt only refuses timestamps more than 5 minutes in the past; one more
 * than 5 minutes in the future is refused here too, so a captured request cannot be post-dated.
 */
import { verifySlackRequest } from '@slack/bolt';
import { PgWardenError } from '../../shared/errors.ts';

export const SLACK_REPLAY_WINDOW_SECONDS = 5 * 60;

export interface SlackSignedRequest {
  signature: string | undefined;
  timestamp: string | undefined;
  body: string;
}

export function verifySlackSignature(
  request: SlackSignedRequest,
  signingSecret: string,
  nowMs: number,
): void {
  const refuse = (why: string) =>
    new PgWardenError('AUTH_TOKEN_INVALID', `this endpoint accepts only requests signed by Slack (${why})`);
  if (signingSecret === '') throw new PgWardenError('CONFIG_INVALID', 'the Slack signing secret is empty');
  if (request.signature === undefined || request.timestamp === undefined) {
    throw refuse('x-slack-signature and x-slack-request-timestamp are required');
  }
  if (!/^\d{1,12}$/.test(request.timestamp)) throw refuse('the timestamp is not a number of seconds');
  const timestamp = Number(request.timestamp);
  if (timestamp - Math.floor(nowMs / 1000) > SLACK_REPLAY_WINDOW_SECONDS) {
    throw refuse('the timestamp is in the future');
  }
  try {
    verifySlackRequest({
      signingSecret,
      body: request.body,
      headers: { 'x-slack-signature': request.signature, 'x-slack-request-timestamp': timestamp },
      nowMilliseconds: nowMs,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw refuse(
      /stale/.test(message) ? 'the request is older than 5 minutes' : 'the signature does not match',
    );
  }
}
