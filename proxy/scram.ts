/**
 * SCRAM-SHA-256 client side (RFC 5802 / 7677) for authenticating to the upstream PostgreSQL.
 * The server's final signature is verified, so a fake upstream cannot pretend the login worked.
 * Salted passwords are cached per (password, salt, iterations): PBKDF2 costs milliseconds and
 * every new client session would otherwise pay it again for the same role.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);
const saltedCache = new Map<string, Buffer>();

/**
 * The server chooses the iteration count. PostgreSQL's default is 4,096; a server asking for
 * more than this would make each login cost the proxy seconds of CPU: refused.
 */
export const MAX_SCRAM_ITERATIONS = 1_000_000;

/** PBKDF2 runs on the thread pool: a login never stalls the sessions already running. */
async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  const key = createHash('sha256')
    .update(password)
    .update('\0')
    .update(salt)
    .update(String(iterations))
    .digest('hex');
  let salted = saltedCache.get(key);
  if (!salted) {
    salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
    if (saltedCache.size > 256) saltedCache.clear();
    saltedCache.set(key, salted);
  }
  return salted;
}

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

/**
 * Channel binding (RFC 5802 §6, RFC 5929): binds the SCRAM proof to the TLS connection, so a
 * man in the middle who terminates TLS (possible when the certificate is not verified) cannot
 * relay the exchange to the real server.
 * - `bind`: the server offered SCRAM-SHA-256-PLUS; `data` is its certificate's hash
 *   (tls-server-end-point).
 * - `server-did-not-offer`: TLS is in use but the list had no -PLUS: say "y" (the client could
 *   bind), so a server that does support it sees the downgrade and refuses.
 * - `no-tls`: nothing to bind to ("n").
 */
export type ChannelBinding =
  | { kind: 'bind'; data: Buffer }
  | { kind: 'server-did-not-offer' }
  | { kind: 'no-tls' };

export class ScramClient {
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private readonly gs2Header: string;
  private expectedServerSignature: Buffer | undefined;
  readonly mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';

  /** PostgreSQL ignores the SCRAM user name (it uses the startup user): send '*'. */
  constructor(
    private readonly password: string,
    fixed: { nonce?: string; user?: string } = {},
    private readonly binding: ChannelBinding = { kind: 'no-tls' },
  ) {
    this.clientNonce = fixed.nonce ?? randomBytes(18).toString('base64');
    this.clientFirstBare = `n=${fixed.user ?? '*'},r=${this.clientNonce}`;
    this.mechanism = binding.kind === 'bind' ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
    this.gs2Header = { bind: 'p=tls-server-end-point,,', 'server-did-not-offer': 'y,,', 'no-tls': 'n,,' }[
      binding.kind
    ];
  }

  clientFirstMessage(): string {
    return `${this.gs2Header}${this.clientFirstBare}`;
  }

  /** `c=`: the GS2 header, followed by the channel binding data when bound. */
  private channelBindingAttribute(): string {
    const header = Buffer.from(this.gs2Header);
    const data = this.binding.kind === 'bind' ? Buffer.concat([header, this.binding.data]) : header;
    return data.toString('base64');
  }

  /** Answers the server-first message; throws if it is malformed or does not extend our nonce. */
  async clientFinalMessage(serverFirst: string): Promise<string> {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error('malformed SCRAM server-first message');
    }
    if (iterations > MAX_SCRAM_ITERATIONS) {
      throw new Error(`SCRAM iteration count ${iterations} is above ${MAX_SCRAM_ITERATIONS}`);
    }
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new Error('SCRAM server nonce does not extend the client nonce');
    }
    const salted = await saltedPassword(this.password, Buffer.from(salt, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=${this.channelBindingAttribute()},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Verifies the server-final message: proves the server knows the password verifier. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    if (attrs.has('e')) throw new Error(`SCRAM authentication failed: ${attrs.get('e')}`);
    const signature = Buffer.from(attrs.get('v') ?? '', 'base64');
    const expected = this.expectedServerSignature;
    if (!expected || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new Error('SCRAM server signature does not match');
    }
  }
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

/**
 * tls-server-end-point (RFC 5929 §4.1): the hash of the server's DER certificate, with the hash of
 * its signature algorithm (SHA-256 for MD5 and SHA-1). Undefined for an algorithm without one
 * (Ed25519, RSA-PSS), where the server cannot bind either.
 */
export function tlsServerEndPoint(certificateDer: Buffer): Buffer | undefined {
  const algorithm = SIGNATURE_HASHES[signatureAlgorithmOid(certificateDer) ?? ''];
  return algorithm === undefined ? undefined : createHash(algorithm).update(certificateDer).digest();
}

/** DER-encoded OIDs of certificate signature algorithms → the hash tls-server-end-point uses. */
const SIGNATURE_HASHES: Readonly<Record<string, string>> = {
  '2a864886f70d010104': 'sha256', // md5WithRSAEncryption
  '2a864886f70d010105': 'sha256', // sha1WithRSAEncryption
  '2a864886f70d01010e': 'sha224', // sha224WithRSAEncryption
  '2a864886f70d01010b': 'sha256', // sha256WithRSAEncryption
  '2a864886f70d01010c': 'sha384', // sha384WithRSAEncryption
  '2a864886f70d01010d': 'sha512', // sha512WithRSAEncryption
  '2a8648ce3d0401': 'sha256', // ecdsa-with-SHA1
  '2a8648ce3d040301': 'sha224', // ecdsa-with-SHA224
  '2a8648ce3d040302': 'sha256', // ecdsa-with-SHA256
  '2a8648ce3d040303': 'sha384', // ecdsa-with-SHA384
  '2a8648ce3d040304': 'sha512', // ecdsa-with-SHA512
};

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm SEQUENCE { OID, … }, … } */
function signatureAlgorithmOid(der: Buffer): string | undefined {
  const certificate = derElement(der, 0);
  if (!certificate || der[0] !== 0x30) return undefined;
  const tbs = derElement(der, certificate.contentStart);
  if (!tbs) return undefined;
  const algorithm = derElement(der, tbs.end);
  if (!algorithm || der[tbs.end] !== 0x30) return undefined;
  const oid = derElement(der, algorithm.contentStart);
  if (!oid || der[algorithm.contentStart] !== 0x06) return undefined;
  return der.toString('hex', oid.contentStart, oid.end);
}

/** One DER element at `at`: where its content starts and where it ends (definite lengths only). */
function derElement(der: Buffer, at: number): { contentStart: number; end: number } | undefined {
  if (at + 2 > der.length) return undefined;
  let length = der[at + 1]!;
  let contentStart = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes < 1 || bytes > 4 || contentStart + bytes > der.length) return undefined;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += bytes;
  }
  const end = contentStart + length;
  return end <= der.length ? { contentStart, end } : undefined;
}
