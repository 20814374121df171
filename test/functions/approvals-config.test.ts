import { describe, expect, it } from 'vitest';
import { SqsApprovalQueue } from '../../functions/adapters/sqs-approval-queue.ts';
import { approvalsRouteContext } from '../../functions/api/approvals-wiring.ts';
import { approvalsConfigFromEnv, notifierConfigFromEnv } from '../../shared/config.ts';

const ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf';

describe('approvalsConfigFromEnv', () => {
  it('defaults to no queue, no Slack, the reviewers group and the default channel', () => {
    expect(approvalsConfigFromEnv({})).toEqual({
      channel: 'pgwarden-approvals',
      reviewerGroups: ['reviewers'],
      reviewerGroupsMaxAgeSeconds: 300,
    });
  });

  it('reads the queue, Slack secrets (values or ARNs), channel, stand-in URL and reviewer groups', () => {
    expect(
      approvalsConfigFromEnv({
        PGWARDEN_APPROVALS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/approvals',
        SLACK_BOT_TOKEN_SECRET_ARN: ARN,
        SLACK_SIGNING_SECRET: 'shh',
        PGWARDEN_SLACK_CHANNEL: 'C0123',
        PGWARDEN_SLACK_API_URL: 'http://127.0.0.1:9999/api',
        PGWARDEN_REVIEWER_GROUPS: 'dba, sre',
        PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS: '900',
      }),
    ).toEqual({
      queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/approvals',
      slack: {
        botToken: { secretArn: ARN },
        signingSecret: { value: 'shh' },
        apiUrl: 'http://127.0.0.1:9999/api/',
      },
      channel: 'C0123',
      reviewerGroups: ['dba', 'sre'],
      reviewerGroupsMaxAgeSeconds: 900,
    });
  });

  it.each([
    [{ SLACK_BOT_TOKEN: 'xoxb-1' }, /go together/],
    [{ PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS: '5' }, /PGWARDEN_REVIEWER_GROUPS_MAX_AGE_SECONDS must be/],
    [{ SLACK_SIGNING_SECRET: 's' }, /go together/],
    [
      { SLACK_BOT_TOKEN: 'x', SLACK_BOT_TOKEN_SECRET_ARN: ARN, SLACK_SIGNING_SECRET: 's' },
      /only one of SLACK_BOT_TOKEN/,
    ],
    [{ SLACK_BOT_TOKEN_SECRET_ARN: 'not-an-arn', SLACK_SIGNING_SECRET: 's' }, /Secrets Manager/],
    [{ PGWARDEN_APPROVALS_QUEUE_URL: 'sqs://x' }, /QUEUE_URL/],
    [{ PGWARDEN_SLACK_API_URL: 'nope' }, /SLACK_API_URL/],
  ])('refuses %o', (env, message) => {
    expect(() => approvalsConfigFromEnv(env)).toThrow(message);
  });
});

describe('notifierConfigFromEnv', () => {
  it('needs the bot token and reads the tables and channel', () => {
    expect(notifierConfigFromEnv({ SLACK_BOT_TOKEN: 'xoxb-1', PGWARDEN_TABLE_PREFIX: 'prod-' })).toEqual({
      tablePrefix: 'prod-',
      botToken: { value: 'xoxb-1' },
      channel: 'pgwarden-approvals',
    });
    expect(() => notifierConfigFromEnv({})).toThrow(
      /SLACK_BOT_TOKEN or SLACK_BOT_TOKEN_SECRET_ARN is missing/,
    );
    expect(() =>
      notifierConfigFromEnv({ SLACK_BOT_TOKEN: 'x', PGWARDEN_DYNAMODB_ENDPOINT: 'ftp://x' }),
    ).toThrow(/DYNAMODB_ENDPOINT/);
  });
});

describe('approvalsRouteContext', () => {
  it('gives the API the queue and Slack from the configuration, and nothing when unset', async () => {
    expect(
      await approvalsRouteContext({ channel: 'c', reviewerGroups: ['r'], reviewerGroupsMaxAgeSeconds: 300 }),
    ).toEqual({});
    const context = await approvalsRouteContext({
      reviewerGroupsMaxAgeSeconds: 300,
      channel: 'c',
      reviewerGroups: ['r'],
      queueUrl: 'http://127.0.0.1:1/q',
      slack: { botToken: { value: 'xoxb-1' }, signingSecret: { value: 'shh' } },
    });
    expect(context.approvalsQueue).toBeInstanceOf(SqsApprovalQueue);
    expect(context.slack?.signingSecret).toBe('shh');
    expect(typeof context.slack?.api.postMessage).toBe('function');
  });
});
