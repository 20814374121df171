/**
 * What node-postgres's own integration suite relies on and pgwarden once broke, each found by
 * running that suite through the proxy and reproduced here with node-postgres (or the exact bytes
 * it sends) against a real PostgreSQL, compared with what the server does when reached directly.
 */
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';

let h: ProxyHarness;

beforeAll(async () => {
  h = await startProxyHarness();
});
afterAll(async () => {
  await h?.stop();
});

/** Sends `bytes` as a connection's first bytes; resolves with all the peer answered before closing. */
function firstBytes(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const received: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.end(bytes));
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(received)));
  });
}

describe('a client ended before it connected (node-postgres quick-disconnect, issue #320)', () => {
  // pg queues a Terminate while the socket connects, so it reaches the proxy before the SSLRequest
  const terminateThenSslRequest = Buffer.concat([serialize.end(), serialize.requestSsl()]);

  it('is closed without an answer, as PostgreSQL closes it', async () => {
    const fromServer = await firstBytes(h.postgres.port, terminateThenSslRequest);
    const fromProxy = await firstBytes(h.proxy.port, terminateThenSslRequest);
    expect(fromServer.length).toBe(0);
    // an ErrorResponse here is read by the client as the reply to its SSLRequest
    expect(fromProxy.toString('latin1')).toBe(fromServer.toString('latin1'));
  });

  it('ends quietly in node-postgres: no "error establishing an SSL connection"', async () => {
    const errors: Error[] = [];
    const client = new pg.Client({
      host: '127.0.0.1',
      port: h.proxy.port,
      database: 'app',
      user: 'alice@example.com',
      password: 'good-token',
      ssl: { rejectUnauthorized: false },
    });
    client.on('error', (error) => errors.push(error));
    // against PostgreSQL itself this promise never settles: only end() does
    client.connect().catch((error: Error) => errors.push(error));
    await client.end();
    // had the proxy answered, the connect would have failed before the end (what the suite saw)
    expect(errors.map((e) => e.message)).toEqual([]);
  });
});

describe('direct TLS negotiation (PostgreSQL 17+, node-postgres sslnegotiation: direct)', () => {
  it('connects without an SSLRequest and runs as the gateway login', async () => {
    const client = await h.viaProxy({ sslnegotiation: 'direct' } as Partial<pg.ClientConfig>);
    try {
      const { rows } = await client.query('select current_user as login, 6 * 7 as answer');
      expect(rows).toEqual([{ login: 'app_rw', answer: 42 }]);
    } finally {
      await client.end();
    }
  });

  it('refuses a direct handshake without the postgresql ALPN protocol, inside TLS', async () => {
    const received: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: h.proxy.port, rejectUnauthorized: false });
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    const reply = Buffer.concat(received).toString('latin1');
    expect(reply.startsWith('E')).toBe(true);
    expect(reply).toContain('C08P01');
    expect(reply).toMatch(/ALPN protocol "postgresql"/);
  });
});
