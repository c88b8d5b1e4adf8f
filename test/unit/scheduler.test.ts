import { describe, expect, it } from 'vitest';
import { buildGraph, type Task } from '../../src/update/schedule/graph.ts';
import { MutexTable } from '../../src/update/schedule/mutex.ts';
import { lowerBound, Scheduler, simulate, simulateSequential, simulateWaves, type SchedulerLimits } from '../../src/update/schedule/scheduler.ts';

function task(id: string, fields: Partial<Task> = {}): Task {
  return { id, plugin: id, phase: 'update', duration: 10, mutexes: [], dependencies: [], after: [], ...fields };
}

const scheduler = (tasks: Task[], limits: SchedulerLimits = { parallel: 4 }) => new Scheduler(buildGraph(tasks), limits);
const ids = (tasks: Task[]) => tasks.map((entry) => entry.id);

describe('MutexTable', () => {
  it('lets one task hold a mutex at a time and names the holder', () => {
    const table = new MutexTable();
    const dnf = task('dnf', { mutexes: ['pkgmgr:rpm', 'pkgmgr:dnf'] });
    const zypper = task('zypper', { mutexes: ['pkgmgr:rpm'] });
    table.acquire(dnf);
    expect(table.holder('pkgmgr:rpm')).toBe('dnf');
    expect(table.canAcquire(zypper)).toBe(false);
    expect(table.blockers(zypper)).toEqual([{ mutex: 'pkgmgr:rpm', task: 'dnf', kind: 'held' }]);
    expect(() => table.acquire(zypper)).toThrow(/pkgmgr:rpm/);
    table.release(dnf);
    expect(table.holder('pkgmgr:rpm')).toBeUndefined();
    expect(table.canAcquire(zypper)).toBe(true);
  });

  it('keeps a needed-free mutex free both ways, while several tasks may need it free at once', () => {
    const table = new MutexTable();
    const pipx = task('pipx', { dependencies: ['runtime:python'] });
    const uv = task('uv', { dependencies: ['runtime:python'] });
    const apt = task('apt', { mutexes: ['runtime:python'] });
    table.acquire(pipx);
    expect(table.canAcquire(uv)).toBe(true);
    table.acquire(uv);
    expect(table.blockers(apt)).toEqual([
      { mutex: 'runtime:python', task: 'pipx', kind: 'needed-free' },
      { mutex: 'runtime:python', task: 'uv', kind: 'needed-free' },
    ]);
    table.release(pipx);
    table.release(uv);
    table.acquire(apt);
    expect(table.canAcquire(pipx)).toBe(false);
  });
});

describe('Scheduler', () => {
  it('starts every ready task up to the slots, most urgent first, and the rest as slots free', () => {
    const run = scheduler(
      [task('short', { duration: 5 }), task('long', { duration: 100 }), task('chain', { duration: 20 }), task('tail', { duration: 90, after: ['chain'] })],
      { parallel: 2, priority: 'bottom-level' },
    );
    expect(ids(run.next())).toEqual(['chain', 'long']);
    expect(run.next()).toEqual([]);
    expect(ids(run.running())).toEqual(['chain', 'long']);
    expect(ids(run.ready())).toEqual(['short']);
    run.finish('chain');
    expect(ids(run.next())).toEqual(['tail']);
    run.finish('long');
    expect(ids(run.next())).toEqual(['short']);
    run.finish('tail');
    run.finish('short');
    expect(run.done).toBe(true);
  });

  it('ranks by duration, then bottom level, with the duration rule', () => {
    const run = scheduler([task('short', { duration: 5 }), task('chain', { duration: 20 }), task('tail', { duration: 90, after: ['chain'] }), task('long', { duration: 100 })], {
      parallel: 1,
      priority: 'duration',
    });
    expect(ids(run.ready())).toEqual(['long', 'chain', 'short']);
  });

  it('breaks ties by id, so equal inputs give equal schedules', () => {
    const run = scheduler([task('b'), task('c'), task('a')], { parallel: 3 });
    expect(ids(run.next())).toEqual(['a', 'b', 'c']);
  });

  it('puts holders of the busiest mutex ahead of free tasks with mutex pressure', () => {
    const run = scheduler(
      [
        task('free', { duration: 60 }),
        task('apt-1', { duration: 30, mutexes: ['pkgmgr:dpkg'] }),
        task('apt-2', { duration: 30, mutexes: ['pkgmgr:dpkg'] }),
        task('apt-3', { duration: 30, mutexes: ['pkgmgr:dpkg'] }),
      ],
      { parallel: 1 },
    );
    expect(ids(run.next())).toEqual(['apt-1']);
  });

  it('never starts two holders of one mutex together, and goes on with what is free', () => {
    const run = scheduler([task('dnf', { mutexes: ['pkgmgr:rpm'] }), task('zypper', { mutexes: ['pkgmgr:rpm'] }), task('npm')]);
    expect(ids(run.next())).toEqual(['dnf', 'npm']);
    expect(run.blockers('zypper')).toEqual([{ mutex: 'pkgmgr:rpm', task: 'dnf', kind: 'held' }]);
    run.finish('dnf');
    expect(ids(run.next())).toEqual(['zypper']);
  });

  it('starts a task that runs after a failed one: runs-after is about order, not success', () => {
    const run = scheduler([task('apt'), task('pipx', { after: ['apt'] })]);
    run.next();
    expect(ids(run.ready())).toEqual([]);
    run.finish('apt');
    expect(ids(run.next())).toEqual(['pipx']);
  });

  it('skips a pending task without running it, and releases what waits for it', () => {
    const run = scheduler([task('apt'), task('pipx', { after: ['apt'] })]);
    run.skip('apt');
    expect(run.statusOf('apt')).toBe('skipped');
    expect(ids(run.next())).toEqual(['pipx']);
    run.finish('pipx');
    expect(run.done).toBe(true);
    expect(() => run.skip('pipx')).toThrow(/finished, not pending/);
  });

  it('starts nothing after stop(), lets the running finish and is then done', () => {
    const run = scheduler([task('a'), task('b'), task('c')], { parallel: 1 });
    expect(ids(run.next())).toEqual(['a']);
    run.stop();
    run.finish('a');
    expect(run.next()).toEqual([]);
    expect(run.stopped).toBe(true);
    expect(run.done).toBe(true);
    expect(ids(run.pending())).toEqual(['b', 'c']);
  });

  it('starts nothing while memory is full and something runs, and one task when nothing does', () => {
    const run = scheduler([task('a'), task('b'), task('c')]);
    expect(ids(run.next({ memoryFull: true }))).toEqual(['a']);
    expect(run.next({ memoryFull: true })).toEqual([]);
    run.finish('a');
    expect(ids(run.next({ memoryFull: true }))).toEqual(['b']);
    expect(ids(run.next())).toEqual(['c']);
  });

  it('limits download-phase tasks to the download slots while other phases use the rest', () => {
    const download = (id: string) => task(id, { phase: 'download' });
    const run = scheduler([download('d1'), download('d2'), download('d3'), task('u1')], { parallel: 4, downloads: 2 });
    expect(ids(run.next())).toEqual(['d1', 'd2', 'u1']);
    run.finish('d1');
    expect(ids(run.next())).toEqual(['d3']);
  });

  it('requeues a running task, freeing its slot and mutexes until its time comes', () => {
    const run = scheduler([task('apt', { mutexes: ['pkgmgr:apt'] }), task('other', { mutexes: ['pkgmgr:apt'] })], { parallel: 1 });
    expect(ids(run.next({ now: 0 }))).toEqual(['apt']);
    run.requeue('apt', 30);
    expect(run.nextWakeup()).toBe(30);
    expect(ids(run.next({ now: 10 }))).toEqual(['other']);
    run.finish('other');
    expect(run.next({ now: 20 })).toEqual([]);
    expect(run.done).toBe(false);
    expect(ids(run.next({ now: 30 }))).toEqual(['apt']);
    expect(run.nextWakeup()).toBeUndefined();
  });

  it('refuses impossible limits and unknown or misplaced tasks', () => {
    expect(() => scheduler([], { parallel: 0 })).toThrow(/parallel/);
    expect(() => scheduler([], { parallel: 2, downloads: 0 })).toThrow(/downloads/);
    const run = scheduler([task('a')]);
    expect(() => run.finish('a')).toThrow(/pending, not running/);
    expect(() => run.finish('nope')).toThrow(/no task nope/);
    expect(scheduler([]).done).toBe(true);
  });
});

describe('simulations', () => {
  // Seed 002 §5.5, with durations: pipx needs apt's runtime free.
  const example = [
    task('apt', { duration: 120, mutexes: ['pkgmgr:apt', 'pkgmgr:dpkg', 'runtime:python'] }),
    task('flatpak', { duration: 300, mutexes: ['pkgmgr:flatpak'] }),
    task('snap', { duration: 60, mutexes: ['pkgmgr:snap'] }),
    task('pipx', { duration: 40, mutexes: ['pkgmgr:pipx'], dependencies: ['runtime:python'], after: ['apt'] }),
    task('npm', { duration: 200, mutexes: ['pkgmgr:npm'], after: ['snap'] }),
  ];

  it('starts each task as soon as what it waits for has finished, not when its whole wave has', () => {
    const upkeep = simulate(example, { parallel: 4 });
    expect(upkeep.intervals.get('npm')).toEqual({ start: 60, end: 260 });
    expect(upkeep.intervals.get('pipx')).toEqual({ start: 120, end: 160 });
    expect(upkeep.makespan).toBe(300);
    const waves = simulateWaves(example, { parallel: 4 });
    expect(waves.intervals.get('npm')).toEqual({ start: 300, end: 500 });
    expect(waves.makespan).toBe(500);
    expect(simulateSequential(example).makespan).toBe(720);
    expect(lowerBound(example, 4)).toMatchObject({ seconds: 300, criticalPath: 300, work: 180 });
  });

  it('queues a wave for slots in order, each holding its slot while it waits for a mutex', () => {
    const tasks = [task('dnf', { duration: 50, mutexes: ['pkgmgr:rpm'] }), task('zypper', { duration: 50, mutexes: ['pkgmgr:rpm'] }), task('npm', { duration: 50 })];
    const waves = simulateWaves(tasks, { parallel: 2 });
    expect(waves.intervals.get('zypper')).toEqual({ start: 50, end: 100 });
    expect(waves.intervals.get('npm')).toEqual({ start: 50, end: 100 });
    expect(simulate(tasks, { parallel: 2 }).makespan).toBe(100);
  });

  it('bounds a run below by the busiest mutex, the critical path and the work per slot', () => {
    const tasks = [
      task('a', { duration: 100, mutexes: ['pkgmgr:apt'] }),
      task('b', { duration: 100, mutexes: ['pkgmgr:apt'] }),
      task('c', { duration: 30, after: ['a'] }),
      task('d', { duration: 90, phase: 'download' }),
      task('e', { duration: 90, phase: 'download' }),
    ];
    expect(lowerBound(tasks, 2, 1)).toEqual({
      seconds: 205,
      criticalPath: 130,
      busiestMutex: { name: 'pkgmgr:apt', seconds: 200 },
      work: 205,
      downloads: 180,
    });
    expect(lowerBound(tasks, 4, 1)).toMatchObject({ seconds: 200, downloads: 180 });
  });

  it('handles tasks of no duration', () => {
    const result = simulate([task('a', { duration: 0 }), task('b', { duration: 0, after: ['a'] })], { parallel: 1 });
    expect(result.makespan).toBe(0);
    expect(result.intervals.size).toBe(2);
  });
});
