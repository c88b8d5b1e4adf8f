import { ExitCode, UpkeepError } from '../../core/errors.ts';

/**
 * Mutex names (seed 002 §5.1): `category:resource`, compared case-insensitively.
 * `internal:` is upkeep's own (plugins may not name it); `system:` holds the
 * machine-wide resources every plugin may share.
 */
export const MUTEX_CATEGORIES = ['pkgmgr', 'runtime', 'app', 'system'] as const;
const RESERVED = ['internal'];
const PATTERN = /^([a-z0-9_-]+):([a-z0-9_-]+)$/;
const MAX_LENGTH = 64;

/** The canonical (lower-case) form of a mutex name; E_MUTEX_INVALID when it breaks the rules. */
export function normalizeMutex(name: string, where = 'mutex'): string {
  const lower = name.trim().toLowerCase();
  const invalid = (why: string): UpkeepError =>
    new UpkeepError('E_MUTEX_INVALID', `${where} "${name}" ${why}`, {
      hint: 'write category:resource, e.g. pkgmgr:apt or runtime:python (letters, digits, - and _, at most 64 characters)',
      exitCode: ExitCode.usage,
    });
  if (lower.length > MAX_LENGTH) throw invalid(`is longer than ${MAX_LENGTH} characters`);
  const match = PATTERN.exec(lower);
  if (!match) throw invalid('is not category:resource');
  const category = match[1]!;
  if (RESERVED.includes(category)) throw invalid(`uses the reserved category ${category}:`);
  if (!(MUTEX_CATEGORIES as readonly string[]).includes(category)) {
    throw invalid(`has an unknown category (use ${MUTEX_CATEGORIES.join(', ')})`);
  }
  return lower;
}

/** What the mutex table needs to know of a task. */
export interface MutexClaim {
  id: string;
  /** Held while the task runs. */
  mutexes: readonly string[];
  /** Must be free (held by nobody) while the task runs. */
  dependencies: readonly string[];
}

/** Why a task cannot start yet: a mutex and the running task in the way. */
export interface MutexBlocker {
  mutex: string;
  task: string;
  /** `held`: the other task holds a mutex this one needs; `needed-free`: the other task needs a mutex this one would hold free. */
  kind: 'held' | 'needed-free';
}

/**
 * The mutexes of the running tasks (seed 002 §5.4, without its polling): a
 * task may start when nobody holds what it would hold or needs free, and no
 * running task needs free what it would hold. Several tasks may need the same
 * mutex free at once; only holding is exclusive.
 */
export class MutexTable {
  private readonly holders = new Map<string, string>();
  /** Mutex -> the running tasks that need it free. */
  private readonly keptFree = new Map<string, Set<string>>();

  blockers(task: MutexClaim): MutexBlocker[] {
    const blockers: MutexBlocker[] = [];
    for (const mutex of new Set([...task.mutexes, ...task.dependencies])) {
      const holder = this.holders.get(mutex);
      if (holder !== undefined && holder !== task.id) blockers.push({ mutex, task: holder, kind: 'held' });
    }
    for (const mutex of new Set(task.mutexes)) {
      for (const other of this.keptFree.get(mutex) ?? []) {
        if (other !== task.id) blockers.push({ mutex, task: other, kind: 'needed-free' });
      }
    }
    return blockers;
  }

  canAcquire(task: MutexClaim): boolean {
    return this.blockers(task).length === 0;
  }

  /** Takes the task's mutexes; a programmer error when canAcquire says no. */
  acquire(task: MutexClaim): void {
    const blockers = this.blockers(task);
    if (blockers.length > 0) throw new Error(`task ${task.id} cannot take ${blockers[0]!.mutex}: ${blockers[0]!.task} is in the way`);
    for (const mutex of task.mutexes) this.holders.set(mutex, task.id);
    for (const mutex of task.dependencies) (this.keptFree.get(mutex) ?? this.keptFree.set(mutex, new Set()).get(mutex)!).add(task.id);
  }

  release(task: MutexClaim): void {
    for (const mutex of task.mutexes) if (this.holders.get(mutex) === task.id) this.holders.delete(mutex);
    for (const mutex of task.dependencies) {
      const tasks = this.keptFree.get(mutex);
      tasks?.delete(task.id);
      if (tasks?.size === 0) this.keptFree.delete(mutex);
    }
  }

  /** The running task that holds a mutex, if any. */
  holder(name: string): string | undefined {
    return this.holders.get(name);
  }
}
