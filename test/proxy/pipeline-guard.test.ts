/**
 * proxy/pipeline-guard.ts: which pipelined client messages need the pins verified first, and how.
 */
import { describe, expect, it } from 'vitest';
import { type GuardAction, PIN_CHECK_MARK, PipelineGuard } from '../../proxy/pipeline-guard.ts';
import { FrameReader } from '../../proxy/wire/frame-reader.ts';
import { bind, describePortal, execute, parse, query, sync } from '../fixtures/raw-frames.ts';

function frameOf(bytes: Buffer) {
  const reader = new FrameReader(1 << 20);
  reader.push(bytes);
  return reader.next()!;
}

/** The guard's answer to each message, in order. */
function run(guard: PipelineGuard, messages: Buffer[], skipping = false): GuardAction[] {
  return messages.map((m) => guard.before(frameOf(m), skipping));
}

const ascii = "insert into t values ('plain')";
const accented = "insert into t values ('é')";
const backslash = "select E'a\\'b'";

describe('PipelineGuard', () => {
  it('the first statement of a session, or one after everything was answered, passes at once', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [query(accented)])).toEqual(['forward']);
    guard.verified();
    expect(run(guard, [query(backslash)])).toEqual(['forward']);
  });

  it('ASCII text without backslashes passes at once behind anything', () => {
    const guard = new PipelineGuard('app_rw');
    expect(
      run(guard, [
        query(ascii),
        query(ascii),
        parse('', ascii),
        bind('', ''),
        execute(),
        sync(),
        query(ascii),
      ]),
    ).toEqual(Array(7).fill('forward'));
  });

  it('a Query with non-ASCII text or a backslash behind an unanswered Query waits', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [query(ascii), query(accented)])).toEqual(['forward', 'wait']);
    // asking again before anything was answered: still wait; once verified it passes
    expect(run(guard, [query(backslash)])).toEqual(['wait']);
    guard.verified();
    expect(run(guard, [query(accented)])).toEqual(['forward']);
  });

  it('behind a synced extended cycle: waits (the cycle will be answered without more input)', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [parse('', ascii), bind('', ''), execute(), sync(), parse('', accented)])).toEqual([
      'forward',
      'forward',
      'forward',
      'forward',
      'wait',
    ]);
  });

  it('inside an open extended cycle: the pins are checked in the pipeline, once per stretch of code', () => {
    const guard = new PipelineGuard('app_rw');
    expect(
      run(guard, [
        parse('', ascii),
        bind('', ''),
        execute(),
        parse('', accented), // code ran before it in this cycle
        parse('', accented), // the first Parse may run code (a domain's input function)
        bind('', ''),
        execute(),
        sync(),
      ]),
    ).toEqual(['forward', 'forward', 'forward', 'check', 'check', 'forward', 'forward', 'forward']);
  });

  it('a simple Query sent inside an open cycle is checked in the pipeline too', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [parse('', ascii), bind('', ''), execute(), query(accented)])).toEqual([
      'forward',
      'forward',
      'forward',
      'check',
    ]);
  });

  it('names that are not ASCII count (the server converts them too)', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [parse('s', ascii), bind('', 'ñ'), execute('ñ'), describePortal('ñ')])).toEqual([
      'forward',
      'check',
      'check',
      'check',
    ]);
  });

  it('nothing is checked while the server skips to Sync anyway', () => {
    const guard = new PipelineGuard('app_rw');
    expect(run(guard, [parse('', ascii), bind('', ''), execute()], false)).toEqual([
      'forward',
      'forward',
      'forward',
    ]);
    expect(run(guard, [parse('', accented)], true)).toEqual(['forward']);
  });

  it('the check is a Parse, Bind, Execute and two Closes of one statement that fails when a pin moved', () => {
    const messages = new PipelineGuard("o'brien").checkMessages();
    const types: string[] = [];
    const reader = new FrameReader(1 << 20);
    reader.push(messages);
    for (let f = reader.next(); f; f = reader.next()) types.push(String.fromCharCode(f.type));
    expect(types).toEqual(['P', 'B', 'E', 'C', 'C']);
    const text = messages.toString('utf8');
    expect(text).toContain(PIN_CHECK_MARK);
    expect(text).toContain("current_setting('client_encoding') OPERATOR(pg_catalog.=) 'UTF8'");
    expect(text).toContain("current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on'");
    expect(text).toContain("session_user OPERATOR(pg_catalog.=) 'o''brien'");
    // a name no client can know
    expect(new PipelineGuard('x').checkMessages().toString('utf8')).not.toBe(text);
  });
});
