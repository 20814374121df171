/** Starts scripts/bench/proxy-process.ts as a child Node process and talks to it over IPC. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PipeConfig, ProxyConfig, ProxyMessage, ProxyReady, ProxyStats } from './protocol.ts';

export interface ProxyChild {
  pid: number;
  port: number;
  stats(): Promise<ProxyStats>;
  /** runs a full GC in the child (it starts with --expose-gc), then reports */
  gc(): Promise<ProxyStats>;
  /** closes the proxy (audit flushed); resolves with its last stats, or undefined if it died */
  stop(): Promise<ProxyStats | undefined>;
  /** SIGKILL, for emergencies */
  kill(): void;
}

export interface ProxyChildOptions {
  /** passed as JSON in BENCH_PROXY_CONFIG */
  config: ProxyConfig | PipeConfig;
  /** which process: pgwarden (default) or the bare TLS pipe */
  kind?: 'pgwarden' | 'pipe';
  /** extra node flags, e.g. --cpu-prof --cpu-prof-dir=… */
  nodeFlags?: string[];
}

const scripts = {
  pgwarden: fileURLToPath(new URL('./proxy-process.ts', import.meta.url)),
  pipe: fileURLToPath(new URL('./tls-pipe-process.ts', import.meta.url)),
};

export async function startProxyChild(options: ProxyChildOptions): Promise<ProxyChild> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', '--expose-gc', ...(options.nodeFlags ?? []), scripts[options.kind ?? 'pgwarden']],
    {
      env: { ...process.env, BENCH_PROXY_CONFIG: JSON.stringify(options.config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const waiting: Array<(stats: ProxyStats) => void> = [];
  let exitedWith: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exitedWith = String(code ?? signal);
      resolve();
    }),
  );

  const ready = await new Promise<ProxyReady>((resolve, reject) => {
    const onMessage = (message: ProxyMessage) => {
      if (message.type === 'ready') {
        child.off('message', onMessage);
        resolve(message);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code, signal) =>
      reject(new Error(`the proxy process exited with ${code ?? signal}`)),
    );
  });
  child.on('message', (message: ProxyMessage) => {
    if (message.type === 'stats') waiting.shift()?.(message);
  });

  const ask = (type: 'stats' | 'gc'): Promise<ProxyStats> =>
    new Promise((resolve, reject) => {
      if (exitedWith !== undefined) {
        reject(new Error(`the proxy process exited with ${exitedWith}`));
        return;
      }
      waiting.push(resolve);
      child.send({ type });
    });

  let stopping: Promise<ProxyStats | undefined> | undefined;
  return {
    pid: ready.pid,
    port: ready.port,
    stats: () => ask('stats'),
    gc: () => ask('gc'),
    stop() {
      stopping ??= (async () => {
        if (exitedWith !== undefined) return undefined;
        let last: ProxyStats | undefined;
        const final = new Promise<void>((resolve) => {
          waiting.push((stats) => {
            last = stats;
            resolve();
          });
        });
        child.send({ type: 'stop' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await Promise.race([exited, final.then(() => exited)]);
        clearTimeout(timer);
        return last;
      })();
      return stopping;
    },
    kill() {
      if (exitedWith === undefined) child.kill('SIGKILL');
    },
  };
}
