/**
 * `pgwarden audit ...`: find statements in the audit trail and export them, through the API
 * (PGWARDEN_API_URL, default http://127.0.0.1:8787) with the caller's own OIDC token in
 * PGWARDEN_TOKEN (a member of the auditor groups). Times are ISO-8601 or durations back (15m, 1h, 2d).
 */
import { type FileHandle, open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type AuditRecord, MAX_AUDIT_LIMIT, parseTimeBound } from '../../shared/audit-query.ts';
import { CliFailure, callApi } from './api-client.ts';
import type { CliCommand, CliIo } from './command.ts';

export const auditUsage = `  audit list [--principal P] [--session S] [--since T] [--until T] [--decision D] [--text X]
             [--limit N] [--cursor C] [--json]   statements, oldest first (T: ISO time or 15m, 1h, 2d, 1w)
  audit session ID [--json]                     a session: who, from where, how it ended, every statement
  audit export --since T [--until T] [filters] [--format jsonl|csv] [--out FILE]
                                                every matching statement, all pages, streamed
  audit verify (--session ID | --from T [--to T]) [--json]
                                                check each session's hash chain; names the first broken
                                                link and exits 1 when one is broken
    (auditors only; your token in PGWARDEN_TOKEN; locally: PGWARDEN_TOKEN=$(npm run -s token -- you@example.com --groups auditors))`;

const FILTERS = ['principal', 'session', 'since', 'until', 'decision', 'text'] as const;

const options = {
  principal: { type: 'string' },
  session: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  decision: { type: 'string' },
  text: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  json: { type: 'boolean' },
  format: { type: 'string' },
  out: { type: 'string', short: 'o' },
  from: { type: 'string' },
  to: { type: 'string' },
} as const;

type Values = {
  [K in keyof typeof options]?: (typeof options)[K]['type'] extends 'boolean' ? boolean : string;
};

export const auditCommand: CliCommand = async (args, io) => {
  const [command, ...rest] = args;
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    values = parsed.values as Values;
    positionals = parsed.positionals;
  } catch (error) {
    io.err(`pgwarden: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    if (command === 'list' && positionals.length === 0) return await list(io, values);
    if (command === 'session' && positionals.length === 1) return await session(io, positionals[0]!, values);
    if (command === 'export' && positionals.length === 0) return await exportAll(io, values);
    if (command === 'verify' && positionals.length === 0) return await verify(io, values);
  } catch (error) {
    if (!(error instanceof CliFailure)) throw error;
    io.err(`pgwarden: ${error.message}\n`);
    return error instanceof UsageFailure ? 2 : 1;
  }
  return undefined;
};

class UsageFailure extends CliFailure {}

/** The filters as API query parameters; relative times are resolved here, once. */
function filterParams(values: Values, now: Date): Record<string, string> {
  const params: Record<string, string> = {};
  for (const name of FILTERS) {
    const value = values[name];
    if (value === undefined) continue;
    if (name === 'since' || name === 'until') {
      try {
        params[name] = parseTimeBound(value, now, `--${name}`);
      } catch (error) {
        throw new UsageFailure((error as Error).message);
      }
    } else {
      params[name] = value;
    }
  }
  return params;
}

async function list(io: CliIo, values: Values): Promise<number> {
  const params = filterParams(values, new Date());
  if (values.limit !== undefined) params['limit'] = values.limit;
  if (values.cursor !== undefined) params['cursor'] = values.cursor;
  const page = await call<EventsPage>(io, `v1/audit/events?${new URLSearchParams(params)}`);
  if (values.json) {
    io.out(`${JSON.stringify(page, null, 2)}\n`);
    return 0;
  }
  io.out(page.events.length === 0 ? 'no statements match\n' : statementTable(page.events, true));
  if (page.nextCursor !== null) {
    io.err(`more statements match: add --cursor ${page.nextCursor} (or use audit export)\n`);
  }
  return 0;
}

interface ChainVerdictView {
  sessionId: string;
  status: 'intact' | 'open' | 'broken';
  links: number;
  statements: number;
  firstBreak?: {
    seq?: number;
    eventId?: string;
    chainIndex?: number;
    problem: string;
    expected?: string;
    found?: string;
  };
}

interface VerifyAnswer {
  ok: boolean;
  sessions: ChainVerdictView[];
  more: boolean;
}

/** `audit verify`: 0 when no chain is broken, 1 when one is (each session's first break is named). */
async function verify(io: CliIo, values: Values): Promise<number> {
  const params: Record<string, string> = {};
  if (values.session !== undefined) {
    if (values.from !== undefined || values.to !== undefined)
      throw new UsageFailure('give --session, or --from (and --to), not both');
    params['session'] = values.session;
  } else {
    if (values.from === undefined) throw new UsageFailure('audit verify needs --session ID or --from T');
    const now = new Date();
    try {
      params['since'] = parseTimeBound(values.from, now, '--from');
      if (values.to !== undefined) params['until'] = parseTimeBound(values.to, now, '--to');
    } catch (error) {
      throw new UsageFailure((error as Error).message);
    }
  }
  const answer = await call<VerifyAnswer>(io, `v1/audit/verify?${new URLSearchParams(params)}`);
  if (values.json) io.out(`${JSON.stringify(answer, null, 2)}\n`);
  else {
    if (answer.sessions.length === 0) io.out('no sessions with statements in that window\n');
    for (const verdict of answer.sessions) io.out(verdictText(verdict));
    if (answer.more) io.err('more sessions are in that window: narrow --from/--to to check them all\n');
  }
  return answer.ok ? 0 : 1;
}

function verdictText(v: ChainVerdictView): string {
  const head = `${v.sessionId}: ${v.status} (${v.links} links, ${v.statements} statement records)`;
  if (v.status === 'open') return `${head}: no close yet, so the end of the chain is not anchored\n`;
  if (!v.firstBreak) return `${head}\n`;
  const b = v.firstBreak;
  const at = [
    b.seq === undefined ? undefined : `seq ${b.seq}`,
    b.chainIndex === undefined ? undefined : `link ${b.chainIndex}`,
    b.eventId === undefined ? undefined : `event ${b.eventId}`,
  ].filter((part) => part !== undefined);
  const lines = [
    `${head}`,
    `  first broken link${at.length > 0 ? ` at ${at.join(', ')}` : ''}: ${b.problem}`,
  ];
  if (b.expected !== undefined) lines.push(`  expected ${b.expected}`);
  if (b.found !== undefined) lines.push(`  found    ${b.found}`);
  return `${lines.join('\n')}\n`;
}

async function session(io: CliIo, id: string, values: Values): Promise<number> {
  const path = `v1/sessions/${encodeURIComponent(id)}`;
  const first = await call<SessionPage>(io, `${path}?limit=${MAX_AUDIT_LIMIT}`);
  const events = [...first.events];
  for (let cursor = first.nextCursor; cursor !== null; ) {
    const page = await call<SessionPage>(
      io,
      `${path}?${new URLSearchParams({ limit: String(MAX_AUDIT_LIMIT), cursor })}`,
    );
    events.push(...page.events);
    cursor = page.nextCursor;
  }
  if (values.json) {
    io.out(`${JSON.stringify({ session: first.session, events }, null, 2)}\n`);
    return 0;
  }
  io.out(sessionHeader(id, first.session));
  io.out(events.length === 0 ? 'no statements recorded\n' : statementTable(events, false));
  return 0;
}

async function exportAll(io: CliIo, values: Values): Promise<number> {
  const format = values.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw new UsageFailure('--format must be jsonl or csv');
  if (values.since === undefined && values.session === undefined) {
    throw new UsageFailure('audit export needs --since (e.g. --since 2025-03-01 or --since 7d)');
  }
  const params = filterParams(values, new Date());
  let file: FileHandle | undefined;
  if (values.out !== undefined) {
    try {
      file = await open(values.out, 'w');
    } catch (error) {
      throw new CliFailure(`cannot write ${values.out}: ${(error as Error).message}`);
    }
  }
  const write = async (text: string) => {
    if (file) await file.write(text);
    else io.out(text);
  };
  let count = 0;
  try {
    if (format === 'csv') await write(`${CSV_COLUMNS.join(',')}\r\n`);
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({
        ...params,
        limit: String(MAX_AUDIT_LIMIT),
        ...(cursor && { cursor }),
      });
      const page: EventsPage = await call<EventsPage>(io, `v1/audit/events?${query}`);
      const lines = page.events.map((event) =>
        format === 'csv' ? csvRow(event) : `${JSON.stringify(event)}\n`,
      );
      if (lines.length > 0) await write(lines.join(''));
      count += page.events.length;
      cursor = page.nextCursor;
    } while (cursor !== null);
  } finally {
    await file?.close();
  }
  io.err(`exported ${count} statements${values.out === undefined ? '' : ` to ${values.out}`}\n`);
  return 0;
}

interface EventsPage {
  events: AuditRecord[];
  nextCursor: string | null;
}

interface SessionPage extends EventsPage {
  session: AuditRecord | null;
}

// --- output ---------------------------------------------------------------------------------------

/** Every column a compliance reader needs; lists and objects are JSON inside their cell. */
export const CSV_COLUMNS = [
  'startedAt',
  'principal',
  'actor',
  'applicationName',
  'database',
  'upstreamUser',
  'sessionId',
  'seq',
  'protocol',
  'decision',
  'ruleId',
  'policyVersion',
  'outcome',
  'commandTag',
  'rows',
  'durationMs',
  'sqlstate',
  'errorMessage',
  'cancelled',
  'bytesToClient',
  'kinds',
  'fingerprint',
  'preparedName',
  'portalName',
  'approvalId',
  'paramsMode',
  'params',
  'masked',
  'detected',
  'text',
  'eventId',
] as const;

/** RFC 4180: a cell with a comma, quote or line break is quoted, its quotes doubled. */
export function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvRow(record: AuditRecord): string {
  return `${CSV_COLUMNS.map((column) => csvCell(record[column])).join(',')}\r\n`;
}

function sessionHeader(id: string, s: AuditRecord | null): string {
  if (s === null) return `session ${id}: no session record yet (its statements follow)\n\n`;
  const lines = [
    `session   ${id} (${s['state']})`,
    `who       ${s['principal']}${s['actor'] === 'agent' ? ' (agent)' : ''}, role ${s['role'] ?? '?'}, groups ${joined(s['groups'])}`,
    `from      ${s['applicationName'] || '(no application_name)'} at ${s['clientAddress'] ?? '?'} → ${s['database']} as ${s['upstreamUser'] ?? '?'} (proxy ${s['proxyId'] ?? '?'})`,
    `opened    ${s['openedAt'] ?? '?'}`,
  ];
  if (s['closedAt'] !== undefined) {
    lines.push(
      `closed    ${s['closedAt']} after ${seconds(s['durationMs'])}, ${s['statements']} statements, ${s['endReason']}`,
    );
  }
  return `${lines.join('\n')}\n\n`;
}

function statementTable(events: AuditRecord[], withWho: boolean): string {
  const headers = [
    'TIME',
    ...(withWho ? ['PRINCIPAL', 'APPLICATION', 'SESSION'] : []),
    'SEQ',
    'DECISION',
    'RULE',
    'OUTCOME',
    'ROWS',
    'MS',
    'STATEMENT',
  ];
  const rows = events.map((e) => [
    String(e['startedAt'] ?? ''),
    ...(withWho
      ? [
          String(e['principal'] ?? ''),
          String(e['applicationName'] || '-'),
          String(e['sessionId'] ?? '').slice(0, 8),
        ]
      : []),
    String(e['seq'] ?? ''),
    String(e['decision'] ?? ''),
    String(e['ruleId'] ?? ''),
    outcome(e),
    e['rows'] === undefined ? '' : String(e['rows']),
    e['durationMs'] === undefined ? '' : String(Math.round(Number(e['durationMs']) * 10) / 10),
    oneLine(String(e['text'] ?? ''), 80),
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const format = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[format(headers), ...rows.map(format)].join('\n')}\n`;
}

function outcome(e: AuditRecord): string {
  const base = String(e['outcome'] ?? (e['sqlstate'] ? 'error' : 'ok'));
  return e['sqlstate'] ? `${base} ${e['sqlstate']}` : base;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function joined(value: unknown): string {
  return Array.isArray(value) && value.length > 0 ? value.join(', ') : '(none)';
}

function seconds(ms: unknown): string {
  return typeof ms === 'number' ? `${(ms / 1000).toFixed(1)} s` : '?';
}

// --- HTTP -----------------------------------------------------------------------------------------

function call<T>(io: CliIo, path: string): Promise<T> {
  return callApi<T>(
    io,
    { path },
    {
      missingToken:
        'set PGWARDEN_TOKEN to your OIDC token, as a member of the auditor groups (locally: PGWARDEN_TOKEN=$(npm run -s token -- you@example.com --groups auditors))',
      timeoutMs: 60_000,
    },
  );
}
