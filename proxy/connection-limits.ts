/**
 * Open connections counted per key (a source address, a principal), so one client cannot hold
 * every upstream connection or every socket. A slot is taken before the resource it guards and
 * given back exactly once, whichever way the connection ends.
 */
export class ConnectionCounts {
  private readonly counts = new Map<string, number>();

  /** Takes a slot if fewer than `limit` are held for `key`; returns its release, or undefined. */
  tryAcquire(key: string, limit: number): (() => void) | undefined {
    const held = this.counts.get(key) ?? 0;
    if (held >= limit) return undefined;
    this.counts.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.counts.get(key) ?? 1) - 1;
      if (now <= 0) this.counts.delete(key);
      else this.counts.set(key, now);
    };
  }

  held(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

/** A principal is (issuer, subject): two issuers may hand out the same subject. */
export function principalKey(principal: { issuer: string; subject: string }): string {
  return JSON.stringify([principal.issuer, principal.subject]);
}

/**
 * The key a source address is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by its
 * /64, the smallest block a site is given, so one host cannot step around the limit by address.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
