/**
 * Diagnostic bench target (`--targets …,pipe`): the cheapest possible Node proxy. It answers
 * SSLRequest, terminates TLS and pipes bytes to PostgreSQL unchanged, with no parsing, no auth of
 * its own (the client logs in to PostgreSQL through it) and no audit. Its throughput is the ceiling
 * for any Node proxy on this machine, so pgwarden's distance to it is the cost of what pgwarden does
 * per message. Same IPC protocol as proxy-process.ts.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { PipeConfig, ProxyMessage, ProxyStats } from './protocol.ts';

const config = JSON.parse(process.env['BENCH_PROXY_CONFIG'] ?? 'null') as PipeConfig | null;
if (config === null || typeof process.send !== 'function') {
  process.stderr.write('tls-pipe-process: start me from scripts/bench.ts\n');
  process.exit(2);
}
const send = (message: ProxyMessage): void => {
  process.send?.(message);
};

const secureContext = tls.createSecureContext({ cert: config.tls.cert, key: config.tls.key });
const SSL_REQUEST = 80877103;
let sessions = 0;

const server = net.createServer((raw) => {
  raw.setNoDelay(true);
  raw.on('error', () => raw.destroy());
  raw.once('data', (first: Buffer) => {
    if (first.length !== 8 || first.readInt32BE(4) !== SSL_REQUEST) {
      raw.destroy();
      return;
    }
    raw.pause();
    raw.write('S');
    const client = new tls.TLSSocket(raw, { isServer: true, secureContext });
    client.on('error', () => client.destroy());
    client.once('secure', () => {
      const upstream = net.connect({ host: config.upstream.host, port: config.upstream.port });
      upstream.setNoDelay(true);
      upstream.on('error', () => client.destroy());
      sessions++;
      upstream.once('close', () => {
        sessions--;
        client.destroy();
      });
      client.once('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    raw.resume();
  });
});

function stats(): ProxyStats {
  const memory = process.memoryUsage();
  return {
    type: 'stats',
    sessions,
    pendingAuditEvents: 0,
    stored: { statement: 0, session_opened: 0, session_closed: 0, auth_failed: 0 },
    failedPuts: 0,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    external: memory.external,
  };
}

server.listen(0, '127.0.0.1', () => {
  send({ type: 'ready', pid: process.pid, port: (server.address() as net.AddressInfo).port });
});
process.on('message', (message: { type?: string }) => {
  if (message.type === 'stats') send(stats());
  else if (message.type === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    send(stats());
  } else if (message.type === 'stop') {
    server.close();
    send(stats());
    process.disconnect?.();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(1));
process.on('SIGINT', () => {});
