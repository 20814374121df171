/**
 * Opens an authenticated connection to the upstream PostgreSQL with the gateway's credentials:
 * optional TLS, startup, SCRAM-SHA-256 (or md5/cleartext for older servers), then collects the
 * ParameterStatus messages and BackendKeyData up to the first ReadyForQuery.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { PgWardenError } from '../shared/errors.ts';
import type { UpstreamCredential, UpstreamTarget } from './options.ts';
import { ScramClient } from './scram.ts';
import { assertStartupPins } from './session-pins.ts';
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
}

export interface UpstreamStartup {
  target: UpstreamTarget;
  credential: UpstreamCredential;
  database: string;
  /** startup parameters passed through from the client (application_name, options, …) */
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

function authenticate(
  socket: net.Socket | tls.TLSSocket,
  startup: UpstreamStartup,
): Promise<UpstreamConnection> {
  const { credential } = startup;
  const params = new Map(startup.parameters);
  params.set('user', credential.user);
  params.set('database', startup.database);

  return new Promise((resolve, reject) => {
    const reader = new FrameReader(1024 * 1024);
    const parameterStatusFrames: Buffer[] = [];
    const parameters = new Map<string, string>();
    let backendKey: UpstreamConnection['backendKey'] | undefined;
    let scram: ScramClient | undefined;

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

    const handle = (frame: Frame): boolean => {
      switch (frame.type) {
        case 0x52 /* R */:
          handleAuthentication(frame.body);
          return false;
        case 0x53 /* S */:
          parameterStatusFrames.push(Buffer.from(frame.raw));
          {
            const p = parseParameterStatus(frame.body);
            parameters.set(p.name, p.value);
          }
          return false;
        case 0x4b /* K */:
          backendKey = parseBackendKeyData(frame.body);
          return false;
        case 0x4e /* N */:
          return false;
        case 0x45 /* E */:
          {
            const fields = parseErrorFields(frame.body);
            const code = fields.code?.startsWith('28') ? 'UPSTREAM_AUTH_FAILED' : 'UPSTREAM_UNAVAILABLE';
            throw new PgWardenError(
              code,
              `the database refused the login: ${fields.message ?? 'unknown error'} (${fields.code})`,
            );
          }
        case 0x5a /* Z */:
          if (!backendKey)
            throw new PgWardenError('UPSTREAM_UNAVAILABLE', 'the database sent no BackendKeyData');
          // what the proxy parses is what the server runs: the session must start on the pins
          assertStartupPins(parameters, credential.user);
          return true;
        default:
          throw new PgWardenError(
            'UPSTREAM_UNAVAILABLE',
            `unexpected message ${String.fromCharCode(frame.type)} during login`,
          );
      }
    };

    const handleAuthentication = (body: Buffer) => {
      const kind = body.readInt32BE(0);
      switch (kind) {
        case 0: // AuthenticationOk
          return;
        case 3: // cleartext (only sensible over TLS; the operator chose this server)
          socket.write(serialize.password(credential.password));
          return;
        case 5: {
          const salt = body.subarray(4, 8);
          const inner = createHash('md5')
            .update(credential.password + credential.user)
            .digest('hex');
          const outer = createHash('md5').update(inner).update(salt).digest('hex');
          socket.write(serialize.password(`md5${outer}`));
          return;
        }
        case 10: {
          const mechanisms = body.toString('utf8', 4).split('\0');
          if (!mechanisms.includes('SCRAM-SHA-256')) {
            throw new PgWardenError(
              'UPSTREAM_AUTH_FAILED',
              `unsupported SASL mechanisms: ${mechanisms.join(' ')}`,
            );
          }
          scram = new ScramClient(credential.password);
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.clientFirstMessage()));
          return;
        }
        case 11:
          if (!scram) throw new PgWardenError('UPSTREAM_AUTH_FAILED', 'SASL continue without SASL start');
          socket.write(
            serialize.sendSCRAMClientFinalMessage(scram.clientFinalMessage(body.toString('utf8', 4))),
          );
          return;
        case 12:
          if (!scram) throw new PgWardenError('UPSTREAM_AUTH_FAILED', 'SASL final without SASL start');
          scram.verifyServerFinal(body.toString('utf8', 4));
          return;
        default:
          throw new PgWardenError('UPSTREAM_AUTH_FAILED', `unsupported authentication method ${kind}`);
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
            });
            return;
          }
        }
      } catch (error) {
        fail(
          error instanceof PgWardenError ? error : new PgWardenError('UPSTREAM_AUTH_FAILED', String(error)),
        );
      }
    };

    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.write(startupMessage(params));
  });
}
