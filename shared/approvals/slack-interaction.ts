/**
 * What a (signature-verified) Slack request to /slack/events asks for, parsed from Slack's shapes
 * into the few interactions pgwarden handles. Interactivity posts
 * `application/x-www-form-urlencoded` with a `payload` field holding JSON; the Events API (only its
 * URL check is answered) posts JSON.
 */
import { PgWardenError } from '../errors.ts';
import {
  APPROVE_ACTION,
  DENY_ACTION,
  DENY_CALLBACK,
  DENY_REASON_BLOCK,
  DENY_REASON_INPUT,
  VIEW_TEXT_ACTION,
} from './slack-blocks.ts';

export interface SlackMessageRef {
  channel: string;
  ts: string;
}

export type SlackInteraction =
  | {
      kind: 'action';
      action: 'approve' | 'deny' | 'view_text';
      approvalId: string;
      userId: string;
      triggerId: string;
      message: SlackMessageRef;
    }
  | { kind: 'deny_submission'; approvalId: string; userId: string; message: SlackMessageRef; reason?: string }
  | { kind: 'url_verification'; challenge: string }
  | { kind: 'ignored'; why: string };

const ACTIONS: Record<string, 'approve' | 'deny' | 'view_text'> = {
  [APPROVE_ACTION]: 'approve',
  [DENY_ACTION]: 'deny',
  [VIEW_TEXT_ACTION]: 'view_text',
};

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = isObject(current) ? current[key] : undefined;
  return current;
}

const malformed = (what: string) => new PgWardenError('BAD_REQUEST', `the Slack payload ${what}`);

export function parseSlackInteraction(body: string, contentType: string | undefined): SlackInteraction {
  let payload: unknown;
  try {
    if ((contentType ?? '').includes('application/json')) {
      payload = JSON.parse(body);
    } else {
      const field = new URLSearchParams(body).get('payload');
      if (field === null) throw malformed('has no payload field');
      payload = JSON.parse(field);
    }
  } catch (error) {
    if (error instanceof PgWardenError) throw error;
    throw malformed('is not valid JSON');
  }
  if (!isObject(payload)) throw malformed('is not an object');

  switch (payload['type']) {
    case 'url_verification': {
      const challenge = text(payload['challenge']);
      if (challenge === undefined) throw malformed('has no challenge');
      return { kind: 'url_verification', challenge };
    }
    case 'block_actions':
      return blockAction(payload);
    case 'view_submission':
      return viewSubmission(payload);
    default:
      return { kind: 'ignored', why: `type ${String(payload['type'])} is not handled` };
  }
}

function blockAction(payload: Json): SlackInteraction {
  const actions = payload['actions'];
  const first = Array.isArray(actions) ? actions[0] : undefined;
  const action = ACTIONS[String(at(first, 'action_id'))];
  if (action === undefined) return { kind: 'ignored', why: 'not a pgwarden action' };
  const approvalId = text(at(first, 'value'));
  const userId = text(at(payload, 'user', 'id'));
  const triggerId = text(payload['trigger_id']);
  const channel = text(at(payload, 'container', 'channel_id')) ?? text(at(payload, 'channel', 'id'));
  const ts = text(at(payload, 'container', 'message_ts')) ?? text(at(payload, 'message', 'ts'));
  if (!approvalId || !userId || !triggerId || !channel || !ts) {
    throw malformed('lacks the action value, user, trigger, channel or message');
  }
  return { kind: 'action', action, approvalId, userId, triggerId, message: { channel, ts } };
}

function viewSubmission(payload: Json): SlackInteraction {
  if (at(payload, 'view', 'callback_id') !== DENY_CALLBACK)
    return { kind: 'ignored', why: 'not a pgwarden dialog' };
  const userId = text(at(payload, 'user', 'id'));
  let metadata: unknown;
  try {
    metadata = JSON.parse(String(at(payload, 'view', 'private_metadata')));
  } catch {
    throw malformed('has unreadable dialog metadata');
  }
  const approvalId = text(at(metadata, 'approvalId'));
  const channel = text(at(metadata, 'channel'));
  const ts = text(at(metadata, 'ts'));
  if (!userId || !approvalId || !channel || !ts) throw malformed('lacks the user or the dialog metadata');
  const reason = at(payload, 'view', 'state', 'values', DENY_REASON_BLOCK, DENY_REASON_INPUT, 'value');
  return {
    kind: 'deny_submission',
    approvalId,
    userId,
    message: { channel, ts },
    ...(typeof reason === 'string' && reason.trim() !== '' ? { reason: reason.trim() } : {}),
  };
}
