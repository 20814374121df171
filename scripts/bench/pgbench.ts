/** Runs the Debian pgbench binary and reads its summary. */
import { type ChildProcess, spawn } from 'node:child_process';

export type QueryMode = 'simple' | 'extended' | 'prepared';

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  sslmode: 'disable' | 'require';
}

export interface PgbenchRun {
  mode: QueryMode;
  clients: number;
  threads: number;
  durationSeconds: number;
}

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
  connectMs: number | undefined;
}

export class PgbenchError extends Error {}

/** The pgbench currently running, so an interrupt can stop it. */
export const runningChildren = new Set<ChildProcess>();

export function pgbenchEnv(endpoint: Endpoint): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: endpoint.host,
    PGPORT: String(endpoint.port),
    PGUSER: endpoint.user,
    PGPASSWORD: endpoint.password,
    PGDATABASE: endpoint.database,
    PGSSLMODE: endpoint.sslmode,
    PGCONNECT_TIMEOUT: '30',
  };
}

/** Runs a command to completion; rejects with its output when it exits non-zero. */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    runningChildren.add(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', (error) => {
      runningChildren.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      runningChildren.delete(child);
      if (code === 0) resolve(output);
      else
        reject(
          new PgbenchError(`${command} ${args.join(' ')} exited with ${code ?? signal}:\n${tail(output)}`),
        );
    });
  });
}

export async function pgbench(endpoint: Endpoint, runSpec: PgbenchRun): Promise<PgbenchResult> {
  const args = [
    '-n', // no vacuum: the bench login does not own the tables
    '-S',
    '-M',
    runSpec.mode,
    '-c',
    String(runSpec.clients),
    '-j',
    String(runSpec.threads),
    '-T',
    String(runSpec.durationSeconds),
  ];
  const output = await run('pgbench', args, pgbenchEnv(endpoint));
  return parsePgbench(output);
}

export function parsePgbench(output: string): PgbenchResult {
  const number = (pattern: RegExp): number | undefined => {
    const match = pattern.exec(output);
    return match ? Number(match[1]) : undefined;
  };
  const tps = number(/^tps = ([\d.]+)/m);
  const latencyMs = number(/^latency average = ([\d.]+) ms/m);
  const transactions = number(/^number of transactions actually processed: (\d+)/m);
  if (tps === undefined || latencyMs === undefined || transactions === undefined) {
    throw new PgbenchError(`cannot read pgbench's output:\n${tail(output)}`);
  }
  return {
    tps,
    latencyMs,
    transactions,
    failed: number(/^number of failed transactions: (\d+)/m) ?? 0,
    connectMs: number(/^initial connection time = ([\d.]+) ms/m),
  };
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-15).join('\n');
}
