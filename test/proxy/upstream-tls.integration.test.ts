/**
 * The gateway's SCRAM login over TLS to a real PostgreSQL binds the proof to the server's
 * certificate (SCRAM-SHA-256-PLUS, tls-server-end-point). With `ssl: 'require'` the certificate
 * is not verified, so without channel binding a man in the middle could terminate TLS and relay
 * the exchange to the real server: these tests run that relay and check the server refuses it,
 * also when the relay strips -PLUS from the mechanism list (a silent downgrade).
 */
import { chmodSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamSslMode } from '../../proxy/options.ts';
import { connectUpstream } from '../../proxy/upstream.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import { startTlsRelay, type TlsRelay } from '../fakes/tls-relay.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';

let h: ProxyHarness;
const relays: TlsRelay[] = [];

function superuser(): pg.Client {
  return new pg.Client({
    host: h.postgres.host,
    port: h.postgres.port,
    database: 'app',
    ...h.postgres.superuser,
  });
}

/** Writes the certificate and key into the cluster's directory (as the server) and turns TLS on. */
async function enableServerTls(certificate: { cert: string; key: string }): Promise<void> {
  const c = superuser();
  await c.connect();
  try {
    const dataDirectory = (await c.query("select current_setting('data_directory') as d")).rows[0].d;
    for (const [file, pem] of [
      ['pgwarden-test.crt', certificate.cert],
      ['pgwarden-test.key', certificate.key],
    ] as const) {
      const lines = pem.trim().split('\n');
      // one row per PEM line: COPY writes each as a line, and PEM needs no escaping
      await c.query(
        `copy (select unnest(array[${lines.map((l) => `$L$${l}$L$`).join(',')}])) to '${dataDirectory}/${file}'`,
      );
    }
    // COPY leaves files world-readable and the server refuses such a key; the test runs as the
    // server's owner or as root, so it can tighten it
    chmodSync(join(dataDirectory, 'pgwarden-test.key'), 0o600);
    await c.query("alter system set ssl_cert_file = 'pgwarden-test.crt'");
    await c.query("alter system set ssl_key_file = 'pgwarden-test.key'");
    await c.query('alter system set ssl = on');
    await c.query('select pg_reload_conf()');
  } finally {
    await c.end();
  }
  // `show ssl` says on even when the server could not load the files: ask for TLS itself
  for (let tries = 0; tries < 100; tries++) {
    if ((await sslAnswer()) === 'S') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the server did not turn TLS on');
}

/** The server's one-byte answer to an SSLRequest. */
async function sslAnswer(): Promise<string> {
  const socket = net.connect(h.postgres.port, h.postgres.host);
  try {
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(serialize.requestSsl());
    const answer: Buffer = await new Promise((resolve) => socket.once('data', resolve));
    return answer.toString('latin1', 0, 1);
  } finally {
    socket.destroy();
  }
}

beforeAll(async () => {
  h = await startProxyHarness();
  await enableServerTls(h.certificate);
});
afterAll(async () => {
  for (const r of relays) await r.close();
  await h?.stop();
});

function login(port: number, ssl: UpstreamSslMode, applicationName: string, ca?: string) {
  return connectUpstream({
    target: { host: '127.0.0.1', port, ssl, ...(ca ? { ca } : {}) },
    credential: h.postgres.roles.app_rw,
    database: 'app',
    parameters: new Map([['application_name', applicationName]]),
    timeoutMs: 10_000,
  });
}

async function sslOnServer(applicationName: string): Promise<boolean[]> {
  const c = await h.direct();
  try {
    const r = await c.query(
      'select s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid) where a.application_name = $1',
      [applicationName],
    );
    return r.rows.map((row) => row.ssl);
  } finally {
    await c.end();
  }
}

async function relay(o: { clientTls: boolean; stripPlus?: boolean }): Promise<number> {
  const other = await ensureLocalCertificate(mkdtempSync(join(tmpdir(), 'pgwarden-mitm-')));
  const r = await startTlsRelay({
    target: { host: h.postgres.host, port: h.postgres.port },
    certificate: { cert: other.cert, key: other.key },
    ...o,
  });
  relays.push(r);
  return r.port;
}

describe('SCRAM over TLS to the real server', () => {
  it.each<UpstreamSslMode>(['require', 'verify-full'])(
    'ssl=%s binds the proof to the certificate',
    async (ssl) => {
      const name = `tls-${ssl}`;
      const connection = await login(h.postgres.port, ssl, name, h.certificate.cert);
      expect(connection.authentication).toBe('SCRAM-SHA-256-PLUS');
      expect(await sslOnServer(name)).toEqual([true]);
      connection.socket.destroy();
    },
  );

  it('a relay that terminates TLS with its own certificate is refused by the server', async () => {
    const port = await relay({ clientTls: true });
    await expect(login(port, 'require', 'mitm')).rejects.toMatchObject({ code: 'UPSTREAM_AUTH_FAILED' });
    expect(await sslOnServer('mitm')).toEqual([]);
  });

  it('a relay that also strips SCRAM-SHA-256-PLUS is refused: the gateway says it could bind', async () => {
    const port = await relay({ clientTls: true, stripPlus: true });
    await expect(login(port, 'require', 'mitm-downgrade')).rejects.toMatchObject({
      code: 'UPSTREAM_AUTH_FAILED',
    });
    expect(await sslOnServer('mitm-downgrade')).toEqual([]);
  });

  it('control: the same relay works where there is no TLS on the gateway side to bind to', async () => {
    const port = await relay({ clientTls: false });
    const connection = await login(port, 'disable', 'relay-plain');
    expect(connection.authentication).toBe('SCRAM-SHA-256');
    expect(await sslOnServer('relay-plain')).toEqual([true]);
    connection.socket.destroy();
  });
});
