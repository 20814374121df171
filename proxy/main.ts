/**
 * Production composition root of the proxy (the ECS task): configuration from the environment,
 * the control plane over HTTP, and graceful draining on SIGTERM (stop accepting, let sessions
 * finish for PGWARDEN_DRAIN_SECONDS, write and sync the audit spool and ship what the API takes;
 * the rest is shipped by the next start on the same PGWARDEN_AUDIT_SPOOL_DIR).
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { proxyConfigFromEnv } from '../shared/config.ts';
import type { ControlPlane, Decision } from '../shared/control-plane.ts';
import { StatementDecider } from '../shared/decide.ts';
import { PgWardenError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { parsePolicy } from '../shared/policy/parse-policy.ts';
import { loadSqlParser } from '../shared/sql/analyze.ts';
import { createApprovalGate } from './approval-gate.ts';
import { ApprovedRunReporter } from './approvals-execution.ts';
import { createHttpApprovalsClient } from './approvals-http.ts';
import { deployedDecideHint } from './approvals-messages.ts';
import { signingFetch } from './aws-sigv4.ts';
import { createHttpControlPlane } from './control-plane-http.ts';
import { PolicyRefresher } from './policy-refresh.ts';
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
 * Every call to the API is signed with the task's AWS identity (the ECS task role, through the SDK's
 * default credential chain, refreshed before it expires); API Gateway's IAM authorizer checks it.
 */
const signed = signingFetch({ credentials: defaultProvider(), region: config.apiRegion });

/**
 * Sessions and audit go to the API; statement decisions are made here with the same pure decision
 * code the API runs, so no statement waits for an HTTP round trip. The policy is the API's stored
 * current version, polled every PGWARDEN_POLICY_REFRESH_SECONDS and swapped in without a restart;
 * PGWARDEN_POLICY pins one instead. Until the first policy is read, statements are refused.
 */
const decider = new StatementDecider(
  config.policyText === undefined ? undefined : parsePolicy(config.policyText),
);
const policyRefresh =
  config.policyText === undefined
    ? new PolicyRefresher({
        apiUrl: config.apiUrl,
        fetch: signed,
        decider,
        intervalMs: config.policyRefreshSeconds * 1000,
        logger,
      })
    : undefined;
if (policyRefresh) {
  await policyRefresh.refresh();
  policyRefresh.start();
} else logger.info('policy pinned by PGWARDEN_POLICY', { version: decider.policyVersion });

const NO_POLICY: Decision = Object.freeze({
  action: 'deny',
  ruleId: 'no-decision',
  reason:
    'pgwarden has not been able to read its policy yet, so the statement was not run; try again shortly',
  policyVersion: '',
});

function localDecisions(remote: ControlPlane): ControlPlane {
  return {
    openSession: (request) => remote.openSession(request),
    ...(remote.checkSession && { checkSession: remote.checkSession.bind(remote) }),
    decide: (request) =>
      policyRefresh === undefined || policyRefresh.ready ? decider.decide(request) : NO_POLICY,
    currentPolicyVersion: () => decider.policyVersion,
    ingest: (events) => remote.ingest(events),
    // the spool's records go to the API as written, not parsed and serialized again
    ...(remote.ingestSerialized && { ingestSerialized: remote.ingestSerialized.bind(remote) }),
  };
}
/** Statements that need approval are held while the API asks a reviewer (Slack or the CLI). */
const approvalsApi = createHttpApprovalsClient({ baseUrl: config.apiUrl, fetch: signed });
const approvedRuns = new ApprovedRunReporter(approvalsApi, logger);
const starting = startProxy({
  maskingKey: Buffer.from(config.maskingKey, 'utf8'),
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
  controlPlane: approvedRuns.watch(
    localDecisions(createHttpControlPlane({ baseUrl: config.apiUrl, fetch: signed })),
  ),
  gate: createApprovalGate({
    client: approvalsApi,
    onRelease: approvedRuns.released,
    decideHint: deployedDecideHint,
    logger,
  }),
  proxyId: config.proxyId,
  limits: { ...config.limits, ...config.statementLimits },
  logger,
  audit: config.audit,
  lifetime: config.sessionLifetime,
});

// Installed before the listener reports ready: a SIGTERM right after "proxy listening" (ECS scaling
// in, a quick restart) must drain, not kill the process with the spool half written.
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    policyRefresh?.stop();
    starting
      .then((proxy) => {
        logger.info('draining', { signal, sessions: proxy.sessions, graceSeconds: config.drainSeconds });
        return proxy.close(config.drainSeconds * 1000);
      })
      .then(
        () => process.exit(0),
        (error) => {
          logger.error('shutdown failed', { error: String(error) });
          process.exit(1);
        },
      );
  });
}
await starting;
