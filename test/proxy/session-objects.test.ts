import { describe, expect, it } from 'vitest';
import { dropEndedPortals, type Portal, settle, whenSettled } from '../../proxy/session-objects.ts';

const portal = (epoch: number) => ({ epoch, settled: true }) as Portal;

describe('session objects', () => {
  it('wakes every waiter once when the server answers, and answers later waiters at once', async () => {
    const item = { settled: false, epoch: 0 };
    const woken: number[] = [];
    const waits = [whenSettled(item).then(() => woken.push(1)), whenSettled(item).then(() => woken.push(2))];
    settle(item);
    settle(item);
    await Promise.all(waits);
    expect(woken).toEqual([1, 2]);
    await whenSettled(item);
  });

  it('drops the portals bound before the Sync or Query that ended their transaction', () => {
    const portals = new Map([
      ['', portal(1)],
      ['a', portal(2)],
      ['b', portal(3)],
    ]);
    dropEndedPortals(portals, 3);
    expect([...portals.keys()]).toEqual(['b']);
    const unnamed = new Map([['', portal(4)]]);
    dropEndedPortals(unnamed, 4);
    expect(unnamed.size).toBe(1);
    dropEndedPortals(unnamed, 5);
    expect(unnamed.size).toBe(0);
  });
});
