/** Opens many authenticated, idle TLS connections (node-postgres clients), and closes them again. */
import pg from 'pg';

export interface IdleTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface IdleConnections {
  opened: number;
  seconds: number;
  close(): Promise<void>;
}

export async function openIdleConnections(
  target: IdleTarget,
  count: number,
  concurrency: number,
): Promise<IdleConnections> {
  const clients: pg.Client[] = [];
  const started = performance.now();
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < count && failure === undefined) {
      next++;
      const client = new pg.Client({
        ...target,
        // sslmode=require: encrypted, certificate not verified (as pgbench/libpq do here)
        ssl: { rejectUnauthorized: false },
        connectionTimeoutMillis: 30_000,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        clients.push(client);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const seconds = (performance.now() - started) / 1000;
  const close = async () => {
    await Promise.all(clients.splice(0).map((client) => client.end().catch(() => {})));
  };
  if (failure !== undefined) {
    const opened = clients.length;
    await close();
    throw new Error(
      `opened ${opened} of ${count} connections, then: ${(failure as Error).message ?? failure}`,
    );
  }
  return { opened: clients.length, seconds, close };
}
