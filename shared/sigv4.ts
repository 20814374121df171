/**
 * What both ends of the proxy's signed API calls share (proxy/aws-sigv4.ts signs,
 * functions/api/proxy-auth.ts checks locally): the service name, the local key id and region, the
 * SHA-256 the signer takes, and the Authorization header's parts. No I/O.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';

export const SIGNING_SERVICE = 'execute-api';
/** The key id local mode signs with; its secret is the local data directory's generated secret. */
export const LOCAL_ACCESS_KEY_ID = 'PGWARDENLOCALPROXY';
/** The region name local mode signs for. */
export const LOCAL_SIGNING_REGION = 'local';
export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** A random value per request, signed: what the local verifier's replay check keys on. */
export const NONCE_HEADER = 'x-pgwarden-nonce';

/** SHA-256 and HMAC-SHA-256 from node:crypto in the shape the signer takes (a Checksum). */
export class NodeSha256 {
  private hash: Hash | Hmac;

  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }

  private fresh(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.secret));
  }

  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }

  reset(): void {
    this.hash = this.fresh();
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`. */
export interface SigV4Authorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

export function parseSigV4Authorization(header: string | undefined): SigV4Authorization | undefined {
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
      header ?? '',
    );
  if (!match) return undefined;
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match;
  return {
    accessKeyId: accessKeyId!,
    date: date!,
    region: region!,
    service: service!,
    signedHeaders: signedHeaders!.split(';'),
    signature: signature!,
  };
}
