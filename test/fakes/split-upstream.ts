/**
 * A tiny PostgreSQL stand-in that answers every Query with an ErrorResponse delivered in two
 * separate TCP writes, to drive the proxy through server messages that straddle reads.
 */
import net from 'node:net';
import { FrameReader } from '../../proxy/wire/frame-reader.ts';

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.from(`${s}\0`);

export async function startSplitUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let started = false;
    const reader = new FrameReader(1 << 20);
    socket.on('data', (data: Buffer) => {
      if (!started) {
        started = true; // the startup packet (no SSLRequest: the proxy connects with ssl disable)
        const key = Buffer.alloc(8);
        key.writeInt32BE(4242, 0);
        key.writeInt32BE(7, 4);
        socket.write(
          Buffer.concat([
            message('R', Buffer.from([0, 0, 0, 0])),
            message('S', Buffer.concat([cstr('server_version'), cstr('18.0')])),
            // what every PostgreSQL reports, and the proxy verifies (proxy/session-pins.ts)
            message('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])),
            message('S', Buffer.concat([cstr('standard_conforming_strings'), cstr('on')])),
            message('K', key),
            message('Z', Buffer.from('I')),
          ]),
        );
        return;
      }
      reader.push(data);
      for (let f = reader.next(); f; f = reader.next()) {
        if (f.type !== 0x51 /* Q */) continue;
        const error = message(
          'E',
          Buffer.concat([cstr('SERROR'), cstr('C42601'), cstr('Mupstream syntax error'), Buffer.from([0])]),
        );
        socket.write(error.subarray(0, 7));
        setTimeout(
          () => socket.write(Buffer.concat([error.subarray(7), message('Z', Buffer.from('I'))])),
          30,
        );
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
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
