/**
 * Production composition root of the proxy (the ECS task): configuration from the environment,
 * the control plane over HTTP, and graceful draining on SIGTERM (stop accepting, let sessions
 * finish for PGWARDEN_DRAIN_SECONDS, flush audit events).
 */
import { proxyConfigFromEnv } from '../shared/config.ts';
import type { ControlPlane } from '../shared/control-plane.ts';
import { StatementDecider } from '../shared/decide.ts';
import { PgWardenError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { parsePolicy } from '../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../shared/sql/analyze.ts';
import { createHttpControlPlane } from './control-plane-http.ts';
import { startProxy } from './server.ts';

const line =
  (level: string) =>
  (message: string, fields?: Record<string, unknown>): void => {
    process.stderr.write(
      `${JSON.stringify({ level, time: new Date().toISOString(), message, ...fields })}\n`,
    );
  };
const logger: Logger = { info: line('info'), warn: line('warn'), error: line('error') };

const config = proxyConfigFromEnv(process.env);
await loadSqlParser();

/**
 * Sessions and audit go to the API; statement decisions are made here with the same pure decision
 * code the API runs, so no statement waits for an HTTP round trip. (When policies are stored in the
 * API, the proxy will fetch the current version and decide with it.)
 */
function localDecisions(remote: ControlPlane): ControlPlane {
  const decider = new StatementDecider(
    config.policyText === undefined ? undefined : parsePolicy(config.policyText),
  );
  return {
    openSession: (request) => remote.openSession(request),
    decide: (request) => decider.decide(request),
    ingest: (events) => remote.ingest(events),
  };
}
const proxy = await startProxy({
  host: config.host,
  port: config.port,
  tls: config.tls,
  allowPlaintext: config.allowPlaintext,
  upstream: config.upstream,
  credentials: (role) => {
    const credential = config.credentials[role];
    if (!credential)
      throw new PgWardenError('AUTH_NO_ROLE', `the gateway holds no database login for role ${role}`);
    return credential;
  },
  controlPlane: localDecisions(
    createHttpControlPlane({ baseUrl: config.apiUrl, serviceToken: config.serviceToken }),
  ),
  proxyId: config.proxyId,
  logger,
});

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info('draining', { signal, sessions: proxy.sessions, graceSeconds: config.drainSeconds });
    proxy.close(config.drainSeconds * 1000).then(
      () => process.exit(0),
      (error) => {
        logger.error('shutdown failed', { error: String(error) });
        process.exit(1);
      },
    );
  });
}
