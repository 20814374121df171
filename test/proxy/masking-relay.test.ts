/**
 * Masking on the wire, through the real proxy in front of a real PostgreSQL, with a control plane
 * whose decisions carry the masks (the policy side is tested on its own): every way of getting a
 * result (simple and extended protocol, text and binary, portals with row limits, pipelines,
 * cursors, views, chunk boundaries) comes back masked, and results without masked columns come
 * back byte for byte as the server sent them.
 */
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../shared/control-plane.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let h: ProxyHarness;
let admin: pg.Client;
const clear = { ssn: '', card: '' };

const MASKS: Decision['masks'] = [
  { ruleId: 'mask-ssn', columns: ['ssn'], method: 'partial' },
  { ruleId: 'mask-card-numbers', columns: ['customers.credit_card'], method: 'partial' },
];
const masked = (): Decision => ({ action: 'allow', ruleId: 'mask-ssn', policyVersion: 't', masks: MASKS });

beforeAll(async () => {
  h = await startProxyHarness();
  admin = new pg.Client({
    host: h.postgres.host,
    port: h.postgres.port,
    database: 'app',
    ...h.postgres.superuser,
  });
  await admin.connect();
  const row = await admin.query('select ssn, credit_card from customers where id = 1');
  clear.ssn = row.rows[0].ssn;
  clear.card = row.rows[0].credit_card;
  await admin.query(`
    create view customer_ids as select id, ssn as tax_id, upper(name) as shout, credit_card from customers;
    create view customer_ids_2 as select tax_id as tin, shout from customer_ids;
    create view customer_rows as select c.id, row_to_json(c) as doc from customers c;
    grant select on customer_ids, customer_ids_2, customer_rows to ${h.postgres.roles.app_rw.user};
    create extension if not exists citext;
    create domain tax_number as varchar(40);
    create table people (id int, ssn citext, note tax_number);
    insert into people values (1, '123-45-6789', 'card 4111111111111111');
    grant select on people to ${h.postgres.roles.app_rw.user};
    create table accounts (id int, card_number numeric(19), opened timestamptz);
    insert into accounts values (1, 4111111111111111, '2021-06-15');
    grant select on accounts to ${h.postgres.roles.app_rw.user};
  `);
}, 60_000);
afterAll(async () => {
  await admin?.end();
  await h?.stop();
});
beforeEach(() => {
  h.controlPlane.decider = masked;
});

/** All bytes a pg client receives, to assert that no clear value is in any of them. */
async function tappedClient(options: Partial<pg.ClientConfig> = {}) {
  const received: Buffer[] = [];
  const client = await h.viaProxy(options);
  const stream = (client as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream;
  stream.on('data', (chunk: Buffer) => received.push(Buffer.from(chunk)));
  return { client, bytes: () => Buffer.concat(received) };
}

function expectNoClearValue(bytes: Buffer) {
  expect(bytes.includes(Buffer.from(clear.ssn)), 'clear ssn on the wire').toBe(false);
  expect(bytes.includes(Buffer.from(clear.card)), 'clear card on the wire').toBe(false);
  // the last four digits alone are allowed (partial); nothing longer
  expect(bytes.includes(Buffer.from(clear.ssn.slice(0, 6)))).toBe(false);
  expect(bytes.includes(Buffer.from(clear.card.slice(0, 12)))).toBe(false);
}

const partialSsn = () => `***-**-${clear.ssn.slice(-4)}`;
const partialCard = () => `${'*'.repeat(clear.card.length - 4)}${clear.card.slice(-4)}`;

describe('text results', () => {
  it('masks a column by its identity whatever the output name', async () => {
    const { client, bytes } = await tappedClient();
    try {
      const a = await client.query('select id, ssn, credit_card, name from customers where id = 1');
      expect(a.rows[0]).toMatchObject({ id: '1', ssn: partialSsn(), credit_card: partialCard() });
      const b = await client.query('select ssn as x, c.credit_card as "Card" from customers c where id = 1');
      expect(b.rows[0]).toEqual({ x: partialSsn(), Card: partialCard() });
      const c = await client.query('select * from customers where id = $1', [1]);
      expect(c.rows[0].ssn).toBe(partialSsn());
      expect(c.rows[0].name).not.toContain('*');
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });

  it('masks every row of a large result that spans many reads, and keeps NULLs NULL', async () => {
    const { client, bytes } = await tappedClient();
    try {
      const result = await client.query(
        "select c.id, c.ssn, c2.credit_card, repeat('x', 500) as pad from customers c left join customers c2 on c2.id = c.id and c.id % 7 <> 0 order by c.id",
      );
      expect(result.rows).toHaveLength(5000);
      for (const row of result.rows) {
        expect(row.ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
        if (Number(row.id) % 7 === 0) expect(row.credit_card).toBeNull();
        else expect(row.credit_card).toMatch(/^\*{12}\d{4}$/);
      }
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });

  it('records which columns were masked and how many values, never the values', async () => {
    const before = h.controlPlane.statements().length;
    const client = await h.viaProxy();
    try {
      await client.query('select ssn, credit_card from customers where id <= 10');
    } finally {
      await client.end();
    }
    await waitFor(() => h.controlPlane.statements().length > before);
    const event = h.controlPlane.statements().find((e) => e.text.includes('where id <= 10'))!;
    expect(event.masked).toEqual([
      { column: 'public.customers.ssn', ruleId: 'mask-ssn', method: 'partial', values: 10 },
      { column: 'public.customers.credit_card', ruleId: 'mask-card-numbers', method: 'partial', values: 10 },
    ]);
    expect(JSON.stringify(event)).not.toContain(clear.ssn);
  });
});

describe('binary results', () => {
  it('never corrupt a column they cannot mask in binary: it is sent as NULL and the record says why', async () => {
    h.controlPlane.decider = () => ({
      action: 'allow',
      ruleId: 'mask-card-numbers',
      policyVersion: 't',
      masks: [{ ruleId: 'mask-card-numbers', columns: ['card_number'], method: 'partial' }],
    });
    const { client, bytes } = await tappedClient({ binary: true } as Partial<pg.ClientConfig>);
    try {
      const r = await client.query({
        text: 'select id, card_number, opened from accounts /* binary-numeric */',
        queryMode: 'extended',
      } as pg.QueryConfig);
      expect(r.rows[0].card_number).toBeNull();
      expect(r.rows[0].opened).toBeInstanceOf(Date);
      // the same column in text format keeps a valid numeric: its last four digits
      const text = await h.viaProxy();
      try {
        const t = await text.query('select card_number from accounts');
        expect(t.rows[0].card_number).toBe('1111');
      } finally {
        await text.end();
      }
      expect(bytes().includes(Buffer.from('4111111111111111'))).toBe(false);
    } finally {
      await client.end();
    }
    await waitFor(() =>
      h.controlPlane.statements().some((e) => e.text.includes('binary-numeric') && e.masked),
    );
    const event = h.controlPlane.statements().find((e) => e.text.includes('binary-numeric') && e.masked)!;
    expect(event.masked?.[0]).toMatchObject({ column: 'public.accounts.card_number', method: 'null' });
    expect(event.masked?.[0]?.note).toMatch(/binary format/);
  });

  it('masks binary-format columns with valid binary values (node-postgres binary mode)', async () => {
    const { client, bytes } = await tappedClient({ binary: true } as Partial<pg.ClientConfig>);
    try {
      const r = await client.query(
        'select id, ssn, credit_card, created_at from customers where id = $1',
        [1],
      );
      expect(r.rows[0].ssn).toBe(partialSsn());
      expect(r.rows[0].credit_card).toBe(partialCard());
      expect(r.rows[0].created_at).toBeInstanceOf(Date);
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });
});

describe('extended protocol on raw bytes', () => {
  async function raw() {
    const { client } = await RawClient.connect({
      host: '127.0.0.1',
      port: h.proxy.port,
      user: 'alice@example.com',
      database: 'app',
      password: 'good-token',
    });
    return client;
  }
  const all = (messages: RawMessage[]) => Buffer.concat(messages.map((m) => m.body));

  it('masks a portal executed with a row limit, across suspensions, without a client Describe', async () => {
    const c = await raw();
    try {
      c.send(
        serialize.parse({ name: 's1', text: 'select id, ssn from customers order by id' }),
        serialize.sync(),
      );
      await c.untilReady();
      c.send(
        serialize.bind({ portal: 'p', statement: 's1' }),
        serialize.execute({ portal: 'p', rows: 3 }),
        serialize.flush(),
      );
      c.send(serialize.execute({ portal: 'p', rows: 2 }), serialize.sync());
      const replies = await c.untilReady();
      expect(summarize(replies)).toEqual(['2', 'D', 'D', 'D', 's', 'D', 'D', 's', 'Z:I']);
      const rows = replies.filter((m) => m.type === 'D');
      for (const row of rows) expect(row.body.toString()).toMatch(/\*\*\*-\*\*-\d{4}/);
      expectNoClearValue(all(replies));
    } finally {
      c.close();
    }
  });

  it('masks pipelined statements on the unnamed statement and portal, each by its own columns', async () => {
    const c = await raw();
    try {
      c.send(
        serialize.parse({ text: 'select name from customers where id = 1' }),
        serialize.bind({}),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.parse({ text: 'select credit_card, ssn from customers where id = 1' }),
        serialize.bind({ binary: true }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      );
      const replies = await c.untilReady();
      expect(summarize(replies)).toEqual([
        '1',
        '2',
        'T',
        'D',
        'C:SELECT 1',
        '1',
        '2',
        'T',
        'D',
        'C:SELECT 1',
        'Z:I',
      ]);
      const [first, second] = replies.filter((m) => m.type === 'D');
      expect(first!.body.toString()).not.toContain('*');
      expect(second!.body.toString()).toContain(partialCard());
      expect(second!.body.toString()).toContain(partialSsn());
      expectNoClearValue(all(replies));
    } finally {
      c.close();
    }
  });

  it('uses the Describe of a statement and the formats of a later Bind', async () => {
    const c = await raw();
    try {
      c.send(
        serialize.parse({ name: 's2', text: 'select ssn, id from customers where id < 3 order by id' }),
        serialize.describe({ type: 'S', name: 's2' }),
        serialize.sync(),
      );
      expect(summarize(await c.untilReady())).toEqual(['1', 't', 'T', 'Z:I']);
      c.send(serialize.bind({ statement: 's2', binary: true }), serialize.execute({}), serialize.sync());
      const replies = await c.untilReady();
      expect(summarize(replies)).toEqual(['2', 'D', 'D', 'C:SELECT 2', 'Z:I']);
      expect(replies[1]!.body.toString()).toContain('***-**-');
      expectNoClearValue(all(replies));
    } finally {
      c.close();
    }
  });
});

describe('cursors and views', () => {
  it('masks rows fetched from a cursor (text and binary cursors)', async () => {
    const { client, bytes } = await tappedClient();
    try {
      await client.query('begin');
      await client.query('declare c cursor for select id, ssn from customers order by id');
      const f = await client.query('fetch 5 from c');
      for (const r of f.rows) expect(r.ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
      await client.query('declare b binary cursor for select credit_card from customers order by id');
      const g = await client.query('fetch 2 from b');
      expect(g.rows).toHaveLength(2);
      await client.query('commit');
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });

  it('masks a view column that shows a masked column, through views on views', async () => {
    const { client, bytes } = await tappedClient();
    try {
      const a = await client.query('select tax_id, credit_card from customer_ids where id = 1');
      expect(a.rows[0]).toEqual({ tax_id: partialSsn(), credit_card: partialCard() });
      const b = await client.query('select tin from customer_ids_2 limit 1');
      expect(b.rows[0].tin).toMatch(/^\*\*\*-\*\*-\d{4}$/);
      const c = await client.query('select doc from customer_rows where id = 1');
      expect(c.rows[0].doc).toBe('***');
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });

  it('sees a view created after the catalog was cached (refreshed after DDL)', async () => {
    const { client, bytes } = await tappedClient();
    try {
      await client.query('select tax_id from customer_ids limit 1');
      await admin.query(
        `create or replace view customer_ids_3 as select credit_card as plain from customers;
         grant select on customer_ids_3 to ${h.postgres.roles.app_rw.user}`,
      );
      const r = await client.query('select plain from customer_ids_3 limit 1');
      expect(r.rows[0].plain).toMatch(/^\*+\d{4}$/);
      expectNoClearValue(bytes());
    } finally {
      await client.end();
    }
  });
});

describe('results with nothing to mask', () => {
  it('are forwarded byte for byte as the server sent them', async () => {
    h.controlPlane.decider = () => ({ action: 'allow', ruleId: 'default', policyVersion: 't' });
    const sql = 'select id, name, email from customers order by id';
    const viaProxy = await tappedClient();
    const direct = await h.direct();
    const directBytes: Buffer[] = [];
    (direct as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream.on(
      'data',
      (chunk: Buffer) => directBytes.push(Buffer.from(chunk)),
    );
    try {
      const start = viaProxy.bytes().length;
      await viaProxy.client.query(sql);
      await direct.query(sql);
      const proxied = viaProxy.bytes().subarray(start);
      const straight = Buffer.concat(directBytes);
      // same RowDescription, rows and CommandComplete (the trailing ReadyForQuery is the same too)
      expect(proxied.equals(straight)).toBe(true);
    } finally {
      await viaProxy.client.end();
      await direct.end();
    }
  });

  it('pass unmasked columns of a masked session unchanged', async () => {
    const client = await h.viaProxy();
    try {
      const r = await client.query('select name, email from customers where id = 1');
      expect(r.rows[0].name).not.toContain('*');
    } finally {
      await client.end();
    }
  });
});

describe('content detectors on the other channels', () => {
  const CARD = '4111111111111111';
  beforeEach(() => {
    h.controlPlane.decider = () => ({
      action: 'allow',
      ruleId: 'default',
      policyVersion: 't',
      masks: MASKS,
      detectors: { enabled: ['card', 'ssn'], method: 'partial' },
    });
  });

  it('mask a card number in an error message (a failed cast prints the value)', async () => {
    const { client, bytes } = await tappedClient();
    try {
      const error = await client.query(`select '${CARD}'::int`).catch((e: Error) => e);
      expect((error as Error).message).toContain('************1111');
      expect(bytes().includes(Buffer.from(CARD))).toBe(false);
      const r = await client.query('select 1 as one');
      expect(r.rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('mask notices, notification payloads and text values of any column', async () => {
    const { client, bytes } = await tappedClient();
    const notices: string[] = [];
    const notifications: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    client.on('notification', (n) => notifications.push(n.payload ?? ''));
    try {
      await client.query(`do $$ begin raise notice 'card %', '${CARD}'; end $$`);
      await client.query('listen ch');
      await client.query(`notify ch, 'paid with ${CARD}'`);
      const r = await client.query(`select 'ssn 123-45-6789 here' as note, '${CARD}' as card`);
      expect(r.rows[0].note).toBe('ssn ***-**-6789 here');
      expect(r.rows[0].card).toBe('************1111');
      await waitFor(() => notifications.length > 0);
      expect(notices.join()).toContain('************1111');
      expect(notifications[0]).toBe('paid with ************1111');
      expect(bytes().includes(Buffer.from(CARD))).toBe(false);
    } finally {
      await client.end();
    }
  });

  it('treat user-defined string types (citext, a domain over varchar) like text, in text and binary format', async () => {
    for (const binary of [false, true]) {
      const { client, bytes } = await tappedClient({ binary } as Partial<pg.ClientConfig>);
      try {
        const r = await client.query({
          text: 'select ssn, note from people',
          queryMode: 'extended',
        } as pg.QueryConfig);
        expect(r.rows[0].ssn, `binary ${binary}`).toBe('***-**-6789');
        expect(r.rows[0].note, `binary ${binary}`).toBe('card ************1111');
        expect(bytes().includes(Buffer.from(CARD))).toBe(false);
      } finally {
        await client.end();
      }
    }
  });

  it('mask rows of a text COPY TO STDOUT and let a clean one through', async () => {
    const { client } = await RawClient.connect({
      host: '127.0.0.1',
      port: h.proxy.port,
      user: 'alice@example.com',
      database: 'app',
      password: 'good-token',
    });
    try {
      client.send(
        serialize.query(`copy (select id, '${CARD}' as c from generate_series(1, 3) id) to stdout`),
      );
      const replies = await client.untilReady();
      expect(summarize(replies)).toEqual(['H', 'd', 'd', 'd', 'c', 'C:COPY 3', 'Z:I']);
      const rows = replies.filter((m) => m.type === 'd').map((m) => m.body.toString());
      expect(rows).toEqual(['1\t************1111\n', '2\t************1111\n', '3\t************1111\n']);
      client.send(serialize.query('copy (select id from generate_series(1, 2) id) to stdout'));
      expect(summarize(await client.untilReady())).toEqual(['H', 'd', 'd', 'c', 'C:COPY 2', 'Z:I']);
    } finally {
      client.close();
    }
  });
});
