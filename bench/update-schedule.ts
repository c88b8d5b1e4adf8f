/**
 * How long a run of synthetic update plugins takes when scheduled three ways,
 * on a virtual clock (the scheduler's decisions are what is measured, not the
 * machine): one after another (topgrade), the seed's waves, and upkeep's list
 * scheduler, each against the lower bound no schedule can beat. Instances are
 * generated from a seeded PRNG, so a run is reproducible.
 * bench/update.ts calls benchmarkSchedules(); alone: npx tsx bench/update-schedule.ts
 */
import { pathToFileURL } from 'node:url';
import type { Task } from '../src/update/schedule/graph.ts';
import { lowerBound, PRIORITIES, simulate, simulateSequential, simulateWaves, type Priority } from '../src/update/schedule/scheduler.ts';
import { generator } from './random.ts';

export interface ScheduleInstance {
  seed: number;
  sequential: number;
  waves: number;
  upkeep: number;
  lowerBound: number;
  ratioToLowerBound: number;
  /** Which part of the lower bound was the largest. */
  bound: 'critical path' | 'busiest mutex' | 'work';
  /** upkeep's makespan with each priority rule. */
  priorities: Record<Priority, number>;
}

export interface ScheduleBenchmark {
  plugins: number;
  parallel: number;
  /** Means over the instances, in seconds. */
  sequential: number;
  waves: number;
  upkeep: number;
  lowerBound: number;
  /** Mean of upkeep / lower bound over the instances (target <= 1.10). */
  ratioToLowerBound: number;
  worstRatio: number;
  /** Mean ratio to the lower bound of each priority rule (the scheduler's default is the best). */
  priorities: Record<Priority, number>;
  instances: ScheduleInstance[];
}

const PARALLEL = 4;
/** The mutexes of the built-in plugins (contract): system managers, language managers, runtimes. */
const SYSTEM_MUTEXES = ['pkgmgr:apt', 'pkgmgr:dpkg', 'pkgmgr:rpm', 'pkgmgr:snap', 'pkgmgr:flatpak', 'pkgmgr:brew'];
const LANGUAGE_MUTEXES = ['pkgmgr:npm', 'pkgmgr:pnpm', 'pkgmgr:pipx', 'pkgmgr:uv', 'pkgmgr:cargo', 'pkgmgr:go', 'pkgmgr:gem'];
const RUNTIMES = ['runtime:python', 'runtime:node', 'runtime:rust', 'runtime:go', 'runtime:ruby'];
const POOL = [...SYSTEM_MUTEXES, ...LANGUAGE_MUTEXES, ...RUNTIMES];

/**
 * Plugins in an order where every relation points forwards (so the graph is
 * acyclic): durations log-normal around half a minute, clamped to 5..600 s like
 * real package managers (a no-op npm check to a distribution upgrade); 0 to 3
 * mutexes each from the pool (apt brings dpkg along, as the real plugin does);
 * some run after earlier plugins, and some need a runtime free that only earlier plugins hold.
 */
export function syntheticPlugins(seed: number, count = 40): Task[] {
  const random = generator(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const tasks: Task[] = [];
  for (let index = 0; index < count; index++) {
    const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const duration = Math.round(Math.min(600, Math.max(5, Math.exp(Math.log(30) + 1.2 * normal))));
    const mutexes = new Set<string>();
    const wanted = Math.floor(random() * 4);
    while (mutexes.size < wanted) mutexes.add(pick(POOL));
    if (mutexes.has('pkgmgr:apt')) mutexes.add('pkgmgr:dpkg');
    const after = new Set<string>();
    if (index > 0 && random() < 0.3) {
      const relations = 1 + Math.floor(random() * 2);
      for (let relation = 0; relation < relations; relation++) after.add(`plugin-${Math.floor(random() * index)}:update`);
    }
    const dependencies: string[] = [];
    if (random() < 0.2) {
      const runtime = pick(RUNTIMES);
      if (!mutexes.has(runtime)) dependencies.push(runtime);
    }
    tasks.push({ id: `plugin-${index}:update`, plugin: `plugin-${index}`, phase: 'update', duration, mutexes: [...mutexes], dependencies, after: [...after] });
  }
  // A dependency on a runtime that a later plugin holds would make that plugin go first: drop it.
  for (const [index, task] of tasks.entries()) {
    task.dependencies = task.dependencies.filter((runtime) => !tasks.slice(index + 1).some((later) => later.mutexes.includes(runtime)));
  }
  return tasks;
}

const mean = (values: readonly number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;
const round = (value: number, digits = 1): number => Math.round(value * 10 ** digits) / 10 ** digits;

export async function benchmarkSchedules(options: { seed?: number; plugins?: number; runs?: number } = {}): Promise<ScheduleBenchmark> {
  const seed = options.seed ?? 1;
  const plugins = options.plugins ?? 40;
  const runs = options.runs ?? 20;
  const instances: ScheduleInstance[] = [];
  for (let run = 0; run < runs; run++) {
    const instanceSeed = seed * 1000 + run;
    const tasks = syntheticPlugins(instanceSeed, plugins);
    const bound = lowerBound(tasks, PARALLEL);
    const priorities = Object.fromEntries(PRIORITIES.map((priority) => [priority, simulate(tasks, { parallel: PARALLEL, priority }).makespan])) as Record<Priority, number>;
    const upkeep = simulate(tasks, { parallel: PARALLEL }).makespan;
    instances.push({
      seed: instanceSeed,
      sequential: simulateSequential(tasks).makespan,
      waves: simulateWaves(tasks, { parallel: PARALLEL }).makespan,
      upkeep,
      lowerBound: bound.seconds,
      ratioToLowerBound: round(upkeep / bound.seconds, 3),
      bound: bound.seconds === bound.criticalPath ? 'critical path' : bound.seconds === bound.busiestMutex?.seconds ? 'busiest mutex' : 'work',
      priorities,
    });
  }
  return {
    plugins,
    parallel: PARALLEL,
    sequential: round(mean(instances.map((instance) => instance.sequential))),
    waves: round(mean(instances.map((instance) => instance.waves))),
    upkeep: round(mean(instances.map((instance) => instance.upkeep))),
    lowerBound: round(mean(instances.map((instance) => instance.lowerBound))),
    ratioToLowerBound: round(mean(instances.map((instance) => instance.upkeep / instance.lowerBound)), 3),
    worstRatio: round(Math.max(...instances.map((instance) => instance.upkeep / instance.lowerBound)), 3),
    priorities: Object.fromEntries(
      PRIORITIES.map((priority) => [priority, round(mean(instances.map((instance) => instance.priorities[priority] / instance.lowerBound)), 3)]),
    ) as Record<Priority, number>,
    instances,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchmarkSchedules();
  console.log(`update scheduling: ${result.plugins} synthetic plugins, parallel ${result.parallel}, ${result.instances.length} instances (seconds and ratios: means over the instances)`);
  const ratio = (pick: (instance: ScheduleInstance) => number) => round(mean(result.instances.map((instance) => pick(instance) / instance.lowerBound)), 3);
  console.table({
    sequential: { seconds: result.sequential, 'x lower bound': ratio((instance) => instance.sequential) },
    waves: { seconds: result.waves, 'x lower bound': ratio((instance) => instance.waves) },
    upkeep: { seconds: result.upkeep, 'x lower bound': result.ratioToLowerBound },
    'lower bound': { seconds: result.lowerBound, 'x lower bound': 1 },
  });
  console.log('priority rules (mean ratio to the lower bound):');
  console.table(result.priorities);
  console.log(`worst instance: ${result.worstRatio} (target: mean <= 1.10)`);
}
