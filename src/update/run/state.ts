import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UpkeepError } from '../../core/errors.ts';
import { processStartTime, stillRunning } from '../../core/exec.ts';
import { readJsonFile, writeJsonAtomic } from '../../core/fs.ts';
import * as z from '../../core/zod.ts';

/**
 * The state machine of one update run (seed 002 §7.1), persisted after every
 * transition so that a run stopped by Ctrl-C, SIGTERM, `kill -9` or a reboot
 * can be resumed: what completed is never run again; what was running is run
 * again (plugins must be idempotent, docs/plugin-protocol.md).
 *
 * run:    estimating -> downloading -> updating -> completed | failed | interrupted
 * phase:  pending -> running -> completed | failed | skipped | interrupted
 */
export const RUN_STATUSES = ['estimating', 'downloading', 'updating', 'completed', 'failed', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const PHASE_STATUSES = ['pending', 'running', 'completed', 'failed', 'skipped', 'interrupted'] as const;
export type PhaseStatus = (typeof PHASE_STATUSES)[number];
const PHASE_NAMES = ['estimate', 'download', 'update'] as const;

const ErrorSchema = z.object({ code: z.string(), message: z.string(), details: z.optional(z.string()) });

const PhaseStateSchema = z.object({
  status: z.enum(PHASE_STATUSES),
  startedAt: z.optional(z.string()),
  endedAt: z.optional(z.string()),
  attempts: z._default(z.int(), 0),
  /** Why it was skipped, or what it did. */
  note: z.optional(z.string()),
  error: z.optional(ErrorSchema),
  /** The plugin's process group and its start time, to find it again after upkeep itself was killed. */
  processGroup: z.optional(z.int()),
  processStart: z.optional(z.number()),
});
export type PhaseState = z.infer<typeof PhaseStateSchema>;

const PackageSchema = z.object({
  name: z.string(),
  currentVersion: z.nullable(z.string()),
  newVersion: z.string(),
  downloadBytes: z.optional(z.number()),
  security: z.optional(z.boolean()),
});
export type PendingPackage = z.infer<typeof PackageSchema>;

const phaseRecord = <T extends z.ZodMiniType>(value: T) =>
  z.object({ estimate: value, download: value, update: value });

const PluginStateSchema = z.object({
  name: z.string(),
  applicable: z.optional(z.boolean()),
  reason: z.optional(z.string()),
  packages: z._default(z.array(PackageSchema), []),
  downloadBytes: z._default(z.number(), 0),
  securityUpdates: z._default(z.boolean(), false),
  requiresReboot: z._default(z.boolean(), false),
  canSeparateDownload: z._default(z.boolean(), false),
  requiresSudo: z._default(z.boolean(), false),
  mutexes: z._default(phaseRecord(z.array(z.string())), { estimate: [], download: [], update: [] }),
  dependencies: z._default(phaseRecord(z.array(z.string())), { estimate: [], download: [], update: [] }),
  runsAfter: z._default(z.array(z.string()), []),
  /** Estimated seconds of each phase. */
  estimates: z._default(z.partialRecord(z.enum(PHASE_NAMES), z.number()), {}),
  phases: z._default(z.partialRecord(z.enum(PHASE_NAMES), PhaseStateSchema), {}),
});
export type PluginState = z.infer<typeof PluginStateSchema>;

export const RunStateSchema = z.object({
  schemaVersion: z.literal(1),
  runId: z.string(),
  /** run: estimate, download, update; download: stop after downloading. */
  kind: z.enum(['run', 'download']),
  status: z.enum(RUN_STATUSES),
  startedAt: z.string(),
  updatedAt: z.string(),
  endedAt: z.optional(z.string()),
  options: z.object({
    plugins: z.optional(z.array(z.string())),
    continueOnError: z.boolean(),
    parallel: z.int(),
  }),
  /** The upkeep process that ran it, and that process's start time (pids are reused). */
  owner: z.object({ pid: z.int(), start: z.nullable(z.number()) }),
  plugins: z.record(z.string(), PluginStateSchema),
});
export type RunState = z.infer<typeof RunStateSchema>;

export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'interrupted'];

export function runFolder(stateRoot: string): string {
  return join(stateRoot, 'update');
}

export function runStatePath(stateRoot: string): string {
  return join(runFolder(stateRoot), 'run.json');
}

/** A fresh plugin entry. */
export function newPluginState(name: string): PluginState {
  return PluginStateSchema.parse({ name });
}

/** Reads the last run; a corrupt file is moved aside and reported. */
export async function loadRunState(stateRoot: string): Promise<{ state: RunState | null; warning?: string }> {
  const read = await readJsonFile(runStatePath(stateRoot), (raw) => RunStateSchema.parse(raw));
  if (read.status === 'ok') return { state: read.value };
  if (read.status === 'missing') return { state: null };
  return {
    state: null,
    warning: `the last update run's state was unreadable (${read.reason})${read.movedTo ? `; moved to ${read.movedTo}` : ''}; it cannot be resumed`,
  };
}

/**
 * Persists the state after every transition. Writes are atomic and
 * serialised; when transitions come faster than the disk, the writes in
 * between are folded into the newest, so what lands is always the latest state.
 */
export class RunStateStore {
  private writing: Promise<void> | null = null;
  private dirty = false;

  constructor(
    private readonly path: string,
    readonly state: RunState,
    private readonly now: () => Date,
  ) {}

  save(): Promise<void> {
    this.state.updatedAt = this.now().toISOString();
    this.dirty = true;
    if (!this.writing) {
      this.writing = (async () => {
        while (this.dirty) {
          this.dirty = false;
          await writeJsonAtomic(this.path, this.state);
        }
      })().finally(() => {
        this.writing = null;
      });
    }
    return this.writing;
  }

  /** Waits until the newest state is on disk. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }
}

/**
 * One update run at a time on a machine (per state folder). The lock file
 * names its owner; a lock whose owner is gone (killed, rebooted) is taken over
 * at once rather than after a timeout.
 */
export async function acquireRunLock(stateRoot: string, pid: number): Promise<() => Promise<void>> {
  const path = join(runFolder(stateRoot), 'run.lock');
  await mkdir(runFolder(stateRoot), { recursive: true });
  const start = await processStartTime(pid);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(JSON.stringify({ pid, start }));
      await handle.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner: { pid?: number; start?: number | null } = {};
    try {
      owner = JSON.parse(await readFile(path, 'utf8')) as typeof owner;
    } catch {
      // Half-written or unreadable: its writer died between open and write.
    }
    if (typeof owner.pid === 'number' && owner.pid !== pid && (await stillRunning(owner.pid, owner.start))) {
      throw new UpkeepError('E_RUN_IN_PROGRESS', `another upkeep update run (pid ${owner.pid}) is in progress`, {
        hint: 'wait for it to finish, or stop it with Ctrl-C in its terminal',
        details: { pid: owner.pid },
      });
    }
    await rm(path, { force: true });
  }
  throw new UpkeepError('E_RUN_IN_PROGRESS', 'could not take the update run lock', {
    hint: `another upkeep keeps taking it; remove ${path} if none is running`,
  });
}
