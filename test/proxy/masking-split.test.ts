/**
 * The relay's masking path on raw bytes, with sockets faked and the server's reply cut at every
 * byte position (and into single bytes): rows are rewritten with recomputed lengths, messages that
 * straddle reads are neither lost nor duplicated, untouched results stay byte-identical, and rows
 * wait in order (upstream paused) while the catalog is read.
 */
import { EventEmitter } from 'node:events';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { CatalogCache } from '../../proxy/masking/catalog.ts';
import { SessionMasking } from '../../proxy/masking/session-masking.ts';
import { Relay } from '../../proxy/relay.ts';
import type { Decision } from '../../shared/control-plane.ts';
import type { AuditEvent, StatementEvent } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';

class FakeSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  paused = false;
  write(bytes: Buffer): boolean {
    this.written.push(Buffer.from(bytes));
    return true;
  }
  pause() {
    this.paused = true;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  end(bytes?: Buffer) {
    if (bytes) this.written.push(Buffer.from(bytes));
    return this;
  }
  destroy() {
    return this;
  }
  all(): Buffer {
    return Buffer.concat(this.written);
  }
}

function frame(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}
const cstr = (s: string) => Buffer.from(`${s}\0`);

function rowDescription(
  columns: Array<{ name: string; table: number; attnum: number; type?: number }>,
): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeInt16BE(columns.length);
  for (const c of columns) {
    const f = Buffer.alloc(18);
    f.writeUInt32BE(c.table, 0);
    f.writeInt16BE(c.attnum, 4);
    f.writeUInt32BE(c.type ?? 25, 6);
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    parts.push(cstr(c.name), f);
  }
  return frame('T', Buffer.concat(parts));
}

function dataRow(cells: Array<string | null>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeInt16BE(cells.length);
  for (const cell of cells) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(cell === null ? -1 : Buffer.byteLength(cell));
    parts.push(len);
    if (cell !== null) parts.push(Buffer.from(cell));
  }
  return frame('D', Buffer.concat(parts));
}

const CUSTOMERS = 16400;
const MASKS: Decision['masks'] = [{ ruleId: 'mask-ssn', columns: ['ssn'], method: 'partial' }];

function setUp(decision: Decision = { action: 'allow', ruleId: 'r', policyVersion: 'v', masks: MASKS }) {
  const client = new FakeSocket();
  const upstream = new FakeSocket();
  const events: AuditEvent[] = [];
  const catalogQueries: string[][] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const catalog = new CatalogCache(async (sql, params) => {
    catalogQueries.push(params as string[]);
    await gate;
    if (!sql.includes('pg_attribute')) return [];
    return [
      [String(CUSTOMERS), 'public', 'customers', 'r', '1', 'id'],
      [String(CUSTOMERS), 'public', 'customers', 'r', '2', 'ssn'],
      [String(CUSTOMERS), 'public', 'customers', 'r', '3', 'name'],
    ];
  });
  const relay = new Relay({
    client: client as never,
    upstream: upstream as never,
    session: {
      sessionId: 's',
      principal: { name: 'p', issuer: 'https://issuer.example', subject: 'p', groups: [], actor: 'agent' },
      role: 'developer',
      roles: ['developer'],
      database: 'app',
      applicationName: '',
    },
    controlPlane: {
      openSession: async () => {
        throw new Error('unused');
      },
      decide: () => decision,
      ingest: async () => {},
    },
    audit: { record: (e) => events.push(e) },
    maxMessageBytes: 1 << 20,
    logger: silentLogger,
    newId: () => 'id',
    onEnd: () => {},
    masking: new SessionMasking(catalog, new Uint8Array(32)),
  });
  relay.start(Buffer.alloc(0), Buffer.alloc(0));
  return { relay, client, upstream, events, catalogQueries, release, catalog };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

const serverReply = Buffer.concat([
  rowDescription([
    { name: 'id', table: CUSTOMERS, attnum: 1 },
    { name: 'x', table: CUSTOMERS, attnum: 2 },
    { name: 'n', table: CUSTOMERS, attnum: 3 },
  ]),
  dataRow(['1', '123-45-6789', 'Ann']),
  frame('N', Buffer.concat([cstr('SNOTICE'), cstr('C00000'), cstr('Mhello'), Buffer.from([0])])),
  dataRow(['2', null, 'Bo']),
  dataRow(['3', '987-65-4321', 'a much longer name than the others, so the row spans more bytes']),
  frame('C', cstr('SELECT 3')),
  frame('Z', Buffer.from('I')),
]);
const expectedToClient = Buffer.concat([
  rowDescription([
    { name: 'id', table: CUSTOMERS, attnum: 1 },
    { name: 'x', table: CUSTOMERS, attnum: 2 },
    { name: 'n', table: CUSTOMERS, attnum: 3 },
  ]),
  dataRow(['1', '***-**-6789', 'Ann']),
  frame('N', Buffer.concat([cstr('SNOTICE'), cstr('C00000'), cstr('Mhello'), Buffer.from([0])])),
  dataRow(['2', null, 'Bo']),
  dataRow(['3', '***-**-4321', 'a much longer name than the others, so the row spans more bytes']),
  frame('C', cstr('SELECT 3')),
  frame('Z', Buffer.from('I')),
]);

async function run(chunks: Buffer[], warm = true) {
  const t = setUp();
  if (warm) {
    t.release();
    await t.catalog.load([CUSTOMERS]);
  }
  t.client.emit('data', serialize.query('select id, ssn as x, name as n from customers'));
  for (const chunk of chunks) t.upstream.emit('data', chunk);
  if (!warm) t.release();
  for (let i = 0; i < 5; i++) await flush();
  return t;
}

describe('relay masking across reads', () => {
  it('rewrites rows identically wherever the reply is cut', async () => {
    const whole = await run([serverReply]);
    expect(whole.client.all().equals(expectedToClient)).toBe(true);
    for (let cut = 1; cut < serverReply.length; cut++) {
      const t = await run([serverReply.subarray(0, cut), serverReply.subarray(cut)]);
      expect(t.client.all().toString('hex'), `cut ${cut}`).toBe(expectedToClient.toString('hex'));
    }
  });

  it('rewrites rows delivered one byte per read', async () => {
    const bytes = [...serverReply].map((b) => Buffer.from([b]));
    const t = await run(bytes);
    expect(t.client.all().equals(expectedToClient)).toBe(true);
  });

  it('holds the rows, in order and with upstream paused, until the catalog has answered', async () => {
    const t = setUp();
    t.client.emit('data', serialize.query('select id, ssn as x, name as n from customers'));
    t.upstream.emit('data', serverReply.subarray(0, 40));
    t.upstream.emit('data', serverReply.subarray(40));
    await flush();
    expect(t.catalogQueries).toEqual([[`{${CUSTOMERS}}`]]);
    expect(t.upstream.paused).toBe(true);
    // only the RowDescription went out: no row before its plan
    expect(t.client.all().equals(serverReply.subarray(0, serverReply.indexOf('D', 5)))).toBe(true);
    t.release();
    for (let i = 0; i < 5; i++) await flush();
    expect(t.client.all().equals(expectedToClient)).toBe(true);
    expect(t.upstream.paused).toBe(false);
    const event = t.events.find((e): e is StatementEvent => e.type === 'statement')!;
    expect(event.masked).toEqual([
      { column: 'public.customers.ssn', ruleId: 'mask-ssn', method: 'partial', values: 2 },
    ]);
  });

  it('forwards results with nothing to mask byte for byte, without decoding rows', async () => {
    const plain = Buffer.concat([
      rowDescription([
        { name: 'id', table: CUSTOMERS, attnum: 1 },
        { name: 'n', table: CUSTOMERS, attnum: 3 },
      ]),
      dataRow(['1', 'Ann']),
      dataRow(['2', '123-45-6789 in a name column']),
      frame('C', cstr('SELECT 2')),
      frame('Z', Buffer.from('I')),
    ]);
    for (let cut = 0; cut <= plain.length; cut++) {
      const t = setUp();
      t.release();
      await t.catalog.load([CUSTOMERS]);
      t.client.emit('data', serialize.query('select id, name from customers'));
      t.upstream.emit('data', plain.subarray(0, cut));
      t.upstream.emit('data', plain.subarray(cut));
      await flush();
      expect(t.client.all().equals(plain), `cut ${cut}`).toBe(true);
    }
  });
});
