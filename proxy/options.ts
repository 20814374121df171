/**
 * Everything the proxy needs from outside, passed in by a composition root (proxy/main.ts in
 * production, scripts/start.ts locally, test fixtures in tests). Nothing here reads env or files.
 */
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

export interface UpstreamTarget {
  host: string;
  port: number;
  ssl: UpstreamSslMode;
  /** PEM CA bundle for verify-full */
  ca?: string;
}

export interface ProxyLimits {
  /** largest frontend message that is buffered whole (Query, Parse, …); larger ones close the connection */
  maxMessageBytes: number;
  /** startup packet limit (PostgreSQL uses 10 000) */
  maxStartupBytes: number;
  /** time a new connection has to finish TLS and authentication */
  authTimeoutMs: number;
}

export const defaultLimits: ProxyLimits = {
  maxMessageBytes: 64 * 1024 * 1024,
  maxStartupBytes: 10_000,
  authTimeoutMs: 30_000,
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
