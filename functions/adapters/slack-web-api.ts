/**
 * SlackApi over the Slack Web API client that @slack/bolt ships (WebClient). `apiUrl` points it at a
 * local stand-in in tests and local mode. The client's own retries are off: the notifier is retried
 * by SQS, and an interaction must answer within Slack's 3 seconds.
 */
import { webApi } from '@slack/bolt';
import type { SlackApi, SlackMessage } from '../../shared/approvals/ports.ts';
import { PgWardenError } from '../../shared/errors.ts';

export interface SlackClientOptions {
  token: string;
  /** e.g. http://127.0.0.1:PORT/api/ (default: https://slack.com/api/) */
  apiUrl?: string;
  /** per request; default 2500 ms (within an interaction's 3 s) */
  timeoutMs?: number;
}

export function createSlackApi(options: SlackClientOptions): SlackApi {
  const client = new webApi.WebClient(options.token, {
    ...(options.apiUrl === undefined ? {} : { slackApiUrl: options.apiUrl }),
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: options.timeoutMs ?? 2500,
    logLevel: webApi.LogLevel.ERROR,
  });
  return {
    async postMessage(channel: string, message: SlackMessage) {
      const result = await call('chat.postMessage', () =>
        client.chat.postMessage({
          channel,
          text: message.text,
          blocks: message.blocks as webApi.KnownBlock[],
        }),
      );
      if (typeof result.channel !== 'string' || typeof result.ts !== 'string') {
        throw new PgWardenError('INTERNAL', 'chat.postMessage answered without channel and ts');
      }
      return { channel: result.channel, ts: result.ts };
    },
    async updateMessage(channel: string, ts: string, message: SlackMessage) {
      await call('chat.update', () =>
        client.chat.update({
          channel,
          ts,
          text: message.text,
          blocks: message.blocks as webApi.KnownBlock[],
        }),
      );
    },
    async postEphemeral(channel: string, user: string, text: string) {
      await call('chat.postEphemeral', () => client.chat.postEphemeral({ channel, user, text }));
    },
    async userEmail(userId: string) {
      const result = await call('users.info', () => client.users.info({ user: userId }));
      const email = result.user?.profile?.email;
      return { ...(email ? { email } : {}), confirmed: result.user?.is_email_confirmed === true };
    },
    async openView(triggerId: string, view: unknown) {
      await call('views.open', () => client.views.open({ trigger_id: triggerId, view: view as webApi.View }));
    },
  };
}

/** Slack failures become one domain error naming the method and Slack's error code. */
async function call<T>(method: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const code = (error as { data?: { error?: unknown } }).data?.error;
    const detail = typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
    throw new PgWardenError('CONTROL_PLANE_UNAVAILABLE', `Slack ${method} failed: ${detail}`, {
      cause: error,
    });
  }
}
