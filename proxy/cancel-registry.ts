/**
 * Clients get the proxy's own BackendKeyData; a CancelRequest carrying it is mapped to the
 * upstream backend of that session. Keys are random, and compared in constant time.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export interface CancelTarget {
  secret: Buffer;
  cancel: () => void;
}

export class CancelRegistry {
  private readonly sessions = new Map<number, CancelTarget>();

  /** Registers a session and returns the key to hand to its client. */
  register(cancel: () => void): { processId: number; secretKey: number; release: () => void } {
    let processId: number;
    do processId = randomBytes(4).readInt32BE(0) & 0x7fffffff;
    while (processId === 0 || this.sessions.has(processId));
    const secret = randomBytes(4);
    this.sessions.set(processId, { secret, cancel });
    return { processId, secretKey: secret.readInt32BE(0), release: () => this.sessions.delete(processId) };
  }

  /** Cancels the session's running statement when the key matches; returns whether it did. */
  cancel(processId: number, secret: Buffer): boolean {
    const target = this.sessions.get(processId);
    if (!target || target.secret.length !== secret.length || !timingSafeEqual(target.secret, secret))
      return false;
    target.cancel();
    return true;
  }

  get size(): number {
    return this.sessions.size;
  }
}
