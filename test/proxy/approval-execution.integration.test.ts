/**
 * One approval releases one execution, through node-postgres (extended protocol, named and unnamed
 * statements) and raw wire bytes, on a real PostgreSQL: the Bind of a statement that needs approval
 * is held with its values, the approval request shows them (masked where a mask rule or a detector
 * says so), and what ran is counted on the server. The approvals API is the controllable stand-in.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { paramsHash } from '../../shared/approvals/params.ts';
import type { ControlledApprovals } from '../fakes/controlled-approvals.ts';
import { type ApprovalWire, startApprovalWire } from '../fixtures/approval-wire.ts';
import { summarize } from '../fixtures/raw-client.ts';
import { waitFor } from '../fixtures/wait-for.ts';

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
  t = `once_${++tables}`;
  await wire.admin.query(`create table ${t} (id int, n int not null default 0, ssn text, note text)`);
  await wire.admin.query(`insert into ${t} (id) values (1), (2), (3)`);
});

const counter = async () => (await wire.admin.query(`select max(n)::int as n from ${t}`)).rows[0].n as number;
const approve = (id: string) => approvals.decide(id, { status: 'approved', decidedBy: 'rita@example.com' });
const deny = (id: string) => approvals.decide(id, { status: 'denied', decidedBy: 'rita@example.com' });
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: { code?: string; message: string }) => e,
  );

describe('one approval, one execution (node-postgres)', () => {
  it('a named statement bound again, with other or the same values, is held again each time', async () => {
    const c = await wire.client();
    const text = `update ${t} set n = n + $1::int`;
    const first = c.query({ name: 'bump', text, values: [1] });
    approve(await approvals.held(1));
    expect((await first).rowCount).toBe(3);
    // the report: one approval, then the same prepared statement again and again
    for (const [i, value] of [5, 1, 1, 9].entries()) {
      const again = failure(c.query({ name: 'bump', text, values: [value] }));
      deny(await approvals.held(i + 2));
      expect((await again)?.code).toBe('42501');
    }
    expect(await counter()).toBe(1);
    expect(approvals.requests.map((r) => r.statement.params?.values.map((v) => v.value))).toEqual([
      ['1'],
      ['5'],
      ['1'],
      ['1'],
      ['9'],
    ]);
    // the same values hash the same, so a retry of those values finds its approval
    const hashes = approvals.requests.map((r) => r.statement.params?.hash);
    expect(hashes[0]).toBe(hashes[2]);
    expect(hashes[0]).not.toBe(hashes[1]);
    expect(hashes[0]).toBe(paramsHash([{ type: 0, format: 0, bytes: Buffer.from('1') }]));
    await c.end();
  });

  it('an unnamed statement: the reviewer sees the values, masked where a mask rule or a detector covers them', async () => {
    const c = await wire.client();
    const held = c.query(`update ${t} set ssn = $1, note = $2`, [
      '123-45-6789',
      'paid with 4111 1111 1111 1111',
    ]);
    const id = await approvals.held(1);
    const request = approvals.requests[0]!;
    expect(request.statement).toMatchObject({
      text: `update ${t} set ssn = $1, note = $2`,
      protocol: 'extended',
    });
    const [ssn, note] = request.statement.params!.values;
    expect(ssn).toEqual({ value: '***', format: 'text', masked: 'mask-ssn' });
    expect(note?.masked).toBe('card');
    expect(JSON.stringify(request)).not.toContain('6789');
    expect(JSON.stringify(request)).not.toContain('4111 1111 1111');
    approve(id);
    expect((await held).rowCount).toBe(3);
    // what ran is what was approved, values included
    expect((await wire.admin.query(`select distinct ssn from ${t}`)).rows).toEqual([{ ssn: '123-45-6789' }]);
    await c.end();
  });

  it('while it waits for approval, nothing of the statement is on the server: its table can be altered', async () => {
    const c = await wire.client();
    const held = failure(c.query(`update ${t} set n = n + $1::int`, [1]));
    const id = await approvals.held(1);
    await wire.admin.query("set lock_timeout = '2s'");
    await wire.admin.query(`alter table ${t} add column extra int`);
    await wire.admin.query('reset lock_timeout');
    deny(id);
    expect((await held)?.code).toBe('42501');
    expect(await counter()).toBe(0);
    await c.end();
  });

  it('a cancel while held ends the hold with 57014; a retry of the same values asks with the same binding', async () => {
    const c = await wire.client();
    const text = `update ${t} set n = n + $1::int`;
    const held = failure(c.query(text, [3]));
    await approvals.held(1);
    await waitFor(() => approvals.waitSignals.length > 0);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const socket = net.connect(wire.proxy.port, '127.0.0.1', () => {
        socket.end(serialize.cancel(processID, secretKey));
        resolve();
      });
    });
    expect((await held)?.code).toBe('57014');
    const retry = c.query(text, [3]);
    approve(await approvals.held(2));
    expect((await retry).rowCount).toBe(3);
    expect(approvals.requests[1]!.statement.params!.hash).toBe(approvals.requests[0]!.statement.params!.hash);
    expect(await counter()).toBe(3);
    await c.end();
  });
});

describe('the audit trail of an approved execution', () => {
  it('the released execution carries the approval id; a second Execute is refused, with why', async () => {
    approvals.answers.push('approve');
    const raw = await wire.raw();
    const text = `update ${t} set n = n + 1`;
    raw.send(
      serialize.parse({ text }),
      serialize.bind({ portal: 'p' }),
      serialize.execute({ portal: 'p' }),
      serialize.execute({ portal: 'p' }),
      serialize.sync(),
    );
    expect(summarize(await raw.untilReady())).toEqual(['1', '2', 'C:UPDATE 3', 'E:42501', 'Z:I']);
    raw.close();
    const mine = () =>
      wire.controlPlane.statements().filter((e) => e.text === text && e.outcome !== 'pending');
    await waitFor(() => mine().length === 2, 10_000);
    const [ran, refused] = mine();
    expect(ran).toMatchObject({
      decision: 'allow',
      approvalId: 'appr-1',
      portalName: 'p',
      commandTag: 'UPDATE 3',
    });
    expect(refused).toMatchObject({
      decision: 'deny',
      outcome: 'refused',
      approvalId: 'appr-1',
      sqlstate: '42501',
    });
    expect(refused?.errorMessage).toMatch(
      /portal "p" already ran the one execution approval appr-1 released/,
    );
  });

  it('an Execute of a portal pgwarden never saw bound is recorded as refused, not as an allowed unknown', async () => {
    const raw = await wire.raw();
    raw.send(serialize.execute({ portal: 'ghost' }), serialize.sync());
    expect(summarize(await raw.untilReady())).toEqual(['E:34000', 'Z:I']);
    raw.close();
    await waitFor(() => wire.controlPlane.statements().some((e) => e.portalName === 'ghost'), 10_000);
    const record = wire.controlPlane.statements().find((e) => e.portalName === 'ghost');
    expect(record).toMatchObject({
      decision: 'deny',
      ruleId: 'unknown-portal',
      outcome: 'refused',
      sqlstate: '34000',
    });
  });
});
