/**
 * proxy/upstream.ts against an impostor: the gateway's database login believes AuthenticationOk
 * only after the server proved it knows the password (SCRAM's server signature), and hands out a
 * cleartext or MD5 password, or accepts a server that asks for nothing, only when the operator
 * listed that method. Each trick checks what the impostor received: never the password.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamAuthMethod } from '../../proxy/options.ts';
import { startProxy } from '../../proxy/server.ts';
import { connectUpstream, UpstreamRequestRefused } from '../../proxy/upstream.ts';
import { fatalFor } from '../../proxy/wire-errors.ts';
import { type FakeUpstream, startFakeUpstream, type UpstreamTrick } from '../fakes/fake-upstream.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { errorMessage, RawClient, summarize } from '../fixtures/raw-client.ts';

const PASSWORD = 'secret';
let fake: FakeUpstream | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function login(
  trick: UpstreamTrick,
  auth?: UpstreamAuthMethod[],
  parameters = new Map<string, string>(),
) {
  fake = await startFakeUpstream(trick, PASSWORD);
  return connectUpstream({
    target: { host: '127.0.0.1', port: fake.port, ssl: 'disable', ...(auth ? { auth } : {}) },
    credential: { user: 'app_rw', password: PASSWORD },
    database: 'app',
    parameters,
    timeoutMs: 5_000,
  });
}

/** Every password-bearing message the impostor got, as text. */
function passwordsSent(): string[] {
  return fake!.received
    .flat()
    .filter((m) => m.type === 'p')
    .map((m) => m.body.toString('latin1'));
}

describe('upstream login: refused tricks (default: scram-sha-256 only)', () => {
  it.each<[UpstreamTrick, RegExp]>([
    ['cleartext', /cleartext password/],
    ['md5', /MD5 password/],
    ['trust', /without authentication/],
    ['no-authentication-at-all', /before authenticating/],
    ['parameter-status-before-authentication', /before authenticating/],
  ])('%s: refused, and no password was sent', async (trick, why) => {
    await expect(login(trick)).rejects.toMatchObject({
      code: 'UPSTREAM_AUTH_FAILED',
      message: expect.stringMatching(why),
    });
    expect(passwordsSent()).toEqual([]);
  });

  it.each<[UpstreamTrick, RegExp]>([
    ['scram-ok-without-final', /without proving/],
    ['scram-final-wrong-signature', /signature/],
    ['scram-final-before-continue', /out of order/],
    ['scram-plus-only', /unsupported SASL mechanisms/],
    ['scram-huge-iterations', /iteration/],
    ['scram-honest-then-ask-cleartext', /out of order/],
  ])('%s: refused, and the password itself never left', async (trick, why) => {
    await expect(login(trick)).rejects.toMatchObject({
      code: 'UPSTREAM_AUTH_FAILED',
      message: expect.stringMatching(why),
    });
    for (const sent of passwordsSent()) expect(sent).not.toContain(PASSWORD);
  });

  it('a server that reports another client_encoding than the pin is refused', async () => {
    await expect(login('reports-sql-ascii')).rejects.toThrow(/client_encoding=SQL_ASCII/);
  });

  it('an error from a server that has not authenticated is never quoted to the client', async () => {
    const error = await login('error-before-authentication').catch((e) => e);
    expect(error).not.toBeInstanceOf(UpstreamRequestRefused);
    expect(fatalFor(error).message).not.toContain('evil');
  });

  it('a session that is not the gateway’s login is refused', async () => {
    await expect(login('reports-another-session-user')).rejects.toThrow(/session is postgres/);
  });
});

describe('upstream login: what works', () => {
  it('an honest SCRAM server, with the pins sent last', async () => {
    const connection = await login(
      'scram-honest',
      undefined,
      new Map([
        ['application_name', 'app'],
        ['client_encoding', 'LATIN1'],
        ['Standard_Conforming_Strings', 'off'],
        ['options', '-c role=postgres'],
        ['user', 'postgres'],
      ]),
    );
    connection.socket.destroy();
    const startup = fake!.received[0]![0]!.body.toString('utf8').split('\0');
    const pairs = [];
    for (let i = 0; i + 1 < startup.length && startup[i] !== ''; i += 2)
      pairs.push([startup[i], startup[i + 1]]);
    expect(pairs).toEqual([
      ['application_name', 'app'],
      ['user', 'app_rw'],
      ['database', 'app'],
      ['client_encoding', 'UTF8'],
      ['standard_conforming_strings', 'on'],
      ['role', 'none'],
    ]);
    expect(connection.parameters.get('client_encoding')).toBe('UTF8');
  });

  it.each<[UpstreamTrick, UpstreamAuthMethod[]]>([
    ['cleartext', ['password']],
    ['md5', ['md5']],
    ['trust', ['none']],
    ['scram-honest', ['scram-sha-256', 'md5']],
  ])('%s when the operator allowed %j', async (trick, auth) => {
    const connection = await login(trick, auth);
    expect(connection.backendKey.processId).toBe(4242);
    connection.socket.destroy();
  });

  it('md5 sends the salted hash, not the password', async () => {
    (await login('md5', ['md5'])).socket.destroy();
    const [sent] = passwordsSent();
    expect(sent).toMatch(/^md5[0-9a-f]{32}\0$/);
  });

  it('allowing md5 does not let a trust server in', async () => {
    await expect(login('trust', ['md5', 'password'])).rejects.toThrow(/without authentication/);
  });
});

describe('through the proxy', () => {
  it('a client whose database asks for a cleartext password gets 08006, and the impostor gets nothing', async () => {
    fake = await startFakeUpstream('cleartext', PASSWORD);
    const controlPlane = new InMemoryControlPlane();
    const proxy = await startProxy({
      host: '127.0.0.1',
      port: 0,
      allowPlaintext: true,
      upstream: { host: '127.0.0.1', port: fake.port, ssl: 'disable' },
      credentials: () => ({ user: 'app_rw', password: PASSWORD }),
      controlPlane,
      proxyId: 'impostor-test',
    });
    try {
      const { startupReplies } = await RawClient.connect({
        host: '127.0.0.1',
        port: proxy.port,
        user: 'alice@example.com',
        database: 'app',
        password: 'good-token',
        plaintext: true,
      });
      const last = startupReplies.at(-1)!;
      expect(summarize([last])).toEqual(['E:08006']);
      // the client learns nothing of how the gateway logs in
      expect(errorMessage(last)).toBe(
        'pgwarden could not connect to the database; try again or ask an admin',
      );
      expect(fake.received).toHaveLength(1);
      expect(passwordsSent()).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
