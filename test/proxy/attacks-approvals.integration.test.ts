/**
 * Attacks on "one approval releases one execution of the text and parameter values the reviewer
 * saw", by an engineering token through the real proxy on a real PostgreSQL. Each case counts on
 * the server how often the statement that needs approval (an UPDATE without WHERE bumping `n`)
 * really ran, and checks what the reviewer was shown (the approval request). The approvals API is
 * the controllable stand-in (test/fakes/controlled-approvals.ts).
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  approvalTableNames,
  DynamoDbApprovalStore,
  ensureApprovalTables,
} from '../../functions/adapters/dynamodb-approval-store.ts';
import { type ApprovalsService, createApprovalsService } from '../../functions/api/approvals-service.ts';
import type { ApprovalView } from '../../shared/approvals.ts';
import { RecordingAuditStore, reviewer } from '../fakes/approvals.ts';
import type { ControlledApprovals } from '../fakes/controlled-approvals.ts';
import { type LocalDynamoDb, startDynamoDb } from '../fakes/dynamodb.ts';
import { type ApprovalWire, startApprovalWire } from '../fixtures/approval-wire.ts';
import { errorMessage, summarize } from '../fixtures/raw-client.ts';

let wire: ApprovalWire;
let approvals: ControlledApprovals;
let t: string;
let tables = 0;

beforeAll(async () => {
  wire = await startApprovalWire();
});
afterAll(async () => {
  await wire?.stop();
});
beforeEach(async () => {
  approvals = wire.reset();
  t = `atk_appr_${++tables}`;
  await wire.admin.query(`create table ${t} (id int, n int not null default 0, note text)`);
  await wire.admin.query(`insert into ${t} (id) values (1), (2), (3)`);
  await wire.admin.query(`grant all on ${t} to app_rw`);
});

/** how many times the held statement ran on the server */
const counter = async () => (await wire.admin.query(`select max(n)::int as n from ${t}`)).rows[0].n as number;
const rowsLeft = async () => Number((await wire.admin.query(`select count(*) from ${t}`)).rows[0].count);
const bump = () => `update ${t} set n = n + 1`;
const P = (text: string, name = '') => serialize.parse({ name, text });
const B = (statement = '', portal = '', values?: Array<string | null>) =>
  serialize.bind({ statement, portal, ...(values && { values }) });
const E = (portal = '', rows = 0) => serialize.execute({ portal, rows });
const Q = (text: string) => serialize.query(text);
const S = serialize.sync();

describe('SQL PREPARE / EXECUTE: the reviewer approves what runs', () => {
  it('EXECUTE of a prepared statement shows the reviewer the prepared text, not only "EXECUTE name"', async () => {
    // the PREPARE is decided as its body (approved: it runs nothing), then the EXECUTE
    approvals.answers.push('approve', 'approve');
    const raw = await wire.raw();
    raw.send(Q(`prepare atk_s as ${bump()}`));
    expect(summarize(await raw.untilReady())).toEqual(['C:PREPARE', 'Z:I']);
    expect(await counter()).toBe(0);
    raw.send(Q('execute atk_s'));
    expect(summarize(await raw.untilReady())).toEqual(['C:UPDATE 3', 'Z:I']);
    raw.close();
    expect(await counter()).toBe(1);
    expect(approvals.requests).toHaveLength(2);
    expect(approvals.requests[1]!.statement.text).toMatch(/^execute atk_s\n/);
    expect(approvals.requests[1]!.statement.text).toContain(`prepare atk_s as ${bump()}`);
  });

  it('two sessions that PREPARE one name with other texts do not ask for the same approval (its retry key hashes the text)', async () => {
    approvals.answers.push('approve', 'deny', 'approve', 'deny');
    const texts: string[] = [];
    for (const body of [bump(), `delete from ${t}`]) {
      const raw = await wire.raw();
      raw.send(Q(`prepare atk_s as ${body}`));
      expect(summarize(await raw.untilReady())).toEqual(['C:PREPARE', 'Z:I']);
      raw.send(Q('execute atk_s'));
      expect(summarize(await raw.untilReady())).toEqual(['E:42501', 'Z:I']);
      raw.close();
      texts.push(approvals.requests.at(-1)!.statement.text);
    }
    expect(texts[0]).not.toBe(texts[1]);
    expect(texts[1]).toContain(`delete from ${t}`);
    expect(await rowsLeft()).toBe(3);
  });

  it('SQL EXECUTE sent as a protocol Parse: its held Bind shows the prepared text too', async () => {
    approvals.answers.push('approve', 'deny');
    const raw = await wire.raw();
    raw.send(Q(`prepare atk_s as ${bump()}`));
    expect(summarize(await raw.untilReady())).toEqual(['C:PREPARE', 'Z:I']);
    raw.send(P('execute atk_s'), B(), E(), S);
    expect(summarize(await raw.untilReady())).toEqual(['1', 'E:42501', 'Z:I']);
    raw.close();
    expect(await counter()).toBe(0);
    expect(approvals.requests[1]!.statement.text).toContain(`prepare atk_s as ${bump()}`);
  });

  it('EXPLAIN ANALYZE EXECUTE of a prepared statement that needs approval does not run it unapproved', async () => {
    approvals.answers.push('approve', 'deny');
    const raw = await wire.raw();
    raw.send(Q(`prepare atk_s as ${bump()}`));
    await raw.untilReady();
    raw.send(Q('explain analyze execute atk_s'));
    const replies = summarize(await raw.untilReady());
    raw.close();
    expect(replies).toContain('E:42501');
    expect(await counter()).toBe(0);
    expect(approvals.requests[1]!.statement.text).toContain(`prepare atk_s as ${bump()}`);
  });

  it('CREATE TABLE AS EXECUTE and a DO block cannot run the prepared statement', async () => {
    approvals.answers.push('approve', 'deny', 'deny');
    const raw = await wire.raw();
    raw.send(Q(`prepare atk_s as ${bump()} returning id`));
    await raw.untilReady();
    for (const sql of [
      `create temp table atk_x as execute atk_s`,
      `do $$ begin execute 'execute atk_s'; end $$`,
    ]) {
      raw.send(Q(sql));
      expect(summarize(await raw.untilReady())).not.toContain('C:SELECT 3');
    }
    raw.close();
    expect(await counter()).toBe(0);
  });
});

describe('an approved portal runs once, whatever reaches it', () => {
  it('SQL FETCH of an approved portal read its one execution; they do not run it again', async () => {
    approvals.answers.push('approve');
    const raw = await wire.raw();
    raw.send(Q('begin'));
    await raw.untilReady();
    raw.send(P(`${bump()} returning id`, 'atk_s'), B('atk_s', 'atk_p'), E('atk_p', 1), S);
    expect(summarize(await raw.untilReady())).toEqual(['1', '2', 'D', 's', 'Z:T']);
    // the rest of the one execution's rows, read by SQL; it does not run again
    raw.send(Q('fetch all from atk_p'));
    expect(summarize(await raw.untilReady())).toEqual(['T', 'D', 'D', 'C:FETCH 2', 'Z:T']);
    raw.send(Q('fetch all from atk_p'));
    expect(summarize(await raw.untilReady())).toEqual(['T', 'C:FETCH 0', 'Z:T']);
    raw.send(E('atk_p'), S);
    expect(summarize(await raw.untilReady())).toEqual(['C:UPDATE 0', 'Z:T']);
    raw.send(Q('commit'));
    expect(summarize(await raw.untilReady())).toEqual(['C:COMMIT', 'Z:I']);
    raw.close();
    expect(await counter()).toBe(1);
  });

  it('a held Bind, then in the same write: Close of its statement, a new Parse of the name with other SQL, Bind, Execute', async () => {
    approvals.answers.push('approve', 'deny');
    const raw = await wire.raw();
    raw.send(
      P(bump(), 'atk_s'),
      B('atk_s', 'atk_p'),
      E('atk_p'),
      S,
      serialize.close({ type: 'S', name: 'atk_s' }),
      P(`update ${t} set n = n + 100`, 'atk_s'),
      B('atk_s', 'atk_q'),
      E('atk_q'),
      E('atk_p'),
      S,
    );
    const replies = summarize(await raw.untilReady(2));
    raw.close();
    expect(replies).toEqual(['1', '2', 'C:UPDATE 3', 'Z:I', '3', '1', 'E:42501', 'Z:I']);
    expect(await counter()).toBe(1);
    expect(approvals.requests.map((r) => r.statement.text)).toEqual([bump(), `update ${t} set n = n + 100`]);
  });

  it('a held Bind followed by a simple Query of the same statement in one write: each asks, one runs', async () => {
    approvals.answers.push('approve', 'deny');
    const raw = await wire.raw();
    raw.send(P(bump()), B(), E(), S, Q(bump()));
    const replies = summarize(await raw.untilReady(2));
    raw.close();
    expect(replies).toEqual(['1', '2', 'C:UPDATE 3', 'Z:I', 'E:42501', 'Z:I']);
    expect(await counter()).toBe(1);
    expect(approvals.requests).toHaveLength(2);
  });
});

describe('portals the server dropped while the transaction goes on', () => {
  /** portal atk_p bound to `select id`, `drop` run, then a cursor of that name over a masked column */
  async function redeclared(drop: string[]): Promise<{ replies: string[]; rows: string }> {
    await wire.admin.query(`alter table ${t} add column password_hash text`);
    await wire.admin.query(`update ${t} set password_hash = 'hash-' || id`);
    const raw = await wire.raw();
    for (const sql of ['begin', 'savepoint a']) {
      raw.send(Q(sql));
      await raw.untilReady();
    }
    raw.send(P(`select id from ${t}`, 'atk_s'), B('atk_s', 'atk_p'), E('atk_p', 1), S);
    expect(summarize(await raw.untilReady())).toEqual(['1', '2', 'D', 's', 'Z:T']);
    for (const sql of [...drop, `declare atk_p cursor for select password_hash from ${t}`]) {
      raw.send(Q(sql));
      expect(summarize(await raw.untilReady()).at(-1), sql).toBe('Z:T');
    }
    raw.send(E('atk_p'), S);
    const got = await raw.untilReady();
    raw.send(Q('rollback'));
    await raw.untilReady();
    raw.close();
    const rows = got
      .filter((m) => m.type === 'D')
      .map((m) => m.body.toString('latin1'))
      .join(' ');
    return { replies: summarize(got), rows };
  }

  it('ROLLBACK TO SAVEPOINT drops the portal bound since: an Execute of a cursor DECLAREd under its name is refused, not masked as the old portal', async () => {
    const { replies, rows } = await redeclared(['rollback to savepoint a']);
    expect(rows).not.toContain('hash-');
    expect(replies).toEqual(['E:34000', 'Z:E']);
  });

  it('COMMIT AND CHAIN drops every portal while the session stays in a transaction: the same', async () => {
    const { replies, rows } = await redeclared(['commit and chain']);
    expect(rows).not.toContain('hash-');
    expect(replies).toEqual(['E:34000', 'Z:E']);
  });
});

describe('the values the reviewer sees are the values that run', () => {
  it('a value longer than a reviewer is shown is refused, not held: the approval would bind a tail nobody saw', async () => {
    const raw = await wire.raw();
    const long = `${'a'.repeat(250)}TAIL`;
    raw.send(P(`update ${t} set note = $1`), B('', '', [long]), E(), S);
    const replies = await raw.untilReady();
    expect(summarize(replies)).toEqual(['1', 'E:42501', 'Z:I']);
    expect(errorMessage(replies[1]!)).toContain('longer than the 200 characters a reviewer can be shown');
    raw.close();
    expect(approvals.requests).toHaveLength(0);
    expect(
      (await wire.admin.query(`select count(*)::int as n from ${t} where note is not null`)).rows[0].n,
    ).toBe(0);
  });

  it('more values than a reviewer is shown are refused, not held', async () => {
    const raw = await wire.raw();
    const values = Array.from({ length: 101 }, (_, i) => String(i));
    const list = values.map((_, i) => `$${i + 1}::int`).join(', ');
    raw.send(P(`update ${t} set n = n + 1, note = array[${list}]::text`), B('', '', values), E(), S);
    expect(summarize(await raw.untilReady())).toEqual(['1', 'E:42501', 'Z:I']);
    raw.close();
    expect(approvals.requests).toHaveLength(0);
    expect(await counter()).toBe(0);
  });

  it('a value up to the limit is held, shown whole, and runs once approved', async () => {
    approvals.answers.push('approve');
    const raw = await wire.raw();
    const full = 'b'.repeat(200);
    raw.send(P(`update ${t} set note = $1`), B('', '', [full]), E(), S);
    expect(summarize(await raw.untilReady())).toEqual(['1', '2', 'C:UPDATE 3', 'Z:I']);
    raw.close();
    expect(approvals.requests[0]!.statement.params!.values[0]).toEqual({ value: full, format: 'text' });
    expect(
      (await wire.admin.query(`select count(*)::int as n from ${t} where note = $1`, [full])).rows[0].n,
    ).toBe(3);
  });
});

describe('a session lives no longer than its token, held statements and COPY included', () => {
  /** the next sessions' tokens expire `seconds` from now */
  function tokensExpireIn(seconds: number): () => void {
    const cp = wire.controlPlane;
    const open = cp.openSession.bind(cp);
    cp.openSession = async (request) => {
      const opened = await open(request);
      return {
        ...opened,
        principal: { ...opened.principal, expiresAt: Math.floor(Date.now() / 1000) + seconds },
      };
    };
    return () => {
      cp.openSession = open;
    };
  }

  it('a statement held for approval when the token expires never runs, even when approved afterwards', async () => {
    const restore = tokensExpireIn(2);
    const raw = await wire.raw();
    restore();
    raw.send(Q(bump()));
    const id = await approvals.held(1);
    const replies = summarize(await raw.untilClosed());
    expect(replies).toContain('E:57P01');
    // the hold ended with the session: the approval is not taken, nothing is forwarded
    expect(approvals.waitSignals.at(-1)?.aborted).toBe(true);
    approvals.decide(id, { status: 'approved', decidedBy: 'rita@example.com' });
    expect(await counter()).toBe(0);
  });

  it('a COPY still streaming at exp is cut off and rolled back on the server', async () => {
    const restore = tokensExpireIn(2);
    const raw = await wire.raw();
    restore();
    raw.send(Q(`copy ${t} (id) from stdin`));
    expect((await raw.next()).type).toBe('G'); // CopyInResponse
    const row = Buffer.from('7\n');
    const data = Buffer.alloc(5 + row.length);
    data.write('d', 0, 'latin1');
    data.writeInt32BE(4 + row.length, 1);
    row.copy(data, 5);
    while (!raw.closed) {
      raw.send(data);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await rowsLeft()).toBe(3);
  });

  it('a CancelRequest with the key of an ended session cancels nothing of a later session', async () => {
    const first = await wire.raw();
    const { processId, secretKey } = first;
    first.send(serialize.end());
    await first.untilClosed();
    const second = await wire.raw();
    second.send(Q('select pg_sleep(1)'));
    await new Promise((r) => setTimeout(r, 200));
    await new Promise<void>((resolve) => {
      const socket = net.connect(wire.proxy.port, '127.0.0.1', () => {
        socket.end(serialize.cancel(processId, secretKey));
        socket.on('close', () => resolve());
      });
    });
    expect(summarize(await second.untilReady())).toEqual(['T', 'D', 'C:SELECT 1', 'Z:I']);
    second.close();
  });
});

/**
 * The same attacks against the real approvals service (DynamoDB store on dynalite): its retry
 * key (requester, database, fingerprint, text hash, values hash) decides which earlier approval a
 * retry may use, so it must hash what runs.
 */
describe('the real approvals service: a retry uses only an approval of what it runs', () => {
  let real: ApprovalWire;
  let db: LocalDynamoDb;
  let service: ApprovalsService;
  let ids = 0;
  beforeAll(async () => {
    db = await startDynamoDb();
    const tables = approvalTableNames('atk-appr-');
    await ensureApprovalTables(db.client, tables);
    service = createApprovalsService({
      store: new DynamoDbApprovalStore(db.client, tables.approvals),
      audit: new RecordingAuditStore(),
      defaultApprovers: ['reviewers'],
      now: () => new Date(),
      newId: () => `atk-${++ids}`,
    });
    real = await startApprovalWire({ maxHoldSeconds: 2, approvalsApi: service });
  });
  afterAll(async () => {
    await real?.stop();
    await db?.stop();
  });

  /** the reviewer approves the newest pending approval; returns what they were shown */
  async function reviewerApproves(): Promise<string> {
    let pending: ApprovalView[] = [];
    for (let tries = 0; pending.length === 0; tries++) {
      if (tries > 400) throw new Error('no approval was asked for');
      await new Promise((r) => setTimeout(r, 25));
      pending = await service.listPending();
    }
    const approval = pending[0]!;
    await service.decide(approval.id, reviewer(), { verdict: 'approve' });
    return approval.text;
  }

  it('an approval of "EXECUTE s" (timed out, approved later) is not used by an EXECUTE of s prepared again as a DELETE', async () => {
    const v = `atk_retry_${++tables}`;
    await real.admin.query(`create table ${v} (id int, n int not null default 0)`);
    await real.admin.query(`insert into ${v} (id) values (1), (2), (3)`);
    await real.admin.query(`grant all on ${v} to app_rw`);
    const rows = async () => Number((await real.admin.query(`select count(*) from ${v}`)).rows[0].count);

    // session 1: PREPARE (approved: it runs nothing), EXECUTE held past the hold, approved afterwards
    const first = await real.raw();
    first.send(Q(`prepare atk_s as update ${v} set n = n + 1`));
    const prepared = first.untilReady();
    expect(await reviewerApproves()).toContain('prepare atk_s');
    expect(summarize(await prepared)).toEqual(['N:00000', 'C:PREPARE', 'Z:I']);
    first.send(Q('execute atk_s'));
    expect(summarize(await first.untilReady())).toEqual(['N:00000', 'E:42501', 'Z:I']);
    const shown = await reviewerApproves(); // approved, unused: a retry of it may run once
    first.close();

    // session 2 of the same person: the name now prepares a DELETE (that PREPARE approved: it runs
    // nothing either), then the same text "execute atk_s"
    const second = await real.raw();
    second.send(Q(`prepare atk_s as delete from ${v}`));
    const prepared2 = second.untilReady();
    expect(await reviewerApproves()).toContain('delete');
    expect(summarize(await prepared2)).toEqual(['N:00000', 'C:PREPARE', 'Z:I']);
    second.send(Q('execute atk_s'));
    const replies = summarize(await second.untilReady());
    second.close();
    expect(shown).not.toContain('delete');
    expect(replies).toEqual(['N:00000', 'E:42501', 'Z:I']);
    expect(await rows(), 'rows left on the server').toBe(3);
  });
});
