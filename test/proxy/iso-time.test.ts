import { describe, expect, it } from 'vitest';
import { isoTime } from '../../proxy/iso-time.ts';

describe('isoTime', () => {
  it('formats exactly like Date#toISOString, within a second and across seconds', () => {
    const start = Date.UTC(2026, 10, 25, 21, 59, 59, 990);
    for (let t = start - 50; t < start + 1500; t += 0.37) {
      expect(isoTime(t), String(t)).toBe(new Date(t).toISOString());
    }
  });

  it('pads milliseconds and handles times going backwards', () => {
    const times = [Date.UTC(2030, 0, 1, 0, 0, 1, 5), Date.UTC(2030, 0, 1, 0, 0, 1, 50), 1_000, 0, 999.9];
    for (const t of [...times, ...times.reverse()]) expect(isoTime(t)).toBe(new Date(t).toISOString());
  });

  it('matches Date for random times, including before 1970 and after 9999', () => {
    for (let i = 0; i < 20_000; i++) {
      const t = (Math.random() - 0.3) * 4e14;
      expect(isoTime(t), String(t)).toBe(new Date(t).toISOString());
    }
  });
});
