/**
 * A man in the middle between the gateway and a real PostgreSQL: it terminates the gateway's TLS
 * with its own certificate (what `sslmode=require` cannot notice), opens its own TLS to the
 * server and relays the bytes. `stripPlus` also removes SCRAM-SHA-256-PLUS from the server's
 * mechanism list, the downgrade a relay would try once channel binding stops it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';

export interface TlsRelay {
  port: number;
  close(): Promise<void>;
}

export async function startTlsRelay(o: {
  target: { host: string; port: number };
  certificate: { cert: string; key: string };
  /** false: the gateway speaks plaintext to the relay (the control case: nothing to bind to) */
  clientTls: boolean;
  stripPlus?: boolean;
}): Promise<TlsRelay> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.pause();
    void relay(client).catch(() => client.destroy());
  });

  async function relay(raw: net.Socket): Promise<void> {
    let client: net.Socket = raw;
    if (o.clientTls) {
      raw.resume();
      await readExactly(raw, 8); // SSLRequest
      raw.pause();
      raw.write('S');
      client = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const secure = new tls.TLSSocket(raw, { isServer: true, ...o.certificate });
        secure.once('secure', () => resolve(secure));
        secure.once('error', reject);
      });
      client.on('error', () => {});
      client.pause();
    }
    const plain = net.connect(o.target);
    sockets.add(plain);
    plain.on('error', () => client.destroy());
    await new Promise((r) => plain.once('connect', r));
    plain.write(serialize.requestSsl());
    const answer = await readExactly(plain, 1);
    if (answer.toString() !== 'S') throw new Error('the server does not speak TLS');
    const upstream = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    if (o.stripPlus) upstream.on('data', (d: Buffer) => client.write(withoutPlus(d)));
    else upstream.pipe(client);
    client.resume();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function readExactly(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (data.length < n) return;
      socket.removeListener('data', onData);
      if (data.length > n) socket.unshift(data.subarray(n));
      resolve(data.subarray(0, n));
    };
    socket.on('data', onData);
  });
}

/** Rewrites an AuthenticationSASL message to list SCRAM-SHA-256 only (assumes it arrives whole). */
function withoutPlus(data: Buffer): Buffer {
  if (data[0] !== 0x52 || data.length < 9 || data.readInt32BE(5) !== 10) return data;
  const length = data.readInt32BE(1);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('SCRAM-SHA-256\0\0')]);
  const head = Buffer.alloc(5);
  head[0] = 0x52;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body, data.subarray(1 + length)]);
}
