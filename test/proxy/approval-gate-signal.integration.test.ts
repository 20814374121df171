import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApprovalGate } from '../../proxy/approval-gate.ts';
import { type RunningProxy, startProxy } from '../../proxy/server.ts';
import { type LocalPostgres, startLocalPostgres } from '../../scripts/local/postgres.ts';
import { ensureLocalCertificate } from '../../scripts/local/tls.ts';
import type { ApprovalView } from '../../shared/approvals.ts';
import { StatementDecider } from '../../shared/decide.ts';
import { loadSqlParser } from '../../shared/sql/analyze.ts';
import { InMemoryControlPlane } from '../fakes/proxy-control-plane.ts';
import { waitFor } from '../fixtures/wait-for.ts';

let dir: string;
let postgres: LocalPostgres;
let proxy: RunningProxy;
const waits: AbortSignal[] = [];
const pendingView = {
  id: 'a1',
  status: 'pending',
  approvers: ['reviewers'],
  holdTimeoutSeconds: 300,
} as unknown as ApprovalView;
beforeAll(async () => {
  await loadSqlParser();
  dir = mkdtempSync(join(tmpdir(), 'pgw-tmp-'));
  postgres = await startLocalPostgres({ dataDir: dir });
  const cert = await ensureLocalCertificate(dir);
  const cp = new InMemoryControlPlane();
  const d = new StatementDecider();
  cp.decider = (r) => d.decide(r);
  proxy = await startProxy({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key },
    allowPlaintext: false,
    upstream: { host: postgres.host, port: postgres.port, ssl: 'disable' },
    credentials: () => postgres.roles.app_rw,
    controlPlane: cp,
    gate: createApprovalGate({
      client: {
        request: async () => pendingView,
        wait: (_id, ms, signal) =>
          new Promise((resolve) => {
            waits.push(signal!);
            const t = setTimeout(() => resolve(pendingView), ms);
            signal?.addEventListener('abort', () => {
              clearTimeout(t);
              resolve(pendingView);
            });
          }),
      },
    }),
    proxyId: 't',
  });
});
afterAll(async () => {
  await proxy?.close();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});
const client = async () => {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    database: 'app',
    user: 'alice@example.com',
    password: 'good-token',
    ssl: { rejectUnauthorized: false },
  });
  await c.connect();
  return c;
};

it('cancel ends the hold with 57014 and the session goes on', async () => {
  const c = await client();
  const held = c.query('delete from orders').catch((e) => e);
  await waitFor(() => waits.length === 1);
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  await new Promise<void>((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1', () => {
      const b = Buffer.alloc(16);
      b.writeInt32BE(16, 0);
      b.writeInt32BE(80877102, 4);
      b.writeInt32BE(processID, 8);
      b.writeInt32BE(secretKey, 12);
      s.end(b);
      resolve();
    });
  });
  const error = await held;
  expect(error.code).toBe('57014');
  expect(error.message).toMatch(/canceling statement due to user request while it waited for approval a1/);
  expect(waits[0]!.aborted).toBe(true);
  expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
  await c.end();
});

it('a client that disconnects stops the wait', async () => {
  const c = await client();
  c.on('error', () => {});
  c.query('delete from orders').catch(() => {});
  await waitFor(() => waits.length === 2);
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await waitFor(() => waits[1]!.aborted, 5000);
});
