/**
 * A local stand-in for the Slack Web API (the methods pgwarden calls) on 127.0.0.1: it checks the
 * bot token, records every call, keeps the posted messages, answers like Slack (`{ok, ...}` or
 * `{ok: false, error}`), and can fail chosen calls. It also plays Slack's other half: sending
 * interaction payloads to a request URL signed with the v0 scheme, as Slack does.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  method: string;
  args: Record<string, unknown>;
}

export interface FakeSlackUser {
  email?: string;
  confirmed: boolean;
}

export interface StoredMessage {
  channel: string;
  ts: string;
  text: string;
  blocks: unknown[];
  updates: number;
}

export interface FakeSlack {
  /** give this to WebClient as slackApiUrl (ends with /api/) */
  apiUrl: string;
  token: string;
  calls: SlackCall[];
  messages: Map<string, StoredMessage>;
  users: Map<string, FakeSlackUser>;
  callsTo(method: string): SlackCall[];
  /** the next `times` calls to `method` answer {ok:false, error} (or, with 'http500', a 500) */
  failNext(method: string, error: string, times?: number): void;
  /** calls to `method` for which `when(args)` holds answer {ok:false, error}, until cleared */
  failWhen(method: string, when: (args: Record<string, unknown>) => boolean, error: string): void;
  clearFailures(): void;
  /** resolves when `count` calls to `method` have been recorded */
  waitForCalls(method: string, count: number, timeoutMs?: number): Promise<SlackCall[]>;
  stop(): Promise<void>;
}

interface Failure {
  method: string;
  error: string;
  remaining: number;
  when?: (args: Record<string, unknown>) => boolean;
}

export async function startFakeSlack(options: { token?: string } = {}): Promise<FakeSlack> {
  const token = options.token ?? 'xoxb-test-token';
  const calls: SlackCall[] = [];
  const messages = new Map<string, StoredMessage>();
  const users = new Map<string, FakeSlackUser>();
  let failures: Failure[] = [];
  let tsCounter = 0;
  const listeners = new Set<() => void>();

  const server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const method = /^\/api\/([\w.]+)$/.exec(req.url ?? '')?.[1];
    if (method === undefined || req.method !== 'POST')
      return send(404, { ok: false, error: 'unknown_method' });
    const args = await readArgs(req);
    calls.push({ method, args });
    for (const listener of listeners) listener();

    if (req.headers.authorization !== `Bearer ${token}`)
      return send(200, { ok: false, error: 'invalid_auth' });
    const failure = failures.find((f) => f.method === method && (f.when === undefined || f.when(args)));
    if (failure !== undefined) {
      if (failure.when === undefined) {
        failure.remaining -= 1;
        if (failure.remaining <= 0) failures = failures.filter((f) => f !== failure);
      }
      return failure.error === 'http500'
        ? send(500, { ok: false })
        : send(200, { ok: false, error: failure.error });
    }
    send(200, answer(method, args));
  });

  function answer(method: string, args: Record<string, unknown>): unknown {
    switch (method) {
      case 'chat.postMessage': {
        const channel = String(args['channel'] ?? '');
        if (channel === '') return { ok: false, error: 'channel_not_found' };
        tsCounter += 1;
        const ts = `1700000000.${String(tsCounter).padStart(6, '0')}`;
        // Slack answers with the channel's id; names are resolved. Keep what was sent.
        messages.set(`${channel}/${ts}`, {
          channel,
          ts,
          text: String(args['text'] ?? ''),
          blocks: asBlocks(args['blocks']),
          updates: 0,
        });
        return { ok: true, channel, ts, message: { text: args['text'] } };
      }
      case 'chat.update': {
        const key = `${String(args['channel'])}/${String(args['ts'])}`;
        const message = messages.get(key);
        if (message === undefined) return { ok: false, error: 'message_not_found' };
        message.text = String(args['text'] ?? '');
        message.blocks = asBlocks(args['blocks']);
        message.updates += 1;
        return { ok: true, channel: message.channel, ts: message.ts };
      }
      case 'chat.postEphemeral':
        return { ok: true, message_ts: `1700000001.${String(calls.length).padStart(6, '0')}` };
      case 'users.info': {
        const id = String(args['user'] ?? '');
        const user = users.get(id);
        if (user === undefined) return { ok: false, error: 'user_not_found' };
        return {
          ok: true,
          user: {
            id,
            is_email_confirmed: user.confirmed,
            profile: user.email === undefined ? {} : { email: user.email },
          },
        };
      }
      case 'views.open':
        return { ok: true, view: { id: `V${calls.length}` } };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    token,
    calls,
    messages,
    users,
    callsTo: (method) => calls.filter((call) => call.method === method),
    failNext(method, error, times = 1) {
      failures.push({ method, error, remaining: times });
    },
    failWhen(method, when, error) {
      failures.push({ method, error, remaining: Number.POSITIVE_INFINITY, when });
    },
    clearFailures() {
      failures = [];
    },
    waitForCalls(method, count, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = calls.filter((call) => call.method === method);
          if (found.length < count) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `expected ${count} ${method} calls within ${timeoutMs} ms, saw ${calls.filter((c) => c.method === method).length}`,
            ),
          );
        }, timeoutMs);
        if (!check()) listeners.add(check);
      });
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** WebClient sends form fields with nested values JSON-encoded; accept JSON bodies too. */
async function readArgs(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] ?? '').includes('application/json')) return body ? JSON.parse(body) : {};
  const args: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(body)) {
    args[key] = /^[[{]/.test(value) ? safeJson(value) : value;
  }
  return args;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function asBlocks(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Slack's v0 request signature over `v0:<timestamp>:<body>`. */
export function slackSignature(signingSecret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SendOptions {
  signingSecret: string;
  /** seconds since the epoch; default now */
  timestamp?: number;
  /** overrides the computed signature (forgeries) */
  signature?: string;
  /** sign with this secret instead (a forger without the real one) */
  signWith?: string;
}

/** Posts an interaction payload the way Slack does: form-encoded `payload=<json>`, signed. */
export async function sendInteraction(
  url: string,
  payload: unknown,
  options: SendOptions,
): Promise<Response> {
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  return sendSigned(url, body, 'application/x-www-form-urlencoded', options);
}

export async function sendSigned(
  url: string,
  body: string,
  contentType: string,
  options: SendOptions,
): Promise<Response> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const signature =
    options.signature ?? slackSignature(options.signWith ?? options.signingSecret, timestamp, body);
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': contentType,
      'x-slack-request-timestamp': String(timestamp),
      'x-slack-signature': signature,
    },
    body,
  });
}

/** A block_actions payload for a click on one of the approval message's buttons. */
export function blockActionPayload(options: {
  userId: string;
  actionId: string;
  approvalId: string;
  channel: string;
  ts: string;
}): unknown {
  return {
    type: 'block_actions',
    user: { id: options.userId, username: options.userId, team_id: 'T1' },
    api_app_id: 'A1',
    token: 'legacy-verification-token',
    container: { type: 'message', message_ts: options.ts, channel_id: options.channel, is_ephemeral: false },
    trigger_id: `trigger-${options.userId}-${options.actionId}`,
    team: { id: 'T1', domain: 'example' },
    channel: { id: options.channel, name: 'approvals' },
    message: { type: 'message', ts: options.ts, text: '' },
    response_url: 'https://hooks.slack.invalid/actions/T1/1/x',
    actions: [
      {
        action_id: options.actionId,
        block_id: 'approval_actions',
        type: 'button',
        value: options.approvalId,
        action_ts: '1700000000.1',
      },
    ],
  };
}

/** A view_submission payload for the deny dialog (private_metadata as pgwarden set it). */
export function denySubmissionPayload(options: {
  userId: string;
  privateMetadata: string;
  reason?: string;
  callbackId?: string;
}): unknown {
  return {
    type: 'view_submission',
    user: { id: options.userId },
    team: { id: 'T1' },
    view: {
      id: 'V1',
      type: 'modal',
      callback_id: options.callbackId ?? 'approval_deny',
      private_metadata: options.privateMetadata,
      state: {
        values: { deny_reason: { reason: { type: 'plain_text_input', value: options.reason ?? null } } },
      },
    },
  };
}
