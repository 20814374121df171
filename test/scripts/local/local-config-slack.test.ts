/** Local mode's Slack settings: both credentials or neither, a channel, an optional API stand-in. */
import { describe, expect, it } from 'vitest';
import { loadLocalConfig } from '../../../scripts/local/local-config.ts';

describe('local Slack configuration', () => {
  it('is off without credentials: approvals are printed to the console', () => {
    expect(loadLocalConfig({}, '/repo').slack).toBeUndefined();
  });

  it('posts to the default channel, or the one named, with both credentials', () => {
    const env = { SLACK_BOT_TOKEN: ' xoxb-1 ', SLACK_SIGNING_SECRET: 'secret' };
    expect(loadLocalConfig(env, '/repo').slack).toEqual({
      botToken: 'xoxb-1',
      signingSecret: 'secret',
      channel: 'pgwarden-approvals',
    });
    expect(
      loadLocalConfig(
        { ...env, PGWARDEN_SLACK_CHANNEL: 'C0123', PGWARDEN_SLACK_API_URL: 'http://127.0.0.1:9/api/' },
        '/repo',
      ).slack,
    ).toMatchObject({ channel: 'C0123', apiUrl: 'http://127.0.0.1:9/api/' });
  });

  it('refuses one credential without the other, and a stand-in URL that is not http(s)', () => {
    expect(() => loadLocalConfig({ SLACK_BOT_TOKEN: 'xoxb-1' }, '/repo')).toThrow(
      /SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET go together/,
    );
    expect(() => loadLocalConfig({ SLACK_SIGNING_SECRET: 's' }, '/repo')).toThrow(/go together/);
    expect(() =>
      loadLocalConfig(
        { SLACK_BOT_TOKEN: 'x', SLACK_SIGNING_SECRET: 's', PGWARDEN_SLACK_API_URL: 'slack.local' },
        '/repo',
      ),
    ).toThrow(/PGWARDEN_SLACK_API_URL must be an http\(s\) URL/);
  });
});
