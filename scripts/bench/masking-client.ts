/**
 * The client side of the masking bench, as a process of its own so its CPU does not count against
 * the proxy's: connects (directly with the gateway's login, or to pgwarden over TLS with a token),
 * runs one query with the simple protocol and counts DataRows without decoding them. Prints
 * `{ rows, bytes, ms }` as JSON. Configuration: BENCH_MASKING_CLIENT (JSON, see ClientConfig).
 */
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { connectUpstream } from '../../proxy/upstream.ts';
import { BackendScanner } from '../../proxy/wire/backend-scanner.ts';
import { startupMessage } from '../../proxy/wire/frontend-writer.ts';

export interface ClientConfig {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  /** pgwarden: TLS and the token as a cleartext password; direct: the server's own login (SCRAM) */
  via: 'pgwarden' | 'direct';
  sql: string;
}

const config = JSON.parse(process.env['BENCH_MASKING_CLIENT'] ?? 'null') as ClientConfig | null;
if (!config) {
  process.stderr.write('masking-client: start me from scripts/bench/masking.ts\n');
  process.exit(2);
}

async function connectPgwarden(c: ClientConfig): Promise<{ socket: net.Socket; leftover: Buffer }> {
  const plain = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: c.host, port: c.port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
  plain.write(serialize.requestSsl());
  await new Promise((resolve) => plain.once('data', resolve));
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  socket.write(
    startupMessage(
      new Map([
        ['user', c.user],
        ['database', c.database],
      ]),
    ),
  );
  return new Promise((resolve, reject) => {
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let i = 0;
      while (i + 5 <= pending.length) {
        const type = pending[i]!;
        const length = pending.readInt32BE(i + 1);
        if (i + 1 + length > pending.length) break;
        if (type === 0x52 /* R */ && pending.readInt32BE(i + 5) === 3)
          socket.write(serialize.password(c.password));
        if (type === 0x45 /* E */) reject(new Error(pending.toString('utf8', i + 5, i + 1 + length)));
        i += 1 + length;
        if (type === 0x5a /* Z */) {
          socket.removeListener('data', onData);
          resolve({ socket, leftover: pending.subarray(i) });
          return;
        }
      }
      pending = pending.subarray(i);
    };
    socket.on('data', onData);
  });
}

async function main(c: ClientConfig): Promise<void> {
  const { socket } =
    c.via === 'direct'
      ? await connectUpstream({
          target: { host: c.host, port: c.port, ssl: 'disable' },
          credential: { user: c.user, password: c.password },
          database: c.database,
          parameters: new Map(),
          timeoutMs: 30_000,
        })
      : await connectPgwarden(c);
  let rows = 0;
  let bytes = 0;
  let error: string | undefined;
  const started = performance.now();
  const done = new Promise<void>((resolve) => {
    const scanner = new BackendScanner((type, body) => {
      if (type === 0x44 /* D */) rows++;
      else if (type === 0x45 /* E */) error = body?.toString('utf8');
      else if (type === 0x5a /* Z */) resolve();
    });
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      scanner.scan(chunk);
    });
  });
  socket.write(serialize.query(c.sql));
  await done;
  const ms = performance.now() - started;
  socket.end(serialize.end());
  process.stdout.write(`${JSON.stringify({ rows, bytes, ms, error })}\n`);
}

main(config).catch((error) => {
  process.stderr.write(`masking-client: ${String(error)}\n`);
  process.exit(1);
});
