import { describe, expect, it } from 'vitest';
import { verifySlackSignature } from '../../functions/adapters/slack-signature.ts';
import { slackSignature } from '../fakes/slack-api.ts';

const secret = 'signing-secret';
const nowMs = 1_800_000_000_000;
const ts = nowMs / 1000;
const body = 'payload=%7B%7D';

const request = (
  overrides: Partial<{ signature: string | undefined; timestamp: string | undefined; body: string }> = {},
) => ({
  signature: slackSignature(secret, ts, body),
  timestamp: String(ts),
  body,
  ...overrides,
});

describe('verifySlackSignature', () => {
  it('accepts Slack v0 signatures within 5 minutes either way', () => {
    expect(() => verifySlackSignature(request(), secret, nowMs)).not.toThrow();
    const early = ts - 299;
    expect(() =>
      verifySlackSignature(
        request({ timestamp: String(early), signature: slackSignature(secret, early, body) }),
        secret,
        nowMs,
      ),
    ).not.toThrow();
    const skewed = ts + 299;
    expect(() =>
      verifySlackSignature(
        request({ timestamp: String(skewed), signature: slackSignature(secret, skewed, body) }),
        secret,
        nowMs,
      ),
    ).not.toThrow();
  });

  it.each([
    ['no signature', { signature: undefined }, /required/],
    ['no timestamp', { timestamp: undefined }, /required/],
    ['a timestamp that is not a number', { timestamp: '17e8' }, /not a number/],
    [
      'a replay older than 5 minutes',
      { timestamp: String(ts - 301), signature: slackSignature(secret, ts - 301, body) },
      /older than 5 minutes/,
    ],
    [
      'a post-dated request',
      { timestamp: String(ts + 301), signature: slackSignature(secret, ts + 301, body) },
      /future/,
    ],
    ['a changed body', { body: 'payload=%7B%22a%22%7D' }, /does not match/],
    ['another secret', { signature: slackSignature('other', ts, body) }, /does not match/],
    [
      'a signature for another timestamp',
      { signature: slackSignature(secret, ts - 1, body) },
      /does not match/,
    ],
  ])('refuses %s', (_label, overrides, message) => {
    expect(() => verifySlackSignature(request(overrides), secret, nowMs)).toThrow(message);
    try {
      verifySlackSignature(request(overrides), secret, nowMs);
    } catch (error) {
      expect(error).toMatchObject({ code: 'AUTH_TOKEN_INVALID' });
    }
  });

  it('refuses to run without a signing secret', () => {
    expect(() => verifySlackSignature(request(), '', nowMs)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });
});
