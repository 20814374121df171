import { readFileSync } from 'node:fs';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localSigningFetch } from '../../../proxy/aws-sigv4.ts';
import {
  startTestPostgres,
  startTestStack,
  type TestPostgres,
  type TestStack,
} from '../../fixtures/local-stack.ts';

let postgres: TestPostgres;
let stack: TestStack;

beforeAll(async () => {
  postgres = await startTestPostgres();
  stack = await startTestStack({ postgres });
});

afterAll(async () => {
  await stack?.stop();
  await postgres?.stop();
});

async function viaProxy(s: TestStack, email: string, token: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: 'localhost',
    port: s.proxy.port,
    database: 'app',
    user: email,
    password: token,
    ssl: { ca: readFileSync(s.caCertPath, 'utf8'), servername: 'localhost' },
  });
  await client.connect();
  return client;
}

describe('the local stack', () => {
  it('lets a developer in through a verified TLS connection, as app_rw', async () => {
    const token = await stack.issuer.issueToken({ email: 'alice@example.com' });
    const client = await viaProxy(stack, 'alice@example.com', token);
    try {
      const r = await client.query('SELECT current_user AS who, count(*)::int AS n FROM customers');
      expect(r.rows[0]).toEqual({ who: 'app_rw', n: 5000 });
    } finally {
      await client.end();
    }
  });

  it('maps auditors to the read-only login', async () => {
    const token = await stack.issuer.issueToken({ email: 'bob@example.com', groups: ['auditors'] });
    const client = await viaProxy(stack, 'bob@example.com', token);
    try {
      expect((await client.query('SELECT current_user AS who')).rows[0].who).toBe('app_ro');
      await expect(client.query('DELETE FROM orders WHERE id = 1')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await client.end();
    }
  });

  it('refuses a token of another issuer and a principal without a role', async () => {
    const other = await startTestStack({ postgres });
    try {
      const foreign = await other.issuer.issueToken({ email: 'alice@example.com' });
      await expect(viaProxy(stack, 'alice@example.com', foreign)).rejects.toMatchObject({ code: '28P01' });
      const noRole = await stack.issuer.issueToken({ email: 'carol@example.com', groups: ['marketing'] });
      await expect(viaProxy(stack, 'carol@example.com', noRole)).rejects.toThrow(/none of your groups/);
    } finally {
      await other.stop();
    }
  });

  it('records sessions and statements in DynamoDB', async () => {
    const token = await stack.issuer.issueToken({ email: 'dave@example.com', groups: ['admins'] });
    const client = await viaProxy(stack, 'dave@example.com', token);
    await client.query('SELECT 42 AS answer');
    await client.end();
    const dynamo = new DynamoDBClient({
      endpoint: stack.dynamo.endpoint,
      region: 'local',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const deadline = Date.now() + 10_000;
      let texts: string[] = [];
      while (Date.now() < deadline) {
        const events = await dynamo.send(new ScanCommand({ TableName: `${stack.dynamo.tablePrefix}events` }));
        texts = (events.Items ?? [])
          .filter((i) => i['principal']?.S === 'dave@example.com')
          .map((i) => i['text']?.S ?? '');
        if (texts.includes('SELECT 42 AS answer')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(texts).toContain('SELECT 42 AS answer');
      const sessions = await dynamo.send(
        new ScanCommand({ TableName: `${stack.dynamo.tablePrefix}sessions` }),
      );
      const dave = (sessions.Items ?? []).find((i) => i['principal']?.S === 'dave@example.com');
      expect(dave?.['role']?.S).toBe('admin');
    } finally {
      dynamo.destroy();
    }
  });

  it('serves the issuer and the API on one server', async () => {
    const discovery = await fetch(`${stack.issuer.url}/.well-known/openid-configuration`);
    expect(((await discovery.json()) as { issuer: string }).issuer).toBe(stack.issuer.url);
    expect((await fetch(`${stack.api.url}/healthz`)).status).toBe(200);
    const unauthorised = await fetch(`${stack.api.url}/v1/events`, { method: 'POST', body: '{}' });
    expect(unauthorised.status).toBe(401);
    // locally the proxy's routes check a SigV4 signature (the local key pair), as API Gateway does deployed
    const bearer = await fetch(`${stack.api.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.api.serviceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events: [] }),
    });
    expect(bearer.status).toBe(401);
    const signed = await localSigningFetch(stack.api.serviceToken)(`${stack.api.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: [] }),
    });
    expect(signed.status).toBe(200);
  });
});
