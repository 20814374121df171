import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_SCRAM_ITERATIONS, ScramClient, tlsServerEndPoint } from '../../proxy/scram.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';

// RFC 7677 section 3: the SCRAM-SHA-256 example exchange.
const nonce = 'rOprNGfwEbeRWgbNEkqO';
const serverFirst = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

describe('ScramClient', () => {
  it('produces the RFC 7677 client proof and accepts the server signature', async () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    expect(client.clientFirstMessage()).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    expect(await client.clientFinalMessage(serverFirst)).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(() => client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).not.toThrow();
  });

  it('rejects a server that does not know the password verifier', async () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    await client.clientFinalMessage(serverFirst);
    expect(() => client.verifyServerFinal('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toThrow(
      /signature/,
    );
    expect(() => client.verifyServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });

  it('rejects a server nonce that does not extend the client nonce', async () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    await expect(
      client.clientFinalMessage('r=somethingElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'),
    ).rejects.toThrow(/nonce/);
    await expect(client.clientFinalMessage(`r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`)).rejects.toThrow(
      /nonce/,
    );
    await expect(client.clientFinalMessage('r=rOprNGfwEbeRWgbNEkqOx,s=,i=0')).rejects.toThrow(/malformed/);
  });

  it('refuses an iteration count that would cost the proxy seconds of CPU per login', async () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    await expect(
      client.clientFinalMessage(`r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=${MAX_SCRAM_ITERATIONS + 1}`),
    ).rejects.toThrow(/iteration/);
  });

  it('refuses a server-final message before its own proof was computed', () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    expect(() => client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toThrow(
      /signature/,
    );
  });
});

describe('channel binding', () => {
  it('binds to the certificate hash with SCRAM-SHA-256-PLUS (p=tls-server-end-point)', async () => {
    const data = Buffer.alloc(32, 7);
    const client = new ScramClient('pencil', { nonce, user: 'user' }, { kind: 'bind', data });
    expect(client.mechanism).toBe('SCRAM-SHA-256-PLUS');
    expect(client.clientFirstMessage()).toBe(`p=tls-server-end-point,,n=user,r=${nonce}`);
    const final = await client.clientFinalMessage(serverFirst);
    const c = /^c=([^,]+),/.exec(final)![1]!;
    expect(Buffer.from(c, 'base64')).toEqual(Buffer.concat([Buffer.from('p=tls-server-end-point,,'), data]));
  });

  it('over TLS without -PLUS on offer it says "y", so a server that can bind sees the downgrade', async () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' }, { kind: 'server-did-not-offer' });
    expect(client.mechanism).toBe('SCRAM-SHA-256');
    expect(client.clientFirstMessage()).toBe(`y,,n=user,r=${nonce}`);
    expect(await client.clientFinalMessage(serverFirst)).toMatch(/^c=eSws,/);
  });

  it('tls-server-end-point hashes the DER certificate with its signature hash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgwarden-scram-'));
    const { cert } = await ensureLocalCertificate(dir); // ECDSA with SHA-256
    const der = new X509Certificate(cert).raw;
    expect(tlsServerEndPoint(der)).toEqual(createHash('sha256').update(der).digest());
    expect(tlsServerEndPoint(der.subarray(0, 40))).toBeUndefined();
    expect(tlsServerEndPoint(Buffer.from([0x30, 0x82]))).toBeUndefined();
  });
});
