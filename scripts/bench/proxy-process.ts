/**
 * The pgwarden proxy as a process of its own, for `npm run bench`: the bench reads this process's
 * CPU time and RSS from /proc, so nothing else may run here. What runs here is what a proxy host
 * runs: the proxy, and (local mode) the control-plane service in-process with its token verifier
 * and its DynamoDB audit store client. The issuer and DynamoDB (dynalite) run in the parent.
 *
 * Configuration arrives as JSON in BENCH_PROXY_CONFIG. Talks to the parent over the IPC channel:
 * it sends `{ type: 'ready', pid, port }`, answers `{ type: 'stats' }` (and `{ type: 'gc' }` when
 * started with --expose-gc) with a `stats` message, and on `{ type: 'stop' }` closes the proxy
 * (flushing the audit buffer), sends final stats and exits.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../functions/adapters/dynamodb-audit-store.ts';
import { createOidcVerifier } from '../../functions/adapters/oidc-verifier.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import { localSigningFetch } from '../../proxy/aws-sigv4.ts';
import { createHttpControlPlane } from '../../proxy/control-plane-http.ts';
import { startProxy } from '../../proxy/server.ts';
import type { AuditEvent, SerializedAuditEvent } from '../../shared/events.ts';
import type { Logger } from '../../shared/logger.ts';
import type { AuditStore } from '../../shared/ports.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import type { ProxyConfig, ProxyMessage, ProxyStats } from './protocol.ts';

const config = JSON.parse(process.env['BENCH_PROXY_CONFIG'] ?? 'null') as ProxyConfig | null;
if (config === null || typeof process.send !== 'function') {
  process.stderr.write('proxy-process: start me from scripts/bench.ts (needs BENCH_PROXY_CONFIG and IPC)\n');
  process.exit(2);
}

const send = (message: ProxyMessage): void => {
  process.send?.(message);
};

/** Warnings and errors only: a line per event on stderr, prefixed so they stand out in bench output. */
const logger: Logger = {
  info() {},
  warn: (message, fields) =>
    process.stderr.write(`[proxy] warn ${message} ${JSON.stringify(fields ?? {})}\n`),
  error: (message, fields) =>
    process.stderr.write(`[proxy] error ${message} ${JSON.stringify(fields ?? {})}\n`),
};

/** Counts what the store acknowledged, so the bench can compare stored events with statements run. */
/** The store, and for the HTTP API the path that sends the spool's JSON lines as they are. */
interface BenchStore extends AuditStore {
  putSerialized?(events: readonly SerializedAuditEvent[]): Promise<void>;
}

class CountingStore implements AuditStore {
  stored = { statement: 0, session_opened: 0, session_closed: 0, auth_failed: 0, approval: 0 };
  failedPuts = 0;
  constructor(private readonly inner: BenchStore) {}
  async put(events: readonly AuditEvent[]): Promise<void> {
    await this.counted(events, () => this.inner.put(events));
  }
  get putSerialized(): ((events: readonly SerializedAuditEvent[]) => Promise<void>) | undefined {
    const inner = this.inner.putSerialized;
    return inner && ((events) => this.counted(events, () => inner(events)));
  }
  private async counted(events: readonly { type: AuditEvent['type'] }[], put: () => Promise<void>) {
    try {
      await put();
    } catch (error) {
      this.failedPuts++;
      throw error;
    }
    for (const event of events) this.stored[event.type]++;
  }
}

const dynamodb = new DynamoDBClient({
  endpoint: config.dynamoEndpoint,
  region: 'local',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
});
const names = tableNames(config.tablePrefix);
await ensureAuditTables(dynamodb, names);
const discard: AuditStore = { put: async () => {} };
function innerStore(): BenchStore {
  if (config!.auditStore === 'discard') return discard;
  if (config!.auditStore === 'dynamodb') return new DynamoDbAuditStore(dynamodb, names);
  // production wiring: batches POSTed to the control-plane API
  // As in production, the API writes a session's open itself (POST /v1/events refuses one):
  // this process opens sessions in-process, so it writes the open as the API would, straight to
  // the store; everything else goes over HTTP like the deployed proxy's spool.
  const direct = new DynamoDbAuditStore(dynamodb, names);
  const http = createHttpControlPlane({
    baseUrl: config!.api!.url,
    fetch: localSigningFetch(config!.api!.serviceToken),
  });
  return {
    put: async (events) => {
      const opens = events.filter((event) => event.type === 'session_opened');
      if (opens.length > 0) await direct.put(opens);
      const rest = events.filter((event) => event.type !== 'session_opened');
      if (rest.length > 0) await http.ingest(rest);
    },
    putSerialized: (events) => http.ingestSerialized!(events),
  };
}
const store = new CountingStore(innerStore());
await loadSqlParser();
const controlPlane = createControlPlaneService({
  verifier: createOidcVerifier({
    issuer: config.issuerUrl,
    audience: config.audience,
    algorithms: ['ES256'],
  }),
  store,
  roles: config.roleMappings,
  now: () => new Date(),
  newId: randomUUID,
  logger,
});

const proxy = await startProxy({
  host: '127.0.0.1',
  port: 0,
  tls: { cert: config.tls.cert, key: config.tls.key },
  allowPlaintext: false,
  upstream: { host: config.upstream.host, port: config.upstream.port, ssl: 'disable' },
  // every role logs in upstream as the one bench login
  credentials: () => config.upstream.credential,
  // As in production (proxy/main.ts), audit batches go straight to the store (the API), not
  // through the in-process service's input validation; so does the noaudit target, whose figures
  // are meant to be the relay's own cost. Only local mode (dynamodb) validates in-process.
  controlPlane:
    config.auditStore !== 'dynamodb'
      ? {
          openSession: (r) => controlPlane.openSession(r),
          decide: (r) => controlPlane.decide(r),
          ingest: (events) => store.put(events),
          ...(store.putSerialized && { ingestSerialized: store.putSerialized }),
        }
      : controlPlane,
  proxyId: 'bench',
  logger,
  ...(config.audit === undefined ? {} : { audit: config.audit }),
});

function stats(): ProxyStats {
  const memory = process.memoryUsage();
  return {
    type: 'stats',
    sessions: proxy.sessions,
    pendingAuditEvents: proxy.pendingAuditEvents,
    stored: { ...store.stored },
    failedPuts: store.failedPuts,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    external: memory.external,
    ...(proxy.auditTrail
      ? { spool: { ...proxy.auditTrail.spool.stats }, shipper: { ...proxy.auditTrail.shipper.stats } }
      : {}),
  };
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await proxy.close(500);
  dynamodb.destroy();
  send(stats());
  process.disconnect?.();
  process.exit(0);
}

process.on('message', (message: { type?: string }) => {
  if (message.type === 'stats') send(stats());
  else if (message.type === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    send(stats());
  } else if (message.type === 'stop') void stop();
});
// the parent went away without saying stop (crash, SIGKILL): do not linger
process.on('disconnect', () => {
  if (!stopping) process.exit(1);
});
process.on('SIGINT', () => {}); // Ctrl-C reaches the whole process group: the parent decides
process.on('SIGTERM', () => void stop());

send({ type: 'ready', pid: process.pid, port: proxy.port });
