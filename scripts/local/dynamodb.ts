/**
 * The local DynamoDB: dynalite (the real DynamoDB HTTP API over LevelDB), in memory or persistent.
 * Tables become ACTIVE immediately so start-up code need not poll.
 *
 * It runs on a worker thread: every audit record the proxy ships is a PutItem whose index and
 * LevelDB work would otherwise share the proxy's event loop, and each statement's round trip would
 * wait behind it (node-postgres's suite, run through `npm start`, made 5,000 statements in a row
 * and ran out of time). In AWS this work is DynamoDB's, not the proxy's.
 */
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

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

/** Plain CommonJS, so the worker needs no TypeScript loader. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const dynalite = require(workerData.dynalite);
const server = dynalite({ path: workerData.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.once('error', (error) => parentPort.postMessage({ error: String(error) }));
server.listen(workerData.port, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', () => {
  // keep-alive sockets of SDK clients would otherwise hold close() open
  server.close((error) => parentPort.postMessage({ closed: error ? String(error) : true }));
  server.closeAllConnections();
});
`;

type WorkerReply = { port: number } | { error: string } | { closed: true | string };

export async function startLocalDynamo(options: LocalDynamoOptions = {}): Promise<LocalDynamo> {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { dynalite: require.resolve('dynalite'), path: options.dataDir, port: options.port ?? 0 },
  });
  const next = () =>
    new Promise<WorkerReply>((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the dynalite worker exited (${code})`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (reply: WorkerReply) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        resolve(reply);
      });
    });
  const started = await next().catch(async (error: unknown) => {
    await worker.terminate();
    throw error;
  });
  if (!('port' in started)) {
    await worker.terminate();
    throw new Error(`dynalite did not start: ${'error' in started ? started.error : 'no port'}`);
  }
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      const reply = next();
      worker.postMessage('close');
      const result = await reply;
      await worker.terminate();
      if ('closed' in result && result.closed !== true) throw new Error(result.closed);
    })();
    return closed;
  };
  return { endpoint: `http://127.0.0.1:${started.port}`, close };
}
