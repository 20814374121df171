import { describe, expect, it } from 'vitest';
import { ScramClient } from '../../proxy/scram.ts';

// RFC 7677 section 3: the SCRAM-SHA-256 example exchange.
const nonce = 'rOprNGfwEbeRWgbNEkqO';
const serverFirst = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

describe('ScramClient', () => {
  it('produces the RFC 7677 client proof and accepts the server signature', () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    expect(client.clientFirstMessage()).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    expect(client.clientFinalMessage(serverFirst)).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(() => client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).not.toThrow();
  });

  it('rejects a server that does not know the password verifier', () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    client.clientFinalMessage(serverFirst);
    expect(() => client.verifyServerFinal('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')).toThrow(
      /signature/,
    );
    expect(() => client.verifyServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });

  it('rejects a server nonce that does not extend the client nonce', () => {
    const client = new ScramClient('pencil', { nonce, user: 'user' });
    expect(() => client.clientFinalMessage('r=somethingElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')).toThrow(
      /nonce/,
    );
    expect(() => client.clientFinalMessage(`r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`)).toThrow(/nonce/);
    expect(() => client.clientFinalMessage('r=rOprNGfwEbeRWgbNEkqOx,s=,i=0')).toThrow(/malformed/);
  });
});
