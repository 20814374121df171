/**
 * `pgwarden audit ...` against the real API on a real HTTP server (dev issuer tokens, the DynamoDB
 * store on dynalite): what an auditor sees, the export in both formats, and the messages for what
 * is missing or refused. One test runs the CLI as a user does, through scripts/pgwarden.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand, CSV_COLUMNS, csvCell } from '../../scripts/cli/audit.ts';
import type { DevIssuer } from '../../scripts/local/oidc-issuer.ts';
import type { StatementEvent } from '../../shared/events.ts';
import { sessionClosed, sessionOpened, statement } from '../fakes/events.ts';
import { type ApiStack, startApiStack } from '../fixtures/api-stack.ts';
import { runCommand } from '../fixtures/run-command.ts';

const audience = 'pgwarden-cli-test';
const serviceToken = 'audit-cli-service-token-0123456789';
const prefix = 'cli-';
let stack: ApiStack;
let issuer: DevIssuer;
let apiUrl = '';
let auditorToken = '';
const statements: StatementEvent[] = [];
const base = Date.now() - 30 * 60_000; // half an hour ago

beforeAll(async () => {
  stack = await startApiStack({ prefix, audience, serviceToken });
  ({ issuer, apiUrl } = stack);
  const store = stack.store;

  // 1,203 statements in one agent session (more than one export page), texts that need CSV quoting
  const at = (ms: number) => new Date(base + ms).toISOString();
  for (let seq = 1; seq <= 1200; seq += 1) {
    statements.push(
      statement(seq, {
        eventId: `agent-${seq}`,
        sessionId: 'sess-agent',
        principal: 'agent@example.com',
        applicationName: 'cursor',
        startedAt: at(seq * 10),
        text: `select ${seq}`,
      }),
    );
  }
  statements.push(
    statement(1201, {
      eventId: 'agent-1201',
      sessionId: 'sess-agent',
      principal: 'agent@example.com',
      applicationName: 'cursor',
      startedAt: at(20_000),
      text: `select 'a, "quoted"\nvalue' as x, 2`,
      kinds: ['select'],
    }),
    statement(1202, {
      eventId: 'agent-1202',
      sessionId: 'sess-agent',
      principal: 'agent@example.com',
      applicationName: 'cursor',
      startedAt: at(20_010),
      text: 'DROP TABLE orders',
      decision: 'require_approval',
      ruleId: 'hold-ddl',
      outcome: 'refused',
      sqlstate: '42501',
    }),
    statement(1, {
      eventId: 'human-1',
      sessionId: 'sess-human',
      principal: 'ada@example.com',
      applicationName: 'psql',
      startedAt: at(30_000),
      text: 'select count(*) from customers',
    }),
  );
  await store.put([
    ...statements,
    sessionOpened({
      sessionId: 'sess-agent',
      at: at(0),
      principal: 'agent@example.com',
      actor: 'agent',
      applicationName: 'cursor',
    }),
    sessionClosed({
      sessionId: 'sess-agent',
      principal: 'agent@example.com',
      at: at(25_000),
      statements: 1202,
      durationMs: 25_000,
      reason: 'network_loss',
    }),
  ]);
  auditorToken = await issuer.issueToken({
    email: 'audrey@example.com',
    groups: ['auditors'],
    ttlSeconds: 600,
    audience,
  });
}, 60_000);

afterAll(() => stack?.stop());

async function audit(args: string[], env: Record<string, string | undefined> = {}) {
  let out = '';
  let err = '';
  const code = await auditCommand(args, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    env: { PGWARDEN_API_URL: apiUrl, PGWARDEN_TOKEN: auditorToken, ...env },
  });
  return { code, out, err };
}

/** RFC 4180, enough to read the export back. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i += 1;
    } else cell += ch;
  }
  if (cell !== '' || row.length > 0) rows.push([...row, cell]);
  return rows;
}

describe('audit list', () => {
  it('prints a readable table with who, through what, and what happened', async () => {
    const { code, out, err } = await audit(['list', '--decision', 'require_approval', '--since', '2h']);
    expect(code, err).toBe(0);
    const [header, row, ...rest] = out.trim().split('\n');
    expect(header).toMatch(
      /^TIME\s+PRINCIPAL\s+APPLICATION\s+SESSION\s+SEQ\s+DECISION\s+RULE\s+OUTCOME\s+ROWS\s+MS\s+STATEMENT$/,
    );
    expect(row).toMatch(
      /agent@example\.com\s+cursor\s+sess-age\s+1202\s+require_approval\s+hold-ddl\s+refused 42501 .*DROP TABLE orders$/,
    );
    expect(rest).toEqual([]);
  });

  it('gives machines JSON, and says how to continue when more match', async () => {
    const { code, out, err } = await audit([
      'list',
      '--principal',
      'agent@example.com',
      '--limit',
      '3',
      '--json',
    ]);
    expect(code).toBe(0);
    const page = JSON.parse(out);
    expect(page.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3]);
    expect(typeof page.nextCursor).toBe('string');
    expect(err).toBe('');
    const next = await audit([
      'list',
      '--principal',
      'agent@example.com',
      '--limit',
      '3',
      '--cursor',
      page.nextCursor,
      '--json',
    ]);
    expect(JSON.parse(next.out).events.map((e: { seq: number }) => e.seq)).toEqual([4, 5, 6]);
    const human = await audit(['list', '--principal', 'agent@example.com', '--limit', '3']);
    expect(human.err).toMatch(/more statements match: add --cursor \S+/);
  });

  it('finds text case-insensitively', async () => {
    const { out } = await audit(['list', '--text', 'FROM CUSTOMERS', '--since', '1h', '--json']);
    expect(JSON.parse(out).events.map((e: { eventId: string }) => e.eventId)).toEqual(['human-1']);
  });

  it('explains a bad time (exit 2), a missing token, a refusal and an unreachable API (exit 1)', async () => {
    const badTime = await audit(['list', '--since', 'last tuesday']);
    expect(badTime.code).toBe(2);
    expect(badTime.err).toMatch(/--since must be an ISO-8601 time .* or a duration back/);
    const noToken = await audit(['list'], { PGWARDEN_TOKEN: undefined });
    expect(noToken.code).toBe(1);
    expect(noToken.err).toMatch(/set PGWARDEN_TOKEN .*--groups auditors/);
    const engineer = await issuer.issueToken({
      email: 'dev@example.com',
      groups: ['engineering'],
      ttlSeconds: 600,
      audience,
    });
    const refused = await audit(['list'], { PGWARDEN_TOKEN: engineer });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/refused: dev@example\.com may not read the audit trail/);
    const badToken = await audit(['list'], { PGWARDEN_TOKEN: 'not-a-jwt' });
    expect(badToken.err).toMatch(/your token was not accepted/);
    const down = await audit(['list'], { PGWARDEN_API_URL: 'http://127.0.0.1:1' });
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/cannot reach the pgwarden API at http:\/\/127\.0\.0\.1:1/);
    const unknownOption = await audit(['list', '--principle', 'x']);
    expect(unknownOption.code).toBe(2);
  });
});

describe('audit session', () => {
  it('prints the session record and every statement, across pages, in order', async () => {
    const { code, out } = await audit(['session', 'sess-agent']);
    expect(code).toBe(0);
    expect(out).toMatch(
      /^session {3}sess-agent \(closed\)\nwho {7}agent@example\.com \(agent\), role developer/,
    );
    expect(out).toMatch(/closed {4}\S+ after 25\.0 s, 1202 statements, network_loss/);
    const json = await audit(['session', 'sess-agent', '--json']);
    const body = JSON.parse(json.out);
    expect(body.session).toMatchObject({
      sessionId: 'sess-agent',
      endReason: 'network_loss',
      statements: 1202,
    });
    expect(body.events.map((e: { seq: number }) => e.seq)).toEqual(
      Array.from({ length: 1202 }, (_, i) => i + 1),
    );
    const missing = await audit(['session', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no session nope/);
  });
});

describe('audit export', () => {
  it('streams every page as JSON lines into a file', async () => {
    const file = join(stack.dir, 'export.jsonl');
    const { code, err, out } = await audit(['export', '--since', '2h', '--format', 'jsonl', '--out', file]);
    expect(code, err).toBe(0);
    expect(out).toBe('');
    expect(err).toBe(`exported ${statements.length} statements to ${file}\n`);
    const lines = (await readFile(file, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.map((e) => e.eventId).sort()).toEqual(statements.map((e) => e.eventId).sort());
  });

  it('writes CSV with a header and quotes commas, quotes and line breaks', async () => {
    const { code, out } = await audit([
      'export',
      '--since',
      new Date(base - 1000).toISOString(),
      '--until',
      '0m',
      '--principal',
      'agent@example.com',
      '--format',
      'csv',
    ]);
    expect(code).toBe(0);
    const rows = parseCsv(out);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(1 + 1202);
    const text = CSV_COLUMNS.indexOf('text');
    const kinds = CSV_COLUMNS.indexOf('kinds');
    const quoted = rows.find((row) => row[CSV_COLUMNS.indexOf('eventId')] === 'agent-1201')!;
    expect(quoted[text]).toBe(`select 'a, "quoted"\nvalue' as x, 2`);
    expect(quoted[kinds]).toBe('["select"]');
    expect(rows.every((row) => row.length === CSV_COLUMNS.length)).toBe(true);
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a\rb')).toBe('"a\rb"');
  });

  it('needs --since and a known format', async () => {
    expect((await audit(['export'])).err).toMatch(/needs --since/);
    expect((await audit(['export', '--since', '1h', '--format', 'xml'])).code).toBe(2);
  });
});

describe('the pgwarden command line', () => {
  it('has an audit area that says what it needs', async () => {
    const out = await runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'audit', 'list'], {
      env: { PGWARDEN_API_URL: apiUrl, PGWARDEN_TOKEN: '' },
      timeoutMs: 60_000,
    });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/set PGWARDEN_TOKEN/);
    const usage = await runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'audit'], { timeoutMs: 60_000 });
    expect(usage.stderr).toMatch(/audit export --since T/);
  });
});
