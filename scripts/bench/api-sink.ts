/**
 * The control-plane API as the bench's proxy sees it in production: a real Hono app (same routes,
 * service-token auth, validation) that the proxy POSTs its audit batches to over HTTP. Its store
 * appends each acknowledged batch to a JSON-lines file and fsyncs it, standing in for DynamoDB,
 * which in a deployment runs in AWS and not on the proxy's host or its two cores.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createApp } from '../../functions/api/app.ts';
import { createControlPlaneService } from '../../functions/api/service.ts';
import { PgWardenError } from '../../shared/errors.ts';
import type { AuditEvent } from '../../shared/events.ts';
import type { AuditStore } from '../../shared/ports.ts';

export interface ApiSink {
  url: string;
  serviceToken: string;
  /** events acknowledged, by type */
  readonly stored: Record<AuditEvent['type'], number>;
  close(): Promise<void>;
}

export async function startApiSink(options: { file: string; port: number }): Promise<ApiSink> {
  const fd = openSync(options.file, 'a');
  const stored: Record<AuditEvent['type'], number> = {
    statement: 0,
    session_opened: 0,
    session_closed: 0,
    auth_failed: 0,
    approval: 0,
  };
  const store: AuditStore = {
    async put(events) {
      writeSync(fd, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
      fsyncSync(fd);
      for (const e of events) stored[e.type]++;
    },
  };
  const service = createControlPlaneService({
    // the proxy opens sessions in-process; this API only ingests
    verifier: {
      verify: async () => {
        throw new PgWardenError('AUTH_TOKEN_INVALID', 'the bench API does not open sessions');
      },
    },
    store,
    roles: [],
    now: () => new Date(),
    newId: () => crypto.randomUUID(),
  });
  const serviceToken = `bench-service-token-${crypto.randomUUID()}`;
  const app = createApp({ service, serviceToken });
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: options.port }, () =>
      resolve(s as Server),
    );
  });
  return {
    url: `http://127.0.0.1:${options.port}`,
    serviceToken,
    stored,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          closeSync(fd);
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
