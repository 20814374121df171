/**
 * The approval bypass corpus (wire-corpus/approval-bypass-corpus.ts) against a real PostgreSQL
 * through the real proxy: each scenario's replies, what ran on the server (the counter its held
 * statement bumps), how many approvals were asked for, and that the session is still usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApprovalWire, startApprovalWire } from '../fixtures/approval-wire.ts';
import { type RawClient, type RawMessage, summarize } from '../fixtures/raw-client.ts';
import { APPROVAL_BYPASS_CORPUS, type WireStep } from './wire-corpus/approval-bypass-corpus.ts';

let wire: ApprovalWire;
beforeAll(async () => {
  wire = await startApprovalWire();
});
afterAll(async () => {
  await wire?.stop();
});

async function replies(client: RawClient, step: WireStep): Promise<RawMessage[]> {
  if (step.messages === undefined) return client.untilReady(step.ready ?? 1);
  const out: RawMessage[] = [];
  while (out.length < step.messages) out.push(await client.next());
  return out;
}

describe('the approval bypass corpus', () => {
  let n = 0;
  for (const scenario of APPROVAL_BYPASS_CORPUS) {
    it(scenario.name, async () => {
      const t = `corpus_${++n}`;
      await wire.admin.query(`create table ${t} (id int, n int not null default 0)`);
      await wire.admin.query(`insert into ${t} (id) values (1), (2), (3)`);
      const approvals = wire.reset();
      approvals.answers.push(...(scenario.answers ?? []));
      // unscripted requests are denied at once, so a mistake cannot hang the suite
      for (let i = approvals.answers.length; i < 10; i++) approvals.answers.push('deny');
      const client = await wire.raw();
      try {
        for (const step of scenario.steps(t)) {
          client.send(...step.send);
          expect(summarize(await replies(client, step))).toEqual(step.expect);
        }
        client.send(Buffer.from('Q\0\0\0\rselect 1\0', 'latin1'));
        expect(summarize(await client.untilReady())).toEqual(['T', 'D', 'C:SELECT 1', 'Z:I']);
      } finally {
        client.close();
      }
      const { rows } = await wire.admin.query(`select max(n)::int as counter from ${t}`);
      expect(rows[0].counter, 'times the held statement ran on the server').toBe(scenario.counter);
      expect(approvals.requests.length, 'approvals asked for').toBe(scenario.asked ?? 0);
    });
  }
});
