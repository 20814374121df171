import { describe, expect, it } from 'vitest';
import { MAX_SCRAM_ITERATIONS, ScramClient } from '../../proxy/scram.ts';

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
