/**
 * Items per second into the audit events table on dynalite (real SDK client, server in this
 * process, in memory), for the append-only store against the unconditional BatchWriteItem path it
 * replaced, and the proxy's cost of the hash chain per record:
 *
 *   npx tsx scripts/bench/audit-store-writes.ts [events=6000]
 *
 * Each write path gets fresh statement records of 20 sessions in batches of 500 (the shipper's
 * size), intent then completion as the proxy ships them, plus one re-sent batch (the retry case).
 */
import type { AddressInfo } from 'node:net';
import { BatchWriteItemCommand, DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { statementKeyAttributes, toItem } from '../../functions/adapters/dynamodb-audit-layout.ts';
import {
  DynamoDbAuditStore,
  ensureAuditTables,
  tableNames,
} from '../../functions/adapters/dynamodb-audit-store.ts';
import { AuditChains } from '../../proxy/audit-chain-state.ts';
import { type RunIdentity, StatementRun } from '../../proxy/statement-run.ts';
import { linkHash, sha256Hex } from '../../shared/audit-chain.ts';
import type { StatementEvent } from '../../shared/events.ts';
import { silentLogger } from '../../shared/logger.ts';

const total = Number(process.argv[2] ?? 6000);
const BATCH = 500;

function identity(sessionId: string): RunIdentity {
  return {
    session: {
      sessionId,
      principal: {
        name: 'ada@example.com',
        issuer: 'https://issuer.example',
        subject: 'ada',
        groups: ['engineering'],
        actor: 'agent',
      },
      role: 'developer',
      roles: ['developer'],
      database: 'app',
      applicationName: 'bench',
    },
    upstreamUser: 'app_rw',
  };
}

/** Completed, chained records as the proxy writes them (and the chain's cost per record). */
function records(prefix: string): { events: StatementEvent[]; microsPerRecord: number } {
  const lines: string[] = [];
  const chains = new AuditChains({ append: (r) => lines.push(r.line), logger: silentLogger });
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const who = identity(`${prefix}-${i % 20}`);
    const run = new StatementRun(`select * from pgbench_accounts where aid = ${i}`, 'simple', {
      action: 'allow',
      ruleId: 'default',
      policyVersion: 'v1',
      fingerprint: 'f',
      kinds: ['select'],
    });
    run.seq = Math.floor(i / 20) + 1;
    run.eventId = `${prefix}-e${i}`;
    const intent = run.intentRecord(who);
    chains.begun(intent);
    run.completed('SELECT 1', 1);
    chains.completed(run.completedRecord(who));
  }
  const microsPerRecord = ((performance.now() - started) * 1000) / total;
  return { events: lines.map((line) => JSON.parse(line) as StatementEvent), microsPerRecord };
}

/** The hashing alone, per record: SHA-256 of a head (intent) and of a link (completion). */
function hashCost(): { headMicros: number; linkMicros: number } {
  const head = JSON.stringify({
    actor: 'agent',
    applicationName: 'bench',
    database: 'app',
    decision: 'allow',
    eventId: '6f1c0b8e-8d0b-4a57-9d53-7d1f7a3e6b21',
    text: 'select abalance from pgbench_accounts where aid = 12345',
    sessionId: '0d6c7c9e-3f1e-4d8e-9f0a-2b1c3d4e5f60',
  });
  const n = 100_000;
  let start = performance.now();
  for (let i = 0; i < n; i++) sha256Hex(head);
  const headMicros = ((performance.now() - start) * 1000) / n;
  const h = sha256Hex(head);
  const tail = '{"bytesToClient":120,"commandTag":"SELECT 1","durationMs":0.412,"outcome":"ok","rows":1}';
  start = performance.now();
  for (let i = 0; i < n; i++) linkHash(i, h, h, tail);
  const linkMicros = ((performance.now() - start) * 1000) / n;
  return { headMicros, linkMicros };
}

async function main(): Promise<void> {
  const server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  const tables = tableNames('bench-');
  await ensureAuditTables(client, tables);

  // warm up (the JIT): the figure below is of the third run
  records('warm1');
  records('warm2');
  const hashes = hashCost();
  const { events: oldEvents } = records('old');
  const { events: newEvents, microsPerRecord } = records('new');

  // Today's path before this change: unconditional BatchWriteItem, 25 items a request, 4 in flight.
  const batchStart = performance.now();
  const requests: WriteRequest[] = oldEvents.map((event) => ({
    PutRequest: { Item: toItem({ ...event, ...statementKeyAttributes(event) }) },
  }));
  for (let i = 0; i < requests.length; i += 25 * 4) {
    await Promise.all(
      [0, 1, 2, 3].map((k) => {
        const chunk = requests.slice(i + k * 25, i + (k + 1) * 25);
        return chunk.length === 0
          ? undefined
          : client.send(new BatchWriteItemCommand({ RequestItems: { [tables.events]: chunk } }));
      }),
    );
  }
  const batchSeconds = (performance.now() - batchStart) / 1000;

  for (const concurrency of [8, 32, 64]) {
    // a third of the records for each setting
    const store = new DynamoDbAuditStore(client, tables, { concurrency });
    const slice = newEvents.filter((_, i) => i % 3 === [8, 32, 64].indexOf(concurrency));
    const start = performance.now();
    for (let i = 0; i < slice.length; i += BATCH) await store.put(slice.slice(i, i + BATCH));
    const seconds = (performance.now() - start) / 1000;
    const retryStart = performance.now();
    await store.put(slice.slice(0, BATCH)); // the shipper's retry of a stored batch
    const retrySeconds = (performance.now() - retryStart) / 1000;
    console.log(
      JSON.stringify({
        path: `conditional PutItem, ${concurrency} in flight`,
        items: slice.length,
        itemsPerSecond: Math.round(slice.length / seconds),
        retriedBatchItemsPerSecond: Math.round(Math.min(BATCH, slice.length) / retrySeconds),
      }),
    );
  }
  console.log(
    JSON.stringify({
      path: 'unconditional BatchWriteItem (before), 25 a request, 4 in flight',
      items: oldEvents.length,
      itemsPerSecond: Math.round(oldEvents.length / batchSeconds),
    }),
  );
  console.log(
    JSON.stringify({
      sha256HeadMicros: Number(hashes.headMicros.toFixed(2)),
      sha256LinkMicros: Number(hashes.linkMicros.toFixed(2)),
      // intent + completion serialized, hashed and linked (includes creating the StatementRun)
      proxyRecordsMicrosPerStatement: Number(microsPerRecord.toFixed(2)),
    }),
  );
  client.destroy();
  server.close();
}

await main();
