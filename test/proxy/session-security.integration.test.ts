/**
 * Adversarial tests of the proxy's own rules: who may connect, what bad input does, and that
 * refused statements never reach the database. Each bypass attempt found stays here.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PgWardenError } from '../../shared/errors.ts';
import { allowAll } from '../fakes/proxy-control-plane.ts';
import { type ProxyHarness, startProxyHarness } from '../fixtures/proxy-harness.ts';
import { errorMessage, RawClient, summarize } from '../fixtures/raw-client.ts';

let h: ProxyHarness;

beforeAll(async () => {
  h = await startProxyHarness();
});
afterAll(async () => {
  await h?.stop();
});
beforeEach(() => {
  h.controlPlane.decider = allowAll;
});

function connect(o: Partial<Parameters<typeof RawClient.connect>[0]> = {}) {
  return RawClient.connect({
    host: '127.0.0.1',
    port: h.proxy.port,
    user: 'alice@example.com',
    database: 'app',
    password: 'good-token',
    ...o,
  });
}

async function rawSocket(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: h.proxy.port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads whatever the proxy sends until it closes the socket. */
function readUntilClosed(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(parts)));
  });
}

describe('authentication', () => {
  it.each([
    ['an unknown token', 'forged.jwt.value', '28P01'],
    ['an empty password', '', '28P01'],
  ])('refuses %s with 28P01 and never opens an upstream connection', async (_what, password, sqlstate) => {
    const requestsBefore = h.credentialRequests.length;
    const { startupReplies } = await connect({ password });
    const error = startupReplies.at(-1)!;
    expect(summarize([error])).toEqual([`E:${sqlstate}`]);
    expect(h.credentialRequests.length).toBe(requestsBefore);
  });

  it('refuses a startup user that is not the token principal (28000)', async () => {
    const { startupReplies } = await connect({ user: 'bob@example.com' });
    expect(summarize([startupReplies.at(-1)!])).toEqual(['E:28000']);
  });

  it('refuses plaintext connections when TLS is required', async () => {
    const { startupReplies } = await connect({ plaintext: true });
    const last = startupReplies.at(-1)!;
    expect(summarize([last])).toEqual(['E:28000']);
    expect(errorMessage(last)).toMatch(/sslmode=require/);
    // The token was never asked for in plaintext.
    expect(startupReplies.some((m) => m.type === 'R')).toBe(false);
  });

  it('answers GSSENCRequest with N and then negotiates TLS', async () => {
    const socket = await rawSocket();
    const answer = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    socket.write(gss);
    expect((await answer).toString()).toBe('N');
    const ssl = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(serialize.requestSsl());
    expect((await ssl).toString()).toBe('S');
    socket.destroy();
  });

  it('refuses bytes sent after SSLRequest before the TLS handshake (injection)', async () => {
    const socket = await rawSocket();
    const closed = readUntilClosed(socket);
    socket.write(Buffer.concat([serialize.requestSsl(), serialize.query('select 1')]));
    const reply = await closed;
    expect(reply.toString('latin1')).toContain('08P01');
    expect(reply.toString('latin1').startsWith('S')).toBe(false);
  });

  it('refuses replication connections', async () => {
    const { startupReplies } = await connect({ parameters: { replication: 'database' } });
    expect(summarize([startupReplies.at(-1)!])).toEqual(['E:0A000']);
  });

  it('reports an unavailable control plane as such, not as a bad password', async () => {
    const original = h.controlPlane.openSession;
    h.controlPlane.openSession = async () => {
      throw new PgWardenError('CONTROL_PLANE_UNAVAILABLE', 'the control plane did not answer');
    };
    try {
      const { startupReplies } = await connect();
      expect(summarize([startupReplies.at(-1)!])).toEqual(['E:08004']);
    } finally {
      h.controlPlane.openSession = original;
    }
  });
});

describe('malformed input closes only that connection', () => {
  async function expectFatalThenStillServing(payload: Buffer, sqlstate = '08P01') {
    const bystander = await h.viaProxy();
    const { client } = await connect();
    client.send(payload);
    const replies = await client.untilClosed();
    expect(summarize(replies)).toContain(`E:${sqlstate}`);
    expect((await bystander.query('select 42 as n')).rows[0].n).toBe(42);
    await bystander.end();
  }

  it('a message length below 4', () => expectFatalThenStillServing(Buffer.from([0x51, 0, 0, 0, 2])));
  it('an unknown message type', () => expectFatalThenStillServing(Buffer.from([0x59, 0, 0, 0, 4])));
  it('an oversized message, refused before it is buffered', () =>
    expectFatalThenStillServing(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff])));
  it('a Query whose text is not terminated', () =>
    expectFatalThenStillServing(Buffer.from([0x51, 0, 0, 0, 7, 0x61, 0x62, 0x63])));
  it('a password message after authentication', () =>
    expectFatalThenStillServing(serialize.password('again')));

  it('a first packet of a length no message can have: closed without a word, as PostgreSQL does', async () => {
    // node-postgres may send a Terminate before its SSLRequest; an answer would be read as the reply
    const socket = await rawSocket();
    const closed = readUntilClosed(socket);
    socket.write(Buffer.from([0, 0, 0, 3, 0, 3, 0, 0]));
    expect((await closed).length).toBe(0);
  });

  it('a startup packet longer than the limit: 08P01', async () => {
    const socket = await rawSocket();
    const closed = readUntilClosed(socket);
    const header = Buffer.alloc(8);
    header.writeInt32BE(20_000, 0);
    header.writeInt32BE(196608, 4);
    socket.write(header);
    expect((await closed).toString('latin1')).toContain('08P01');
  });

  it('an unsupported protocol version', async () => {
    const socket = await rawSocket();
    const closed = readUntilClosed(socket);
    const packet = Buffer.alloc(8);
    packet.writeInt32BE(8, 0);
    packet.writeInt32BE(2 << 16, 4);
    socket.write(packet);
    expect((await closed).toString('latin1')).toContain('08P01');
  });
});

describe('refused statements never reach the database', () => {
  it('a denied simple query gets 42501 and the session stays usable', async () => {
    h.controlPlane.decider = (r) =>
      r.statement.text.includes('pg_read_file')
        ? {
            action: 'deny',
            ruleId: 'no-file-access',
            reason: 'server files are off limits',
            policyVersion: 't',
          }
        : allowAll();
    const c = await h.viaProxy();
    const error = await c.query("select pg_read_file('/etc/passwd')").catch((e) => e);
    expect(error.code).toBe('42501');
    expect(error.message).toContain('server files are off limits');
    expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
    await c.end();
  });

  it('a denied Parse fails, and the rest of its pipeline is not forwarded', async () => {
    h.controlPlane.decider = (r) =>
      r.statement.text.includes('forbidden')
        ? { action: 'deny', ruleId: 'r1', reason: 'nope', policyVersion: 't' }
        : allowAll();
    const { client } = await connect();
    client.send(
      serialize.parse({ text: "select 'forbidden'" }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.parse({ text: "set application_name = 'ran'" }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
      serialize.query('show application_name'),
    );
    const replies = await client.untilReady(2);
    expect(summarize(replies)).toEqual(['E:42501', 'Z:I', 'T', 'D', 'C:SHOW', 'Z:I']);
    const shown = replies.find((m) => m.type === 'D')!;
    expect(shown.body.toString('utf8')).not.toContain('ran');
    client.close();
  });

  it('a denied statement inside a transaction aborts it, as any error does in PostgreSQL', async () => {
    h.controlPlane.decider = (r) =>
      r.statement.text.includes('forbidden')
        ? { action: 'deny', ruleId: 'r3', reason: 'nope', policyVersion: 't' }
        : allowAll();
    const c = await h.viaProxy();
    await c.query('begin');
    await c.query('select 1');
    expect((await c.query("select 'forbidden'").catch((e) => e)).code).toBe('42501');
    // the transaction is now failed: PostgreSQL itself refuses the next statement
    expect((await c.query('select 2').catch((e) => e)).code).toBe('25P02');
    await c.query('rollback');
    expect((await c.query('select 3 as n')).rows[0].n).toBe(3);
    // extended protocol too: a refused Parse fails the transaction block
    await c.query('begin');
    expect(
      (await c.query({ text: "select $1::text, 'forbidden'", values: ['x'] }).catch((e) => e)).code,
    ).toBe('42501');
    expect((await c.query({ text: 'select $1::int', values: [1] }).catch((e) => e)).code).toBe('25P02');
    await c.query('rollback');
    await c.end();
  });

  it('a refusal between allowed messages comes back in order', async () => {
    h.controlPlane.decider = (r) =>
      r.statement.text === 'select 2' ? { action: 'deny', ruleId: 'r2', policyVersion: 't' } : allowAll();
    const { client } = await connect();
    client.send(serialize.query('select 1'), serialize.query('select 2'), serialize.query('select 3'));
    expect(summarize(await client.untilReady(3))).toEqual([
      'T',
      'D',
      'C:SELECT 1',
      'Z:I',
      'E:42501',
      'Z:I',
      'T',
      'D',
      'C:SELECT 1',
      'Z:I',
    ]);
    client.close();
  });

  it('require_approval is refused until approvals exist, saying approval is required', async () => {
    h.controlPlane.decider = () => ({
      action: 'require_approval',
      ruleId: 'ddl',
      reason: 'DDL',
      policyVersion: 't',
    });
    const c = await h.viaProxy();
    const error = await c.query('create table x (id int)').catch((e) => e);
    expect(error.code).toBe('42501');
    expect(error.message).toMatch(/requires approval/);
    await c.end();
  });

  it('fails closed when the control plane cannot decide', async () => {
    h.controlPlane.decider = () => Promise.reject(new Error('control plane down'));
    const c = await h.viaProxy();
    const error = await c.query('select 1').catch((e) => e);
    expect(error.code).toBe('58000');
    h.controlPlane.decider = allowAll;
    expect((await c.query('select 2 as n')).rows[0].n).toBe(2);
    await c.end();
  });

  it('keeps order when decisions arrive asynchronously', async () => {
    h.controlPlane.decider = (r) =>
      new Promise((resolve) =>
        setTimeout(() => resolve(allowAll()), r.statement.text.includes('slow') ? 30 : 1),
      );
    const c = await h.viaProxy();
    const results = await Promise.all([
      c.query("select 'slow' as v"),
      c.query("select 'fast' as v"),
      c.query({ text: 'select $1::text as v', values: ['param'] }),
    ]);
    expect(results.map((r) => r.rows[0].v)).toEqual(['slow', 'fast', 'param']);
    await c.end();
  });

  it('refuses the fastpath function-call interface', async () => {
    const { client } = await connect();
    // FunctionCall 'F': oid 1 (no such function matters), no arguments, text result
    const body = Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    const frame = Buffer.concat([Buffer.from([0x46, 0, 0, 0, body.length + 4]), body]);
    client.send(frame, serialize.query('select 1'));
    expect(summarize(await client.untilReady(2))).toEqual(['E:0A000', 'Z:I', 'T', 'D', 'C:SELECT 1', 'Z:I']);
    client.close();
  });
});
