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
import { type CheckedStartup, checkStartupParameters } from '../shared/startup-parameters.ts';
import type { CancelRegistry } from './cancel-registry.ts';
import { type ConnectionCounts, principalKey } from './connection-limits.ts';
import type { Catalogs } from './masking/catalogs.ts';
import { SessionMasking } from './masking/session-masking.ts';
import type { ProxyLimits, ProxyOptions } from './options.ts';
import { type AuditSink, Relay } from './relay.ts';
import { SessionLifetime } from './session-lifetime.ts';
import { SetupReader } from './setup-reader.ts';
import {
  connectUpstream,
  sendUpstreamCancel,
  type UpstreamConnection,
  UpstreamRequestRefused,
} from './upstream.ts';
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
import { ProtocolViolation } from './wire/protocol-violation.ts';
import { InvalidStartupLength, readStartupPacket, type StartupPacket } from './wire/startup.ts';
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
  /** sessions held per principal (issuer, subject) */
  principals: ConnectionCounts;
}

/** What the listener decided about this connection before its first byte. */
export interface Admission {
  /** the source address already holds its share: refuse once the client can read why */
  overAddressLimit: boolean;
}

/** Pre-authentication bytes kept at most; every message read before the session is far smaller. */
const MAX_SETUP_BUFFER = 128 * 1024;

class SetupRefusal extends Error {
  constructor(readonly fields: NoticeFields) {
    super(fields.message);
  }
}

/** The peer does not speak the protocol: closed without a word, as PostgreSQL does. */
class SilentClose extends Error {}

type Startup = Extract<StartupPacket, { kind: 'startup' }>;

export async function setUpSession(raw: net.Socket, ctx: SetupContext, admission: Admission): Promise<void> {
  raw.setNoDelay(true);
  // One deadline for everything before the session: TLS, a slow startup packet, a password that
  // never comes, the token check and the upstream login (see authenticateAndRelay).
  const deadline = Date.now() + ctx.limits.authTimeoutMs;
  /** the client's socket as it is now: TLS once negotiated */
  const client = { socket: raw };
  const timer = setTimeout(() => {
    client.socket.destroy();
    raw.destroy();
  }, ctx.limits.authTimeoutMs);
  try {
    const negotiated = await negotiateEncryption(client, ctx);
    const { packet, reader, socket } = negotiated;
    if (packet.kind === 'cancel') {
      ctx.cancels.cancel(packet.processId, packet.secret);
      socket.end();
      return;
    }
    if (admission.overAddressLimit) {
      ctx.logger.warn('connection refused: too many from one address', { address: raw.remoteAddress });
      throw new SetupRefusal({
        severity: 'FATAL',
        code: '53300',
        message: `pgwarden: too many connections from ${raw.remoteAddress}: at most ${ctx.limits.maxConnectionsPerAddress} may be open from one address`,
      });
    }
    if (!negotiated.encrypted && !ctx.options.allowPlaintext) {
      throw new SetupRefusal({
        severity: 'FATAL',
        code: '28000',
        message: 'pgwarden requires an encrypted connection: connect with sslmode=require',
      });
    }
    const checked = checkStartupParameters(packet.parameters);
    if (!checked.ok) throw new SetupRefusal({ severity: 'FATAL', ...checked.refusal });
    await authenticateAndRelay(socket, reader, packet.minor, checked.startup, ctx, deadline);
  } catch (error) {
    if (error instanceof SilentClose) {
      ctx.logger.warn('connection closed: not a startup packet', { reason: error.message });
      client.socket.destroy();
      return;
    }
    if (!(error instanceof SetupRefusal) && !(error instanceof PgWardenError)) {
      ctx.logger.warn('connection setup failed', { error: String(error) });
    }
    if (!client.socket.destroyed) client.socket.end(errorResponse(setupFailure(error)));
  } finally {
    clearTimeout(timer);
  }
}

/** The FATAL a failed setup ends with: pgwarden's refusal, the server's own words, or a mapped error. */
function setupFailure(error: unknown): NoticeFields {
  if (error instanceof SetupRefusal) return error.fields;
  if (error instanceof UpstreamRequestRefused) {
    return {
      severity: 'FATAL',
      code: error.sqlstate,
      message: `pgwarden: the database said: ${error.message}`,
    };
  }
  return fatalFor(error);
}

/**
 * SSLRequest and GSSENCRequest, each at most once and only before TLS (as the server allows),
 * up to the startup packet or a CancelRequest. A connection that opens with a TLS handshake
 * instead (PostgreSQL 17's direct negotiation: libpq `sslnegotiation=direct`, node-postgres
 * `sslnegotiation: 'direct'`) gets TLS at once, provided it names the `postgresql` protocol in
 * ALPN as the server requires: nothing moves in cleartext either way.
 */
async function negotiateEncryption(
  client: { socket: net.Socket },
  ctx: SetupContext,
): Promise<{
  socket: net.Socket;
  reader: SetupReader;
  packet: Startup | Extract<StartupPacket, { kind: 'cancel' }>;
  encrypted: boolean;
}> {
  const raw = client.socket;
  let socket = raw;
  let reader = new SetupReader(raw, MAX_SETUP_BUFFER);
  let encrypted = false;
  const asked = new Set<string>();
  if (ctx.secureContext && (await reader.read(opensWithTlsHandshake))) {
    // the ClientHello's first bytes were read already: handed back to the handshake
    raw.unshift(reader.detach());
    socket = await upgradeToTls(raw, ctx.secureContext, DIRECT_TLS_ALPN);
    client.socket = socket;
    encrypted = true;
    if ((socket as tls.TLSSocket).alpnProtocol !== 'postgresql')
      throw new SetupRefusal(
        violation('direct TLS without the ALPN protocol "postgresql" (connect with sslnegotiation=postgres)'),
      );
    reader = new SetupReader(socket, MAX_SETUP_BUFFER);
  }
  for (;;) {
    const packet = await reader.read((d) => startupOf(d, ctx.limits));
    if (packet.kind !== 'ssl' && packet.kind !== 'gssenc') return { socket, reader, packet, encrypted };
    if (encrypted || asked.has(packet.kind))
      throw new SetupRefusal(violation(`repeated ${packet.kind} request`));
    asked.add(packet.kind);
    if (packet.kind === 'ssl' && ctx.secureContext) {
      // Anything sent after SSLRequest but before the handshake could be injected by an
      // attacker in the middle (CVE-2021-23214): refuse it.
      if (reader.detach().length > 0) throw new SetupRefusal(violation('data after SSLRequest'));
      raw.write('S');
      socket = await upgradeToTls(raw, ctx.secureContext);
      // from here on, errors go to the client inside TLS
      client.socket = socket;
      encrypted = true;
      reader = new SetupReader(socket, MAX_SETUP_BUFFER);
    } else {
      socket.write('N');
    }
  }
}

/** The ALPN protocol PostgreSQL 17+ requires of a direct TLS connection. */
const DIRECT_TLS_ALPN = ['postgresql'];

/**
 * Whether the first byte is a TLS handshake record (22). No startup packet starts so: its first
 * byte is the high byte of a length far below 22 << 24. Consumes nothing.
 */
function opensWithTlsHandshake(data: Buffer): { value: boolean; size: number } | null {
  if (data.length === 0) return null;
  return { value: data[0] === 0x16, size: 0 };
}

function startupOf(data: Buffer, limits: ProxyLimits): { value: StartupPacket; size: number } | null {
  try {
    const read = readStartupPacket(data, limits.maxStartupBytes);
    return read && { value: read.packet, size: read.size };
  } catch (error) {
    if (error instanceof InvalidStartupLength) throw new SilentClose(error.message);
    const sqlstate = error instanceof ProtocolViolation ? error.sqlstate : '08P01';
    throw new SetupRefusal({ ...violation((error as Error).message), code: sqlstate });
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

function upgradeToTls(
  socket: net.Socket,
  secureContext: tls.SecureContext,
  alpn?: string[],
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      ...(alpn === undefined ? {} : { ALPNProtocols: alpn }),
    });
    const closed = () =>
      reject(new PgWardenError('AUTH_TOKEN_MISSING', 'the client left during the TLS handshake'));
    secure.once('secure', () => {
      secure.removeListener('error', reject);
      secure.removeListener('close', closed);
      resolve(secure);
    });
    secure.once('error', reject);
    // the deadline destroys the TCP socket: a handshake that never finishes must not hang here
    secure.once('close', closed);
    // Bytes already read (a direct handshake's ClientHello, unshifted) are taken by the TLS socket
    // as it starts; resuming now would emit them to no listener.
    if (socket.readableLength === 0) socket.resume();
  });
}

async function authenticateAndRelay(
  socket: net.Socket,
  reader: SetupReader,
  minorVersion: number,
  startup: CheckedStartup,
  ctx: SetupContext,
  deadline: number,
): Promise<void> {
  const { user, database } = startup;
  const applicationName = startup.settings.get('application_name') ?? '';
  const unsupported = startup.protocolExtensions;
  if (minorVersion > 0 || unsupported.length > 0) socket.write(negotiateProtocolVersion(0, unsupported));

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

  // Counted before any upstream connection exists, so a principal's sessions cannot take them all.
  const releasePrincipal = ctx.principals.tryAcquire(
    principalKey(opened.principal),
    ctx.limits.maxConnectionsPerPrincipal,
  );
  if (!releasePrincipal) {
    ctx.logger.warn('connection refused: too many for one principal', { principal: session.principal.name });
    recordClosed(ctx, session, openedAt, 0, 'connection_limit', undefined);
    throw new SetupRefusal({
      severity: 'FATAL',
      code: '53300',
      message: `pgwarden: too many connections for ${session.principal.name}: at most ${ctx.limits.maxConnectionsPerPrincipal} sessions may be open at once; close one and try again`,
    });
  }

  let upstream: UpstreamConnection;
  let upstreamUser: string | undefined;
  try {
    // The deadline may have passed while the token was checked: then the socket is gone.
    if (socket.destroyed) throw new ClientGone();
    const credential = await ctx.options.credentials(opened.role);
    upstreamUser = credential.user;
    upstream = await connectUpstream({
      target: ctx.options.upstream,
      credential,
      database,
      parameters: startup.settings,
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
  } catch (error) {
    releasePrincipal();
    if (error instanceof ClientGone) {
      recordClosed(ctx, session, openedAt, 0, 'network_loss', upstreamUser);
      return;
    }
    ctx.logger.warn('upstream login failed', { sessionId: session.sessionId, error: String(error) });
    recordClosed(ctx, session, openedAt, 0, 'upstream_unavailable', upstreamUser);
    throw error;
  }
  if (socket.destroyed) {
    // the client left (or its deadline passed) during the upstream login: nobody to relay for
    releasePrincipal();
    upstream.socket.destroy();
    recordClosed(ctx, session, openedAt, 0, 'network_loss', upstreamUser);
    return;
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
    limits: ctx.limits,
    logger: ctx.logger,
    newId: ctx.newId,
    upstreamUser,
    auditParams: ctx.options.audit?.params ?? 'hashed',
    masking: new SessionMasking(ctx.catalogs.forDatabase(database, opened.role), ctx.maskingKey),
    onEnd: (reason, statements) => {
      lifetime?.stop();
      key.release();
      releasePrincipal();
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

/** The client's socket closed before the session could start. */
class ClientGone extends Error {}

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
