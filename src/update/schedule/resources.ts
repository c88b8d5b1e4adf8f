import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What a plugin's process tree costs (seed 002 §6.2, §11.3), read from Linux's
 * /proc without psutil: every process whose process group is the plugin's
 * (Executor starts each plugin as the leader of its own group, and its
 * children stay in it unless they make their own). Where there is no /proc
 * (macOS, the BSDs) every figure is zero: statistics degrade, runs do not.
 */

/** Linux reports these in pages and USER_HZ ticks, fixed at 4096 bytes and 100 per second on the platforms upkeep runs on. */
const PAGE_SIZE = 4096;
const TICKS_PER_SECOND = 100;
const SAMPLE_INTERVAL_MS = 250;
const PROC = '/proc';

export interface ProcessSample {
  pid: number;
  ppid: number;
  /** Ticks after boot the process started: with the pid, names one process even when pids are reused. */
  startTime: number;
  rssBytes: number;
  userSeconds: number;
  systemSeconds: number;
  /** CPU time of the children this process has reaped (the kernel moves it here when it waits for them). */
  childrenUserSeconds: number;
  childrenSystemSeconds: number;
  /** Bytes read from and written to storage, reaped children included (the kernel adds theirs on wait too); 0 where unreadable. */
  readBytes: number;
  writeBytes: number;
}

export interface GroupSample {
  processes: ProcessSample[];
  rssBytes: number;
  /** Own and reaped children's CPU time of the live processes. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  readBytes: number;
  writeBytes: number;
}

export interface ResourceUsage {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  peakRssBytes: number;
  readBytes: number;
  writeBytes: number;
}

interface StatFields {
  pid: number;
  ppid: number;
  group: number;
  startTime: number;
  rssBytes: number;
  userSeconds: number;
  systemSeconds: number;
  childrenUserSeconds: number;
  childrenSystemSeconds: number;
}

/** /proc/<pid>/stat; the command name in parentheses may hold spaces and parentheses, so fields are counted from the last `)`. */
function parseStat(text: string): StatFields | null {
  const close = text.lastIndexOf(')');
  if (close === -1) return null;
  const fields = text.slice(close + 2).split(' ').map(Number);
  const pid = Number.parseInt(text, 10);
  const field = (index: number): number => fields[index] ?? 0;
  if (!Number.isInteger(pid) || fields.length < 22) return null;
  return {
    pid,
    ppid: field(1),
    group: field(2),
    userSeconds: field(11) / TICKS_PER_SECOND,
    systemSeconds: field(12) / TICKS_PER_SECOND,
    childrenUserSeconds: field(13) / TICKS_PER_SECOND,
    childrenSystemSeconds: field(14) / TICKS_PER_SECOND,
    startTime: field(19),
    rssBytes: field(21) * PAGE_SIZE,
  };
}

function parseIo(text: string): { readBytes: number; writeBytes: number } {
  const value = (key: string): number => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { readBytes: value('read_bytes'), writeBytes: value('write_bytes') };
}

const isPid = (name: string): boolean => /^\d+$/.test(name);

function totals(processes: ProcessSample[]): GroupSample {
  const sum = (pick: (process: ProcessSample) => number) => processes.reduce((total, process) => total + pick(process), 0);
  return {
    processes,
    rssBytes: sum((process) => process.rssBytes),
    cpuUserSeconds: sum((process) => process.userSeconds + process.childrenUserSeconds),
    cpuSystemSeconds: sum((process) => process.systemSeconds + process.childrenSystemSeconds),
    readBytes: sum((process) => process.readBytes),
    writeBytes: sum((process) => process.writeBytes),
  };
}

/** The live processes of a process group now; empty once the group is gone or where /proc is missing. */
export async function sampleProcessGroup(groupId: number, procRoot: string = PROC): Promise<GroupSample> {
  let names: string[];
  try {
    names = (await readdir(procRoot)).filter(isPid);
  } catch {
    return totals([]);
  }
  const processes = await Promise.all(
    names.map(async (name): Promise<ProcessSample | null> => {
      // A process may end between readdir and readFile: skip it like one of another group.
      const stat = parseStat(await readFile(join(procRoot, name, 'stat'), 'utf8').catch(() => ''));
      if (stat === null || stat.group !== groupId) return null;
      // io needs the right to trace the process (not given for setuid programs such as sudo): zero there.
      const io = parseIo(await readFile(join(procRoot, name, 'io'), 'utf8').catch(() => ''));
      const { group: _group, ...fields } = stat;
      return { ...fields, ...io };
    }),
  );
  return totals(processes.filter((process) => process !== null));
}

/**
 * Follows one plugin's process group while it runs: samples every 250 ms and
 * keeps the peak RSS and, per process, the last counters seen.
 *
 * CPU and I/O are approximations. A process's own counters die with it; when
 * its parent reaps it, the kernel adds them to the parent's children counters
 * (cutime/cstime, and /proc/<pid>/io). So a process that vanished while its
 * last-seen parent is still in the group counts through that parent (its own
 * record is dropped, or it would count twice), and one whose parent is
 * outside the group (the leader, reaped by upkeep; orphans, reaped by init)
 * keeps its last-seen counters. What a process did between the last sample and
 * its end is lost when it is not reaped inside the group (at most 250 ms of
 * it), and so are processes that lived less than one interval unless a
 * process of the group reaped them.
 */
export class ProcessTreeMeter {
  private readonly intervalMs: number;
  private readonly procRoot: string;
  private groupId: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** `pid:startTime` -> the last sample of that process. */
  private readonly seen = new Map<string, ProcessSample>();
  private peakRssBytes = 0;
  private sampling: Promise<void> = Promise.resolve();

  constructor(options: { intervalMs?: number; procRoot?: string } = {}) {
    this.intervalMs = options.intervalMs ?? SAMPLE_INTERVAL_MS;
    this.procRoot = options.procRoot ?? PROC;
  }

  /** Begins following a process group (give it Executor's onStart pid): a sample now, then one per interval. */
  start(groupId: number): void {
    if (this.groupId !== undefined) throw new Error('a ProcessTreeMeter follows one process group');
    this.groupId = groupId;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    // Sampling alone must not keep upkeep running.
    this.timer.unref();
  }

  /** Takes one sample now (samples never overlap). */
  sample(): Promise<void> {
    const groupId = this.groupId;
    if (groupId === undefined) return this.sampling;
    this.sampling = this.sampling.then(async () => this.record(await sampleProcessGroup(groupId, this.procRoot)));
    return this.sampling;
  }

  /** What the group has used so far. */
  usage(): ResourceUsage {
    const records = [...this.seen.values()];
    const sum = (pick: (process: ProcessSample) => number) => records.reduce((total, process) => total + pick(process), 0);
    return {
      cpuUserSeconds: sum((process) => process.userSeconds + process.childrenUserSeconds),
      cpuSystemSeconds: sum((process) => process.systemSeconds + process.childrenSystemSeconds),
      peakRssBytes: this.peakRssBytes,
      readBytes: sum((process) => process.readBytes),
      writeBytes: sum((process) => process.writeBytes),
    };
  }

  /** Stops sampling after a last sample, and returns the usage. */
  async finish(): Promise<ResourceUsage> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sample();
    this.groupId = undefined;
    return this.usage();
  }

  private record(sample: GroupSample): void {
    this.peakRssBytes = Math.max(this.peakRssBytes, sample.rssBytes);
    const key = (process: ProcessSample) => `${process.pid}:${process.startTime}`;
    const live = new Set(sample.processes.map(key));
    const livePids = new Set(sample.processes.map((process) => process.pid));
    for (const [id, process] of this.seen) {
      // Gone, and its parent (still here) reaped it: its counters now sit in the parent's.
      if (!live.has(id) && livePids.has(process.ppid)) this.seen.delete(id);
    }
    for (const process of sample.processes) this.seen.set(key(process), process);
  }
}

/**
 * The memory ceiling of a run (seed 002 §6.2): the summed RSS of the
 * registered process groups against a limit, measured when asked and at most
 * every 250 ms. Synchronous, so the scheduler can ask it inline.
 */
export class MemoryGuard {
  private readonly limitBytes: number;
  private readonly intervalMs: number;
  private readonly procRoot: string;
  private readonly groups = new Set<number>();
  private measured: { at: number; bytes: number } | undefined;

  constructor(limitMb: number, options: { intervalMs?: number; procRoot?: string } = {}) {
    if (!(limitMb > 0)) throw new Error(`the memory limit must be above 0 MB, not ${limitMb}`);
    this.limitBytes = limitMb * 1024 * 1024;
    this.intervalMs = options.intervalMs ?? SAMPLE_INTERVAL_MS;
    this.procRoot = options.procRoot ?? PROC;
  }

  register(groupId: number): void {
    this.groups.add(groupId);
    this.measured = undefined;
  }

  unregister(groupId: number): void {
    this.groups.delete(groupId);
    this.measured = undefined;
  }

  /** The summed RSS of the registered groups, at most one interval old. */
  usedBytes(): number {
    const now = performance.now();
    if (this.measured === undefined || now - this.measured.at >= this.intervalMs) {
      this.measured = { at: now, bytes: this.measure() };
    }
    return this.measured.bytes;
  }

  full(): boolean {
    return this.groups.size > 0 && this.usedBytes() > this.limitBytes;
  }

  private measure(): number {
    if (this.groups.size === 0) return 0;
    let names: string[];
    try {
      names = readdirSync(this.procRoot).filter(isPid);
    } catch {
      return 0;
    }
    let bytes = 0;
    for (const name of names) {
      let text: string;
      try {
        text = readFileSync(join(this.procRoot, name, 'stat'), 'utf8');
      } catch {
        continue;
      }
      const stat = parseStat(text);
      if (stat !== null && this.groups.has(stat.group)) bytes += stat.rssBytes;
    }
    return bytes;
  }
}
