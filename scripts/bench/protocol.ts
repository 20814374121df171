/** What scripts/bench.ts and scripts/bench/proxy-process.ts say to each other (env + IPC). */
import type { ProxyAuditOptions } from '../../proxy/options.ts';
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
  /** the proxy's audit trail (spool directory, buffered/strict, sync); none: in-memory buffer */
  audit?: ProxyAuditOptions;
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
  /** the durable spool's counters, when the proxy has one */
  spool?: { syncs: number; syncMicros: number; commits: number; groupedRecords: number; writes: number };
  /** the spool shipper: batches and events the API stored, failed attempts */
  shipper?: { batches: number; events: number; failedAttempts: number };
}

export type ProxyMessage = ProxyReady | ProxyStats;
