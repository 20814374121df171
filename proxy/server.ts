/**
 * The proxy's listener: accepts connections, sets each one up as a session and keeps track
 * of them so shutdown can stop accepting, let sessions finish, and flush the audit buffer.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { silentLogger } from '../shared/logger.ts';
import { AuditBuffer } from './audit-buffer.ts';
import { CancelRegistry } from './cancel-registry.ts';
import { defaultLimits, type ProxyOptions } from './options.ts';
import type { Relay } from './relay.ts';
import { type SetupContext, setUpSession } from './session-setup.ts';

export interface RunningProxy {
  host: string;
  port: number;
  /** live sessions */
  readonly sessions: number;
  /** audit events not yet accepted by the control plane */
  readonly pendingAuditEvents: number;
  /** stop accepting, end sessions after `graceMs`, flush audit events */
  close(graceMs?: number): Promise<void>;
}

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const logger = options.logger ?? silentLogger;
  const limits = { ...defaultLimits, ...options.limits };
  const audit = new AuditBuffer({ controlPlane: options.controlPlane, logger });
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
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A broken connection only ever ends itself.
    socket.on('error', () => {});
    setUpSession(socket, ctx).catch((error) => {
      logger.error('session setup crashed', { error: String(error) });
      socket.destroy();
    });
  });
  server.on('error', (error) => logger.error('proxy listener error', { error: error.message }));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.removeListener('error', reject);
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
    get pendingAuditEvents() {
      return audit.pending;
    },
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
      await audit.flush();
    },
  };
}
