import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLocalCertificate } from '../../../scripts/local/tls.ts';

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-tls-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const day = 24 * 60 * 60 * 1000;

describe('ensureLocalCertificate', () => {
  it('makes a certificate for localhost, 127.0.0.1 and ::1 valid for 825 days, key private', async () => {
    const made = await ensureLocalCertificate(dataDir);
    expect(made.certPath).toBe(join(dataDir, 'tls', 'cert.pem'));
    expect(made.keyPath).toBe(join(dataDir, 'tls', 'key.pem'));
    const x509 = new X509Certificate(made.cert);
    expect(x509.subject).toBe('CN=localhost');
    expect(x509.subjectAltName?.split(', ').sort()).toEqual(
      ['DNS:localhost', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:127.0.0.1'].sort(),
    );
    expect(x509.checkHost('localhost')).toBe('localhost');
    expect(x509.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const days = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / day;
    expect(Math.round(days)).toBe(825);
    expect((await stat(made.keyPath)).mode & 0o777).toBe(0o600);
  });

  it('reuses the certificate, and replaces it once expired', async () => {
    const first = await ensureLocalCertificate(dataDir);
    const second = await ensureLocalCertificate(dataDir);
    expect(second.cert).toBe(first.cert);
    expect(second.key).toBe(first.key);
    const later = new Date(Date.now() + 826 * day);
    const renewed = await ensureLocalCertificate(dataDir, later);
    expect(renewed.cert).not.toBe(first.cert);
    expect(Date.parse(new X509Certificate(renewed.cert).validTo)).toBeGreaterThan(later.getTime());
  });

  it('verifies as its own root for localhost and 127.0.0.1 (what verify-full clients need)', async () => {
    const { cert, key } = await ensureLocalCertificate(dataDir);
    const server = tls.createServer({ cert, key }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      for (const [host, servername] of [
        ['127.0.0.1', undefined],
        ['localhost', 'localhost'],
      ] as const) {
        const authorized = await new Promise<boolean>((resolve, reject) => {
          const socket = tls.connect({ host, port, ca: [cert], servername }, () => {
            resolve(socket.authorized);
            socket.destroy();
          });
          socket.on('error', reject);
        });
        expect(authorized).toBe(true);
      }
    } finally {
      server.close();
    }
  });
});
