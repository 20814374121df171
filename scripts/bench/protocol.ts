/** What scripts/bench.ts and scripts/bench/proxy-process.ts say to each other (env + IPC). */
import type { RoleMapping } from '../../shared/identity.ts';

export interface ProxyConfig {
  upstream: { host: string; port: number; credential: { user: string; password: string } };
  tls: { cert: string; key: string };
  issuerUrl: string;
  audience: string;
  roleMappings: RoleMapping[];
  dynamoEndpoint: string;
  tablePrefix: string;
  /**
   * 'api' (target pgwarden): events go over HTTP to the control-plane API, as in production;
   * 'dynamodb' (diagnostic pgwarden-dynalite): the in-process store writes to the local dynalite;
   * 'discard' (diagnostic pgwarden-noaudit): events are acknowledged and dropped
   */
  auditStore: 'api' | 'dynamodb' | 'discard';
  api?: { url: string; serviceToken: string };
}

/** the diagnostic TLS pipe (tls-pipe-process.ts) */
export interface PipeConfig {
  upstream: { host: string; port: number };
  tls: { cert: string; key: string };
}

export interface ProxyReady {
  type: 'ready';
  pid: number;
  port: number;
}

export interface ProxyStats {
  type: 'stats';
  sessions: number;
  pendingAuditEvents: number;
  /** events the audit store acknowledged, by type */
  stored: { statement: number; session_opened: number; session_closed: number; auth_failed: number };
  failedPuts: number;
  rss: number;
  heapUsed: number;
  external: number;
}

export type ProxyMessage = ProxyReady | ProxyStats;
