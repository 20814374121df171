/**
 * Limits at the session edge, against a real PostgreSQL: sessions per principal and connections
 * per source address (SQLSTATE 53300, refused before any upstream connection exists, released
 * however the connection ends), and the time a connection has before it is a session (TLS, a
 * trickled startup packet, a password that never comes, a token check that takes too long).
 */
import net from 'node:net';
import tls from 'node:tls';
import type pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { startupMessage } from '../../proxy/wire/frontend-writer.ts';
import type { OpenSessionRequest } from '../../shared/control-plane.ts';
import type { SessionClosedEvent } from '../../shared/events.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { errorMessage, RawClient, summarize } from '../fixtures/raw-client.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const PER_PRINCIPAL = 3;
const PER_ADDRESS = 8;

let h: ProxyHarness;
/** a second proxy on the same server whose connections get half a second to become sessions */
let hasty: RunningProxy;
const hastyControlPlane = new InMemoryControlPlane();
const hastyCredentialRequests: string[] = [];
let openSessionDelayMs = 0;

beforeAll(async () => {
  h = await startProxyHarness({
    limits: { maxConnectionsPerPrincipal: PER_PRINCIPAL, maxConnectionsPerAddress: PER_ADDRESS },
  });
  h.controlPlane.tokens.set('bob-token', 'bob@example.com');
  const open = hastyControlPlane.openSession.bind(hastyControlPlane);
  hastyControlPlane.openSession = async (request: OpenSessionRequest) => {
    await new Promise((r) => setTimeout(r, openSessionDelayMs));
    return open(request);
  };
  hasty = await startProxy({
    host: '127.0.0.1',
    port: 0,
    tls: h.certificate,
    allowPlaintext: false,
    upstream: { host: h.postgres.host, port: h.postgres.port, ssl: 'disable' },
    credentials: (role) => {
      hastyCredentialRequests.push(role);
      return h.postgres.roles.app_rw;
    },
    controlPlane: hastyControlPlane,
    proxyId: 'hasty-proxy',
    limits: { authTimeoutMs: 500 },
  });
});
afterAll(async () => {
  await hasty?.close();
  await h?.stop();
});
beforeEach(async () => {
  openSessionDelayMs = 0;
  // every test starts with no connection of an earlier one still counted
  await waitFor(() => h.proxy.connections === 0 && hasty.connections === 0);
});

function raw(o: { port?: number; password?: string; user?: string; app?: string } = {}) {
  return RawClient.connect({
    host: '127.0.0.1',
    port: o.port ?? h.proxy.port,
    user: o.user ?? 'alice@example.com',
    database: 'app',
    password: o.password ?? 'good-token',
    parameters: { application_name: o.app ?? 'limits' },
  });
}

async function backendsOnServer(applicationName: string): Promise<number> {
  const c = await h.direct();
  try {
    const r = await c.query('select count(*)::int as n from pg_stat_activity where application_name = $1', [
      applicationName,
    ]);
    return r.rows[0].n;
  } finally {
    await c.end();
  }
}

function tcp(port = h.proxy.port): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A startup packet as libpq sends it, without the password that follows. */
const STARTUP = startupMessage(
  new Map([
    ['user', 'alice@example.com'],
    ['database', 'app'],
  ]),
);

/** TLS to `port` (SSLRequest first), as a client that then does whatever the test says. */
async function tlsTo(port: number): Promise<tls.TLSSocket> {
  const plain = await tcp(port);
  plain.write(serialize.requestSsl());
  await new Promise((r) => plain.once('data', r));
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
}

function closed(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => {});
    socket.once('close', () => resolve(Buffer.concat(parts)));
  });
}

describe('sessions per principal (issuer, subject)', () => {
  it('refuses the one past the limit with 53300 before opening anything upstream', async () => {
    const clients = [];
    for (let i = 0; i < PER_PRINCIPAL; i++) clients.push((await raw({ app: 'limit-alice' })).client);
    const requests = h.credentialRequests.length;
    const { startupReplies } = await raw({ app: 'limit-alice' });
    const last = startupReplies.at(-1)!;
    expect(summarize([last])).toEqual(['E:53300']);
    expect(errorMessage(last)).toContain('too many connections for alice@example.com');
    expect(h.credentialRequests.length).toBe(requests);
    expect(await backendsOnServer('limit-alice')).toBe(PER_PRINCIPAL);
    await waitFor(() =>
      h.controlPlane.events.some(
        (e) => e.type === 'session_closed' && (e as SessionClosedEvent).reason === 'connection_limit',
      ),
    );
    // another person is not affected
    const bob = await raw({ user: 'bob@example.com', password: 'bob-token', app: 'limit-bob' });
    expect(summarize([bob.startupReplies.at(-1)!])).toEqual(['Z:I']);
    bob.client.close();
    for (const c of clients) c.close();
  });

  it('a session that ends abruptly gives its slot back', async () => {
    const clients = [];
    for (let i = 0; i < PER_PRINCIPAL; i++) clients.push((await raw({ app: 'limit-abrupt' })).client);
    expect(summarize([(await raw({ app: 'limit-abrupt' })).startupReplies.at(-1)!])).toEqual(['E:53300']);
    clients.shift()!.close(); // a TCP reset from the client's side, no Terminate
    let replies: string[] = [];
    await waitFor(() => h.proxy.sessions === PER_PRINCIPAL - 1);
    const again = await raw({ app: 'limit-abrupt' });
    replies = summarize([again.startupReplies.at(-1)!]);
    expect(replies).toEqual(['Z:I']);
    clients.push(again.client);
    await waitFor(() => h.proxy.sessions === PER_PRINCIPAL);
    expect(await backendsOnServer('limit-abrupt')).toBe(PER_PRINCIPAL);
    for (const c of clients) c.close();
  });

  it('node-postgres sees the refusal as an error with code 53300', async () => {
    const clients: pg.Client[] = [];
    for (let i = 0; i < PER_PRINCIPAL; i++) clients.push(await h.viaProxy());
    const error = await h.viaProxy().catch((e) => e);
    expect(error.code).toBe('53300');
    for (const c of clients) await c.end();
    // ended cleanly, the slots are free again
    await waitFor(() => h.proxy.sessions === 0);
    const c = await h.viaProxy();
    expect((await c.query('select 1 as n')).rows[0].n).toBe(1);
    await c.end();
  });
});

describe('connections per source address (pre-authentication ones count too)', () => {
  it('refuses the one past the limit with 53300 saying why, and lets one in once others close', async () => {
    const sessions = [];
    for (let i = 0; i < PER_PRINCIPAL; i++) sessions.push((await raw({ app: 'limit-address' })).client);
    sessions.push(
      (await raw({ user: 'bob@example.com', password: 'bob-token', app: 'limit-address' })).client,
    );
    const idle = [];
    for (let i = sessions.length; i < PER_ADDRESS; i++) idle.push(await tcp());
    await waitFor(() => h.proxy.connections === PER_ADDRESS);

    const opened = h.controlPlane.sessionsOpened;
    const refused = await raw({ user: 'bob@example.com', password: 'bob-token' });
    expect(summarize(refused.startupReplies)).toEqual(['E:53300']);
    expect(errorMessage(refused.startupReplies[0]!)).toContain('too many connections from 127.0.0.1');
    expect(h.controlPlane.sessionsOpened).toBe(opened);

    for (const s of idle) s.destroy();
    await waitFor(() => h.proxy.connections === sessions.length);
    const admitted = await raw({ user: 'bob@example.com', password: 'bob-token', app: 'limit-address' });
    expect(summarize([admitted.startupReplies.at(-1)!])).toEqual(['Z:I']);
    sessions.push(admitted.client);
    expect(await backendsOnServer('limit-address')).toBe(PER_PRINCIPAL + 2);
    for (const c of sessions) c.close();
  });

  it('a CancelRequest still gets through at the limit (cancel keys are not connections)', async () => {
    const { client } = await raw({ app: 'limit-cancel' });
    const idle = [];
    for (let i = 1; i < PER_ADDRESS; i++) idle.push(await tcp());
    await waitFor(() => h.proxy.connections === PER_ADDRESS);
    client.send(serialize.query('select pg_sleep(30)'));
    await waitFor(() => h.proxy.sessions === 1);
    // wait until the server is really sleeping
    const observer = await h.direct();
    let sleeping = 0;
    for (let tries = 0; sleeping === 0 && tries < 200; tries++) {
      const r = await observer.query(
        "select count(*)::int as n from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
      );
      sleeping = r.rows[0].n;
    }
    await observer.end();
    expect(sleeping).toBe(1);
    const cancel = await tcp();
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(client.processId, 8);
    packet.writeInt32BE(client.secretKey, 12);
    cancel.end(packet);
    expect(summarize(await client.untilReady())).toEqual(['T', 'E:57014', 'Z:I']);
    client.close();
    for (const s of idle) s.destroy();
  });

  it('past twice the limit a connection is cut at once, without reading a byte', async () => {
    const held: net.Socket[] = [];
    for (let i = 0; i < 2 * PER_ADDRESS; i++) held.push(await tcp());
    await waitFor(() => h.proxy.connections === 2 * PER_ADDRESS);
    const extra = await tcp();
    const reply = closed(extra);
    extra.write(serialize.requestSsl());
    expect((await reply).length).toBe(0);
    // the ones still held were answered normally
    const answer = new Promise<Buffer>((resolve) => held[0]!.once('data', resolve));
    held[0]!.write(serialize.requestSsl());
    expect((await answer).toString()).toBe('S');
    for (const s of held) s.destroy();
  });
});

describe('time before a connection is a session (authTimeoutMs, here 500 ms)', () => {
  it('a connection that sends nothing is closed', async () => {
    expect((await closed(await tcp(hasty.port))).length).toBe(0);
  });

  it('a TLS handshake that never starts is closed', async () => {
    const s = await tcp(hasty.port);
    const reply = closed(s);
    s.write(serialize.requestSsl());
    expect((await reply).toString()).toBe('S');
  });

  it('a startup packet trickled a byte at a time is closed before it completes', async () => {
    const socket = await tlsTo(hasty.port);
    const reply = closed(socket);
    const packet = STARTUP;
    let at = 0;
    const trickle = setInterval(() => {
      if (at < packet.length && !socket.destroyed) socket.write(packet.subarray(at, ++at));
    }, 100);
    const got = await reply;
    clearInterval(trickle);
    expect(at).toBeLessThan(packet.length);
    expect(got.length).toBe(0); // no password request: the packet never completed
  });

  it('a client that never sends its password is closed', async () => {
    const socket = await tlsTo(hasty.port);
    const reply = closed(socket);
    socket.write(STARTUP);
    const got = await reply;
    expect(got[0]).toBe(0x52); // the password request, and then nothing but the close
    expect(got.length).toBe(9);
    expect(hastyControlPlane.sessionsOpened).toBe(0);
  });

  it('a token check slower than the deadline: the client is closed and no upstream connection is opened', async () => {
    openSessionDelayMs = 1_500;
    const requests = hastyCredentialRequests.length;
    await expect(raw({ port: hasty.port, app: 'too-slow' })).rejects.toThrow('connection closed');
    // when the token check finally answers, the session is recorded as lost, never connected
    await waitFor(
      () =>
        hastyControlPlane.events.some(
          (e) => e.type === 'session_closed' && (e as SessionClosedEvent).reason === 'network_loss',
        ),
      5_000,
    );
    expect(hastyCredentialRequests.length).toBe(requests);
    expect(await backendsOnServer('too-slow')).toBe(0);
  });

  it('queries sent right behind the password, past the pre-session buffer, all run once the session opens', async () => {
    openSessionDelayMs = 200;
    const socket = await tlsTo(hasty.port);
    let data = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
    });
    const count = 12_000; // ~190 KB of Query messages: more than the 128 KiB held before the session
    socket.write(
      Buffer.concat([
        STARTUP,
        serialize.password('good-token'),
        ...Array.from({ length: count }, () => serialize.query('select 1')),
      ]),
    );
    const readyCount = () => {
      let n = 0;
      for (let at = 0; at + 5 <= data.length; at += 1 + data.readInt32BE(at + 1)) if (data[at] === 0x5a) n++;
      return n;
    };
    await waitFor(() => readyCount() === count + 1, 20_000);
    socket.destroy();
  });
});
