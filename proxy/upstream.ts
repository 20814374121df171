/**
 * Opens an authenticated connection to the upstream PostgreSQL with the gateway's credentials:
 * optional TLS, startup with the pinned settings, SCRAM-SHA-256 (bound to the TLS certificate when
 * the server offers -PLUS) whose server signature must be verified before AuthenticationOk is
 * believed (md5, cleartext or no authentication only when the operator allowed them), then collects the ParameterStatus messages and BackendKeyData up to the
 * first ReadyForQuery, and checks that the server confirmed every pin.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { PgWardenError } from '../shared/errors.ts';
import { PINNED_SETTINGS, pinBroken } from '../shared/session-settings.ts';
import type { UpstreamAuthMethod, UpstreamCredential, UpstreamTarget } from './options.ts';
import { type ChannelBinding, ScramClient, tlsServerEndPoint } from './scram.ts';
import { parseBackendKeyData, parseErrorFields, parseParameterStatus } from './wire/backend-fields.ts';
import { type Frame, FrameReader } from './wire/frame-reader.ts';
import { startupMessage } from './wire/frontend-writer.ts';

export interface UpstreamConnection {
  socket: net.Socket | tls.TLSSocket;
  /** ParameterStatus messages as received, to replay to the client */
  parameterStatusFrames: Buffer[];
  parameters: Map<string, string>;
  backendKey: { processId: number; secret: Buffer };
  /** bytes that arrived after ReadyForQuery (normally none) */
  leftover: Buffer;
  /** how the server authenticated the gateway: a SCRAM mechanism, md5, password or none */
  authentication: string;
}

export interface UpstreamStartup {
  target: UpstreamTarget;
  credential: UpstreamCredential;
  database: string;
  /** the client's settings, already checked (shared/startup-parameters.ts); pins are added here */
  parameters: Map<string, string>;
  timeoutMs: number;
}

export async function connectUpstream(startup: UpstreamStartup): Promise<UpstreamConnection> {
  const plain = await openSocket(startup.target);
  let socket: net.Socket | tls.TLSSocket = plain;
  try {
    socket = await negotiateTls(plain, startup.target);
    return await authenticate(socket, startup);
  } catch (error) {
    socket.destroy();
    plain.destroy();
    throw error;
  }
}

/** Sends a CancelRequest for an upstream backend on a fresh connection (fire and forget). */
export function sendUpstreamCancel(target: UpstreamTarget, key: { processId: number; secret: Buffer }): void {
  const socket = net.connect({ host: target.host, port: target.port });
  socket.on('error', () => socket.destroy());
  socket.on('connect', () => {
    const packet = Buffer.alloc(12 + key.secret.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(key.processId, 8);
    key.secret.copy(packet, 12);
    socket.end(packet);
  });
  socket.setTimeout(10_000, () => socket.destroy());
}

function openSocket(target: UpstreamTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (error) =>
      reject(
        new PgWardenError('UPSTREAM_UNAVAILABLE', `cannot reach the database: ${error.message}`, {
          cause: error,
        }),
      ),
    );
  });
}

async function negotiateTls(socket: net.Socket, target: UpstreamTarget): Promise<net.Socket | tls.TLSSocket> {
  if (target.ssl === 'disable') return socket;
  const answer = await readOneByte(socket, serialize.requestSsl());
  if (answer !== 'S') {
    if (target.ssl === 'prefer') return socket;
    throw new PgWardenError(
      'UPSTREAM_UNAVAILABLE',
      'the database does not accept TLS but the gateway requires it',
    );
  }
  const verify = target.ssl === 'verify-full';
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      servername: net.isIP(target.host) ? undefined : target.host,
      rejectUnauthorized: verify,
      ca: target.ca,
    });
    secure.once('secureConnect', () => {
      secure.removeListener('error', reject);
      secure.setNoDelay(true);
      resolve(secure);
    });
    secure.once('error', (error) =>
      reject(
        new PgWardenError('UPSTREAM_UNAVAILABLE', `TLS to the database failed: ${error.message}`, {
          cause: error,
        }),
      ),
    );
  });
}

function readOneByte(socket: net.Socket, request: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (data: Buffer) => {
      socket.removeListener('error', reject);
      // A server must not send anything after the single-byte answer before the TLS handshake.
      if (data.length !== 1)
        reject(new PgWardenError('UPSTREAM_UNAVAILABLE', 'unexpected answer to SSLRequest'));
      else resolve(String.fromCharCode(data[0]!));
    });
    socket.once('error', reject);
    socket.write(request);
  });
}

/**
 * The startup parameters sent upstream: the client's checked settings, then the gateway's login,
 * then the pinned settings last, so nothing before them can override a pin.
 */
export function upstreamStartupParameters(startup: UpstreamStartup): Map<string, string> {
  const params = new Map<string, string>();
  for (const [name, value] of startup.parameters) {
    const key = name.toLowerCase();
    if (RESERVED_KEYS.has(key) || key.startsWith('_pq_.') || Object.hasOwn(PINNED_SETTINGS, key)) continue;
    params.set(name, value);
  }
  params.set('user', startup.credential.user);
  params.set('database', startup.database);
  for (const [name, value] of Object.entries(PINNED_SETTINGS)) params.set(name, value);
  for (const [name, value] of Object.entries(IDENTITY_PINS)) params.set(name, value);
  return params;
}

/**
 * Who the session is must be the gateway's login and nobody else. A role default (`ALTER ROLE …
 * SET role`, which an ordinary role may set on itself) would otherwise make every later session
 * run as another role the login is a member of; a startup value outranks any role or database
 * default, and `none` is the login itself.
 */
const IDENTITY_PINS: Readonly<Record<string, string>> = { role: 'none' };

/** Keys the server reads as something other than a setting: only the gateway writes them. */
const RESERVED_KEYS = new Set(['user', 'database', 'options', 'replication']);

/**
 * Login errors the client caused or should see as the server said them: a database that does not
 * exist, a setting value the server rejects, the server's own connection limit or start-up.
 * Anything else (authentication above all) says only that the gateway could not connect.
 */
const CLIENT_CAUSED = new Set(['3D000', '22023', '42704', '53300', '57P03']);

/** The server refused the session for something in the client's request; `sqlstate` is the server's. */
export class UpstreamRequestRefused extends PgWardenError {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super('UPSTREAM_UNAVAILABLE', message);
  }
}

/** Where the login is: which authentication messages may come next. */
type LoginState =
  | 'awaiting-request'
  | 'password-sent'
  | 'sasl-started'
  | 'sasl-proving'
  | 'sasl-continued'
  | 'sasl-verified'
  | 'authenticated';

function authenticate(
  socket: net.Socket | tls.TLSSocket,
  startup: UpstreamStartup,
): Promise<UpstreamConnection> {
  const { credential } = startup;
  const allowed = new Set<UpstreamAuthMethod>(startup.target.auth ?? ['scram-sha-256']);

  return new Promise((resolve, reject) => {
    const reader = new FrameReader(1024 * 1024);
    const parameterStatusFrames: Buffer[] = [];
    const parameters = new Map<string, string>();
    let backendKey: UpstreamConnection['backendKey'] | undefined;
    let scram: ScramClient | undefined;
    let state: LoginState = 'awaiting-request';
    let authentication = 'none';

    const fail = (error: unknown) => {
      cleanup();
      reject(error);
    };
    const timer = setTimeout(
      () =>
        fail(new PgWardenError('UPSTREAM_UNAVAILABLE', 'the database did not complete the login in time')),
      startup.timeoutMs,
    );
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', fail);
      socket.removeListener('close', onClose);
    };
    const onClose = () =>
      fail(new PgWardenError('UPSTREAM_UNAVAILABLE', 'the database closed the connection during login'));
    const refuse = (message: string) => new PgWardenError('UPSTREAM_AUTH_FAILED', message);

    const handle = (frame: Frame): boolean => {
      if (frame.type === 0x52 /* R */) {
        handleAuthentication(frame.body);
        return false;
      }
      if (frame.type === 0x4e /* N */) return false;
      if (frame.type === 0x45 /* E */) {
        const fields = parseErrorFields(frame.body);
        // Only a server that proved itself is quoted to the client.
        if (state === 'authenticated' && fields.code && CLIENT_CAUSED.has(fields.code)) {
          throw new UpstreamRequestRefused(fields.code, fields.message ?? 'the database refused the session');
        }
        const code = fields.code?.startsWith('28') ? 'UPSTREAM_AUTH_FAILED' : 'UPSTREAM_UNAVAILABLE';
        throw new PgWardenError(
          code,
          `the database refused the login: ${fields.message ?? 'unknown error'} (${fields.code})`,
        );
      }
      // Nothing of the session is believed before the server has authenticated.
      if (state !== 'authenticated') {
        throw refuse(`the database sent ${String.fromCharCode(frame.type)} before authenticating`);
      }
      switch (frame.type) {
        case 0x53 /* S */:
          {
            parameterStatusFrames.push(Buffer.from(frame.raw));
            const p = parseParameterStatus(frame.body);
            parameters.set(p.name, p.value);
            return false;
          }
        case 0x4b /* K */:
          backendKey = parseBackendKeyData(frame.body);
          return false;
        case 0x5a /* Z */:
          if (!backendKey)
            throw new PgWardenError('UPSTREAM_UNAVAILABLE', 'the database sent no BackendKeyData');
          checkPins(parameters, credential.user);
          return true;
        default:
          throw new PgWardenError(
            'UPSTREAM_UNAVAILABLE',
            `unexpected message ${String.fromCharCode(frame.type)} during login`,
          );
      }
    };

    const expect = (expected: LoginState, what: string) => {
      if (state !== expected) throw refuse(`the database sent ${what} out of order`);
    };
    const permit = (method: UpstreamAuthMethod, what: string) => {
      expect('awaiting-request', what);
      if (!allowed.has(method)) {
        throw refuse(
          `the database asked for ${what}; the gateway allows ${[...allowed].join(', ')} only (PGWARDEN_UPSTREAM_REQUIRE_AUTH, or require_auth in PGWARDEN_UPSTREAM for npm start)`,
        );
      }
    };

    const handleAuthentication = (body: Buffer) => {
      const kind = body.readInt32BE(0);
      switch (kind) {
        case 0: // AuthenticationOk: believed only once the server has proved itself, or was allowed not to
          if (state === 'awaiting-request' && !allowed.has('none'))
            throw refuse(
              'the database let the gateway in without authentication (trust), which is not allowed',
            );
          if (state === 'sasl-started' || state === 'sasl-proving' || state === 'sasl-continued')
            throw refuse('the database ended SCRAM without proving it knows the password');
          if (state === 'authenticated') throw refuse('the database sent AuthenticationOk twice');
          state = 'authenticated';
          return;
        case 3: // cleartext: the password itself, to whoever this server is
          permit('password', 'a cleartext password');
          socket.write(serialize.password(credential.password));
          state = 'password-sent';
          authentication = 'password';
          return;
        case 5: {
          permit('md5', 'an MD5 password');
          const salt = body.subarray(4, 8);
          const inner = createHash('md5')
            .update(credential.password + credential.user)
            .digest('hex');
          const outer = createHash('md5').update(inner).update(salt).digest('hex');
          socket.write(serialize.password(`md5${outer}`));
          state = 'password-sent';
          authentication = 'md5';
          return;
        }
        case 10: {
          permit('scram-sha-256', 'SASL authentication');
          const mechanisms = body.toString('utf8', 4).split('\0');
          if (!mechanisms.includes('SCRAM-SHA-256')) {
            throw refuse(`unsupported SASL mechanisms: ${mechanisms.join(' ')}`);
          }
          scram = new ScramClient(credential.password, {}, channelBinding(socket, mechanisms));
          authentication = scram.mechanism;
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.clientFirstMessage()));
          state = 'sasl-started';
          return;
        }
        case 11:
          expect('sasl-started', 'SASLContinue');
          // Until the proof is computed (off the event loop) any authentication message is out of order.
          state = 'sasl-proving';
          scram!.clientFinalMessage(body.toString('utf8', 4)).then(
            (message) => {
              if (state !== 'sasl-proving') return;
              socket.write(serialize.sendSCRAMClientFinalMessage(message));
              state = 'sasl-continued';
            },
            (error: unknown) => fail(refuse(String(error))),
          );
          return;
        case 12:
          expect('sasl-continued', 'SASLFinal');
          scram!.verifyServerFinal(body.toString('utf8', 4));
          state = 'sasl-verified';
          return;
        default:
          throw refuse(`unsupported authentication method ${kind}`);
      }
    };

    const onData = (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (let frame = reader.next(); frame; frame = reader.next()) {
          if (handle(frame)) {
            cleanup();
            resolve({
              socket,
              parameterStatusFrames,
              parameters,
              backendKey: backendKey!,
              leftover: reader.drain(),
              authentication,
            });
            return;
          }
        }
      } catch (error) {
        fail(error instanceof PgWardenError ? error : refuse(String(error)));
      }
    };

    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.write(startupMessage(upstreamStartupParameters(startup)));
  });
}

/**
 * The server must confirm each pinned setting as the gateway set it, and that the session is the
 * gateway's login (ParameterStatus; a superuser login's role defaults could say otherwise).
 */
function checkPins(parameters: ReadonlyMap<string, string>, user: string): void {
  for (const name of Object.keys(PINNED_SETTINGS)) {
    const value = parameters.get(name);
    const broken = value === undefined ? `the database did not report ${name}` : pinBroken(name, value);
    if (broken) throw new PgWardenError('UPSTREAM_UNAVAILABLE', broken);
  }
  const authorization = parameters.get('session_authorization');
  if (authorization !== user) {
    throw new PgWardenError(
      'UPSTREAM_UNAVAILABLE',
      `the database session is ${authorization ?? 'unreported'}, not the gateway's login ${user}`,
    );
  }
}

/**
 * Over TLS the proof is bound to the server's certificate when the server offers -PLUS, and says
 * "I could have" when it does not, so neither a relaying man in the middle nor one who strips
 * -PLUS from the list gets a session (the real server refuses both).
 */
function channelBinding(socket: net.Socket | tls.TLSSocket, mechanisms: string[]): ChannelBinding {
  if (!(socket instanceof tls.TLSSocket)) return { kind: 'no-tls' };
  if (!mechanisms.includes('SCRAM-SHA-256-PLUS')) return { kind: 'server-did-not-offer' };
  const data = tlsServerEndPoint(socket.getPeerCertificate().raw);
  if (!data) {
    throw new PgWardenError(
      'UPSTREAM_AUTH_FAILED',
      "the database's certificate has no signature hash to bind SCRAM to (tls-server-end-point)",
    );
  }
  return { kind: 'bind', data };
}
