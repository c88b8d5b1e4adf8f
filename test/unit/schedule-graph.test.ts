import { describe, expect, it } from 'vitest';
import { UpkeepError } from '../../src/core/errors.ts';
import { bottomLevels, buildGraph, criticalPath, type Task } from '../../src/update/schedule/graph.ts';

function task(id: string, fields: Partial<Task> = {}): Task {
  return { id, plugin: id, phase: 'update', duration: 10, mutexes: [], dependencies: [], after: [], ...fields };
}

function cycleOf(tasks: Task[]): UpkeepError {
  try {
    buildGraph(tasks);
  } catch (error) {
    if (error instanceof UpkeepError) return error;
    throw error;
  }
  throw new Error('expected a cycle');
}

describe('buildGraph', () => {
  it('adds an edge for each runs-after task present and ignores the absent ones', () => {
    const graph = buildGraph([task('apt'), task('pipx', { after: ['apt', 'brew'] })]);
    expect(graph.predecessors.get('pipx')).toEqual(['apt']);
    expect(graph.successors.get('apt')?.get('pipx')).toEqual({ kind: 'after' });
    expect(graph.order).toEqual(['apt', 'pipx']);
  });

  it('puts the holder of a mutex before every task that needs it free (seed §5.3)', () => {
    const graph = buildGraph([
      task('pipx', { dependencies: ['runtime:python'] }),
      task('uv', { dependencies: ['runtime:python'] }),
      task('apt', { mutexes: ['pkgmgr:apt', 'runtime:python'] }),
    ]);
    expect(graph.successors.get('apt')?.get('pipx')).toEqual({ kind: 'mutex', mutex: 'runtime:python' });
    expect(graph.predecessors.get('uv')).toEqual(['apt']);
    expect(graph.order).toEqual(['apt', 'pipx', 'uv']);
  });

  it('adds no edge between two holders of a mutex: they only must not overlap', () => {
    const graph = buildGraph([task('dnf', { mutexes: ['pkgmgr:rpm'] }), task('zypper', { mutexes: ['pkgmgr:rpm'] })]);
    expect(graph.predecessors.get('dnf')).toEqual([]);
    expect(graph.predecessors.get('zypper')).toEqual([]);
  });

  it('adds no mutex edge between two phases of one plugin', () => {
    const graph = buildGraph([
      task('apt:download', { plugin: 'apt', phase: 'download', dependencies: ['runtime:python'] }),
      task('apt:update', { plugin: 'apt', mutexes: ['runtime:python'], after: ['apt:download'] }),
    ]);
    expect(graph.order).toEqual(['apt:download', 'apt:update']);
  });

  it('keeps the order given among tasks free to go', () => {
    const graph = buildGraph([task('b', { after: ['c'] }), task('c'), task('a')]);
    expect(graph.order).toEqual(['c', 'b', 'a']);
  });

  it('refuses two tasks with one id and a negative duration', () => {
    expect(() => buildGraph([task('a'), task('a')])).toThrow(/share the id a/);
    expect(() => buildGraph([task('a', { duration: -1 })])).toThrow(/invalid duration/);
  });
});

describe('cycles', () => {
  it('names the plugins of a runs-after cycle in order and says what to change', () => {
    const error = cycleOf([task('a', { after: ['b'] }), task('b', { after: ['a'] })]);
    expect(error.code).toBe('E_DEPENDENCY_CYCLE');
    expect(error.message).toBe('update plugins form a cycle: a -> b -> a');
    expect(error.hint).toContain('b runs after a (runs_after)');
    expect(error.hint).toContain('a runs after b (runs_after)');
    expect(error.details).toMatchObject({ cycle: ['a', 'b', 'a'] });
  });

  it('finds the cycle among tasks that merely wait for it', () => {
    const error = cycleOf([
      task('first'),
      task('x', { after: ['first', 'z'] }),
      task('y', { after: ['x'] }),
      task('z', { after: ['y'] }),
      task('downstream', { after: ['z'] }),
    ]);
    expect(error.message).toMatch(/: (x -> y -> z -> x|y -> z -> x -> y|z -> x -> y -> z)$/);
    expect(error.message).not.toContain('first');
    expect(error.message).not.toContain('downstream');
  });

  it('explains a cycle made by a mutex edge', () => {
    const error = cycleOf([
      task('apt', { mutexes: ['runtime:python'], after: ['pipx'] }),
      task('pipx', { dependencies: ['runtime:python'] }),
    ]);
    expect(error.message).toMatch(/form a cycle: (apt -> pipx -> apt|pipx -> apt -> pipx)$/);
    expect(error.hint).toContain('pipx needs runtime:python free while apt holds it (mutexes/dependencies)');
    expect(error.hint).toContain('apt runs after pipx (runs_after)');
  });

  it('names tasks by id when two phases of one plugin are in the cycle', () => {
    const error = cycleOf([
      task('apt:download', { plugin: 'apt', after: ['npm:update'] }),
      task('apt:update', { plugin: 'apt', after: ['apt:download'] }),
      task('npm:update', { plugin: 'npm', after: ['apt:update'] }),
    ]);
    expect(error.message).toContain('apt:download -> apt:update -> npm:update -> apt:download');
  });
});

describe('bottom levels and the critical path', () => {
  const tasks = [
    task('apt', { duration: 100 }),
    task('pipx', { duration: 30, after: ['apt'] }),
    task('npm', { duration: 50, after: ['apt'] }),
    task('cargo', { duration: 200 }),
    task('rustup', { duration: 5, after: ['npm'] }),
  ];

  it('gives each task the longest path from its start to the end, its own duration included', () => {
    expect(Object.fromEntries(bottomLevels(buildGraph(tasks)))).toEqual({ apt: 155, pipx: 30, npm: 55, cargo: 200, rustup: 5 });
  });

  it('follows the longest chain', () => {
    expect(criticalPath(buildGraph(tasks))).toEqual({ length: 200, tasks: ['cargo'] });
    const longer = [...tasks.slice(0, 4), task('rustup', { duration: 90, after: ['npm'] })];
    expect(criticalPath(buildGraph(longer))).toEqual({ length: 240, tasks: ['apt', 'npm', 'rustup'] });
    expect(criticalPath(buildGraph([]))).toEqual({ length: 0, tasks: [] });
  });
});
