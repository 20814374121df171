/**
 * proxy/session-lifetime.ts without sockets: what ends a session and what the client is told when
 * the control plane cannot be asked. (The wire behaviour, with a real server, is in
 * session-lifetime.integration.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { SessionLifetime, type Terminable } from '../../proxy/session-lifetime.ts';
import type { NoticeFields } from '../../proxy/wire/backend-writer.ts';
import type { SessionCheckResponse } from '../../shared/control-plane.ts';
import type { SessionEndReason } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';
import { session } from '../shared/policy/sessions.ts';

function relay(): Terminable & { ended: Promise<{ fields: NoticeFields; reason: SessionEndReason }> } {
  let resolve!: (value: { fields: NoticeFields; reason: SessionEndReason }) => void;
  const ended = new Promise<{ fields: NoticeFields; reason: SessionEndReason }>((r) => {
    resolve = r;
  });
  return { ended, terminate: (fields, reason) => resolve({ fields, reason }) };
}

const farFuture = Math.floor(Date.now() / 1000) + 3600;

describe('SessionLifetime', () => {
  it('ends a session whose access cannot be confirmed for three intervals (fail closed)', async () => {
    const target = relay();
    let cancels = 0;
    const lifetime = new SessionLifetime({
      relay: target,
      session: session(),
      principal: { expiresAt: farFuture },
      options: { recheckSeconds: 0.05 },
      controlPlane: {
        checkSession: async () => {
          throw new Error('control plane down');
        },
      },
      logger: silentLogger,
      cancelUpstream: () => cancels++,
    });
    lifetime.start();
    const { fields, reason } = await target.ended;
    expect(fields).toMatchObject({
      severity: 'FATAL',
      code: '57P01',
      message: expect.stringMatching(/could not be confirmed/),
    });
    expect(reason).toBe('access_revoked');
    expect(cancels).toBe(1);
  });

  it('replaces the groups and roles decisions read with newer ones', async () => {
    const s = session();
    const answers: SessionCheckResponse[] = [
      {
        status: 'active',
        groups: ['engineering', 'contractors'],
        roles: ['developer'],
        groupsAsOf: '2026-01-01T00:00:00.000Z',
      },
      { status: 'ended', reason: 'gone' },
    ];
    const asked: Array<string | undefined> = [];
    const target = relay();
    const lifetime = new SessionLifetime({
      relay: target,
      session: s,
      principal: { expiresAt: farFuture, groupsAsOf: '2025-12-31T00:00:00.000Z' },
      options: { recheckSeconds: 0.05 },
      controlPlane: {
        checkSession: async (request) => {
          asked.push(request.groupsAsOf);
          return answers.shift() ?? { status: 'active' };
        },
      },
      logger: silentLogger,
      cancelUpstream: () => {},
    });
    const before = s.principal;
    lifetime.start();
    const { fields } = await target.ended;
    expect(fields.message).toBe('pgwarden: gone; the session was ended');
    expect(s.principal).not.toBe(before); // a new object: caches keyed by it see the change
    expect(s.principal.groups).toEqual(['engineering', 'contractors']);
    // the second check says what the session knows now
    expect(asked).toEqual(['2025-12-31T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
  });

  it('says nothing after it was stopped (the session ended first)', async () => {
    let terminated = false;
    const lifetime = new SessionLifetime({
      relay: { terminate: () => (terminated = true) },
      session: session(),
      principal: { expiresAt: Math.floor(Date.now() / 1000) - 1 },
      controlPlane: {},
      logger: silentLogger,
      cancelUpstream: () => {},
    });
    lifetime.stop();
    lifetime.start();
    expect(terminated).toBe(false);
  });
});
