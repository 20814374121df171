/**
 * A session's audit records made by the proxy's own code (StatementRun and the audit sink's chain),
 * as the shipper sends them: completed statement records linked into the chain, and the close
 * carrying the anchor. Tests store them and then tamper with what was stored.
 */
import { AuditChains } from '../../proxy/audit-chain-state.ts';
import { type RunIdentity, StatementRun } from '../../proxy/statement-run.ts';
import type { SessionClosedEvent, StatementEvent } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';
import { sessionClosed } from './events.ts';

export interface ChainedSession {
  statements: StatementEvent[];
  close: SessionClosedEvent;
}

export function chainedSession(
  sessionId: string,
  count: number,
  principal = 'ada@example.com',
): ChainedSession {
  const lines: string[] = [];
  const chains = new AuditChains({ append: (r) => lines.push(r.line), logger: silentLogger });
  const who: RunIdentity = {
    session: {
      sessionId,
      principal: {
        name: principal,
        issuer: 'https://issuer.example',
        subject: principal,
        groups: ['engineering'],
        actor: 'person',
      },
      role: 'developer',
      roles: ['developer'],
      database: 'app',
      applicationName: 'psql',
    },
    upstreamUser: 'app_rw',
  };
  for (let seq = 1; seq <= count; seq++) {
    const run = new StatementRun(`select ${seq}`, 'simple', {
      action: 'allow',
      ruleId: 'default',
      policyVersion: 'v1',
      kinds: ['select'],
    });
    run.seq = seq;
    run.eventId = `${sessionId}-e${seq}`;
    chains.begun(run.intentRecord(who));
    run.completed('SELECT 1', 1);
    chains.completed(run.completedRecord(who));
  }
  chains.closed(sessionClosed({ sessionId, eventId: `${sessionId}-close`, principal, statements: count }));
  const records = lines.map((line) => JSON.parse(line) as StatementEvent | SessionClosedEvent);
  return {
    statements: records.filter((r): r is StatementEvent => r.type === 'statement'),
    close: records.find((r): r is SessionClosedEvent => r.type === 'session_closed')!,
  };
}
