/**
 * proxy/setup-reader.ts: before the session exists, what a client sends is held only up to a
 * bound; past it TCP pushes back on the client instead of the proxy's memory growing.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SetupReader } from '../../proxy/setup-reader.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const opened: net.Socket[] = [];
let server: net.Server | undefined;

afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
  server?.close();
});

/** A connected pair on loopback: [client side, proxy side]. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const accepted = new Promise<net.Socket>((resolve) => {
    server = net.createServer(resolve).listen(0, '127.0.0.1');
  });
  await new Promise((r) => server!.once('listening', r));
  const client = net.connect((server!.address() as net.AddressInfo).port, '127.0.0.1');
  const proxySide = await accepted;
  opened.push(client, proxySide);
  return [client, proxySide];
}

const CAP = 128 * 1024;

describe('SetupReader', () => {
  it('stops reading once the bound is buffered, and reads on when a message is taken', async () => {
    const [client, proxySide] = await pair();
    const reader = new SetupReader(proxySide, CAP);
    // 8 MiB that nobody asked for (a client streaming after its password while the token is checked)
    const sent = Buffer.alloc(8 * 1024 * 1024, 0x51);
    client.write(sent);
    await waitFor(() => reader.leftover.length >= CAP);
    // give the socket every chance to deliver more; a paused socket delivers nothing
    await new Promise((r) => setTimeout(r, 200));
    expect(proxySide.isPaused()).toBe(true);
    expect(reader.leftover.length).toBeLessThan(CAP + 64 * 1024);
    expect(client.writableLength).toBeGreaterThan(0);

    // taking bytes out resumes reading
    const chunk = await reader.read((d) => (d.length >= CAP ? { value: d.length, size: CAP } : null));
    expect(chunk).toBeGreaterThanOrEqual(CAP);
    await waitFor(() => reader.leftover.length >= CAP);
    const rest = reader.detach();
    expect(rest.every((b) => b === 0x51)).toBe(true);
  });

  it('rejects a pending read when the client goes away', async () => {
    const [client, proxySide] = await pair();
    const reader = new SetupReader(proxySide, CAP);
    const pending = reader.read(() => null);
    client.destroy();
    await expect(pending).rejects.toThrow(/closed/);
  });
});
