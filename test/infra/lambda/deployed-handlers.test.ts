/**
 * The Lambda entry points exactly as the stack deploys them: the environment is taken from the
 * synthesized template (CloudFormation references replaced by local stand-ins that speak the real
 * APIs: dynalite for DynamoDB, fauxqs for SQS, a Secrets Manager stand-in holding the secrets the
 * *_SECRET_ARN variables name, a test OIDC issuer, the Slack Web API stand-in), then the handlers
 * are imported — their top-level configuration read runs then — and driven with real event shapes:
 * API Gateway HTTP API (payload 2.0) requests, and an SQS batch holding a failing record.
 *
 * Related: test/functions/notifier-sqs.test.ts drives the notifier with records received from SQS
 * (retries, DLQ-bound failures, Slack errors) configured by values; here the point is that the
 * deployed configuration (secret ARNs, table prefix, channel) is enough to run both functions.
 */
import { randomUUID } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { interceptLocalhostDns, startFauxqs } from 'fauxqs';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../../functions/adapters/dynamodb-approval-store.ts';
import { ensureAuditTables, tableNames } from '../../../functions/adapters/dynamodb-audit-store.ts';
import { ensurePolicyTable, policyTableName } from '../../../functions/adapters/dynamodb-policy-store.ts';
import { createApprovalsService } from '../../../functions/api/approvals-service.ts';
import { approvalRequest, RecordingAuditStore } from '../../fakes/approvals.ts';
import { decisionBody, openSessionBody } from '../../fakes/control-plane.ts';
import { type LocalDynamoDb, startDynamoDb } from '../../fakes/dynamodb.ts';
import { startTestIssuer, type TestIssuer } from '../../fakes/oidc-issuer.ts';
import { type FakeSlack, slackSignature, startFakeSlack } from '../../fakes/slack-api.ts';
import { removeOutdirs, synthesize } from '../synth.ts';
import { type SecretsManagerStandIn, startSecretsManager } from './secrets-manager-stand-in.ts';

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

const SECRET = (name: string) =>
  `arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgwarden/${name}-AbCdEf`;
const SERVICE_TOKEN = 'deployed-service-token-0123456789abcdef';
const SIGNING_SECRET = 'deployed-slack-signing-secret';

let functions: Record<'api' | 'notifier', Record<string, Json>>;
let secretRefs: Record<string, string>;
let idp: TestIssuer;
let db: LocalDynamoDb;
let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
let secrets: SecretsManagerStandIn;
let slack: FakeSlack;
let queueUrl: string;
let sqs: SQSClient;
let prefix: string;
type ApiHandler = (event: LambdaEvent) => Promise<{ statusCode: number; body: string }>;
let apiHandler: ApiHandler;
let restoreDns: () => void;

beforeAll(async () => {
  // The template only: bundling is skipped (the stack tests check the bundles).
  const { template } = synthesize({ context: { 'aws:cdk:bundling-stacks': [] } });
  const fn = (description: string) =>
    Object.values(
      template.findResources('AWS::Lambda::Function', { Properties: { Description: description } }),
    )[0]!['Properties']['Environment'].Variables;
  functions = {
    api: fn('pgwarden control-plane API (Hono)'),
    notifier: fn('pgwarden approvals notifier (SQS to Slack)'),
  };
  const secretIds = Object.entries(template.findResources('AWS::SecretsManager::Secret')).map(
    ([id, resource]) => [id, resource['Properties']['Description'] as string] as const,
  );
  const idOf = (text: string) => secretIds.find(([, description]) => description.includes(text))![0];
  secretRefs = {
    [idOf("control-plane API's own secret")]: SECRET('service-token'),
    [idOf('bot token')]: SECRET('slack-bot-token'),
    [idOf('signing secret')]: SECRET('slack-signing-secret'),
  };

  // Queue URLs name a virtual host (sqs.<region>.localhost) that the SDK sends to, as a real queue
  // URL names SQS: resolve *.localhost to the emulator (fauxqs's own helper; this worker only).
  restoreDns = interceptLocalhostDns();
  [idp, db, fauxqs] = await Promise.all([
    startTestIssuer(),
    startDynamoDb(),
    startFauxqs({ port: 0, logger: false }),
  ]);
  slack = await startFakeSlack();
  secrets = await startSecretsManager({
    [SECRET('service-token')]: SERVICE_TOKEN,
    [SECRET('slack-bot-token')]: slack.token,
    [SECRET('slack-signing-secret')]: SIGNING_SECRET,
  });
  sqs = new SQSClient({
    endpoint: `http://127.0.0.1:${fauxqs.port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'approvals' }))).QueueUrl!;
  prefix = functions.api['PGWARDEN_TABLE_PREFIX'];
  await Promise.all([
    ensureAuditTables(db.client, tableNames(prefix)),
    ensureApprovalTables(db.client, approvalTableNames(prefix)),
    ensurePolicyTable(db.client, policyTableName(prefix)),
  ]);
  vi.spyOn(console, 'log').mockImplementation(() => {});
}, 180_000);

afterAll(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  removeOutdirs();
  sqs?.destroy();
  restoreDns?.();
  await Promise.all([idp?.stop(), db?.stop(), fauxqs?.stop(), secrets?.stop(), slack?.stop()]);
});

/**
 * The deployed variables with each CloudFormation reference resolved to its local stand-in, plus
 * what only a test needs (endpoints, the issuer), set as Lambda would before the module loads.
 */
function stubDeployedEnv(variables: Record<string, Json>, testOnly: Record<string, string>): void {
  for (const [name, value] of Object.entries(variables)) {
    if (typeof value === 'string') {
      vi.stubEnv(name, value);
    } else if (value?.Ref !== undefined && secretRefs[value.Ref] !== undefined) {
      vi.stubEnv(name, secretRefs[value.Ref]);
    } else if (name === 'PGWARDEN_APPROVALS_QUEUE_URL') {
      vi.stubEnv(name, queueUrl);
    } else if (name === 'PGWARDEN_PROXY_ROLE_ARNS') {
      vi.stubEnv(name, PROXY_ROLE_ARN);
    } else {
      throw new Error(`the test cannot resolve ${name} = ${JSON.stringify(value)}`);
    }
  }
  for (const [name, value] of Object.entries({
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    PGWARDEN_DYNAMODB_ENDPOINT: db.endpoint,
    ...testOnly,
  })) {
    vi.stubEnv(name, value);
  }
}

/** An API Gateway HTTP API request as Lambda receives it (payload format 2.0). */
function httpApiEvent(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
  routeKey = `${method} ${path}`,
): LambdaEvent {
  // API Gateway's IAM authorizer ran on the proxy's routes: its verdict is the caller's ARN
  const proxyCall = headers === asProxy;
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'user-agent': 'test', ...headers },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9', userAgent: 'test' },
      requestId: randomUUID(),
      routeKey,
      ...(proxyCall && {
        authorizer: {
          iam: {
            accountId: '123456789012',
            userArn: `arn:aws:sts::123456789012:assumed-role/${PROXY_ROLE_NAME}/task-1`,
          },
        },
      }),
      stage: '$default',
      time: '25/Nov/2026:21:00:00 +0000',
      timeEpoch: Date.now(),
    },
    ...(body === undefined ? {} : { body }),
    isBase64Encoded: false,
  } as unknown as LambdaEvent;
}

const json = (value: unknown) => JSON.stringify(value);
/** A proxy call: signed with the task role, which API Gateway verified (see httpApiEvent). */
const asProxy = { 'content-type': 'application/json' };
const PROXY_ROLE_NAME = 'PgWarden-ProxyTaskRole-1A2B3C';
const PROXY_ROLE_ARN = `arn:aws:iam::123456789012:role/${PROXY_ROLE_NAME}`;

describe('the API function with its deployed environment', () => {
  const handler: ApiHandler = (event) => apiHandler(event);

  beforeAll(async () => {
    stubDeployedEnv(functions.api, {
      // The template's issuer is the example one from context; the test issuer signs the tokens.
      PGWARDEN_OIDC_ISSUER: idp.issuer,
      PGWARDEN_OIDC_AUDIENCE: idp.audience,
      PGWARDEN_SLACK_API_URL: slack.apiUrl,
    });
    ({ handler: apiHandler } = (await import('../../../functions/api/handler.ts')) as unknown as {
      handler: ApiHandler;
    });
  }, 60_000);

  it('reads the service token from the secret the stack names, at cold start', () => {
    expect(secrets.reads).toContain(SECRET('service-token'));
  });

  it('answers GET /healthz', async () => {
    const response = await handler(httpApiEvent('GET', '/healthz', undefined, {}, 'GET /healthz'));
    expect(response.statusCode).toBe(200);
  });

  it('opens a session for a signed-in person and decides a statement for the proxy', async () => {
    const token = await idp.sign({ email: 'ada@example.com', groups: ['engineering'] });
    const opened = await handler(
      httpApiEvent('POST', '/v1/sessions', json({ ...openSessionBody, token }), asProxy, 'ANY /v1/{proxy+}'),
    );
    expect(opened.statusCode, opened.body).toBe(200);
    const session = JSON.parse(opened.body) as { sessionId: string; role: string };
    expect(session.role).toBe('developer');

    const decided = await handler(
      httpApiEvent(
        'POST',
        '/v1/decisions',
        json({ ...decisionBody, session: { ...decisionBody.session, sessionId: session.sessionId } }),
        asProxy,
        'ANY /v1/{proxy+}',
      ),
    );
    expect(decided.statusCode, decided.body).toBe(200);
    expect(JSON.parse(decided.body)).toMatchObject({ action: 'allow', ruleId: expect.any(String) });
  });

  it("refuses the proxy routes without the IAM authorizer's proxy role, the service token included", async () => {
    for (const authorization of [
      undefined,
      'Bearer not-the-deployed-service-token',
      `Bearer ${SERVICE_TOKEN}`,
    ]) {
      const response = await handler(
        httpApiEvent(
          'POST',
          '/v1/decisions',
          json(decisionBody),
          { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
          'ANY /v1/{proxy+}',
        ),
      );
      expect(response.statusCode).toBe(401);
    }
  });

  it("serves POST /slack/events (the public route) and rejects a request not signed with Slack's secret", async () => {
    const body = `payload=${encodeURIComponent(json({ type: 'block_actions', actions: [] }))}`;
    const timestamp = Math.floor(Date.now() / 1000);
    const forged = await handler(
      httpApiEvent(
        'POST',
        '/slack/events',
        body,
        {
          'content-type': 'application/x-www-form-urlencoded',
          'x-slack-request-timestamp': String(timestamp),
          'x-slack-signature': slackSignature('not-the-signing-secret', timestamp, body),
        },
        'POST /slack/events',
      ),
    );
    expect(forged.statusCode).toBe(401);
    expect(secrets.reads).toEqual(
      expect.arrayContaining([SECRET('slack-signing-secret'), SECRET('slack-bot-token')]),
    );
  });
});

describe('the notifier function with its deployed environment', () => {
  let handler: (event: unknown) => Promise<{ batchItemFailures: Array<{ itemIdentifier: string }> }>;

  beforeAll(async () => {
    vi.unstubAllEnvs();
    stubDeployedEnv(functions.notifier, { PGWARDEN_SLACK_API_URL: slack.apiUrl });
    ({ handler } = (await import('../../../functions/notifier/handler.ts')) as unknown as {
      handler: typeof handler;
    });
  }, 60_000);

  /** One record as Lambda's SQS event source mapping delivers it. */
  function sqsRecord(body: string, messageId: string = randomUUID()) {
    const now = String(Date.now());
    return {
      messageId,
      receiptHandle: `AQEB${randomUUID()}`,
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: now,
        SenderId: 'AROAEXAMPLE:pgwarden-api',
        ApproximateFirstReceiveTimestamp: now,
      },
      messageAttributes: {},
      md5OfBody: 'ignored',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:PgWarden-ApprovalsQueue',
      awsRegion: 'eu-west-1',
    };
  }

  it('gets what the API function queued (deployed queue URL) and posts it to Slack', async () => {
    const asked = await apiHandler(
      httpApiEvent(
        'POST',
        '/v1/approvals',
        json({
          session: decisionBody.session,
          statement: { text: 'delete from invoices where id = 7', protocol: 'simple' },
          decision: {
            action: 'require_approval',
            ruleId: 'writes-need-approval',
            reason: 'writes to production need a second pair of eyes',
            policyVersion: 'v1',
            approval: { approvers: 'reviewers', timeoutSeconds: 60 },
          },
        }),
        asProxy,
        'ANY /v1/{proxy+}',
      ),
    );
    expect(asked.statusCode, asked.body).toBe(200);
    const { approval } = JSON.parse(asked.body) as { approval: { id: string; status: string } };
    expect(approval.status).toBe('pending');

    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }),
    );
    expect(Messages.map((message) => JSON.parse(message.Body!))).toEqual([{ approvalId: approval.id }]);
    const response = await handler({
      Records: Messages.map((message) => sqsRecord(message.Body!, message.MessageId!)),
    });
    expect(response).toEqual({ batchItemFailures: [] });
    const post = slack
      .callsTo('chat.postMessage')
      .find((call) => JSON.stringify(call.args).includes('invoices'));
    expect(post?.args['channel']).toBe(functions.notifier['PGWARDEN_SLACK_CHANNEL']);
  });

  it('marks an approval nobody decided expired at its deadline, with the audit step, without waiting for the API', async () => {
    const store = new DynamoDbApprovalStore(db.client, approvalTableNames(prefix).approvals);
    // requested two hours ago with the default windows: lapsed by now, still 'pending' in the table
    const past = createApprovalsService({
      store,
      audit: new RecordingAuditStore(),
      defaultApprovers: ['reviewers'],
      now: () => new Date(Date.now() - 2 * 3600_000),
      newId: randomUUID,
    });
    const lapsed = await past.request(approvalRequest({ text: 'drop table staging_orders' }));
    expect((await store.get(lapsed.id))?.status).toBe('pending');

    const response = await handler({ Records: [sqsRecord(json({ approvalId: lapsed.id }))] });

    expect(response).toEqual({ batchItemFailures: [] });
    expect((await store.get(lapsed.id))?.status).toBe('expired');
    const { Items = [] } = await db.client.send(new ScanCommand({ TableName: tableNames(prefix).events }));
    // raw attribute maps: the strings are in there as they are
    const steps = Items.filter((item) => JSON.stringify(item).includes(lapsed.id));
    const expired = steps.filter((item) => JSON.stringify(item).includes('"expired"'));
    expect(expired, JSON.stringify(steps)).toHaveLength(1);
    expect(JSON.stringify(expired[0])).toContain('"notifier"');
    const shown = slack
      .callsTo('chat.postMessage')
      .find((call) => JSON.stringify(call.args).includes('staging_orders'));
    expect(JSON.stringify(shown?.args['blocks']).toLowerCase()).toContain('expired');
  });

  it('posts to the deployed channel and reports exactly the failing records of a batch', async () => {
    const service = createApprovalsService({
      store: new DynamoDbApprovalStore(db.client, approvalTableNames(prefix).approvals),
      audit: new RecordingAuditStore(),
      defaultApprovers: ['reviewers'],
      now: () => new Date(),
      newId: randomUUID,
    });
    const first = await service.request(approvalRequest({ text: 'delete from orders where id = 1' }));
    const second = await service.request(approvalRequest({ text: 'delete from orders where id = 2' }));
    const good = sqsRecord(json({ approvalId: first.id }));
    const unreadable = sqsRecord('not json');
    const slackRefuses = sqsRecord(json({ approvalId: second.id }));
    slack.failWhen(
      'chat.postMessage',
      (args) => JSON.stringify(args).includes('id = 2'),
      'channel_not_found',
    );

    const response = await handler({ Records: [good, unreadable, slackRefuses] });

    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual(
      [unreadable.messageId, slackRefuses.messageId].sort(),
    );
    const posted = slack.callsTo('chat.postMessage').map((call) => call.args['channel']);
    expect(posted).toContain(functions.notifier['PGWARDEN_SLACK_CHANNEL']);
    expect(secrets.reads).toContain(SECRET('slack-bot-token'));
  });
});
