/**
 * Wire scenarios that try to run a statement without the decision it needs: unknown statements and
 * portals, names reused after a refusal or a failure, messages the server skipped, SQL that changes
 * what a name holds, and an approval used more than once. Each one was a way through, or is a
 * neighbour of one; every bypass found stays here for good.
 *
 * Each scenario runs on a fresh table `t` (3 rows, n = 0) whose counter is bumped by the one
 * statement that needs approval under the default policy (`update t set n = n + 1`, an UPDATE
 * without WHERE): `counter` is max(n) on the server afterwards, i.e. how many times it really ran.
 * Steps are sent as raw bytes; the replies are summarized (test/fixtures/raw-client.ts summarize:
 * '1' ParseComplete, '2' BindComplete, '3' CloseComplete, 's' PortalSuspended, 't'
 * ParameterDescription, 'n' NoData, 'E:<SQLSTATE>', 'C:<tag>', 'Z:<status>').
 */
import { serialize } from 'pg-protocol';
import type { ScriptedAnswer } from '../../fakes/controlled-approvals.ts';

export interface WireStep {
  send: Buffer[];
  /** read up to this many ReadyForQuery (default 1) … */
  ready?: number;
  /** … or exactly this many messages (a pipeline without Sync) */
  messages?: number;
  expect: string[];
}

export interface WireScenario {
  name: string;
  /** how the approvals stand-in answers each request, in order (default: deny) */
  answers?: ScriptedAnswer[];
  steps: (t: string) => WireStep[];
  /** max(n) on the server afterwards: how many times the held statement ran */
  counter: number;
  /** approvals asked for (default 0) */
  asked?: number;
}

const P = (text: string, name = '', types?: number[]) =>
  serialize.parse({ name, text, ...(types && { types }) });
const B = (statement = '', portal = '', values?: Array<string | Buffer | null>) =>
  serialize.bind({ statement, portal, ...(values && { values }) });
const E = (portal = '', rows = 0) => serialize.execute({ portal, rows });
const D = (type: 'S' | 'P', name = '') => serialize.describe({ type, name });
const C = (type: 'S' | 'P', name = '') => serialize.close({ type, name });
const Q = (text: string) => serialize.query(text);
const S = serialize.sync();
const H = serialize.flush();
const bump = (t: string) => `update ${t} set n = n + 1`;
const int4 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

export const APPROVAL_BYPASS_CORPUS: WireScenario[] = [
  // ── unknown statements and portals ────────────────────────────────────────────────────────────
  {
    name: 'Bind of the unnamed statement with no Parse in the session',
    steps: () => [{ send: [B(), E(), S], expect: ['E:26000', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'Bind of a named statement never parsed through pgwarden',
    steps: () => [{ send: [B('ghost'), E(), S], expect: ['E:26000', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'Bind before its Parse in the same pipeline',
    steps: (t) => [{ send: [B(), P(bump(t)), E(), S], expect: ['E:26000', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'Execute of an unknown unnamed portal, and of an unknown named one',
    steps: () => [
      { send: [E(), S], expect: ['E:34000', 'Z:I'] },
      { send: [E('ghost'), S], expect: ['E:34000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'Execute after Parse without Bind',
    steps: () => [{ send: [P('select 1'), E(), S], expect: ['1', 'E:34000', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'Describe of an unknown statement or portal',
    steps: () => [
      { send: [D('S', 'ghost'), S], expect: ['E:26000', 'Z:I'] },
      { send: [D('P', 'ghost'), S], expect: ['E:34000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'Close of unknown names passes (it only ever removes)',
    steps: () => [{ send: [C('S', 'ghost'), C('P', 'ghost'), S], expect: ['3', '3', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'a refusal without Sync (Flush): one error, then ReadyForQuery at the Sync',
    steps: () => [
      { send: [B('ghost'), E(), H], messages: 1, expect: ['E:26000'] },
      { send: [E('ghost'), H], messages: 0, expect: [] },
      { send: [S], expect: ['Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'a Query the server will skip (an error before it, no Sync yet) asks no approval and runs nothing',
    steps: (t) => [
      { send: [E('ghost'), H], messages: 1, expect: ['E:34000'] },
      { send: [Q(bump(t))], messages: 0, expect: [] },
      { send: [S], expect: ['Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'the unnamed portal is gone with the implicit transaction of its pipeline',
    steps: () => [
      { send: [P('select 1'), B(), S], expect: ['1', '2', 'Z:I'] },
      { send: [E(), S], expect: ['E:34000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'a simple Query drops the unnamed statement',
    steps: () => [
      { send: [P('select 1'), S], expect: ['1', 'Z:I'] },
      { send: [Q('select 2')], expect: ['T', 'D', 'C:SELECT 1', 'Z:I'] },
      { send: [B(), E(), S], expect: ['E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'a portal bound in an earlier pipeline of a transaction runs; after COMMIT it is gone',
    steps: () => [
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      // the Execute waits for the BindComplete of the pipeline before (no deadlock)
      {
        send: [P('select 1', 's'), B('s', 'c'), S, E('c'), S],
        ready: 2,
        expect: ['1', '2', 'Z:T', 'D', 'C:SELECT 1', 'Z:T'],
      },
      { send: [Q('commit')], expect: ['C:COMMIT', 'Z:I'] },
      { send: [E('c'), S], expect: ['E:34000', 'Z:I'] },
    ],
    counter: 0,
  },
  // ── names reused after a refusal, a failure or a skip ─────────────────────────────────────────
  {
    name: 'a refused Parse clears its name (the server still holds the earlier statement)',
    steps: () => [
      { send: [P('select 1', 's'), S], expect: ['1', 'Z:I'] },
      { send: [P("select pg_read_file('/etc/passwd')", 's'), S], expect: ['E:42501', 'Z:I'] },
      { send: [B('s'), E(), S], expect: ['E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'a Parse the server rejects (name taken) is not recorded: the server still holds the held statement',
    steps: (t) => [
      // a statement that needs approval: its Parse goes at the Sync, its Bind would be held
      { send: [P(bump(t), 'p'), S], expect: ['1', 'Z:I'] },
      { send: [P('select 1', 'p'), S], expect: ['E:42P05', 'Z:I'] },
      { send: [B('p'), E(), S], expect: ['E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'the same, pipelined: the Bind after the Sync waits for the Parse it relies on',
    steps: (t) => [
      {
        send: [P(bump(t), 'p'), S, P('select 1', 'p'), S, B('p'), E(), S],
        ready: 3,
        expect: ['1', 'Z:I', 'E:42P05', 'Z:I', 'E:26000', 'Z:I'],
      },
    ],
    counter: 0,
  },
  {
    name: 'a Parse the server skipped after an earlier error is not recorded',
    steps: (t) => [
      { send: [P(bump(t), 'q'), S], expect: ['1', 'Z:I'] },
      // 1/0 is folded when the Bind plans it: the Bind fails, the Parse after it is skipped
      { send: [P('select 1/0'), B(), E(), P('select 1', 'q'), S], expect: ['1', 'E:22012', 'Z:I'] },
      { send: [B('q'), E(), S], expect: ['E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'the same, pipelined in one write',
    steps: (t) => [
      {
        send: [P(bump(t), 'q'), S, P('select 1/0'), B(), E(), P('select 1', 'q'), S, B('q'), E(), S],
        ready: 3,
        expect: ['1', 'Z:I', '1', 'E:22012', 'Z:I', 'E:26000', 'Z:I'],
      },
    ],
    counter: 0,
  },
  {
    name: 'a Bind the server rejects (portal name taken) leaves no portal for the proxy',
    answers: ['approve'],
    steps: (t) => [
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      { send: [P(bump(t), 's'), B('s', 'p'), E('p'), S], expect: ['1', '2', 'C:UPDATE 3', 'Z:T'] },
      { send: [P('select 1', 'x'), B('x', 'p'), E('p'), S], expect: ['1', 'E:42P03', 'Z:E'] },
      { send: [E('p'), S], expect: ['E:34000', 'Z:E'] },
      { send: [Q('rollback')], expect: ['C:ROLLBACK', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  // ── SQL that changes what a name holds ─────────────────────────────────────────────────────────
  {
    name: 'DEALLOCATE then SQL PREPARE of a Parse’s name: the old decision is not used for the new text',
    answers: ['approve'],
    steps: (t) => [
      { send: [P('select 1', 'p'), S], expect: ['1', 'Z:I'] },
      { send: [Q('deallocate p')], expect: ['C:DEALLOCATE', 'Z:I'] },
      // the PREPARE is held and approved: preparing runs nothing
      { send: [Q(`prepare p as ${bump(t)}`)], expect: ['C:PREPARE', 'Z:I'] },
      // two texts prepared the name: the reviewer could not be shown which runs, so it is refused
      { send: [B('p'), E(), S], expect: ['E:42501', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'DISCARD ALL then SQL PREPARE of a Parse’s name',
    answers: ['approve'],
    steps: (t) => [
      { send: [P('select 1', 'p'), S], expect: ['1', 'Z:I'] },
      { send: [Q('discard all')], expect: ['C:DISCARD ALL', 'Z:I'] },
      { send: [Q(`prepare p as ${bump(t)}`)], expect: ['C:PREPARE', 'Z:I'] },
      { send: [B('p'), E(), S], expect: ['E:42501', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'a statement SQL PREPAREd once and bound by the protocol is held at its Bind, once per approval',
    answers: ['approve', 'deny', 'approve'],
    steps: (t) => [
      { send: [Q(`prepare p2 as ${bump(t)}`)], expect: ['C:PREPARE', 'Z:I'] },
      { send: [B('p2'), E(), S], expect: ['E:42501', 'Z:I'] },
      { send: [B('p2'), E(), S], expect: ['2', 'C:UPDATE 3', 'Z:I'] },
    ],
    counter: 1,
    asked: 3,
  },
  {
    // the harmless direction: the proxy still knows the name, the server refuses it
    name: 'DEALLOCATE ALL: a Bind of a Parse’s name reaches the server, which has no such statement',
    steps: () => [
      { send: [P('select 1', 'p'), S], expect: ['1', 'Z:I'] },
      { send: [Q('deallocate all')], expect: ['C:DEALLOCATE ALL', 'Z:I'] },
      { send: [B('p'), E(), S], expect: ['E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'SQL CLOSE of a protocol portal, then DECLARE under its name: the proxy forgot the portal',
    steps: (t) => [
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      { send: [P('select 1', 's'), B('s', 'c'), S], expect: ['1', '2', 'Z:T'] },
      { send: [Q('close c')], expect: ['C:CLOSE CURSOR', 'Z:T'] },
      { send: [Q(`declare c cursor for select n from ${t}`)], expect: ['C:DECLARE CURSOR', 'Z:T'] },
      { send: [E('c'), S], expect: ['E:34000', 'Z:E'] },
      { send: [Q('rollback')], expect: ['C:ROLLBACK', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    name: 'SQL FETCH cannot run a statement held for approval: its portal does not exist until approved',
    answers: ['deny'],
    steps: (t) => [
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      { send: [P(`${bump(t)} returning n`, 's'), B('s', 'c'), S], expect: ['1', 'E:42501', 'Z:E'] },
      { send: [Q('rollback')], expect: ['C:ROLLBACK', 'Z:I'] },
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      { send: [Q('fetch all from c')], expect: ['E:34000', 'Z:E'] },
      { send: [Q('rollback')], expect: ['C:ROLLBACK', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  // ── the statement that needs approval ──────────────────────────────────────────────────────────
  {
    name: 'Parse, Bind, Execute of a statement that needs approval: denied, nothing runs',
    steps: (t) => [{ send: [P(bump(t)), B(), E(), S], expect: ['1', 'E:42501', 'Z:I'] }],
    counter: 0,
    asked: 1,
  },
  {
    name: 'Describe of a statement held at its Bind sends its Parse; nothing runs, nothing is asked',
    steps: (t) => [{ send: [P(bump(t), 's'), D('S', 's'), S], expect: ['1', 't', 'n', 'Z:I'] }],
    counter: 0,
  },
  {
    name: 'Parse and Flush, then Bind: the Parse goes at the Flush, the Bind is still held',
    steps: (t) => [
      { send: [P(bump(t)), H], messages: 1, expect: ['1'] },
      { send: [B(), E(), S], expect: ['E:42501', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'Close of the statement held at its Bind, then its Bind',
    steps: (t) => [
      { send: [P(bump(t), 's'), C('S', 's'), B('s'), E(), S], expect: ['1', '3', 'E:26000', 'Z:I'] },
    ],
    counter: 0,
  },
  {
    // the refusal fails the pipeline's implicit transaction, so the approved run is rolled back
    // with it, as after any error in a pipeline: the server shows it never ran twice
    name: 'one approval, one execution: a second Execute of the approved portal in the same pipeline',
    answers: ['approve'],
    steps: (t) => [
      { send: [P(bump(t)), B(), E(), E(), S], expect: ['1', '2', 'C:UPDATE 3', 'E:42501', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'the unnamed statement replaced mid-pipeline: portals keep what they were bound to',
    answers: ['approve'],
    steps: (t) => [
      {
        send: [P('select 1'), B('', 'a'), P(bump(t)), B('', 'b'), E('a'), E('b'), S],
        expect: ['1', '2', '1', '2', 'D', 'C:SELECT 1', 'C:UPDATE 3', 'Z:I'],
      },
    ],
    counter: 1,
    asked: 1,
  },
  {
    name: 'the unnamed statement replaced mid-pipeline, the held Bind denied: the earlier portal does not run either',
    answers: ['deny'],
    steps: (t) => [
      {
        send: [P('select 1'), B('', 'a'), P(bump(t)), B('', 'b'), E('a'), S],
        expect: ['1', '2', '1', 'E:42501', 'Z:I'],
      },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'a re-Bind with the same values, and with other values, asks again',
    answers: ['approve', 'deny', 'approve'],
    steps: (t) => [
      {
        send: [P(`update ${t} set n = n + $1::int`, 's'), B('s', '', ['1']), E(), S],
        expect: ['1', '2', 'C:UPDATE 3', 'Z:I'],
      },
      { send: [B('s', '', ['1']), E(), S], expect: ['E:42501', 'Z:I'] },
      { send: [B('s', '', ['5']), E(), S], expect: ['2', 'C:UPDATE 3', 'Z:I'] },
    ],
    counter: 6,
    asked: 3,
  },
  {
    name: 'binary parameters are bound by their bytes: the approval of 1 does not run 7',
    answers: ['approve', 'deny'],
    steps: (t) => [
      {
        send: [P(`update ${t} set n = n + $1`, 's', [23]), B('s', '', [int4(1)]), E(), S],
        expect: ['1', '2', 'C:UPDATE 3', 'Z:I'],
      },
      { send: [B('s', '', [int4(7)]), E(), S], expect: ['E:42501', 'Z:I'] },
    ],
    counter: 1,
    asked: 2,
  },
  {
    name: 'a portal named like an approved one: gone with its transaction, a new one of that name runs what it is bound to',
    answers: ['approve'],
    steps: (t) => [
      { send: [P(bump(t)), B('', 'p'), E('p'), S], expect: ['1', '2', 'C:UPDATE 3', 'Z:I'] },
      { send: [E('p'), S], expect: ['E:34000', 'Z:I'] },
      { send: [P('select 1', 'x'), B('x', 'p'), E('p'), S], expect: ['1', '2', 'D', 'C:SELECT 1', 'Z:I'] },
      { send: [E('p'), S], expect: ['E:34000', 'Z:I'] },
    ],
    counter: 1,
    asked: 1,
  },
  {
    name: 'a closed approved portal cannot be run again',
    answers: ['approve'],
    steps: (t) => [
      { send: [P(bump(t)), B('', 'p'), C('P', 'p'), E('p'), S], expect: ['1', '2', '3', 'E:34000', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
  {
    name: 'a row-limited Execute: the approved execution goes on after PortalSuspended',
    answers: ['approve'],
    steps: (t) => [
      {
        // the second Execute waits for the first to end (suspended: it may go on)
        send: [P(`${bump(t)} returning n`), B(), E('', 2), E('', 2), S],
        expect: ['1', '2', 'D', 'D', 's', 'D', 'C:UPDATE 1', 'Z:I'],
      },
    ],
    counter: 1,
    asked: 1,
  },
  {
    name: 'a row-limited Execute: once it has completed, a further Execute is refused',
    answers: ['approve'],
    steps: (t) => [
      {
        send: [P(`${bump(t)} returning n`), B(), E('', 2), E('', 2), E('', 2), E('', 0), S],
        expect: ['1', '2', 'D', 'D', 's', 'D', 'C:UPDATE 1', 'E:42501', 'Z:I'],
      },
    ],
    counter: 0, // the refusal rolls back the pipeline's implicit transaction
    asked: 1,
  },
  {
    name: 'an approved portal in a transaction: a second Execute in a later pipeline is refused',
    answers: ['approve'],
    steps: (t) => [
      { send: [Q('begin')], expect: ['C:BEGIN', 'Z:T'] },
      { send: [P(bump(t), 's'), B('s', 'p'), E('p'), S], expect: ['1', '2', 'C:UPDATE 3', 'Z:T'] },
      { send: [E('p'), S], expect: ['E:42501', 'Z:E'] },
      { send: [Q('rollback')], expect: ['C:ROLLBACK', 'Z:I'] },
    ],
    counter: 0,
    asked: 1,
  },
];
