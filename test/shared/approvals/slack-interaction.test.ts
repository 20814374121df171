import { describe, expect, it } from 'vitest';
import { parseSlackInteraction } from '../../../shared/approvals/slack-interaction.ts';
import { blockActionPayload, denySubmissionPayload } from '../../fakes/slack-api.ts';

const form = (payload: unknown) => new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
const FORM = 'application/x-www-form-urlencoded';

describe('Slack interaction payloads', () => {
  it('reads a button click: action, approval id, user, trigger and the clicked message', () => {
    const body = form(
      blockActionPayload({
        userId: 'U1',
        actionId: 'approval_approve',
        approvalId: 'a-1',
        channel: 'C9',
        ts: '17.1',
      }),
    );
    expect(parseSlackInteraction(body, FORM)).toEqual({
      kind: 'action',
      action: 'approve',
      approvalId: 'a-1',
      userId: 'U1',
      triggerId: 'trigger-U1-approval_approve',
      message: { channel: 'C9', ts: '17.1' },
    });
  });

  it('reads the deny dialog submission with and without a reason', () => {
    const metadata = JSON.stringify({ approvalId: 'a-1', channel: 'C9', ts: '17.1' });
    expect(
      parseSlackInteraction(
        form(denySubmissionPayload({ userId: 'U1', privateMetadata: metadata, reason: ' too risky ' })),
        FORM,
      ),
    ).toEqual({
      kind: 'deny_submission',
      approvalId: 'a-1',
      userId: 'U1',
      message: { channel: 'C9', ts: '17.1' },
      reason: 'too risky',
    });
    const noReason = parseSlackInteraction(
      form(denySubmissionPayload({ userId: 'U1', privateMetadata: metadata })),
      FORM,
    );
    expect(noReason).not.toHaveProperty('reason');
  });

  it('answers the Events API URL check', () => {
    expect(
      parseSlackInteraction(
        JSON.stringify({ type: 'url_verification', challenge: 'abc' }),
        'application/json',
      ),
    ).toEqual({
      kind: 'url_verification',
      challenge: 'abc',
    });
  });

  it('ignores other actions, dialogs and payload types', () => {
    const other = blockActionPayload({
      userId: 'U1',
      actionId: 'something_else',
      approvalId: 'a',
      channel: 'C',
      ts: '1',
    });
    expect(parseSlackInteraction(form(other), FORM).kind).toBe('ignored');
    expect(
      parseSlackInteraction(
        form(denySubmissionPayload({ userId: 'U1', privateMetadata: '{}', callbackId: 'x' })),
        FORM,
      ).kind,
    ).toBe('ignored');
    expect(parseSlackInteraction(form({ type: 'shortcut' }), FORM).kind).toBe('ignored');
  });

  it.each([
    ['no payload field', 'foo=bar'],
    ['payload that is not JSON', 'payload=%7Bnope'],
    ['payload that is not an object', form([1, 2])],
    [
      'a click without a user',
      form({
        ...(blockActionPayload({
          userId: 'U1',
          actionId: 'approval_approve',
          approvalId: 'a',
          channel: 'C',
          ts: '1',
        }) as object),
        user: undefined,
      }),
    ],
  ])('refuses %s as a bad request', (_label, body) => {
    expect(() => parseSlackInteraction(body, FORM)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
