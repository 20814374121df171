/**
 * The local proxy's TLS certificate: self-signed for localhost / 127.0.0.1 / ::1, made once and
 * kept in `${dataDir}/tls/` so clients can pin it (`sslrootcert=…/cert.pem`) across restarts.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generate } from 'selfsigned';

export const certificateValidityDays = 825;
/** regenerate a little before expiry so a long-running session does not cross it */
const renewBeforeMs = 24 * 60 * 60 * 1000;

export interface LocalCertificate {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export async function ensureLocalCertificate(
  dataDir: string,
  now: Date = new Date(),
): Promise<LocalCertificate> {
  const dir = resolve(dataDir, 'tls');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    const key = readFileSync(keyPath, 'utf8');
    if (isUsable(cert, key, now)) return { cert, key, certPath, keyPath };
  }
  const { cert, key } = await generateCertificate(now);
  mkdirSync(dir, { recursive: true });
  writeFileSync(keyPath, key, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, cert, { mode: 0o644 });
  return { cert, key, certPath, keyPath };
}

function isUsable(cert: string, key: string, now: Date): boolean {
  try {
    const x509 = new X509Certificate(cert);
    const notBefore = Date.parse(x509.validFrom);
    const notAfter = Date.parse(x509.validTo);
    const current = notBefore <= now.getTime() && notAfter - renewBeforeMs > now.getTime();
    return current && x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    return false;
  }
}

async function generateCertificate(now: Date): Promise<{ cert: string; key: string }> {
  const notBeforeDate = new Date(now.getTime() - 60_000);
  const notAfterDate = new Date(now.getTime() + certificateValidityDays * 24 * 60 * 60 * 1000);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      // its own trust anchor (sslrootcert=cert.pem), so it may sign itself
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
