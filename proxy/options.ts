/**
 * Everything the proxy needs from outside, passed in by a composition root (proxy/main.ts in
 * production, scripts/start.ts locally, test fixtures in tests). Nothing here reads env or files.
 */
import { DEFAULT_MAX_MASKED_ROW_BYTES, DEFAULT_MAX_STATEMENT_BYTES } from '../shared/config.ts';
import type { ControlPlane } from '../shared/control-plane.ts';
import type { Logger } from '../shared/logger.ts';
import type { SessionLifetimeOptions } from './session-lifetime.ts';
import type { StatementGate } from './statement-gate.ts';

export interface UpstreamCredential {
  user: string;
  password: string;
}

/** Gives the database credentials for a role; the client never sees them. */
export type CredentialProvider = (role: string) => UpstreamCredential | Promise<UpstreamCredential>;

export type UpstreamSslMode = 'disable' | 'prefer' | 'require' | 'verify-full';

/**
 * How the database may authenticate the gateway, named as libpq's `require_auth`: `scram-sha-256`
 * (the default and the only one in which the server proves it knows the password), `md5` and
 * `password` (cleartext) only when the operator lists them (they hand an impostor something to
 * replay or the password itself), `none` for a server that asks for nothing (trust).
 */
export type UpstreamAuthMethod = 'scram-sha-256' | 'md5' | 'password' | 'none';
export const UPSTREAM_AUTH_METHODS: readonly UpstreamAuthMethod[] = [
  'scram-sha-256',
  'md5',
  'password',
  'none',
];

export interface UpstreamTarget {
  host: string;
  port: number;
  ssl: UpstreamSslMode;
  /** PEM CA bundle for verify-full */
  ca?: string;
  /** the authentication methods the gateway goes along with; default: scram-sha-256 only */
  auth?: readonly UpstreamAuthMethod[];
}

export interface ProxyLimits {
  /** largest frontend message that is buffered whole (Query, Parse, …); larger ones close the connection */
  maxMessageBytes: number;
  /** startup packet limit (PostgreSQL uses 10 000) */
  maxStartupBytes: number;
  /**
   * time a new connection has to become a session: TLS, startup packet, password, the token check
   * and the upstream login together; past it the connection is closed
   */
  authTimeoutMs: number;
  /** sessions one principal (issuer, subject) may hold at once; more are refused with 53300 */
  maxConnectionsPerPrincipal: number;
  /** connections one source address may hold at once, sessions and not yet authenticated alike */
  maxConnectionsPerAddress: number;
  /** longest Query or Parse text the proxy parses; a longer one is refused (54000), the session goes on */
  maxStatementBytes: number;
  /** largest row (or notice, COPY row, …) held whole to mask or scan; a larger one ends the session (54000) */
  maxMaskedRowBytes: number;
}

export const defaultLimits: ProxyLimits = {
  maxStatementBytes: DEFAULT_MAX_STATEMENT_BYTES,
  maxMaskedRowBytes: DEFAULT_MAX_MASKED_ROW_BYTES,
  maxMessageBytes: 64 * 1024 * 1024,
  maxStartupBytes: 10_000,
  authTimeoutMs: 30_000,
  maxConnectionsPerPrincipal: 20,
  maxConnectionsPerAddress: 100,
};

export interface ProxyOptions {
  host: string;
  /** 0 picks a free port */
  port: number;
  tls?: { cert: string; key: string };
  /** accept clients that do not ask for TLS (tokens then travel in clear: only for loopback dev) */
  allowPlaintext: boolean;
  upstream: UpstreamTarget;
  credentials: CredentialProvider;
  controlPlane: ControlPlane;
  /** after each decision, before forwarding: approval holds, strict audit (see statement-gate.ts) */
  gate?: StatementGate;
  proxyId: string;
  limits?: Partial<ProxyLimits>;
  logger?: Logger;
  /**
   * HMAC key of the `hash` and `fake` mask methods (equal values give equal masked values, so they
   * stay joinable). Default: a random key per process, so masked values match within one proxy only.
   */
  maskingKey?: Uint8Array;
  /** token expiry, maximum session age and re-checks of open sessions (proxy/session-lifetime.ts) */
  lifetime?: SessionLifetimeOptions;
  /**
   * The audit trail (proxy/audit-trail.ts). Without `spoolDir` records are only buffered in memory
   * (tests, embedded use); every deployment and `npm start` give a spool directory.
   */
  audit?: ProxyAuditOptions;
}

export interface ProxyAuditOptions {
  /** buffered (default): durable local spool; strict: the API stores each intent before forwarding */
  mode?: 'buffered' | 'strict';
  spoolDir?: string;
  /** always (default): fdatasync before forwarding (group commit); write: write(2) before, fdatasync every 10 ms */
  sync?: 'always' | 'write';
  /** spool size at which statements are refused (SQLSTATE 53100); default 1 GiB */
  maxSpoolBytes?: number;
  /** Bind parameters in the records: off, hashed (default, SHA-256 hex), clear */
  params?: 'off' | 'hashed' | 'clear';
  /** events per ingest call (≤ 500) and how long the shipper waits once caught up */
  batchSize?: number;
  shipIntervalMs?: number;
}
