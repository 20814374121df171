/**
 * Masking end to end: the product as a user runs it (dev issuer, API with the default policy pack,
 * proxy, real PostgreSQL with the demo data) and the adversarial corpus (masking-corpus.ts) through
 * psql, node-postgres in text mode (simple and extended protocol) and in binary mode, raw portals
 * and cursors, and the MCP postgres server Cursor users run. Every query either comes back with
 * no clear ssn or card number in any byte the client received, or is refused with 42501 naming
 * the column.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableNames } from '../../functions/adapters/dynamodb-audit-store.ts';
import { startTestStack, type TestStack } from '../fixtures/local-stack.ts';
import { RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { runCommand } from '../fixtures/run-command.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { type CorpusQuery, corpusViewsSql, MASKING_CORPUS } from './masking-corpus.ts';

let stack: TestStack;
let token: string;
const USER = 'alice@example.com';
const clearSsns = new Set<string>();
const clearCards = new Set<string>();

beforeAll(async () => {
  stack = await startTestStack();
  token = await stack.issuer.issueToken({ email: USER, groups: ['engineering'] });
  const admin = new pg.Client({
    host: stack.postgres.host,
    port: stack.postgres.port,
    database: 'app',
    ...stack.postgres.superuser,
  });
  await admin.connect();
  try {
    for (const row of (await admin.query('select ssn, credit_card from customers')).rows) {
      clearSsns.add(row.ssn);
      clearCards.add(row.credit_card);
    }
    await admin.query(corpusViewsSql(stack.postgres.roles.app_rw.user));
  } finally {
    await admin.end();
  }
}, 120_000);
afterAll(async () => {
  await stack?.stop();
});

/** Clear values found in `text` (any ssn or card number of the table, in full). */
function leaks(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\d{3}-\d{2}-\d{4}/g)) if (clearSsns.has(m[0])) found.push(m[0]);
  for (const m of text.matchAll(/\d{13,19}/g)) if (clearCards.has(m[0])) found.push(m[0]);
  return found;
}

interface Outcome {
  ok: boolean;
  code?: string;
  message?: string;
  /** everything the client received or printed */
  seen: string;
}

function judge(q: CorpusQuery, outcome: Outcome, via: string) {
  const label = `${via}: ${q.sql}`;
  expect(leaks(outcome.seen), `${label} leaked`).toEqual([]);
  if (outcome.ok) {
    expect(q.expect, `${label} was not refused`).not.toBe('refused');
  } else {
    expect(q.expect, `${label} was refused: ${outcome.message}`).not.toBe('masked');
    if (outcome.code !== undefined) expect(outcome.code, label).toBe('42501');
    expect(outcome.message, label).toMatch(/pgwarden/);
    expect(outcome.message, label).toMatch(/ssn|credit_card|card|customers|\bc\b/);
  }
}

async function psql(sql: string): Promise<Outcome> {
  const out = await runCommand(
    'psql',
    [
      '-X',
      '-q',
      '-A',
      '-v',
      'VERBOSITY=verbose',
      `host=127.0.0.1 port=${stack.proxy.port} dbname=app user=${USER} sslmode=require`,
      '-c',
      sql,
    ],
    { env: { PGPASSWORD: token, PGCONNECT_TIMEOUT: '10' } },
  );
  const error = /ERROR:\s+([0-9A-Z]{5}): (.*)/.exec(out.stderr);
  return {
    ok: out.code === 0 && !error,
    code: error?.[1],
    message: error?.[2] ?? out.stderr,
    seen: out.stdout + out.stderr,
  };
}

async function tapped(config: Partial<pg.ClientConfig> = {}) {
  const received: Buffer[] = [];
  const client = new pg.Client({
    host: '127.0.0.1',
    port: stack.proxy.port,
    database: 'app',
    user: USER,
    password: token,
    ssl: { rejectUnauthorized: false },
    ...config,
  });
  await client.connect();
  (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream.on(
    'data',
    (chunk: Buffer) => received.push(Buffer.from(chunk)),
  );
  return {
    client,
    take(): string {
      const text = Buffer.concat(received).toString('latin1');
      received.length = 0;
      return text;
    },
  };
}

async function viaPg(
  c: Awaited<ReturnType<typeof tapped>>,
  query: pg.QueryConfig | string,
): Promise<Outcome> {
  try {
    const result = await c.client.query(query);
    return { ok: true, seen: c.take() + JSON.stringify(result.rows) };
  } catch (error) {
    const e = error as { code?: string; message: string };
    return { ok: false, code: e.code, message: e.message, seen: c.take() + e.message };
  }
}

describe('the adversarial corpus', () => {
  it(`has at least 40 queries (${MASKING_CORPUS.length})`, () => {
    expect(MASKING_CORPUS.length).toBeGreaterThanOrEqual(40);
  });

  it('through psql', async () => {
    for (const q of MASKING_CORPUS) judge(q, await psql(q.sql), 'psql');
  }, 120_000);

  it('through node-postgres, text format, simple protocol', async () => {
    const c = await tapped();
    try {
      for (const q of MASKING_CORPUS) if (!q.simpleOnly) judge(q, await viaPg(c, q.sql), 'pg simple');
    } finally {
      await c.client.end();
    }
  }, 120_000);

  it('through node-postgres, text format, extended protocol', async () => {
    const c = await tapped();
    try {
      for (const q of MASKING_CORPUS) {
        if (q.simpleOnly) continue;
        judge(q, await viaPg(c, { text: q.sql, queryMode: 'extended' } as pg.QueryConfig), 'pg extended');
      }
    } finally {
      await c.client.end();
    }
  }, 120_000);

  it('through node-postgres, binary format', async () => {
    const c = await tapped({ binary: true } as Partial<pg.ClientConfig>);
    try {
      for (const q of MASKING_CORPUS) {
        if (q.simpleOnly) continue;
        judge(q, await viaPg(c, { text: q.sql, queryMode: 'extended' } as pg.QueryConfig), 'pg binary');
      }
    } finally {
      await c.client.end();
    }
  }, 120_000);
});

describe('cursors and portals', () => {
  async function raw() {
    const { client } = await RawClient.connect({
      host: '127.0.0.1',
      port: stack.proxy.port,
      user: USER,
      database: 'app',
      password: token,
    });
    return client;
  }
  const text = (messages: RawMessage[]) => Buffer.concat(messages.map((m) => m.body)).toString('latin1');

  it('masks rows fetched from text and binary cursors', async () => {
    const c = await tapped();
    try {
      const steps = [
        'begin',
        'declare a cursor for select id, ssn from customers order by id',
        'fetch 10 from a',
        'fetch backward 3 from a',
        'declare b binary cursor for select credit_card, ssn from customers order by id',
        'fetch 5 from b',
        'move 100 in b',
        'fetch next from b',
        'commit',
      ];
      for (const sql of steps) {
        const outcome = await viaPg(c, sql);
        expect(outcome.ok, `${sql}: ${outcome.message}`).toBe(true);
        expect(leaks(outcome.seen), sql).toEqual([]);
      }
    } finally {
      await c.client.end();
    }
  });

  it('masks a portal read with row limits, in a pipeline with other statements', async () => {
    const c = await raw();
    try {
      c.send(
        serialize.parse({ name: 'all', text: 'select id, ssn, credit_card from customers order by id' }),
        serialize.bind({ portal: 'p', statement: 'all' }),
        serialize.execute({ portal: 'p', rows: 4 }),
        serialize.parse({ text: 'select credit_card from customers where id = 9' }),
        serialize.bind({ binary: true }),
        serialize.execute({}),
        serialize.execute({ portal: 'p', rows: 2 }),
        serialize.sync(),
      );
      const replies = await c.untilReady();
      expect(summarize(replies)).toEqual([
        '1',
        '2',
        'D',
        'D',
        'D',
        'D',
        's',
        '1',
        '2',
        'D',
        'C:SELECT 1',
        'D',
        'D',
        's',
        'Z:I',
      ]);
      expect(leaks(text(replies))).toEqual([]);
      for (const row of replies.filter((m) => m.type === 'D'))
        expect(row.body.toString('latin1')).toMatch(/\*{4}/);
    } finally {
      c.close();
    }
  });

  it('masks EXECUTE of a prepared statement and a SQL-level cursor over a view', async () => {
    const c = await tapped();
    try {
      for (const sql of [
        'prepare p1 as select ssn, credit_card from customers where id = $1',
        'execute p1(7)',
        'begin',
        'declare v cursor for select * from corpus_ids',
        'fetch 3 from v',
        'commit',
      ]) {
        const outcome = await viaPg(c, sql);
        expect(outcome.ok, `${sql}: ${outcome.message}`).toBe(true);
        expect(leaks(outcome.seen), sql).toEqual([]);
      }
    } finally {
      await c.client.end();
    }
  });
});

describe('the audit record', () => {
  it('says which columns were masked and how many values, never the values', async () => {
    const c = await tapped();
    try {
      await c.client.query('select id, ssn, credit_card from customers where id <= 25 /* audit-mask */');
    } finally {
      await c.client.end();
    }
    await waitFor(() => stack.proxy.running.pendingAuditEvents === 0, 60_000);
    const dynamo = new DynamoDBClient({
      endpoint: stack.dynamo.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const found = await dynamo.send(
        new QueryCommand({
          TableName: tableNames(stack.dynamo.tablePrefix).events,
          IndexName: 'by_principal',
          KeyConditionExpression: 'principal = :p',
          ExpressionAttributeValues: { ':p': { S: USER } },
        }),
      );
      const item = (found.Items ?? []).find(
        (i) => i.text?.S?.includes('audit-mask') && i.outcome?.S !== 'pending',
      );
      expect(item, 'the statement record').toBeDefined();
      const masked = item!.masked?.L?.map((v) => ({
        column: v.M?.column?.S,
        ruleId: v.M?.ruleId?.S,
        method: v.M?.method?.S,
        values: Number(v.M?.values?.N),
      }));
      expect(masked).toEqual([
        { column: 'public.customers.ssn', ruleId: 'mask-ssn', method: 'partial', values: 25 },
        {
          column: 'public.customers.credit_card',
          ruleId: 'mask-card-numbers',
          method: 'partial',
          values: 25,
        },
      ]);
      expect(leaks(JSON.stringify(item))).toEqual([]);
    } finally {
      dynamo.destroy();
    }
  });
});

describe('the MCP postgres server (as Cursor runs it)', () => {
  const require = createRequire(import.meta.url);
  let server: ChildProcessWithoutNullStreams;
  let stdout = '';
  let nextId = 1;
  const pending = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();

  beforeAll(async () => {
    const entry = require.resolve('@modelcontextprotocol/server-postgres/dist/index.js');
    const url = `postgresql://${encodeURIComponent(USER)}:${token}@127.0.0.1:${stack.proxy.port}/app?sslmode=no-verify`;
    server = spawn(process.execPath, [entry, url], { stdio: 'pipe' });
    let buffer = '';
    server.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      buffer += chunk.toString('utf8');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const message = JSON.parse(line);
        pending.get(message.id)?.(message);
        pending.delete(message.id);
      }
    });
    await rpc('initialize', {
      protocolVersion: '2024-11-05',
      capabilities: {},
      clientInfo: { name: 'pgwarden-test', version: '1' },
    });
    server.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  });
  afterAll(() => {
    server?.kill();
  });

  function rpc(method: string, params: unknown): Promise<{ result?: unknown; error?: { message: string } }> {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MCP ${method} timed out`)), 20_000);
      pending.set(id, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
      server.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  it('answers the corpus masked or refused over tools/call "query"', async () => {
    const sample = MASKING_CORPUS.filter((q) => !q.simpleOnly).filter((_, i) => i % 3 === 0);
    expect(sample.length).toBeGreaterThanOrEqual(15);
    for (const q of sample) {
      const before = stdout.length;
      const answer = await rpc('tools/call', { name: 'query', arguments: { sql: q.sql } });
      const seen = stdout.slice(before);
      const outcome: Outcome = answer.error
        ? { ok: false, message: answer.error.message, seen }
        : { ok: true, seen };
      judge(q, outcome, 'mcp');
    }
    // and a plain masked read comes back with the masked shape
    const answer = (await rpc('tools/call', {
      name: 'query',
      arguments: { sql: 'select ssn, credit_card from customers where id = 1' },
    })) as { result: { content: Array<{ text: string }> } };
    const rows = JSON.parse(answer.result.content[0]!.text);
    expect(rows[0].ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
    expect(rows[0].credit_card).toMatch(/^\*{12}\d{4}$/);
  }, 120_000);
});
