/**
 * A refused statement's substitute fails upstream and the server's error is swapped for
 * pgwarden's, even when that error arrives in pieces; other errors pass through untouched.
 */
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { startSplitUpstream } from '../fakes/split-upstream.ts';
import { errorMessage, RawClient, summarize } from '../fixtures/raw-client.ts';

let upstream: Awaited<ReturnType<typeof startSplitUpstream>>;
let proxy: RunningProxy;
const controlPlane = new InMemoryControlPlane();

beforeAll(async () => {
  upstream = await startSplitUpstream();
  controlPlane.decider = (r) =>
    r.statement.text.includes('forbidden')
      ? { action: 'deny', ruleId: 'split-test', reason: 'not this one', policyVersion: 't' }
      : { action: 'allow', ruleId: 'default', policyVersion: 't' };
  proxy = await startProxy({
    host: '127.0.0.1',
    port: 0,
    allowPlaintext: true,
    // the stand-in asks for no password: allowed here explicitly, as an operator would have to
    upstream: { host: '127.0.0.1', port: upstream.port, ssl: 'disable', auth: ['none'] },
    credentials: () => ({ user: 'u', password: 'p' }),
    controlPlane,
    proxyId: 'split-test',
  });
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
});

async function connect() {
  const { client } = await RawClient.connect({
    host: '127.0.0.1',
    port: proxy.port,
    user: 'alice@example.com',
    database: 'app',
    password: 'good-token',
    plaintext: true,
  });
  return client;
}

describe('server errors that straddle reads', () => {
  it("swap a refused statement's error whole for pgwarden's", async () => {
    const client = await connect();
    client.send(serialize.query("select 'forbidden'"));
    const replies = await client.untilReady();
    expect(summarize(replies)).toEqual(['E:42501', 'Z:I']);
    expect(errorMessage(replies[0]!)).toContain('not this one');
    client.close();
  });

  it('forward an allowed statement’s error as the server sent it', async () => {
    const client = await connect();
    client.send(serialize.query('select 1'));
    const replies = await client.untilReady();
    expect(summarize(replies)).toEqual(['E:42601', 'Z:I']);
    expect(errorMessage(replies[0]!)).toBe('upstream syntax error');
    client.close();
  });
});
