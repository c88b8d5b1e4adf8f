import pLimit from 'p-limit';
import { UpkeepError } from '../core/errors.ts';

/**
 * Bulk runs (seed 000, bulk operations): tools ordered in dependency levels
 * from `requires`; independent tools run in parallel (the package-manager
 * mutexes in apply.ts keep two operations off one database);
 * `failFast` starts nothing new after a failure; `atomic` undoes everything
 * done when anything failed.
 */

export interface BulkItem {
  id: string;
  /** Ids of other items that must succeed first. */
  requires: string[];
}

/** Levels of a dependency graph: each item comes after everything it requires. A cycle is an error naming it. */
export function dependencyLevels<T extends BulkItem>(items: readonly T[]): T[][] {
  const byId = new Map(items.map((item) => [item.id, item]));
  const level = new Map<string, number>();
  const visiting: string[] = [];
  const visit = (item: T): number => {
    const known = level.get(item.id);
    if (known !== undefined) return known;
    const at = visiting.indexOf(item.id);
    if (at !== -1) {
      const cycle = [...visiting.slice(at), item.id];
      throw new UpkeepError('E_DEPENDENCY_CYCLE', `the tools' requirements form a cycle: ${cycle.join(' -> ')}`, {
        hint: `fix \`requires\` in ${[...new Set(cycle)].map((id) => `catalog/tools/${id}.yaml`).join(', ')}`,
        details: { cycle },
      });
    }
    visiting.push(item.id);
    let depth = 0;
    for (const requirement of item.requires) {
      const dependency = byId.get(requirement);
      if (dependency) depth = Math.max(depth, visit(dependency) + 1);
    }
    visiting.pop();
    level.set(item.id, depth);
    return depth;
  };
  for (const item of items) visit(item);
  const levels: T[][] = [];
  for (const item of items) (levels[level.get(item.id)!] ??= []).push(item);
  return levels.filter((entry) => entry.length > 0);
}

export type BulkOutcome<R> =
  | { id: string; status: 'done'; result: R }
  | { id: string; status: 'failed'; error: unknown }
  | { id: string; status: 'skipped'; reason: string }
  | { id: string; status: 'rolled-back'; result: R; error?: unknown };

export interface BulkOptions<T extends BulkItem, R> {
  items: readonly T[];
  /** Tools run at once. */
  concurrency: number;
  failFast: boolean;
  atomic: boolean;
  run: (item: T) => Promise<R>;
  /** Undoes one done item (atomic mode); in reverse order of completion. */
  undo?: (item: T, result: R) => Promise<void>;
  onStart?: (item: T) => void;
  onEnd?: (outcome: BulkOutcome<R>) => void;
}

/**
 * Each item starts as soon as everything it requires is done (not when its
 * whole level is): a slow package manager in one branch does not hold up
 * another. Levels still decide the order and name a cycle up front.
 */
export async function runBulk<T extends BulkItem, R>(options: BulkOptions<T, R>): Promise<Array<BulkOutcome<R>>> {
  const levels = dependencyLevels(options.items);
  const outcomes = new Map<string, BulkOutcome<R>>();
  const completed: Array<{ item: T; result: R }> = [];
  const limit = pLimit(options.concurrency);
  const settled = new Map<string, Promise<void>>();
  let stopped = false;
  const finish = (outcome: BulkOutcome<R>): void => {
    outcomes.set(outcome.id, outcome);
    options.onEnd?.(outcome);
  };
  const start = async (item: T): Promise<void> => {
    await Promise.all(item.requires.map((id) => settled.get(id)).filter(Boolean));
    const failedRequirement = item.requires.find((id) => outcomes.has(id) && outcomes.get(id)!.status !== 'done');
    if (failedRequirement) return finish({ id: item.id, status: 'skipped', reason: `requires ${failedRequirement}, which did not install` });
    await limit(async () => {
      if (stopped) return finish({ id: item.id, status: 'skipped', reason: options.atomic ? 'stopped after a failure (--atomic)' : 'stopped after a failure (--fail-fast)' });
      options.onStart?.(item);
      try {
        const result = await options.run(item);
        completed.push({ item, result });
        finish({ id: item.id, status: 'done', result });
      } catch (error) {
        if (options.failFast || options.atomic) stopped = true;
        finish({ id: item.id, status: 'failed', error });
      }
    });
  };
  // Levels in order, so that an item's requirements are registered before it waits on them.
  for (const level of levels) for (const item of level) settled.set(item.id, start(item));
  await Promise.all(settled.values());

  const anyFailed = [...outcomes.values()].some((outcome) => outcome.status === 'failed');
  if (options.atomic && anyFailed && options.undo) {
    for (const { item, result } of completed.reverse()) {
      try {
        await options.undo(item, result);
        finish({ id: item.id, status: 'rolled-back', result });
      } catch (error) {
        finish({ id: item.id, status: 'rolled-back', result, error });
      }
    }
  }
  return options.items.map((item) => outcomes.get(item.id)!);
}
