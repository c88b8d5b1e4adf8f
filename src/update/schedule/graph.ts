import { UpkeepError } from '../../core/errors.ts';
import type { Phase } from '../plugin/manifest.ts';

/**
 * The dependency graph of one run's tasks (seed 002 §5.2, §5.3): an edge
 * `a -> b` means b may start only once a has finished. Edges come from
 * runs-after, and from mutexes: when b needs a mutex free that a holds, a goes
 * first, so the one that changes a runtime finishes before the one that uses it.
 */

export interface Task {
  /** Unique in the run, e.g. `apt:update`. */
  id: string;
  plugin: string;
  phase: Phase;
  /** Estimated seconds (>= 0); drives the priorities, never correctness. */
  duration: number;
  /** Mutexes the task holds while it runs (nobody else may hold them or need them free). */
  mutexes: string[];
  /** Mutexes that must be free (held by no running task) while it runs. */
  dependencies: string[];
  /** Ids of the tasks that must finish first; ids not in the graph are ignored. */
  after: string[];
}

/** Why an edge exists: a runs-after relation, or a mutex the later task needs free. */
export type EdgeReason = { kind: 'after' } | { kind: 'mutex'; mutex: string };

export interface TaskGraph {
  /** The tasks in the order given. */
  readonly tasks: readonly Task[];
  readonly byId: ReadonlyMap<string, Task>;
  /** For each task, the tasks that must finish before it starts. */
  readonly predecessors: ReadonlyMap<string, readonly string[]>;
  /** For each task, the tasks waiting for it, with the reason of each edge. */
  readonly successors: ReadonlyMap<string, ReadonlyMap<string, EdgeReason>>;
  /** A topological order; among tasks free to go, the order given wins (stable). */
  readonly order: readonly string[];
}

export function buildGraph(tasks: readonly Task[]): TaskGraph {
  const byId = new Map<string, Task>();
  for (const task of tasks) {
    if (byId.has(task.id)) throw new Error(`two tasks share the id ${task.id}`);
    if (!Number.isFinite(task.duration) || task.duration < 0) throw new Error(`task ${task.id} has an invalid duration ${task.duration}`);
    byId.set(task.id, task);
  }
  const successors = new Map<string, Map<string, EdgeReason>>(tasks.map((task) => [task.id, new Map()]));
  const addEdge = (from: string, to: string, reason: EdgeReason): void => {
    const edges = successors.get(from)!;
    // A runs-after relation explains an edge better than a mutex: keep the first reason.
    if (!edges.has(to)) edges.set(to, reason);
  };
  for (const task of tasks) {
    for (const before of task.after) {
      if (before !== task.id && byId.has(before)) addEdge(before, task.id, { kind: 'after' });
    }
  }
  const holders = new Map<string, Task[]>();
  for (const task of tasks) {
    for (const mutex of new Set(task.mutexes)) (holders.get(mutex) ?? holders.set(mutex, []).get(mutex)!).push(task);
  }
  for (const task of tasks) {
    for (const mutex of new Set(task.dependencies)) {
      for (const holder of holders.get(mutex) ?? []) {
        // Phases of one plugin are ordered by runs-after already; a mutex edge
        // between them would only invent a cycle. The mutex table still keeps them apart.
        if (holder.plugin !== task.plugin) addEdge(holder.id, task.id, { kind: 'mutex', mutex });
      }
    }
  }
  const predecessors = new Map<string, string[]>(tasks.map((task) => [task.id, []]));
  for (const [from, edges] of successors) for (const to of edges.keys()) predecessors.get(to)!.push(from);

  const graph: TaskGraph = { tasks, byId, predecessors, successors, order: [] };
  return { ...graph, order: topologicalOrder(graph) };
}

/** Kahn's algorithm; the lowest position among free tasks goes first, so equal inputs give equal orders. */
function topologicalOrder(graph: TaskGraph): string[] {
  const position = new Map(graph.tasks.map((task, index) => [task.id, index]));
  const waiting = new Map(graph.tasks.map((task) => [task.id, graph.predecessors.get(task.id)!.length]));
  const free = graph.tasks.filter((task) => waiting.get(task.id) === 0).map((task) => task.id);
  const order: string[] = [];
  while (free.length > 0) {
    free.sort((a, b) => position.get(a)! - position.get(b)!);
    const id = free.shift()!;
    order.push(id);
    for (const next of graph.successors.get(id)!.keys()) {
      const left = waiting.get(next)! - 1;
      waiting.set(next, left);
      if (left === 0) free.push(next);
    }
  }
  if (order.length < graph.tasks.length) throw cycleError(graph, new Set(order));
  return order;
}

/**
 * Every task left out of the topological order waits for another one left out,
 * so walking back through such predecessors must come round to a task already
 * seen: that loop is a cycle.
 */
function cycleError(graph: TaskGraph, ordered: ReadonlySet<string>): UpkeepError {
  const stuck = graph.tasks.map((task) => task.id).filter((id) => !ordered.has(id));
  const walk: string[] = [];
  let current = stuck[0]!;
  while (!walk.includes(current)) {
    walk.push(current);
    current = graph.predecessors.get(current)!.find((id) => !ordered.has(id))!;
  }
  const cycle = [current, ...walk.slice(walk.indexOf(current) + 1).reverse(), current];
  const plugins = cycle.map((id) => graph.byId.get(id)!.plugin);
  // Plugin names read best; task ids only when one plugin appears twice in the loop (two of its phases).
  const names = new Set(plugins.slice(1)).size === plugins.length - 1 ? plugins : cycle;
  const name = new Map(cycle.map((id, index) => [id, names[index]!]));
  const reasons = cycle.slice(1).map((to, index) => {
    const from = cycle[index]!;
    const reason = graph.successors.get(from)!.get(to)!;
    return reason.kind === 'after'
      ? `${name.get(to)} runs after ${name.get(from)} (runs_after)`
      : `${name.get(to)} needs ${reason.mutex} free while ${name.get(from)} holds it (mutexes/dependencies)`;
  });
  return new UpkeepError('E_DEPENDENCY_CYCLE', `update plugins form a cycle: ${names.join(' -> ')}`, {
    hint: `${reasons.join('; ')}: remove one of these runs_after entries or mutexes from the plugins' manifests`,
    details: { cycle, reasons },
  });
}

/**
 * The bottom level of a task: the longest path from its start to the end of
 * the run through the tasks that wait for it, its own duration included. No
 * schedule can finish sooner than this after the task starts.
 */
export function bottomLevels(graph: TaskGraph): Map<string, number> {
  const levels = new Map<string, number>();
  for (const id of [...graph.order].reverse()) {
    let longest = 0;
    for (const next of graph.successors.get(id)!.keys()) longest = Math.max(longest, levels.get(next)!);
    levels.set(id, graph.byId.get(id)!.duration + longest);
  }
  return levels;
}

/** The longest chain of tasks that must run one after another, and its length in seconds. */
export function criticalPath(graph: TaskGraph): { length: number; tasks: string[] } {
  const levels = bottomLevels(graph);
  let current: string | undefined;
  for (const id of graph.order) {
    if (graph.predecessors.get(id)!.length === 0 && (current === undefined || levels.get(id)! > levels.get(current)!)) current = id;
  }
  const tasks: string[] = [];
  while (current !== undefined) {
    tasks.push(current);
    // The successor with the longest bottom level continues the chain (order breaks ties).
    let next: string | undefined;
    for (const candidate of graph.successors.get(current)!.keys()) {
      const better = next === undefined || levels.get(candidate)! > levels.get(next)! ||
        (levels.get(candidate) === levels.get(next) && graph.order.indexOf(candidate) < graph.order.indexOf(next));
      if (better) next = candidate;
    }
    current = next;
  }
  return { length: tasks.length === 0 ? 0 : levels.get(tasks[0]!)!, tasks };
}
