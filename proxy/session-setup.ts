/**
 * A new connection, from its first byte to the start of forwarding: TLS negotiation, the
 * startup packet, the token as password, the session from the control plane, and the upstream
 * login with the gateway's own credentials. No upstream connection is opened before the
 * control plane has accepted the token.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { SessionContext } from '../shared/control-plane.ts';
import { PgWardenError } from '../shared/errors.ts';
import { sessionPrincipal } from '../shared/identity.ts';
import type { Logger } from '../shared/logger.ts';
import type { CancelRegistry } from './cancel-registry.ts';
import type { Catalogs } from './masking/catalogs.ts';
import { SessionMasking } from './masking/session-masking.ts';
import type { ProxyLimits, ProxyOptions } from './options.ts';
import { type AuditSink, Relay } from './relay.ts';
import { SessionLifetime } from './session-lifetime.ts';
import { SetupReader } from './setup-reader.ts';
import { connectUpstream, sendUpstreamCancel, type UpstreamConnection } from './upstream.ts';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  errorResponse,
  type NoticeFields,
  negotiateProtocolVersion,
  readyForQuery,
} from './wire/backend-writer.ts';
import { parsePassword } from './wire/frontend-fields.ts';
import { readStartupPacket, type StartupPacket } from './wire/startup.ts';
import { fatalFor } from './wire-errors.ts';

export interface SetupContext {
  options: ProxyOptions;
  limits: ProxyLimits;
  secureContext: tls.SecureContext | undefined;
  cancels: CancelRegistry;
  audit: AuditSink;
  logger: Logger;
  newId: () => string;
  /** live relays, so shutdown can end them */
  relays: Set<Relay>;
  /** result column identities for masking, per upstream database */
  catalogs: Catalogs;
  maskingKey: Uint8Array;
}

/** Startup parameters that the gateway sets itself or refuses, never passed upstream. */
const RESERVED_PARAMETERS = new Set(['user', 'database', 'replication']);

class SetupRefusal extends Error {
  constructor(readonly fields: NoticeFields) {
    super(fields.message);
  }
}

export async function setUpSession(raw: net.Socket, ctx: SetupContext): Promise<void> {
  raw.setNoDelay(true);
  const timer = setTimeout(() => raw.destroy(), ctx.limits.authTimeoutMs);
  let socket: net.Socket = raw;
  let reader = new SetupReader(raw);
  try {
    let packet = await reader.read((d) => startupOf(d, ctx.limits));
    let encrypted = false;
    while (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      if (packet.kind === 'ssl' && ctx.secureContext && !encrypted) {
        // Anything sent after SSLRequest but before the handshake could be injected by an
        // attacker in the middle (CVE-2021-23214): refuse it.
        if (reader.detach().length > 0) throw new SetupRefusal(violation('data after SSLRequest'));
        raw.write('S');
        socket = await upgradeToTls(raw, ctx.secureContext);
        encrypted = true;
        reader = new SetupReader(socket);
      } else {
        socket.write('N');
      }
      packet = await reader.read((d) => startupOf(d, ctx.limits));
    }
    if (packet.kind === 'cancel') {
      ctx.cancels.cancel(packet.processId, packet.secret);
      socket.end();
      return;
    }
    if (!encrypted && !ctx.options.allowPlaintext) {
      throw new SetupRefusal({
        severity: 'FATAL',
        code: '28000',
        message: 'pgwarden requires an encrypted connection: connect with sslmode=require',
      });
    }
    await authenticateAndRelay(socket, reader, packet, ctx);
  } catch (error) {
    const fields = error instanceof SetupRefusal ? error.fields : fatalFor(error);
    if (!(error instanceof SetupRefusal) && !(error instanceof PgWardenError)) {
      ctx.logger.warn('connection setup failed', { error: String(error) });
    }
    if (!socket.destroyed) socket.end(errorResponse(fields));
  } finally {
    clearTimeout(timer);
  }
}

function startupOf(data: Buffer, limits: ProxyLimits): { value: StartupPacket; size: number } | null {
  try {
    const read = readStartupPacket(data, limits.maxStartupBytes);
    return read && { value: read.packet, size: read.size };
  } catch (error) {
    throw new SetupRefusal(violation((error as Error).message));
  }
}

/** The PasswordMessage that answers our cleartext request; a JWT fits well within 64 KiB. */
function passwordOf(data: Buffer): { value: string; size: number } | null {
  if (data.length < 5) return null;
  if (data[0] !== 0x70 /* p */) throw new SetupRefusal(violation('expected a password message'));
  const length = data.readInt32BE(1);
  if (length < 5 || length > 64 * 1024)
    throw new SetupRefusal(violation(`password message of ${length} bytes`));
  if (data.length < length + 1) return null;
  return { value: parsePassword(data.subarray(5, length + 1)), size: length + 1 };
}

function violation(message: string): NoticeFields {
  return { severity: 'FATAL', code: '08P01', message: `pgwarden: invalid startup: ${message}` };
}

function upgradeToTls(socket: net.Socket, secureContext: tls.SecureContext): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(socket, { isServer: true, secureContext });
    secure.once('secure', () => {
      secure.removeListener('error', reject);
      resolve(secure);
    });
    secure.once('error', reject);
    socket.resume();
  });
}

async function authenticateAndRelay(
  socket: net.Socket,
  reader: SetupReader,
  packet: Extract<StartupPacket, { kind: 'startup' }>,
  ctx: SetupContext,
): Promise<void> {
  const params = packet.parameters;
  const user = params.get('user');
  if (!user) throw new SetupRefusal({ severity: 'FATAL', code: '28000', message: 'no user name specified' });
  if (params.has('replication') && params.get('replication') !== 'false') {
    throw new SetupRefusal({
      severity: 'FATAL',
      code: '0A000',
      message: 'pgwarden does not allow replication connections',
    });
  }
  const database = params.get('database') || user;
  const applicationName = params.get('application_name') ?? '';
  const unsupported = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
  if (packet.minor > 0 || unsupported.length > 0) socket.write(negotiateProtocolVersion(0, unsupported));

  socket.write(authenticationCleartextPassword());
  const token = await reader.read(passwordOf);

  const opened = await ctx.options.controlPlane.openSession({
    token,
    user,
    database,
    applicationName,
    clientAddress: socket.remoteAddress ?? '',
    proxyId: ctx.options.proxyId,
  });
  const session: SessionContext = {
    sessionId: opened.sessionId,
    principal: sessionPrincipal(opened.principal),
    role: opened.role,
    roles: opened.roles,
    database,
    applicationName,
  };

  const openedAt = Date.now();
  let upstream: UpstreamConnection;
  let upstreamUser: string | undefined;
  try {
    const credential = await ctx.options.credentials(opened.role);
    upstreamUser = credential.user;
    const passthrough = new Map(
      [...params].filter(([k]) => !RESERVED_PARAMETERS.has(k) && !k.startsWith('_pq_.')),
    );
    upstream = await connectUpstream({
      target: ctx.options.upstream,
      credential,
      database,
      parameters: passthrough,
      timeoutMs: ctx.limits.authTimeoutMs,
    });
  } catch (error) {
    ctx.logger.warn('upstream login failed', { sessionId: session.sessionId, error: String(error) });
    recordClosed(ctx, session, openedAt, 0, 'upstream_unavailable', upstreamUser);
    throw error;
  }

  /** the relay's cancel: whether the server has something of this session to cancel */
  let cancelled: (() => boolean) | undefined;
  const key = ctx.cancels.register(() => {
    if (cancelled?.() ?? true) sendUpstreamCancel(ctx.options.upstream, upstream.backendKey);
  });
  socket.write(
    Buffer.concat([
      authenticationOk(),
      ...upstream.parameterStatusFrames,
      backendKeyData(key.processId, key.secretKey),
      readyForQuery('I'),
    ]),
  );

  let lifetime: SessionLifetime | undefined;
  const relay: Relay = new Relay({
    client: socket,
    upstream: upstream.socket,
    session,
    controlPlane: ctx.options.controlPlane,
    gate: ctx.options.gate,
    audit: ctx.audit,
    maxMessageBytes: ctx.limits.maxMessageBytes,
    logger: ctx.logger,
    newId: ctx.newId,
    upstreamUser,
    auditParams: ctx.options.audit?.params ?? 'hashed',
    masking: new SessionMasking(ctx.catalogs.forDatabase(database, opened.role), ctx.maskingKey),
    onEnd: (reason, statements) => {
      lifetime?.stop();
      key.release();
      ctx.relays.delete(relay);
      recordClosed(ctx, session, openedAt, statements, reason, upstreamUser);
    },
  });
  cancelled = () => relay.cancelRequested();
  lifetime = new SessionLifetime({
    relay,
    session,
    principal: opened.principal,
    ...(ctx.options.lifetime && { options: ctx.options.lifetime }),
    controlPlane: ctx.options.controlPlane,
    logger: ctx.logger,
    cancelUpstream: () => sendUpstreamCancel(ctx.options.upstream, upstream.backendKey),
  });
  ctx.relays.add(relay);
  relay.start(reader.detach(), upstream.leftover);
  lifetime.start();
}

function recordClosed(
  ctx: SetupContext,
  session: SessionContext,
  openedAt: number,
  statements: number,
  reason: Parameters<ConstructorParameters<typeof Relay>[0]['onEnd']>[0],
  upstreamUser: string | undefined,
): void {
  ctx.audit.record({
    type: 'session_closed',
    eventId: ctx.newId(),
    sessionId: session.sessionId,
    at: new Date().toISOString(),
    principal: session.principal.name,
    issuer: session.principal.issuer,
    subject: session.principal.subject,
    durationMs: Date.now() - openedAt,
    statements,
    reason,
    upstreamUser,
  });
}
