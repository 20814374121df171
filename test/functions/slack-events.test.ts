/**
 * POST /slack/events as Slack calls it: signed form posts from the Slack stand-in to the real API on
 * a real port, with users.info answered by the stand-in and identities from the principals directory.
 * Every refusal the issue lists is tried: forged signatures, stale (and post-dated) timestamps,
 * unknown or unconfirmed emails, non-approvers, the requester, double decisions, expired approvals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalView } from '../../shared/approvals.ts';
import { approvalRequest, ISSUER, REQUESTER, REQUESTER_SUBJECT } from '../fakes/approvals.ts';
import { type ApprovalsApi, SIGNING_SECRET, startApprovalsApi } from '../fakes/approvals-api.ts';
import {
  blockActionPayload,
  denySubmissionPayload,
  type FakeSlack,
  sendInteraction,
  sendSigned,
  slackSignature,
} from '../fakes/slack-api.ts';

let api: ApprovalsApi;
let slack: FakeSlack;
let counter = 0;
const CHANNEL = 'C-APPROVALS';
const now = () => new Date();

beforeAll(async () => {
  api = await startApprovalsApi({ slack: true });
  slack = api.slack!;
  const person = (email: string, groups: string[], subject = `sub-${email}`, issuer = api.idp.issuer) => ({
    email,
    name: email,
    subject,
    issuer,
    actor: 'person' as const,
    groups,
  });
  await api.principals.remember(person('rita@example.com', ['reviewers']), now(), now());
  await api.principals.remember(person('sam@example.com', ['reviewers']), now(), now());
  await api.principals.remember(person('eve@example.com', ['engineering']), now(), now());
  await api.principals.remember(
    person(REQUESTER, ['engineering', 'reviewers'], REQUESTER_SUBJECT, ISSUER),
    now(),
    now(),
  );
  // groups learned from a token issued half an hour ago: too old to decide on
  await api.principals.remember(
    person('old@example.com', ['reviewers']),
    new Date(Date.now() - 30 * 60_000),
    now(),
  );
  slack.users.set('U-RITA', { email: 'Rita@Example.com', confirmed: true });
  slack.users.set('U-SAM', { email: 'sam@example.com', confirmed: true });
  slack.users.set('U-EVE', { email: 'eve@example.com', confirmed: true });
  slack.users.set('U-DEV', { email: REQUESTER, confirmed: true });
  slack.users.set('U-UNCONFIRMED', { email: 'rita@example.com', confirmed: false });
  slack.users.set('U-STRANGER', { email: 'stranger@example.com', confirmed: true });
  slack.users.set('U-NOEMAIL', { confirmed: true });
  slack.users.set('U-OLD', { email: 'old@example.com', confirmed: true });
});
afterAll(() => api.stop());
beforeEach(() => {
  slack.calls.length = 0;
  slack.clearFailures();
});

const eventsUrl = () => `${api.url}/slack/events`;

/** A pending approval with its Slack message posted (as the notifier would). */
async function posted(
  overrides: Parameters<typeof approvalRequest>[0] = {},
): Promise<ApprovalView & { slack: { channel: string; ts: string } }> {
  counter += 1;
  const approval = await api.service.request(
    approvalRequest({ text: `delete from orders where id = ${counter}`, ...overrides }),
  );
  const ts = `1700000100.${String(counter).padStart(6, '0')}`;
  slack.messages.set(`${CHANNEL}/${ts}`, { channel: CHANNEL, ts, text: '', blocks: [], updates: 0 });
  await api.store.setSlackMessage(approval.id, { channel: CHANNEL, ts });
  return { ...approval, slack: { channel: CHANNEL, ts } };
}

function click(
  userId: string,
  action: 'approve' | 'deny' | 'view_text',
  approval: { id: string; slack: { ts: string } },
  options: Partial<Parameters<typeof sendInteraction>[2]> = {},
) {
  return sendInteraction(
    eventsUrl(),
    blockActionPayload({
      userId,
      actionId: `approval_${action}`,
      approvalId: approval.id,
      channel: CHANNEL,
      ts: approval.slack.ts,
    }),
    { signingSecret: SIGNING_SECRET, ...options },
  );
}

const ephemeralTexts = () => slack.callsTo('chat.postEphemeral').map((c) => String(c.args['text']));
const status = async (id: string) => (await api.store.get(id))?.status;

describe('request authenticity', () => {
  it.each([
    ['a signature made with another secret', { signWith: 'not-the-secret' }],
    [
      'a tampered signature',
      { signature: 'v0=0000000000000000000000000000000000000000000000000000000000000000' },
    ],
    ['an unknown signature version', { signature: 'v1=abc' }],
    ['a request older than 5 minutes', { timestamp: Math.floor(Date.now() / 1000) - 301 }],
    ['a post-dated request', { timestamp: Math.floor(Date.now() / 1000) + 400 }],
  ])('refuses %s with 401 and decides nothing', async (_label, options) => {
    const approval = await posted();
    const response = await click('U-RITA', 'approve', approval, options);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'AUTH_TOKEN_INVALID' } });
    expect(await status(approval.id)).toBe('pending');
    expect(slack.calls).toEqual([]);
  });

  it('refuses a request without signature headers, or whose body was changed after signing', async () => {
    const approval = await posted();
    const body = new URLSearchParams({
      payload: JSON.stringify(
        blockActionPayload({
          userId: 'U-RITA',
          actionId: 'approval_approve',
          approvalId: approval.id,
          channel: CHANNEL,
          ts: approval.slack.ts,
        }),
      ),
    }).toString();
    const unsigned = await fetch(eventsUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(unsigned.status).toBe(401);
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = slackSignature(SIGNING_SECRET, timestamp, body.replace('U-RITA', 'U-SAMX'));
    const swapped = await sendSigned(eventsUrl(), body, 'application/x-www-form-urlencoded', {
      signingSecret: SIGNING_SECRET,
      timestamp,
      signature,
    });
    expect(swapped.status).toBe(401);
    expect(await status(approval.id)).toBe('pending');
  });

  it('accepts a request 4 minutes old and answers the URL check', async () => {
    const response = await sendSigned(
      eventsUrl(),
      JSON.stringify({ type: 'url_verification', challenge: 'c-123' }),
      'application/json',
      {
        signingSecret: SIGNING_SECRET,
        timestamp: Math.floor(Date.now() / 1000) - 240,
      },
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ challenge: 'c-123' });
  });
});

describe('Approve', () => {
  it('approves as the mapped reviewer, updates the message with the outcome and releases the waiting statement', async () => {
    const approval = await posted();
    const waiting = api.service.wait(approval.id, 20_000);
    const response = await click('U-RITA', 'approve', approval);
    expect(response.status).toBe(200);
    // the wait lasts 20 s: 'approved' means the click released it, not the timeout
    const released = await waiting;
    expect(released).toMatchObject({
      status: 'approved',
      decidedBy: 'rita@example.com',
      decidedVia: 'slack',
    });
    const message = slack.messages.get(`${CHANNEL}/${approval.slack.ts}`)!;
    expect(message.updates).toBe(1);
    expect(JSON.stringify(message.blocks)).toContain('Approved by *rita@example.com*');
    expect(JSON.stringify(message.blocks)).not.toContain('approval_approve');
    expect(api.audit.events).toContainEqual(
      expect.objectContaining({ approvalId: approval.id, step: 'approved', via: 'slack' }),
    );
  });

  it.each([
    ['a non-approver', 'U-EVE', /membership of "reviewers"/],
    ['the requester (a reviewer too)', 'U-DEV', /requested this statement/],
    ['a Slack user whose email is not confirmed', 'U-UNCONFIRMED', /not confirmed/],
    [
      'a Slack user pgwarden has never seen',
      'U-STRANGER',
      /does not know anyone whose identity provider verified/,
    ],
    ['a Slack user without an email', 'U-NOEMAIL', /users:read.email/],
    [
      'a reviewer whose groups were learned 30 minutes ago',
      'U-OLD',
      /last learned your groups at .* more than 5 minutes ago/,
    ],
  ])('refuses %s, privately, and the approval stays pending', async (_label, user, message) => {
    const approval = await posted();
    const response = await click(user, 'approve', approval);
    expect(response.status).toBe(200);
    expect(await status(approval.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(message)]);
    expect(slack.callsTo('chat.postEphemeral')[0]?.args).toMatchObject({ channel: CHANNEL, user });
    expect(slack.callsTo('chat.update')).toEqual([]);
    // every refused attempt is in the audit trail, whoever made it
    expect(api.audit.events).toContainEqual(
      expect.objectContaining({
        approvalId: approval.id,
        step: 'refused',
        via: 'slack',
        reason: expect.stringMatching(message),
      }),
    );
  });

  it('refuses a second click, and of two simultaneous clicks exactly one wins', async () => {
    const approval = await posted();
    const [a, b] = await Promise.all([
      click('U-RITA', 'approve', approval),
      click('U-SAM', 'approve', approval),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(await status(approval.id)).toBe('approved');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/already approved by/)]);

    slack.calls.length = 0;
    await click('U-SAM', 'deny', approval);
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/already approved/)]);
    expect(slack.callsTo('views.open')).toEqual([]);
    expect(await status(approval.id)).toBe('approved');
  });

  it('refuses an expired approval and shows it expired', async () => {
    const approval = await posted();
    api.clock.now = new Date(Date.now() + 2 * 3600 * 1000);
    try {
      // Two hours later, Slack signs with its own (equally later) clock; rita signed in since.
      const timestamp = Math.floor(api.clock.now.getTime() / 1000);
      await api.principals.remember(
        {
          issuer: api.idp.issuer,
          subject: 'sub-rita@example.com',
          name: 'rita@example.com',
          email: 'rita@example.com',
          actor: 'person',
          groups: ['reviewers'],
        },
        api.clock.now,
        api.clock.now,
      );
      const response = await click('U-RITA', 'approve', approval, { timestamp });
      expect(response.status).toBe(200);
    } finally {
      api.clock.now = undefined;
    }
    expect(await status(approval.id)).toBe('expired');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/expired/)]);
    const message = slack.messages.get(`${CHANNEL}/${approval.slack.ts}`)!;
    expect(JSON.stringify(message.blocks)).toContain('Expired without a decision');
  });

  it('answers 200 even when Slack cannot be updated (the decision stands)', async () => {
    const approval = await posted();
    slack.failNext('chat.update', 'ratelimited');
    const response = await click('U-RITA', 'approve', approval);
    expect(response.status).toBe(200);
    expect(await status(approval.id)).toBe('approved');
  });
});

describe('Deny', () => {
  it('opens a dialog for the reason, and its submission denies with that reason', async () => {
    const approval = await posted();
    const response = await click('U-SAM', 'deny', approval);
    expect(response.status).toBe(200);
    expect(await status(approval.id)).toBe('pending');
    const [open] = slack.callsTo('views.open');
    expect(open?.args['trigger_id']).toBe('trigger-U-SAM-approval_deny');
    const view = open?.args['view'] as { private_metadata: string; callback_id: string };
    expect(view.callback_id).toBe('approval_deny');

    const waiting = api.service.wait(approval.id, 20_000);
    const submitted = await sendInteraction(
      eventsUrl(),
      denySubmissionPayload({
        userId: 'U-SAM',
        privateMetadata: view.private_metadata,
        reason: 'run it in a transaction',
      }),
      { signingSecret: SIGNING_SECRET },
    );
    expect(submitted.status).toBe(200);
    expect(await submitted.text()).toBe('');
    expect(await waiting).toMatchObject({
      status: 'denied',
      decidedBy: 'sam@example.com',
      denyReason: 'run it in a transaction',
    });
    const message = slack.messages.get(`${CHANNEL}/${approval.slack.ts}`)!;
    expect(JSON.stringify(message.blocks)).toContain('Denied by *sam@example.com*');
    expect(JSON.stringify(message.blocks)).toContain('run it in a transaction');
  });

  it('does not open the dialog for someone who may not decide', async () => {
    const approval = await posted();
    await click('U-DEV', 'deny', approval);
    expect(slack.callsTo('views.open')).toEqual([]);
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/requested this statement/)]);
  });

  it('shows the refusal inside the dialog when the submitter may not decide, or it was decided meanwhile', async () => {
    const approval = await posted();
    const metadata = JSON.stringify({ approvalId: approval.id, channel: CHANNEL, ts: approval.slack.ts });
    const forged = await sendInteraction(
      eventsUrl(),
      denySubmissionPayload({ userId: 'U-EVE', privateMetadata: metadata }),
      {
        signingSecret: SIGNING_SECRET,
      },
    );
    expect(await forged.json()).toEqual({
      response_action: 'errors',
      errors: { deny_reason: expect.stringMatching(/membership/) },
    });
    expect(await status(approval.id)).toBe('pending');

    await click('U-RITA', 'approve', approval);
    const late = await sendInteraction(
      eventsUrl(),
      denySubmissionPayload({ userId: 'U-SAM', privateMetadata: metadata }),
      {
        signingSecret: SIGNING_SECRET,
      },
    );
    expect(await late.json()).toEqual({
      response_action: 'errors',
      errors: { deny_reason: expect.stringMatching(/already approved/) },
    });
    expect(await status(approval.id)).toBe('approved');
  });
});

describe('View full text', () => {
  it('opens the statement in a modal for an approver, and refuses others', async () => {
    const long = `delete from orders where id in (${Array.from({ length: 600 }, (_, i) => i).join(',')})`;
    const approval = await posted({ text: long });
    await click('U-RITA', 'view_text', approval);
    const [open] = slack.callsTo('views.open');
    expect(JSON.stringify(open?.args['view'])).toContain('599)');
    slack.calls.length = 0;
    await click('U-EVE', 'view_text', approval);
    expect(slack.callsTo('views.open')).toEqual([]);
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/reviewers only/)]);
  });
});

describe('malformed requests', () => {
  it('answers 400 to a signed request that is not a Slack payload', async () => {
    const response = await sendSigned(eventsUrl(), 'hello=world', 'application/x-www-form-urlencoded', {
      signingSecret: SIGNING_SECRET,
    });
    expect(response.status).toBe(400);
  });

  it('ignores interactions that are not pgwarden buttons', async () => {
    const approval = await posted();
    const response = await sendInteraction(
      eventsUrl(),
      blockActionPayload({
        userId: 'U-RITA',
        actionId: 'other',
        approvalId: approval.id,
        channel: CHANNEL,
        ts: '1',
      }),
      { signingSecret: SIGNING_SECRET },
    );
    expect(response.status).toBe(200);
    expect(slack.calls).toEqual([]);
  });

  it('tells the user about an approval that does not exist', async () => {
    await click('U-RITA', 'approve', { id: 'no-such-approval', slack: { ts: '1.1' } });
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/there is no approval no-such-approval/)]);
  });
});

describe('who a Slack user is, as of now', () => {
  const at = (issuer: string, subject: string) => ({ issuer, subject });

  it('refuses a reviewer removed from the approver group after their last token: their next click', async () => {
    await api.principals.remember(
      {
        issuer: api.idp.issuer,
        subject: 'sub-nina',
        name: 'nina@example.com',
        email: 'nina@example.com',
        actor: 'person',
        groups: ['reviewers'],
      },
      now(),
      now(),
    );
    slack.users.set('U-NINA', { email: 'nina@example.com', confirmed: true });
    const first = await posted();
    await click('U-NINA', 'approve', first);
    expect(await status(first.id)).toBe('approved');

    await api.principals.change(
      at(api.idp.issuer, 'sub-nina'),
      { groups: ['engineering'] },
      'admin@example.com',
      now(),
    );
    slack.calls.length = 0;
    const second = await posted();
    await click('U-NINA', 'approve', second);
    expect(await status(second.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/membership of "reviewers"/)]);
  });

  it('refuses a disabled reviewer', async () => {
    await api.principals.remember(
      {
        issuer: api.idp.issuer,
        subject: 'sub-omar',
        name: 'omar@example.com',
        email: 'omar@example.com',
        actor: 'person',
        groups: ['reviewers'],
      },
      now(),
      now(),
    );
    await api.principals.change(
      at(api.idp.issuer, 'sub-omar'),
      { disabled: true },
      'admin@example.com',
      now(),
    );
    slack.users.set('U-OMAR', { email: 'omar@example.com', confirmed: true });
    const approval = await posted();
    await click('U-OMAR', 'approve', approval);
    expect(await status(approval.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/access through pgwarden was disabled/)]);
  });

  it('refuses an email that two principals hold (two issuers), naming both', async () => {
    for (const issuer of [api.idp.issuer, 'https://second-issuer.example']) {
      await api.principals.remember(
        {
          issuer,
          subject: 'twin',
          name: 'twin@example.com',
          email: 'Twin@Example.com',
          actor: 'person',
          groups: ['reviewers'],
        },
        now(),
        now(),
      );
    }
    slack.users.set('U-TWIN', { email: 'twin@example.com', confirmed: true });
    const approval = await posted();
    await click('U-TWIN', 'approve', approval);
    expect(await status(approval.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([
      expect.stringMatching(
        /2 pgwarden identities have the verified email twin@example.com .*second-issuer.example#twin/,
      ),
    ]);
  });

  it('does not map a Slack email that pgwarden only saw unverified (or only as an agent)', async () => {
    // the directory keeps verified emails only: a token with email_verified false leaves none
    await api.principals.remember(
      {
        issuer: api.idp.issuer,
        subject: 'sub-unverified',
        name: 'sub-unverified',
        actor: 'person',
        groups: ['reviewers'],
      },
      now(),
      now(),
    );
    await api.principals.remember(
      {
        issuer: api.idp.issuer,
        subject: 'bot-7',
        name: 'bot@example.com',
        email: 'bot@example.com',
        actor: 'agent',
        groups: ['reviewers'],
      },
      now(),
      now(),
    );
    slack.users.set('U-UNVERIFIED', { email: 'sub-unverified@example.com', confirmed: true });
    slack.users.set('U-BOT', { email: 'bot@example.com', confirmed: true });
    const approval = await posted();
    await click('U-UNVERIFIED', 'approve', approval);
    await click('U-BOT', 'approve', approval);
    expect(await status(approval.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([
      expect.stringMatching(/does not know anyone whose identity provider verified/),
      expect.stringMatching(/automated client/),
    ]);
  });

  it("treats the requester's Slack account as the requester, whatever name the directory shows", async () => {
    // the requester (REQUESTER_SUBJECT at ISSUER) approving from Slack: refused by identity
    const approval = await posted();
    await click('U-DEV', 'approve', approval);
    expect(await status(approval.id)).toBe('pending');
    expect(ephemeralTexts()).toEqual([expect.stringMatching(/requested this statement/)]);
  });
});
