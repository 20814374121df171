/** Result records of a bench run and their Markdown rendering. */
import type { PgbenchResult, QueryMode } from './pgbench.ts';

export type TargetName =
  | 'direct'
  | 'pgbouncer'
  | 'pipe'
  | 'pgwarden-noaudit'
  | 'pgwarden-dynalite'
  | 'pgwarden-strict'
  | 'pgwarden-write'
  | 'pgwarden';

export interface CellResult extends PgbenchResult {
  target: TargetName;
  mode: QueryMode;
  clients: number;
  /** the target process's CPU (pgbouncer, pipe or the pgwarden proxy) while pgbench ran, µs per transaction */
  cpuPerTx?: number;
  /** share of that CPU time spent in the kernel */
  systemCpuShare?: number;
  /** share of the whole machine's CPUs busy while pgbench ran */
  machineBusy: number;
  /** share of the machine's CPUs used meanwhile by processes outside the bench */
  foreignBusy: number;
  /** pgwarden: proxy CPU including shipping the cell's audit backlog afterwards, µs per transaction */
  cpuPerTxWithAudit?: number;
  /** pgwarden: CPU of the bench process (dynalite serving the audit writes) per transaction, incl. drain */
  auditStoreCpuPerTx?: number;
  /** pgwarden: audit events buffered in the proxy when pgbench finished */
  auditBacklog?: number;
  /** pgwarden: seconds it took to ship that backlog */
  auditDrainSeconds?: number;
}

export interface IdleResult {
  target: 'pgwarden' | 'pipe' | 'pgbouncer';
  connections: number;
  openSeconds: number;
  rssBefore: number;
  rssAfter: number;
  /** after a forced full GC (Node processes only) */
  rssBeforeGc?: number;
  rssAfterGc?: number;
  heapBefore?: number;
  heapAfter?: number;
}

export const MB = 1024 * 1024;

export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

export function table(header: string[], rows: string[][]): string {
  const lines = [header, header.map(() => '---'), ...rows];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function find(
  cells: readonly CellResult[],
  target: TargetName,
  mode: QueryMode,
  clients: number,
): CellResult | undefined {
  return cells.find((c) => c.target === target && c.mode === mode && c.clients === clients);
}

export function throughputTable(
  cells: readonly CellResult[],
  modes: readonly QueryMode[],
  clientCounts: readonly number[],
): string {
  const rows: string[][] = [];
  for (const mode of modes) {
    for (const clients of clientCounts) {
      const d = find(cells, 'direct', mode, clients);
      const b = find(cells, 'pgbouncer', mode, clients);
      const w = find(cells, 'pgwarden', mode, clients);
      if (!d && !b && !w) continue;
      rows.push([
        mode,
        String(clients),
        fmt(d?.tps),
        fmt(b?.tps),
        fmt(w?.tps),
        ratio(b?.tps, d?.tps),
        ratio(w?.tps, b?.tps),
        ratio(w?.tps, d?.tps),
        `${fmt(d?.latencyMs, 3)} / ${fmt(b?.latencyMs, 3)} / ${fmt(w?.latencyMs, 3)}`,
        fmt(b?.cpuPerTx, 1),
        fmt(w?.cpuPerTx, 1),
        fmt(w?.cpuPerTxWithAudit, 1),
      ]);
    }
  }
  return table(
    [
      'mode',
      'clients',
      'direct TPS',
      'pgbouncer TPS',
      'pgwarden TPS',
      'pgbouncer / direct',
      'pgwarden / pgbouncer',
      'pgwarden / direct',
      'avg latency ms (direct / pgbouncer / pgwarden)',
      'pgbouncer CPU µs/tx',
      'pgwarden CPU µs/tx',
      'pgwarden CPU µs/tx incl. audit shipping',
    ],
    rows,
  );
}

/** The diagnostic targets next to pgbouncer and pgwarden; empty when none ran. */
export function diagnosticTable(
  cells: readonly CellResult[],
  modes: readonly QueryMode[],
  clientCounts: readonly number[],
): string {
  const shown: TargetName[] = [
    'pgbouncer',
    'pipe',
    'pgwarden-noaudit',
    'pgwarden-dynalite',
    'pgwarden-strict',
    'pgwarden-write',
    'pgwarden',
  ];
  const present = shown.filter((t) => cells.some((c) => c.target === t));
  if (!present.some((t) => t !== 'pgbouncer' && t !== 'pgwarden')) return '';
  const rows: string[][] = [];
  for (const mode of modes) {
    for (const clients of clientCounts) {
      const b = find(cells, 'pgbouncer', mode, clients);
      const row = [mode, String(clients)];
      for (const target of present) {
        const c = find(cells, target, mode, clients);
        row.push(
          `${fmt(c?.tps)}${target === 'pgbouncer' ? '' : ` (${ratio(c?.tps, b?.tps)})`}`,
          fmt(c?.cpuPerTx, 1),
        );
      }
      rows.push(row);
    }
  }
  return table(
    [
      'mode',
      'clients',
      ...present.flatMap((t) => [`${t} TPS${t === 'pgbouncer' ? '' : ' (/ pgbouncer)'}`, `${t} CPU µs/tx`]),
    ],
    rows,
  );
}

export function idleTable(results: readonly IdleResult[]): string {
  return table(
    [
      'proxy',
      'idle TLS connections',
      'RSS before (MB)',
      'RSS after (MB)',
      'added (MB)',
      'per connection (KB)',
    ],
    results.map((r) => [
      r.target,
      fmt(r.connections),
      fmt(r.rssBefore / MB, 1),
      fmt(r.rssAfter / MB, 1),
      fmt((r.rssAfter - r.rssBefore) / MB, 1),
      fmt((r.rssAfter - r.rssBefore) / 1024 / r.connections, 1),
    ]),
  );
}
