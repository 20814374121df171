/**
 * The proxy's listener: accepts connections, sets each one up as a session and keeps track
 * of them so shutdown can stop accepting, let sessions finish, and flush the audit trail (the
 * durable spool is written, synced and shipped; what the API cannot take stays for the next start).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { silentLogger } from '../shared/logger.ts';
import { AuditBuffer } from './audit-buffer.ts';
import { AuditTrail } from './audit-trail.ts';
import { CancelRegistry } from './cancel-registry.ts';
import { addressKey, ConnectionCounts } from './connection-limits.ts';
import { Catalogs } from './masking/catalogs.ts';
import { defaultLimits, type ProxyOptions } from './options.ts';
import type { AuditSink, Relay } from './relay.ts';
import { type SetupContext, setUpSession } from './session-setup.ts';

export interface RunningProxy {
  host: string;
  port: number;
  /** live sessions */
  readonly sessions: number;
  /** open client connections, sessions and not yet authenticated alike */
  readonly connections: number;
  /** audit events not yet accepted by the control plane */
  readonly pendingAuditEvents: number;
  /** the durable audit trail, when a spool directory was given */
  readonly auditTrail: AuditTrail | undefined;
  /** stop accepting, end sessions after `graceMs`, flush audit events */
  close(graceMs?: number): Promise<void>;
}

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const logger = options.logger ?? silentLogger;
  const limits = { ...defaultLimits, ...options.limits };
  const auditOptions = options.audit ?? {};
  const mode = auditOptions.mode ?? 'buffered';
  if (mode === 'strict' && !auditOptions.spoolDir)
    throw new Error('strict audit mode needs a spool directory');
  const trail = auditOptions.spoolDir
    ? await AuditTrail.open({
        mode,
        spoolDir: auditOptions.spoolDir,
        sync: auditOptions.sync ?? 'always',
        maxSpoolBytes: auditOptions.maxSpoolBytes ?? 1024 ** 3,
        controlPlane: options.controlPlane,
        logger,
        ...(auditOptions.batchSize === undefined ? {} : { batchSize: auditOptions.batchSize }),
        ...(auditOptions.shipIntervalMs === undefined ? {} : { shipIntervalMs: auditOptions.shipIntervalMs }),
      })
    : undefined;
  // Without a spool directory (tests, embedding) records are buffered in memory only.
  const buffer = trail ? undefined : new AuditBuffer({ controlPlane: options.controlPlane, logger });
  const audit: AuditSink = trail ?? buffer!;
  const relays = new Set<Relay>();
  const sockets = new Set<net.Socket>();
  const ctx: SetupContext = {
    options,
    limits,
    secureContext: options.tls
      ? tls.createSecureContext({ cert: options.tls.cert, key: options.tls.key })
      : undefined,
    cancels: new CancelRegistry(),
    audit,
    logger,
    newId: randomUUID,
    relays,
    catalogs: new Catalogs(options.upstream, options.credentials, limits.authTimeoutMs),
    maskingKey: options.maskingKey ?? randomBytes(32),
    principals: new ConnectionCounts(),
  };
  const addresses = new ConnectionCounts();
  /** connections past an address's limit, kept only until they are told why (bounded too) */
  const refusing = new ConnectionCounts();

  const server = net.createServer((socket) => {
    // A broken connection only ever ends itself.
    socket.on('error', () => {});
    const address = addressKey(socket.remoteAddress ?? '');
    const limit = limits.maxConnectionsPerAddress;
    const admitted = addresses.tryAcquire(address, limit);
    // Past the limit the connection is still read up to its startup packet, so the client can be
    // told why (a reply to SSLRequest cannot carry a message); as many again at most, then cut.
    const release = admitted ?? refusing.tryAcquire(address, limit);
    if (!release) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      release();
    });
    setUpSession(socket, ctx, { overAddressLimit: admitted === undefined }).catch((error) => {
      logger.error('session setup crashed', { error: String(error) });
      socket.destroy();
    });
  });
  server.on('error', (error) => logger.error('proxy listener error', { error: error.message }));

  await new Promise<void>((resolve, reject) => {
    const onListenError = (error: Error) => {
      // Release the spool (its periodic sync timer) so a failed start leaves nothing running.
      void trail?.close(0);
      reject(error);
    };
    server.once('error', onListenError);
    server.listen(options.port, options.host, () => {
      server.removeListener('error', onListenError);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  logger.info('proxy listening', { host: address.address, port: address.port });

  return {
    host: address.address,
    port: address.port,
    get sessions() {
      return relays.size;
    },
    get connections() {
      return sockets.size;
    },
    get pendingAuditEvents() {
      return trail ? trail.pending : buffer!.pending;
    },
    auditTrail: trail,
    async close(graceMs = 0) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        const deadline = Date.now() + graceMs;
        const wait = () => {
          if (relays.size === 0 || Date.now() >= deadline) {
            for (const relay of [...relays]) relay.end('shutdown');
            for (const socket of sockets) socket.destroy();
            return;
          }
          setTimeout(wait, 50);
        };
        wait();
      });
      ctx.catalogs.close();
      if (trail) await trail.close();
      else await buffer!.flush();
    },
  };
}
