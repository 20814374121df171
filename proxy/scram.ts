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

export class ScramClient {
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private expectedServerSignature: Buffer | undefined;

  /** PostgreSQL ignores the SCRAM user name (it uses the startup user): send '*'. */
  constructor(
    private readonly password: string,
    fixed: { nonce?: string; user?: string } = {},
  ) {
    this.clientNonce = fixed.nonce ?? randomBytes(18).toString('base64');
    this.clientFirstBare = `n=${fixed.user ?? '*'},r=${this.clientNonce}`;
  }

  readonly mechanism = 'SCRAM-SHA-256';

  clientFirstMessage(): string {
    return `n,,${this.clientFirstBare}`;
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
    const withoutProof = `c=biws,r=${nonce}`;
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
