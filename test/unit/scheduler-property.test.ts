import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildGraph, type Task } from '../../src/update/schedule/graph.ts';
import { lowerBound, Scheduler, simulate, simulateWaves, type Interval, type SchedulerLimits } from '../../src/update/schedule/scheduler.ts';

const POOL = ['pkgmgr:apt', 'pkgmgr:dpkg', 'pkgmgr:rpm', 'runtime:python', 'runtime:node'];

/**
 * Random plugin sets: durations (zero included), mutexes held and needed free
 * from a small pool, runs-after towards earlier tasks only, and a dependency
 * kept only when no later task of another plugin holds that mutex, so every
 * edge points forwards and the graph is acyclic. Some tasks share a plugin (its
 * phases): between them the graph adds no mutex edge, so only the mutex table
 * keeps them apart.
 */
const plugins = fc
  .array(
    fc.record({
      plugin: fc.integer({ min: 0, max: 9 }),
      duration: fc.integer({ min: 0, max: 600 }),
      download: fc.boolean(),
      mutexes: fc.subarray(POOL, { maxLength: 3 }),
      dependencies: fc.subarray(POOL, { maxLength: 2 }),
      after: fc.array(fc.nat(), { maxLength: 3 }),
    }),
    { minLength: 1, maxLength: 14 },
  )
  .map((specs) =>
    specs.map(
      (spec, index): Task => ({
        id: `p${index}`,
        plugin: `plugin-${spec.plugin}`,
        phase: spec.download ? 'download' : 'update',
        duration: spec.duration,
        mutexes: spec.mutexes,
        dependencies: spec.dependencies.filter(
          (mutex) => !specs.slice(index + 1).some((later) => later.plugin !== spec.plugin && later.mutexes.includes(mutex)),
        ),
        after: index === 0 ? [] : [...new Set(spec.after.map((before) => `p${before % index}`))],
      }),
    ),
  );

const limits = fc.record({ parallel: fc.integer({ min: 1, max: 6 }), downloads: fc.integer({ min: 1, max: 3 }) });

interface Run {
  intervals: Map<string, Interval>;
  starts: Map<string, number>;
  makespan: number;
}

/** Drives the Scheduler on a virtual clock, recording every start; memory is reported full at random decisions. */
function drive(tasks: Task[], limits: SchedulerLimits, memoryFull: boolean[]): Run {
  const scheduler = new Scheduler(buildGraph(tasks), limits);
  const intervals = new Map<string, Interval>();
  const starts = new Map<string, number>();
  const ends = new Map<string, number>();
  let now = 0;
  let decision = 0;
  while (!scheduler.done) {
    for (const task of scheduler.next({ memoryFull: memoryFull[decision++ % memoryFull.length] ?? false, now })) {
      starts.set(task.id, (starts.get(task.id) ?? 0) + 1);
      intervals.set(task.id, { start: now, end: now + task.duration });
      ends.set(task.id, now + task.duration);
    }
    expect(scheduler.running().length).toBeLessThanOrEqual(limits.parallel);
    // Something always runs while work is left: a run can never stall.
    expect(ends.size).toBeGreaterThan(0);
    now = Math.min(...ends.values());
    for (const [id, end] of [...ends]) {
      if (end > now) continue;
      ends.delete(id);
      scheduler.finish(id);
    }
  }
  return { intervals, starts, makespan: now };
}

const overlap = (first: Interval, second: Interval): boolean => first.start < second.end && second.start < first.end;

/** The safety rules, checked from the recorded intervals alone. */
function checkSchedule(tasks: Task[], intervals: Map<string, Interval>, limits: SchedulerLimits): void {
  expect([...intervals.keys()].sort()).toEqual(tasks.map((task) => task.id).sort());
  for (const task of tasks) {
    const own = intervals.get(task.id)!;
    for (const before of task.after) expect(own.start).toBeGreaterThanOrEqual(intervals.get(before)!.end);
    for (const other of tasks) {
      if (other === task || !overlap(own, intervals.get(other.id)!)) continue;
      // Overlapping tasks: no mutex held by both, none held by one that the other needs free.
      expect(task.mutexes.filter((mutex) => other.mutexes.includes(mutex))).toEqual([]);
      expect(task.dependencies.filter((mutex) => other.mutexes.includes(mutex))).toEqual([]);
    }
  }
  for (const task of tasks) {
    const at = intervals.get(task.id)!.start;
    const runningAt = tasks.filter((other) => {
      const interval = intervals.get(other.id)!;
      return interval.start <= at && at < interval.end;
    });
    expect(runningAt.length).toBeLessThanOrEqual(limits.parallel);
    expect(runningAt.filter((other) => other.phase === 'download').length).toBeLessThanOrEqual(limits.downloads ?? limits.parallel);
  }
}

describe('scheduling random plugin sets', () => {
  it('keeps mutexes, runs-after and slots, runs every task once and never beats the lower bound', () => {
    fc.assert(
      fc.property(plugins, limits, fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }), (tasks, limits, memoryFull) => {
        const run = drive(tasks, limits, memoryFull);
        expect([...run.starts.values()].every((count) => count === 1)).toBe(true);
        checkSchedule(tasks, run.intervals, limits);
        const bound = lowerBound(tasks, limits.parallel, limits.downloads);
        expect(run.makespan).toBeGreaterThanOrEqual(bound.seconds);
        // Never idle while work is left, so never longer than one task after another.
        expect(run.makespan).toBeLessThanOrEqual(tasks.reduce((sum, task) => sum + task.duration, 0));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same schedule from simulate() as from driving the scheduler', () => {
    fc.assert(
      fc.property(plugins, limits, (tasks, limits) => {
        const simulated = simulate(tasks, limits);
        checkSchedule(tasks, simulated.intervals, limits);
        const driven = drive(tasks, limits, [false]);
        expect(simulated).toEqual({ makespan: driven.makespan, intervals: driven.intervals });
      }),
      { numRuns: 150 },
    );
  });

  it('keeps the same rules with the seed\'s waves, which cannot beat the lower bound either', () => {
    fc.assert(
      fc.property(plugins, limits, (tasks, limits) => {
        const waves = simulateWaves(tasks, limits);
        checkSchedule(tasks, waves.intervals, limits);
        expect(waves.makespan).toBeGreaterThanOrEqual(lowerBound(tasks, limits.parallel, limits.downloads).seconds);
      }),
      { numRuns: 150 },
    );
  });
});
