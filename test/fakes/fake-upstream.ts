/**
 * A PostgreSQL impostor for the gateway's upstream login: it speaks just enough of the protocol
 * (plaintext, no TLS) to try each trick a server could play on a client (ask for a cleartext or
 * MD5 password, say AuthenticationOk without authenticating, end SCRAM without proving it knows
 * the password, …) and records every message the gateway sent it, so a test can prove the
 * password never left.
 *
 * `scram: 'honest'` runs a real SCRAM-SHA-256 server exchange against `password`, as a genuine
 * server would, so the tricks are told apart from a login that should work.
 */
import { createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameReader } from '../../proxy/wire/frame-reader.ts';

export type UpstreamTrick =
  | 'trust'
  | 'no-authentication-at-all'
  | 'cleartext'
  | 'md5'
  | 'scram-honest'
  | 'scram-ok-without-final'
  | 'scram-final-wrong-signature'
  | 'scram-final-before-continue'
  | 'scram-plus-only'
  | 'scram-huge-iterations'
  | 'scram-honest-then-ask-cleartext'
  | 'parameter-status-before-authentication'
  | 'reports-sql-ascii'
  | 'reports-another-session-user'
  | 'error-before-authentication';

export interface FakeUpstream {
  port: number;
  trick: UpstreamTrick;
  /** frontend messages received, per connection: type letter and body (startup packet as '0') */
  received: Array<Array<{ type: string; body: Buffer }>>;
  close(): Promise<void>;
}

const PASSWORD_SALT = Buffer.from('pgwarden-fake-salt');
const ITERATIONS = 4096;

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};
const cstr = (s: string) => Buffer.from(`${s}\0`);
const auth = (kind: number, rest: Buffer = Buffer.alloc(0)) =>
  message('R', Buffer.concat([int32(kind), rest]));
const status = (name: string, value: string) => message('S', Buffer.concat([cstr(name), cstr(value)]));

function sessionStart(encoding = 'UTF8', user = 'app_rw'): Buffer {
  return Buffer.concat([
    status('session_authorization', user),
    status('client_encoding', encoding),
    status('standard_conforming_strings', 'on'),
    status('server_version', '18.0'),
    message('K', Buffer.concat([int32(4242), int32(7)])),
    message('Z', Buffer.from('I')),
  ]);
}

/** The server half of SCRAM-SHA-256 for one connection. */
class ScramServer {
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  constructor(
    private readonly password: string,
    private readonly iterations = ITERATIONS,
  ) {}

  first(initialResponse: Buffer): string {
    // SASLInitialResponse body: mechanism\0, int32 length, client-first message
    const mechanismEnd = initialResponse.indexOf(0);
    const clientFirst = initialResponse.toString('utf8', mechanismEnd + 5);
    this.clientFirstBare = clientFirst.replace(/^[^,]*,[^,]*,/, '');
    const clientNonce = /r=([^,]+)/.exec(this.clientFirstBare)![1]!;
    this.nonce = clientNonce + randomBytes(12).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${PASSWORD_SALT.toString('base64')},i=${this.iterations}`;
    return this.serverFirst;
  }

  final(clientFinal: string): string {
    const withoutProof = clientFinal.replace(/,p=[^,]*$/, '');
    const salted = pbkdf2Sync(this.password, PASSWORD_SALT, ITERATIONS, 32, 'sha256');
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    // (a real server also checks the client's proof; the gateway's proof is covered by scram.test.ts)
    return `v=${createHmac('sha256', serverKey).update(authMessage).digest('base64')}`;
  }
}

export async function startFakeUpstream(trick: UpstreamTrick, password = 'secret'): Promise<FakeUpstream> {
  const received: FakeUpstream['received'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const log: Array<{ type: string; body: Buffer }> = [];
    received.push(log);
    const reader = new FrameReader(1 << 20);
    const scram = new ScramServer(password, trick === 'scram-huge-iterations' ? 2_000_000_000 : ITERATIONS);
    let started = false;
    let buffered = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      if (!started) {
        buffered = Buffer.concat([buffered, data]);
        if (buffered.length < 4 || buffered.length < buffered.readInt32BE(0)) return;
        const length = buffered.readInt32BE(0);
        log.push({ type: '0', body: buffered.subarray(8, length) });
        started = true;
        socket.write(opening(trick));
        data = buffered.subarray(length);
        if (data.length === 0) return;
      }
      reader.push(data);
      for (let f = reader.next(); f; f = reader.next()) {
        log.push({ type: String.fromCharCode(f.type), body: Buffer.from(f.body) });
        const reply = answer(trick, scram, f.type, Buffer.from(f.body));
        if (reply) socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    trick,
    received,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** What the impostor says right after the startup packet. */
function opening(trick: UpstreamTrick): Buffer {
  switch (trick) {
    case 'trust':
      return Buffer.concat([auth(0), sessionStart()]);
    case 'no-authentication-at-all':
      return sessionStart();
    case 'error-before-authentication':
      return message(
        'E',
        Buffer.concat([
          cstr('SFATAL'),
          cstr('C22023'),
          cstr('Mlog in again at https://evil.example'),
          Buffer.from([0]),
        ]),
      );
    case 'parameter-status-before-authentication':
      return Buffer.concat([status('is_superuser', 'on'), auth(3)]);
    case 'cleartext':
      return auth(3);
    case 'md5':
      return auth(5, Buffer.from([1, 2, 3, 4]));
    case 'scram-plus-only':
      return auth(10, Buffer.concat([cstr('SCRAM-SHA-256-PLUS'), Buffer.from([0])]));
    case 'scram-final-before-continue':
      return Buffer.concat([
        auth(10, Buffer.concat([cstr('SCRAM-SHA-256'), Buffer.from([0])])),
        auth(12, Buffer.from('v=AAAA')),
      ]);
    default:
      return auth(10, Buffer.concat([cstr('SCRAM-SHA-256'), Buffer.from([0])]));
  }
}

/** The impostor's answer to one frontend message. */
function answer(trick: UpstreamTrick, scram: ScramServer, type: number, body: Buffer): Buffer | undefined {
  if (type !== 0x70 /* p: password, SASLInitialResponse and SASLResponse alike */) return undefined;
  if (trick === 'cleartext' || trick === 'md5' || trick === 'parameter-status-before-authentication')
    return Buffer.concat([auth(0), sessionStart()]);
  if (body.includes('SCRAM-SHA-256\0')) return auth(11, Buffer.from(scram.first(body)));
  const final = scram.final(body.toString('utf8'));
  switch (trick) {
    case 'scram-ok-without-final':
      return Buffer.concat([auth(0), sessionStart()]);
    case 'scram-final-wrong-signature':
      return Buffer.concat([
        auth(12, Buffer.from(`v=${randomBytes(32).toString('base64')}`)),
        auth(0),
        sessionStart(),
      ]);
    case 'scram-honest-then-ask-cleartext':
      return Buffer.concat([auth(12, Buffer.from(final)), auth(3)]);
    case 'reports-sql-ascii':
      return Buffer.concat([auth(12, Buffer.from(final)), auth(0), sessionStart('SQL_ASCII')]);
    case 'reports-another-session-user':
      return Buffer.concat([auth(12, Buffer.from(final)), auth(0), sessionStart('UTF8', 'postgres')]);
    default:
      return Buffer.concat([auth(12, Buffer.from(final)), auth(0), sessionStart()]);
  }
}
