/**
 * Everything the proxy needs from outside, passed in by a composition root (proxy/main.ts in
 * production, scripts/start.ts locally, test fixtures in tests). Nothing here reads env or files.
 */
import type { ControlPlane } from '../shared/control-plane.ts';
import type { Logger } from '../shared/logger.ts';
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
}
