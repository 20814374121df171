/**
 * The local DynamoDB: dynalite (the real DynamoDB HTTP API over LevelDB), in memory or persistent.
 * Tables become ACTIVE immediately so start-up code need not poll.
 */
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

interface DynaliteOptions {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}

const require = createRequire(import.meta.url);
const dynalite = require('dynalite') as (options: DynaliteOptions) => Server;

export interface LocalDynamoOptions {
  /** LevelDB directory; undefined keeps everything in memory */
  dataDir?: string;
  /** 0 or undefined picks a free port */
  port?: number;
}

export interface LocalDynamo {
  /** e.g. http://127.0.0.1:4567, for `new DynamoDBClient({ endpoint })` */
  endpoint: string;
  close(): Promise<void>;
}

export async function startLocalDynamo(options: LocalDynamoOptions = {}): Promise<LocalDynamo> {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  const server = dynalite({ path: options.dataDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolve, reject) => {
      // keep-alive sockets of SDK clients would otherwise hold close() open
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
    return closed;
  };
  return { endpoint: `http://127.0.0.1:${port}`, close };
}
