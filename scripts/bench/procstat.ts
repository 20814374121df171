/** CPU time and resident memory of another process, from Linux /proc. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10);
    } catch {
      ticksPerSecond = 100;
    }
    if (!Number.isFinite(ticksPerSecond) || ticksPerSecond <= 0) ticksPerSecond = 100;
  }
  return ticksPerSecond;
}

export interface CpuTimes {
  user: number;
  system: number;
}

/** utime and stime of the process (all threads, not its children), in µs; clock-tick resolution. */
export function cpuTimes(pid: number): CpuTimes {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name (field 2) may contain spaces: fields after it start past the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15
  const tick = 1_000_000 / clockTicks();
  return { user: Number(fields[11]) * tick, system: Number(fields[12]) * tick };
}

/** utime + stime in µs. */
export function cpuMicros(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/**
 * Machine-wide CPU counters from /proc/stat (µs summed over all CPUs): `busy` includes interrupt
 * and steal time, `process` is the time charged to processes (user, nice, system).
 */
export function machineCpu(): { busy: number; process: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = ticks;
  const tick = 1_000_000 / clockTicks();
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy * tick, process: (user + nice + system) * tick, total: (busy + idle + iowait) * tick };
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Total CPU time of this Node process (all threads), in microseconds. */
export function ownCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * CPU time (µs) of this process and all its descendants, including what exited children used
 * (cutime/cstime, added to a parent when it reaps a child): pgbench runs and PostgreSQL backends
 * that come and go between two snapshots are counted once, in full.
 */
export function treeCpu(): number {
  const parents = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(pid, Number(fields[1]));
      // utime, stime, cutime, cstime: fields 14-17
      const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      cpu.set(pid, (ticks * 1_000_000) / clockTicks());
    } catch {
      // gone meanwhile
    }
  }
  const ours = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === process.pid) return true;
      p = parents.get(p);
    }
    return false;
  };
  let total = 0;
  for (const [pid, micros] of cpu) if (ours(pid)) total += micros;
  return total;
}
