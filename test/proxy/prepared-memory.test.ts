/** proxy/prepared-memory.ts: what a session prepared, never forgotten, bounded. */
import { describe, expect, it } from 'vitest';
import { PreparedMemory } from '../../proxy/prepared-memory.ts';
import { PREPARED_OVERFLOW } from '../../shared/decide-prepared.ts';

describe('PreparedMemory', () => {
  it('keeps every distinct text per name, once, and ignores the unnamed statement', () => {
    const memory = new PreparedMemory();
    memory.remember('p', 'PREPARE p AS DELETE FROM t');
    memory.remember('p', 'PREPARE p AS SELECT 1');
    memory.remember('p', 'PREPARE p AS SELECT 1');
    memory.remember('', 'select 1');
    expect(memory.view).toEqual({ p: ['PREPARE p AS DELETE FROM t', 'PREPARE p AS SELECT 1'] });
  });

  it('holds names as data (no prototype)', () => {
    const memory = new PreparedMemory();
    memory.remember('__proto__', 'x');
    memory.remember('constructor', 'y');
    expect(Object.keys(memory.view).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(memory.view, '__proto__')?.value).toEqual(['x']);
  });

  it('past its bounds stores the overflow marker instead of forgetting (EXECUTE of the name is then denied)', () => {
    const memory = new PreparedMemory();
    for (let i = 0; i < 40; i++) memory.remember('p', `PREPARE p AS SELECT ${i}`);
    const texts = memory.view.p ?? [];
    expect(texts).toHaveLength(33);
    expect(texts.at(-1)).toBe(PREPARED_OVERFLOW);
    expect(texts[0]).toBe('PREPARE p AS SELECT 0');
    for (let i = 0; i < 10_010; i++) memory.remember(`n${i}`, `PREPARE n${i} AS SELECT 1`);
    expect(memory.view.n10009).toEqual([PREPARED_OVERFLOW]);
    expect(memory.view.n0).toEqual(['PREPARE n0 AS SELECT 1']);
  });
});
