/**
 * A bounded fuzzer of the session edge (seeded, so every run sends the same packets): startup
 * packets built from the spellings attackers try (role switches in every form, encodings, pins,
 * options escapes, protocol keys), then mutated at the byte level (flips, truncation, repeated
 * segments, NULs). Whatever the packet, the proxy answers with an ErrorResponse, a password
 * request or a close, never crashes, and every session that does open is, on the SERVER, the
 * gateway's login with the pinned settings. A bystander session keeps working throughout.
 */
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameReader } from '../../proxy/wire/frame-reader.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';

const ITERATIONS = 300;
let h: ProxyHarness;

beforeAll(async () => {
  // a packet that declares more bytes than it sends waits for them: a short deadline bounds that
  h = await startProxyHarness({ limits: { authTimeoutMs: 1_000 } });
});
afterAll(async () => {
  await h?.stop();
});

/** mulberry32: a small seeded PRNG, so a failure can be replayed */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = [
  'application_name',
  'options',
  'role',
  'ROLE',
  'Role',
  'session_authorization',
  'client_encoding',
  'Client_Encoding',
  'standard_conforming_strings',
  'search_path',
  'search-path',
  'statement_timeout',
  'backslash_quote',
  'replication',
  '_pq_.x',
  'Options',
  'USER',
  'database',
  'datestyle',
];
const VALUES = [
  'app_admin',
  'postgres',
  'UTF8',
  'utf-8',
  'SQL_ASCII',
  'LATIN1',
  'SJIS',
  'on',
  'off',
  'false',
  'database',
  '-c role=app_admin',
  '-crole=app_admin',
  '--role=app_admin',
  '-c r\\ole=app_admin',
  '-c application_name=x\\ -c\\ role=app_admin',
  '-c standard_conforming_strings=off',
  '-c client_encoding=GBK',
  '--search_path=foo',
  '-c statement_timeout=5000 -c DateStyle=ISO',
  '-D /tmp',
  '-P -e',
  '-c',
  '',
  'x'.repeat(300),
];

function buildPacket(random: () => number): Buffer {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  const parts = ['user', 'alice@example.com'];
  if (random() < 0.8) parts.push('database', 'app');
  const extra = Math.floor(random() * 4);
  for (let i = 0; i < extra; i++) parts.push(pick(NAMES), pick(VALUES));
  let body: Buffer = Buffer.from(`${parts.join('\0')}\0\0`, 'utf8');
  const mutations = random() < 0.5 ? 0 : 1 + Math.floor(random() * 3);
  for (let m = 0; m < mutations; m++) body = mutate(body, random);
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(random() < 0.05 ? Math.floor(random() * 20_000) : out.length, 0);
  out.writeInt32BE(random() < 0.05 ? Math.floor(random() * 2 ** 31) : 3 << 16, 4);
  body.copy(out, 8);
  return out;
}

function mutate(body: Buffer, random: () => number): Buffer {
  const at = Math.floor(random() * body.length);
  switch (Math.floor(random() * 5)) {
    case 0: // flip a byte
      return Buffer.concat([
        body.subarray(0, at),
        Buffer.from([Math.floor(random() * 256)]),
        body.subarray(at + 1),
      ]);
    case 1: // truncate
      return body.subarray(0, at);
    case 2: // a NUL where there was none
      return Buffer.concat([body.subarray(0, at), Buffer.from([0]), body.subarray(at)]);
    case 3: // repeat a segment (duplicate keys, doubled terminators)
      return Buffer.concat([body.subarray(0, at), body.subarray(Math.floor(at / 2))]);
    default: // a high byte (invalid UTF-8 on its own)
      return Buffer.concat([
        body.subarray(0, at),
        Buffer.from([0x80 + Math.floor(random() * 64)]),
        body.subarray(at),
      ]);
  }
}

type Outcome =
  | { kind: 'refused'; code: string }
  | { kind: 'closed' }
  | { kind: 'hung' }
  | { kind: 'session'; row: string[] };

/** Sends one startup packet over TLS and plays the client until a refusal, a close or a session. */
async function attempt(packet: Buffer): Promise<Outcome> {
  const plain = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: h.proxy.port }, () => resolve(s));
    s.once('error', reject);
  });
  plain.write(serialize.requestSsl());
  await new Promise((r) => plain.once('data', r));
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('error', () => {});
  const reader = new FrameReader(1 << 20);
  return new Promise<Outcome>((resolve) => {
    const finish = (outcome: Outcome) => {
      socket.destroy();
      resolve(outcome);
    };
    // past the proxy's deadline, a connection still open is a hang
    const timer = setTimeout(() => finish({ kind: 'hung' }), 5_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ kind: 'closed' });
    });
    let row: string[] = [];
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (let f = reader.next(); f; f = reader.next()) {
        const body = Buffer.from(f.body);
        if (f.type === 0x45 /* E */) {
          clearTimeout(timer);
          return finish({
            kind: 'refused',
            code: /C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))?.[1] ?? '?',
          });
        }
        if (f.type === 0x52 /* R */ && body.readInt32BE(0) === 3)
          socket.write(serialize.password('good-token'));
        if (f.type === 0x44 /* D */) row = readRow(body);
        if (f.type === 0x5a /* Z */ && row.length === 0) {
          socket.write(
            serialize.query(
              "select current_user, session_user, current_setting('standard_conforming_strings'), current_setting('client_encoding'), current_setting('role')",
            ),
          );
        } else if (f.type === 0x5a /* Z */) {
          clearTimeout(timer);
          socket.write(serialize.end());
          return finish({ kind: 'session', row });
        }
      }
    });
    socket.write(packet);
  });
}

function readRow(body: Buffer): string[] {
  const values: string[] = [];
  let at = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const length = body.readInt32BE(at);
    values.push(body.toString('utf8', at + 4, at + 4 + length));
    at += 4 + length;
  }
  return values;
}

describe('startup fuzzing (seeded, bounded)', () => {
  it(`${ITERATIONS} packets: refused, closed or a session that is the gateway's login with the pins`, {
    timeout: 240_000,
  }, async () => {
    const random = prng(20261208);
    const bystander = await h.viaProxy();
    const outcomes = { refused: 0, closed: 0, session: 0, hung: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const packet = buildPacket(random);
      const outcome = await attempt(packet);
      outcomes[outcome.kind]++;
      if (outcome.kind === 'session') {
        expect(outcome.row, `packet ${i}: ${packet.toString('hex')}`).toEqual([
          'app_rw',
          'app_rw',
          'on',
          'UTF8',
          'none',
        ]);
      }
      if (outcome.kind === 'refused')
        expect(outcome.code, `packet ${i}: ${packet.toString('latin1').replace(/\0/g, '|')}`).toMatch(
          /^(08P01|42501|28000|22021|0A000|28P01|22023|3D000)$/,
        );
      if (i % 50 === 0) expect((await bystander.query('select 1 as n')).rows[0].n).toBe(1);
    }
    await bystander.end();
    // the corpus really exercises all three outcomes
    expect(outcomes.hung).toBe(0);
    expect(outcomes.session).toBeGreaterThan(10);
    expect(outcomes.refused).toBeGreaterThan(50);
  });
});
