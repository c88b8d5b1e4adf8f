import { bottomLevels, buildGraph, criticalPath, type Task, type TaskGraph } from './graph.ts';
import { MutexTable, type MutexBlocker } from './mutex.ts';

/**
 * An event-driven list scheduler (it replaces the seed's waves, §5.3): each
 * time a task finishes, every task whose runs-after tasks have all finished,
 * whose mutexes are free and for which a slot is free starts, the most urgent
 * first. The seed starts a wave only when the whole previous wave is done, so
 * one slow plugin holds up everything after it; here it holds up only what
 * really waits for it.
 */

/**
 * How ready tasks are ranked, highest first (the smaller id breaks the last tie):
 * - `bottom-level`: the longest chain the task starts (HLFET list scheduling), then its duration;
 * - `duration`: the task's own estimate (longest processing time first), then its bottom level;
 * - `mutex-pressure`: the larger of the bottom level and the work still waiting
 *   on the busiest mutex the task holds, since that mutex's holders run one after
 *   another and a slot given to a short free task can leave it idle; then the
 *   length of the chain after the task, then its duration.
 * bench/update-schedule.ts measures them against the lower bound: `mutex-pressure`
 * comes closest, so it is the default.
 */
export type Priority = 'bottom-level' | 'duration' | 'mutex-pressure';
export const PRIORITIES: readonly Priority[] = ['bottom-level', 'duration', 'mutex-pressure'];

export interface SchedulerLimits {
  /** Tasks running at once (>= 1). */
  parallel: number;
  /** Tasks of the download phase running at once (>= 1); only `parallel` when absent. */
  downloads?: number;
  priority?: Priority;
}

export type TaskStatus = 'pending' | 'running' | 'finished' | 'skipped';

export class Scheduler {
  readonly graph: TaskGraph;
  private readonly limits: Required<Omit<SchedulerLimits, 'downloads'>> & { downloads: number };
  private readonly status = new Map<string, TaskStatus>();
  /** Unfinished runs-after predecessors of each task. */
  private readonly waitingFor = new Map<string, number>();
  /** Requeued tasks and the time before which they may not start again. */
  private readonly notBefore = new Map<string, number>();
  private readonly levels: Map<string, number>;
  /** Seconds of pending work holding each mutex (for `mutex-pressure`). */
  private readonly mutexLoad = new Map<string, number>();
  private readonly mutexes = new MutexTable();
  private readonly active = new Set<string>();
  private downloadsRunning = 0;
  private pendingCount: number;
  private halted = false;

  constructor(graph: TaskGraph, limits: SchedulerLimits) {
    if (!Number.isInteger(limits.parallel) || limits.parallel < 1) throw new Error(`parallel must be a whole number >= 1, not ${limits.parallel}`);
    const downloads = limits.downloads ?? limits.parallel;
    if (!Number.isInteger(downloads) || downloads < 1) throw new Error(`downloads must be a whole number >= 1, not ${downloads}`);
    this.graph = graph;
    this.limits = { parallel: limits.parallel, downloads, priority: limits.priority ?? 'mutex-pressure' };
    this.levels = bottomLevels(graph);
    for (const task of graph.tasks) {
      this.status.set(task.id, 'pending');
      this.waitingFor.set(task.id, graph.predecessors.get(task.id)!.length);
      for (const mutex of new Set(task.mutexes)) this.mutexLoad.set(mutex, (this.mutexLoad.get(mutex) ?? 0) + task.duration);
    }
    this.pendingCount = graph.tasks.length;
  }

  /**
   * Pending tasks whose runs-after tasks have all finished, most urgent first,
   * whether or not their mutexes and a slot are free. `now` is compared with the
   * `notBefore` of requeued tasks, in the same unit (milliseconds of Date.now() by default).
   */
  ready(now: number = Date.now()): Task[] {
    const ready = this.graph.tasks.filter(
      (task) => this.status.get(task.id) === 'pending' && this.waitingFor.get(task.id) === 0 && (this.notBefore.get(task.id) ?? -Infinity) <= now,
    );
    const keys = new Map(ready.map((task) => [task.id, this.rank(task)]));
    return ready.sort((a, b) => {
      const first = keys.get(a.id)!;
      const second = keys.get(b.id)!;
      for (let index = 0; index < first.length; index++) if (first[index] !== second[index]) return second[index]! - first[index]!;
      return a.id < b.id ? -1 : 1;
    });
  }

  /**
   * The tasks to start now, already marked running with their mutexes taken.
   * With `memoryFull`, nothing starts while anything runs, and only one task
   * when nothing does, so a run slows down under memory pressure but never stalls.
   */
  next(options: { memoryFull?: boolean; now?: number } = {}): Task[] {
    if (this.halted) return [];
    if (options.memoryFull && this.active.size > 0) return [];
    const started: Task[] = [];
    for (const task of this.ready(options.now)) {
      if (this.active.size >= this.limits.parallel) break;
      if (options.memoryFull && started.length > 0) break;
      if (task.phase === 'download' && this.downloadsRunning >= this.limits.downloads) continue;
      if (!this.mutexes.canAcquire(task)) continue;
      this.start(task);
      started.push(task);
    }
    return started;
  }

  /** A running task ended, succeeded or failed: runs-after is about order, not success. */
  finish(id: string): void {
    const task = this.leave(id);
    this.status.set(id, 'finished');
    this.release(task);
  }

  /** A pending task will not run (its plugin failed earlier, or does not apply); what waits for it may go. */
  skip(id: string): void {
    const task = this.expect(id, 'pending');
    this.status.set(id, 'skipped');
    this.pendingCount--;
    for (const mutex of new Set(task.mutexes)) this.mutexLoad.set(mutex, this.mutexLoad.get(mutex)! - task.duration);
    this.release(task);
  }

  /**
   * A running task goes back to pending (a transient failure to retry), freeing
   * its slot and mutexes meanwhile; it may not start again before `notBefore`
   * (the unit of `now` in next()).
   */
  requeue(id: string, notBefore?: number): void {
    const task = this.leave(id);
    this.status.set(id, 'pending');
    this.pendingCount++;
    for (const mutex of new Set(task.mutexes)) this.mutexLoad.set(mutex, this.mutexLoad.get(mutex)! + task.duration);
    if (notBefore === undefined) this.notBefore.delete(id);
    else this.notBefore.set(id, notBefore);
  }

  /** Start nothing more (an interruption, or a failure without --continue-on-error); running tasks may finish. */
  stop(): void {
    this.halted = true;
  }

  get stopped(): boolean {
    return this.halted;
  }

  /** Nothing runs and nothing more will start. */
  get done(): boolean {
    return this.active.size === 0 && (this.pendingCount === 0 || this.halted);
  }

  /** The earliest `notBefore` of a requeued task still pending, for a timer: undefined when none waits. */
  nextWakeup(): number | undefined {
    let earliest: number | undefined;
    for (const [id, time] of this.notBefore) {
      if (this.status.get(id) === 'pending' && (earliest === undefined || time < earliest)) earliest = time;
    }
    return earliest;
  }

  pending(): Task[] {
    return this.graph.tasks.filter((task) => this.status.get(task.id) === 'pending');
  }

  running(): Task[] {
    return [...this.active].map((id) => this.graph.byId.get(id)!);
  }

  statusOf(id: string): TaskStatus {
    const status = this.status.get(id);
    if (status === undefined) throw new Error(`no task ${id} in this schedule`);
    return status;
  }

  /** What keeps a ready task from starting: the mutexes and the running tasks in the way (for "waiting for ..."). */
  blockers(id: string): MutexBlocker[] {
    return this.mutexes.blockers(this.expect(id, 'pending'));
  }

  /** The ranking key of a task, compared element by element, highest first. */
  private rank(task: Task): number[] {
    const level = this.levels.get(task.id)!;
    switch (this.limits.priority) {
      case 'bottom-level':
        return [level, task.duration];
      case 'duration':
        return [task.duration, level];
      case 'mutex-pressure': {
        let pressure = 0;
        for (const mutex of task.mutexes) pressure = Math.max(pressure, this.mutexLoad.get(mutex)!);
        // Holders of one busy mutex tie on pressure: the one with the longest
        // chain after it goes first (Jackson's rule for one machine with tails).
        return [Math.max(level, pressure), level - task.duration, task.duration];
      }
    }
  }

  private start(task: Task): void {
    this.mutexes.acquire(task);
    this.status.set(task.id, 'running');
    this.active.add(task.id);
    this.pendingCount--;
    this.notBefore.delete(task.id);
    if (task.phase === 'download') this.downloadsRunning++;
    for (const mutex of new Set(task.mutexes)) this.mutexLoad.set(mutex, this.mutexLoad.get(mutex)! - task.duration);
  }

  /** A running task gives back its slot and mutexes. */
  private leave(id: string): Task {
    const task = this.expect(id, 'running');
    this.active.delete(id);
    if (task.phase === 'download') this.downloadsRunning--;
    this.mutexes.release(task);
    return task;
  }

  /** What waits for a task that will not run any more may go. */
  private release(task: Task): void {
    for (const next of this.graph.successors.get(task.id)!.keys()) this.waitingFor.set(next, this.waitingFor.get(next)! - 1);
  }

  private expect(id: string, status: TaskStatus): Task {
    const task = this.graph.byId.get(id);
    if (!task) throw new Error(`no task ${id} in this schedule`);
    if (this.status.get(id) !== status) throw new Error(`task ${id} is ${this.status.get(id)}, not ${status}`);
    return task;
  }
}

export interface Interval {
  start: number;
  end: number;
}

export interface Simulation {
  /** Seconds from the first start to the last end. */
  makespan: number;
  intervals: Map<string, Interval>;
}

/** Runs the Scheduler on a virtual clock, each task taking exactly its estimate. */
export function simulate(tasks: readonly Task[], limits: SchedulerLimits): Simulation {
  const scheduler = new Scheduler(buildGraph(tasks), limits);
  const intervals = new Map<string, Interval>();
  const running = new Map<string, number>();
  let now = 0;
  while (!scheduler.done) {
    for (const task of scheduler.next({ now })) {
      intervals.set(task.id, { start: now, end: now + task.duration });
      running.set(task.id, now + task.duration);
    }
    if (running.size === 0) throw new Error('the schedule stalled with tasks left');
    now = Math.min(...running.values());
    // Every task ending now finishes before the next decision, so their successors compete together.
    for (const [id, end] of [...running].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (end <= now) {
        running.delete(id);
        scheduler.finish(id);
      }
    }
  }
  return { makespan: now, intervals };
}

/** One task after another in a topological order: what topgrade does. */
export function simulateSequential(tasks: readonly Task[]): Simulation {
  const graph = buildGraph(tasks);
  const intervals = new Map<string, Interval>();
  let now = 0;
  for (const id of graph.order) {
    const duration = graph.byId.get(id)!.duration;
    intervals.set(id, { start: now, end: now + duration });
    now += duration;
  }
  return { makespan: now, intervals };
}

/**
 * The seed's get_execution_waves (§5.3) as its orchestrator would run it: wave
 * k holds the tasks whose longest chain of predecessors has k edges; a wave
 * starts only when the previous one has wholly finished. Within a wave the
 * tasks queue in order for a task slot (and a download slot in the download
 * phase), like the seed's semaphores, and a task holding a slot waits there
 * until its mutexes are free (the seed's MutexManager), in the same order.
 */
export function simulateWaves(tasks: readonly Task[], limits: SchedulerLimits): Simulation {
  const graph = buildGraph(tasks);
  const downloads = limits.downloads ?? limits.parallel;
  const depth = new Map<string, number>();
  for (const id of graph.order) {
    depth.set(id, Math.max(-1, ...graph.predecessors.get(id)!.map((before) => depth.get(before)!)) + 1);
  }
  const waves: Task[][] = [];
  for (const task of graph.tasks) (waves[depth.get(task.id)!] ??= []).push(task);

  const intervals = new Map<string, Interval>();
  let now = 0;
  for (const wave of waves.filter((entry) => entry !== undefined)) {
    const mutexes = new MutexTable();
    const queue = [...wave];
    const holdingSlot: Task[] = [];
    const running = new Map<string, Task>();
    let downloadsTaken = 0;
    while (queue.length > 0 || holdingSlot.length > 0 || running.size > 0) {
      while (queue.length > 0 && holdingSlot.length + running.size < limits.parallel) {
        const head = queue[0]!;
        if (head.phase === 'download' && downloadsTaken >= downloads) break;
        if (head.phase === 'download') downloadsTaken++;
        holdingSlot.push(queue.shift()!);
      }
      for (const task of [...holdingSlot]) {
        if (!mutexes.canAcquire(task)) continue;
        mutexes.acquire(task);
        holdingSlot.splice(holdingSlot.indexOf(task), 1);
        running.set(task.id, task);
        intervals.set(task.id, { start: now, end: now + task.duration });
      }
      if (running.size === 0) throw new Error('a wave stalled with tasks left');
      now = Math.min(...[...running.keys()].map((id) => intervals.get(id)!.end));
      for (const [id, task] of running) {
        if (intervals.get(id)!.end > now) continue;
        running.delete(id);
        mutexes.release(task);
        if (task.phase === 'download') downloadsTaken--;
      }
    }
  }
  return { makespan: now, intervals };
}

export interface LowerBound {
  /** The largest of the parts below: no schedule of these tasks can be shorter. */
  seconds: number;
  /** The longest chain of runs-after and mutex edges. */
  criticalPath: number;
  /** The mutex whose holders take longest in all (they run one after another). */
  busiestMutex: { name: string; seconds: number } | null;
  /** All the work spread evenly over the slots. */
  work: number;
  /** All the download-phase work spread evenly over the download slots. */
  downloads: number;
}

export function lowerBound(tasks: readonly Task[], parallel: number, downloads: number = parallel): LowerBound {
  const path = criticalPath(buildGraph(tasks)).length;
  const load = new Map<string, number>();
  for (const task of tasks) for (const mutex of new Set(task.mutexes)) load.set(mutex, (load.get(mutex) ?? 0) + task.duration);
  let busiestMutex: LowerBound['busiestMutex'] = null;
  for (const [name, seconds] of load) if (busiestMutex === null || seconds > busiestMutex.seconds) busiestMutex = { name, seconds };
  const total = (phase?: Task['phase']) => tasks.filter((task) => phase === undefined || task.phase === phase).reduce((sum, task) => sum + task.duration, 0);
  const work = total() / parallel;
  const downloadWork = total('download') / Math.min(downloads, parallel);
  return {
    seconds: Math.max(path, busiestMutex?.seconds ?? 0, work, downloadWork),
    criticalPath: path,
    busiestMutex,
    work,
    downloads: downloadWork,
  };
}
