import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processGroupRunning, processStartTime, type Executor } from '../../core/exec.ts';
import type { Environment } from '../../core/paths.ts';
import type { Phase, PluginManifest } from '../plugin/manifest.ts';
import type { PluginAnswer, PluginCommand, PluginFailure, Progress } from '../plugin/protocol.ts';
import { invokePlugin, type InvokeOptions, type PluginSettings } from '../plugin/run.ts';
import { buildGraph, type Task } from '../schedule/graph.ts';
import { normalizeMutex } from '../schedule/mutex.ts';
import { MemoryGuard, ProcessTreeMeter, type ResourceUsage } from '../schedule/resources.ts';
import { Scheduler, simulate } from '../schedule/scheduler.ts';
import type { StatsDatabase } from '../stats/db.ts';
import { estimatePhase, type Estimate } from '../stats/estimate.ts';
import type { RunLog } from './log.ts';
import {
  newPluginState,
  runFolder,
  runStatePath,
  RunStateStore,
  type PendingPackage,
  type PhaseState,
  type PhaseStatus,
  type PluginState,
  type RunState,
  type RunStatus,
} from './state.ts';

/**
 * One update run (seed 002 §2.4): every selected plugin is asked what it would
 * update (all at once, within their estimate mutexes), then the downloads
 * run, then the updates, each phase scheduled so that a plugin starts as soon
 * as what it runs after has finished and its mutexes are free. Every
 * transition is persisted (state.ts) and reported as an event (NDJSON with
 * --json, the live table on a terminal).
 */

export type UpdateEvent =
  | { type: 'run'; runId: string; status: RunStatus; time: string }
  | { type: 'phase'; plugin: string; phase: Phase; status: PhaseStatus; attempt: number; time: string; seconds?: number; note?: string; error?: PluginFailure }
  | { type: 'progress'; plugin: string; phase: Phase; percent: number; message?: string; time: string }
  | { type: 'output'; plugin: string; phase: Phase; line: string; time: string }
  | {
      type: 'estimate';
      plugin: string;
      applicable: boolean;
      reason?: string;
      updates: number;
      downloadBytes: number;
      securityUpdates: boolean;
      requiresReboot: boolean;
      estimates: Partial<Record<Phase, Estimate>>;
      time: string;
    }
  | { type: 'plan'; estimate: RunEstimate; time: string }
  | { type: 'retry'; plugin: string; phase: Phase; attempt: number; delaySeconds: number; reason: string; time: string }
  | { type: 'warning'; message: string; plugin?: string; time: string };

export interface RunEstimate {
  seconds: number;
  low: number;
  high: number;
}

export interface Limits {
  parallel: number;
  maxDownloads: number;
  maxMemoryMb: number;
  nice: number;
}

export interface UpdateRunOptions {
  /** check: estimate only; download: estimate and download; run: all three phases. */
  kind: 'check' | 'download' | 'run';
  plugins: readonly PluginManifest[];
  executor: Executor;
  environment: Environment;
  stateRoot: string;
  settings: Readonly<Record<string, PluginSettings>>;
  limits: Limits;
  retries: number;
  /** Seconds before the first retry; each next one doubles. */
  retryDelay: number;
  continueOnError: boolean;
  /** Estimate for real, then plan without downloading or updating. */
  dryRun: boolean;
  stats: StatsDatabase | null;
  /** An interrupted run to continue instead of starting a new one. */
  resume?: RunState;
  /** For a new run: the plugin names given with --plugins (recorded, for retry). */
  selection?: string[];
  now: () => Date;
  /** upkeep's own pid, recorded as the owner of the run. */
  pid: number;
  /**
   * root needs no sudo; other users need sudo without a password for the
   * plugins that require it: for everything (canSudo), or for exactly the
   * programs each plugin lists (the rules of `upkeep sudo-setup`).
   */
  isRoot: boolean;
  canSudo: boolean;
  /** The argv that runs upkeep itself (for the upkeep-tools plugin), passed as UPKEEP_COMMAND. */
  selfCommand?: readonly string[];
  onEvent: (event: UpdateEvent) => void;
  log?: RunLog;
  /** Subscribes to Ctrl-C / SIGTERM; returns the unsubscribe function. */
  onInterrupt?: (listener: () => void) => () => void;
}

export interface PluginReport {
  name: string;
  applicable: boolean;
  reason?: string;
  updates: PendingPackage[];
  downloadBytes: number;
  securityUpdates: boolean;
  requiresReboot: boolean;
  estimates: Partial<Record<Phase, Estimate>>;
  phases: Partial<Record<Phase, PhaseState>>;
}

export interface UpdateReport {
  runId: string;
  kind: UpdateRunOptions['kind'];
  status: RunStatus;
  dryRun: boolean;
  startedAt: string;
  endedAt: string;
  seconds: number;
  estimate: RunEstimate;
  /** Dry runs: the order the plan would start the tasks in, with their estimated start. */
  plan?: Array<{ plugin: string; phase: Phase; startSeconds: number; seconds: number }>;
  plugins: PluginReport[];
  summary: {
    pluginsRun: number;
    succeeded: string[];
    failed: string[];
    notRun: string[];
    downloadedBytes: number;
    packagesUpdated: number;
    requiresReboot: boolean;
  };
}

const DYNAMIC_QUERIES: Array<{ command: PluginCommand; kind: 'mutexes' | 'dependencies'; phase: Phase }> = [
  { command: 'estimate-update-mutexes', kind: 'mutexes', phase: 'estimate' },
  { command: 'download-mutexes', kind: 'mutexes', phase: 'download' },
  { command: 'update-mutexes', kind: 'mutexes', phase: 'update' },
  { command: 'estimate-update-dependency', kind: 'dependencies', phase: 'estimate' },
  { command: 'download-dependency', kind: 'dependencies', phase: 'download' },
  { command: 'update-dependency', kind: 'dependencies', phase: 'update' },
];

/** How often a run waiting on memory, or on plugins left running by a killed run, looks again. */
const POLL_MILLISECONDS = 250;

export class UpdateRun {
  private readonly store: RunStateStore | null;
  private readonly state: RunState;
  private readonly manifests: Map<string, PluginManifest>;
  private readonly abort = new AbortController();
  private readonly memory: MemoryGuard;
  private interrupts = 0;
  private scheduler: Scheduler | null = null;
  private estimate: RunEstimate = { seconds: 0, low: 0, high: 0 };
  private readonly estimates = new Map<string, Partial<Record<Phase, Estimate>>>();
  /** When each task waiting to retry a transient failure may start again (Date.now() milliseconds). */
  private readonly retryAt = new Map<string, number>();
  /** Per plugin, whether sudo runs its programs without a password (asked once a run). */
  private readonly elevation = new Map<string, Promise<boolean>>();
  private readonly startedAt: Date;

  constructor(private readonly options: UpdateRunOptions) {
    this.manifests = new Map(options.plugins.map((manifest) => [manifest.name, manifest]));
    // Every running plugin listens for the abort: all of them at once in the estimate phase.
    setMaxListeners(0, this.abort.signal);
    this.memory = new MemoryGuard(options.limits.maxMemoryMb);
    this.startedAt = options.now();
    const now = this.startedAt.toISOString();
    this.state = options.resume ?? {
      schemaVersion: 1,
      runId: `${now.replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomBytes(3).toString('hex')}`,
      kind: options.kind === 'download' ? 'download' : 'run',
      status: 'estimating',
      startedAt: now,
      updatedAt: now,
      options: {
        ...(options.selection ? { plugins: options.selection } : {}),
        continueOnError: options.continueOnError,
        parallel: options.limits.parallel,
      },
      owner: { pid: options.pid, start: null },
      plugins: Object.fromEntries(options.plugins.map((manifest) => [manifest.name, newPluginState(manifest.name)])),
    };
    // Checks and dry runs change nothing, so they leave no state to resume.
    const persistent = options.kind !== 'check' && !options.dryRun;
    this.store = persistent ? new RunStateStore(runStatePath(options.stateRoot), this.state, options.now) : null;
  }

  get runId(): string {
    return this.state.runId;
  }

  async run(): Promise<UpdateReport> {
    const unsubscribe = this.options.onInterrupt?.(() => this.interrupt()) ?? (() => undefined);
    try {
      this.state.owner = { pid: this.options.pid, start: await processStartTime(this.options.pid) };
      if (this.options.resume) await this.adoptLeftovers();
      await this.setStatus('estimating');
      await this.estimatePhase();
      this.estimate = this.planEstimate();
      this.emit({ type: 'plan', estimate: this.estimate, time: this.time() });
      if (this.options.kind === 'check' || this.options.dryRun) return this.finish(this.interrupted ? 'interrupted' : 'completed');
      if (!this.interrupted && !this.stoppedByFailure()) {
        await this.setStatus('downloading');
        await this.runPhase('download');
      }
      if (this.options.kind === 'run' && !this.interrupted && !this.stoppedByFailure()) {
        await this.setStatus('updating');
        await this.runPhase('update');
      }
      return await this.finish(this.interrupted ? 'interrupted' : this.failedPlugins().length > 0 ? 'failed' : 'completed');
    } finally {
      unsubscribe();
      await this.store?.flush();
    }
  }

  /** First Ctrl-C: start nothing new, let the running plugins finish. Second: stop them too. */
  interrupt(): void {
    this.interrupts += 1;
    this.scheduler?.stop();
    if (this.interrupts === 1) {
      this.emit({ type: 'warning', message: 'interrupted: waiting for the running plugins to finish (press Ctrl-C again to stop them)', time: this.time() });
    } else if (this.interrupts === 2) {
      this.emit({ type: 'warning', message: 'stopping the running plugins', time: this.time() });
      this.abort.abort();
    }
  }

  private get interrupted(): boolean {
    return this.interrupts > 0;
  }

  /** Without --continue-on-error, a failed download or update stops the run (a failed estimate only leaves its plugin out). */
  private stoppedByFailure(): boolean {
    return !this.options.continueOnError && this.failedPlugins(['download', 'update']).length > 0;
  }

  /**
   * A run killed with `kill -9` leaves its plugins running: wait for them to
   * end (stopping apt halfway would be worse than waiting), then run their
   * phase again, which the protocol requires to be safe.
   */
  private async adoptLeftovers(): Promise<void> {
    for (const plugin of Object.values(this.state.plugins)) {
      for (const [phase, phaseState] of Object.entries(plugin.phases) as Array<[Phase, PhaseState]>) {
        if (phaseState.status !== 'running' && phaseState.status !== 'interrupted') continue;
        if (phaseState.status === 'running' && phaseState.processGroup !== undefined && (await processGroupRunning(phaseState.processGroup))) {
          this.emit({
            type: 'warning',
            plugin: plugin.name,
            message: `${plugin.name} ${phase} is still running from the interrupted run (process group ${phaseState.processGroup}); waiting for it to end`,
            time: this.time(),
          });
          while (await processGroupRunning(phaseState.processGroup)) await delay(POLL_MILLISECONDS);
        }
        plugin.phases[phase] = { status: 'pending', attempts: 0 };
      }
    }
  }

  // ---- estimate ---------------------------------------------------------------------------

  private async estimatePhase(): Promise<void> {
    const todo = this.options.plugins.filter((manifest) => this.pluginState(manifest.name).phases.estimate?.status !== 'completed');
    for (const manifest of this.options.plugins) {
      if (!todo.includes(manifest)) this.emitEstimate(manifest.name);
    }
    const tasks: Task[] = todo.map((manifest) => ({
      id: `${manifest.name}:estimate`,
      plugin: manifest.name,
      phase: 'estimate',
      duration: manifest.timeouts.estimateUpdate,
      mutexes: manifest.mutexes.estimate,
      dependencies: manifest.dependencies.estimate,
      after: [],
    }));
    // Estimates are cheap and read-only: all at once, within their own mutexes.
    await this.schedule(tasks, { parallel: Math.max(1, tasks.length) }, (task) => this.estimatePlugin(this.manifests.get(task.plugin)!));
  }

  private async estimatePlugin(manifest: PluginManifest): Promise<'done' | 'retry'> {
    const plugin = this.pluginState(manifest.name);
    const phase = this.beginPhase(plugin, 'estimate');
    const applicability = await this.ask(manifest, 'is-applicable', 'estimate');
    if (applicability.kind === 'failed') return this.failPhase(plugin, 'estimate', applicability);
    if (applicability.kind !== 'success') {
      plugin.applicable = false;
      plugin.reason = applicability.kind === 'not-applicable' ? applicability.reason : `is-applicable answered ${applicability.kind}`;
      return this.completeEstimate(plugin, phase);
    }
    plugin.applicable = true;
    const meter = new ProcessTreeMeter();
    const started = this.options.now();
    const estimate = await this.ask(manifest, 'estimate-update', 'estimate', (pid) => meter.start(pid));
    const usage = await meter.finish();
    if (estimate.kind === 'failed') {
      this.record(plugin, 'estimate', started, usage, estimate, { packageCount: 0, downloadBytes: 0 });
      return this.failPhase(plugin, 'estimate', estimate);
    }
    if (estimate.kind !== 'success') {
      plugin.applicable = false;
      plugin.reason = estimate.kind === 'not-applicable' ? estimate.reason : `estimate-update answered ${estimate.kind}`;
      return this.completeEstimate(plugin, phase);
    }
    const data = estimate.data;
    plugin.applicable = true;
    delete plugin.reason;
    plugin.packages = data.packages_to_update.map((entry) => ({
      name: entry.name,
      currentVersion: entry.current_version ?? null,
      newVersion: entry.new_version,
      ...(entry.download_size_bytes === undefined ? {} : { downloadBytes: entry.download_size_bytes }),
      ...(entry.security === undefined ? {} : { security: entry.security }),
    }));
    plugin.downloadBytes =
      data.total_download_size_bytes ?? plugin.packages.reduce((total, entry) => total + (entry.downloadBytes ?? 0), 0);
    plugin.securityUpdates = data.security_updates ?? plugin.packages.some((entry) => entry.security === true);
    plugin.requiresReboot = data.requires_reboot ?? false;
    plugin.mutexes = { ...manifest.mutexes };
    plugin.dependencies = { ...manifest.dependencies };
    plugin.runsAfter = [...manifest.runsAfter];
    plugin.requiresSudo = manifest.requiresSudo;

    // The remaining questions are independent: ask them at once.
    const questions: Array<Promise<void>> = [];
    if (manifest.canSeparateDownload) {
      questions.push(
        this.ask(manifest, 'can-separate-download', 'estimate').then((answer) => {
          plugin.canSeparateDownload = answer.kind === 'success';
        }),
      );
    } else plugin.canSeparateDownload = false;
    // Root needs no sudo, so only other users ask.
    if (!this.options.isRoot) {
      questions.push(
        this.ask(manifest, 'does-require-sudo', 'estimate').then((answer) => {
          if (answer.kind === 'success') plugin.requiresSudo = true;
          else if (answer.kind === 'no') plugin.requiresSudo = false;
        }),
      );
    }
    if (manifest.supportsDynamicMutexes) {
      for (const query of DYNAMIC_QUERIES) {
        questions.push(
          this.ask(manifest, query.command, 'estimate').then((answer) => {
            const names = this.dynamicList(manifest, query.command, answer, 'mutexes');
            if (names) plugin[query.kind][query.phase] = union(plugin[query.kind][query.phase], names.map((name) => normalizeMutex(name)));
          }),
        );
      }
      questions.push(
        this.ask(manifest, 'runs-after', 'estimate').then((answer) => {
          const names = this.dynamicList(manifest, 'runs-after', answer, 'plugins');
          if (names) plugin.runsAfter = union(plugin.runsAfter, names);
        }),
      );
    }
    await Promise.all(questions);

    const history = (phase: Phase) => this.options.stats?.history({ plugin: manifest.name, phase, successOnly: true, limit: 30 }) ?? [];
    const features = {
      downloadBytes: plugin.downloadBytes,
      packageCount: plugin.packages.length,
      ...(data.estimated_time_seconds === undefined ? {} : { pluginSeconds: data.estimated_time_seconds }),
    };
    const estimates: Partial<Record<Phase, Estimate>> = {};
    if (plugin.packages.length > 0) {
      if (plugin.canSeparateDownload) estimates.download = estimatePhase(history('download'), { ...features, phase: 'download' });
      estimates.update = estimatePhase(history('update'), { ...features, phase: 'update' });
    }
    this.record(plugin, 'estimate', started, usage, null, { packageCount: plugin.packages.length, downloadBytes: plugin.downloadBytes });
    this.estimates.set(manifest.name, estimates);
    plugin.estimates = Object.fromEntries(Object.entries(estimates).map(([key, value]) => [key, value.seconds]));
    return this.completeEstimate(plugin, phase);
  }

  /** A dynamic list, or null (and a warning) when the query failed: the static set stands (seed §5.2). */
  private dynamicList(manifest: PluginManifest, command: PluginCommand, answer: PluginAnswer, key: 'mutexes' | 'plugins'): string[] | null {
    if (answer.kind === 'success') return (answer.data as Record<string, string[]>)[key] ?? [];
    if (answer.kind === 'not-implemented') return null;
    const why = answer.kind === 'failed' ? answer.error.message : answer.kind;
    this.emit({ type: 'warning', plugin: manifest.name, message: `${manifest.name} ${command} failed (${why}); using the manifest's list`, time: this.time() });
    return null;
  }

  private async completeEstimate(plugin: PluginState, phase: PhaseState): Promise<'done'> {
    await this.endPhase(plugin, 'estimate', phase, 'completed', plugin.applicable ? undefined : plugin.reason);
    this.emitEstimate(plugin.name);
    return 'done';
  }

  private emitEstimate(name: string): void {
    const plugin = this.pluginState(name);
    this.emit({
      type: 'estimate',
      plugin: name,
      applicable: plugin.applicable ?? false,
      ...(plugin.reason ? { reason: plugin.reason } : {}),
      updates: plugin.packages.length,
      downloadBytes: plugin.downloadBytes,
      securityUpdates: plugin.securityUpdates,
      requiresReboot: plugin.requiresReboot,
      estimates: this.estimatesOf(name),
      time: this.time(),
    });
  }

  private estimatesOf(name: string): Partial<Record<Phase, Estimate>> {
    const known = this.estimates.get(name);
    if (known) return known;
    // A resumed run kept only the point estimates.
    const seconds = this.pluginState(name).estimates;
    return Object.fromEntries(
      Object.entries(seconds).map(([phase, value]) => [phase, { seconds: value, low: value, high: value, dataPoints: 0, basis: 'history' as const }]),
    );
  }

  /** The run's length if every phase takes its estimate: the same scheduler, on a virtual clock. */
  private planEstimate(): RunEstimate {
    const bound = (pick: (estimate: Estimate) => number): number =>
      (['download', 'update'] as const).reduce((total, phase) => {
        const tasks = this.phaseTasks(phase, pick);
        return total + (tasks.length === 0 ? 0 : simulate(tasks, this.limitsFor(phase)).makespan);
      }, 0);
    return {
      seconds: bound((estimate) => estimate.seconds),
      low: bound((estimate) => estimate.low),
      high: bound((estimate) => estimate.high),
    };
  }

  // ---- download and update ----------------------------------------------------------------

  /** The tasks of one phase: applicable plugins with updates whose phase has not completed. */
  private phaseTasks(phase: 'download' | 'update', duration: (estimate: Estimate) => number = (estimate) => estimate.seconds): Task[] {
    const plugins = this.options.plugins
      .map((manifest) => this.pluginState(manifest.name))
      .filter((plugin) => this.needsPhase(plugin, phase));
    const present = new Set(plugins.map((plugin) => plugin.name));
    return plugins.map((plugin) => {
      const estimate = this.estimatesOf(plugin.name)[phase];
      return {
        id: `${plugin.name}:${phase}`,
        plugin: plugin.name,
        phase,
        duration: estimate ? Math.max(0, duration(estimate)) : 0,
        mutexes: plugin.mutexes[phase],
        dependencies: plugin.dependencies[phase],
        // Downloads only fill caches: runs-after orders the changes.
        after: phase === 'update' ? plugin.runsAfter.filter((name) => present.has(name)).map((name) => `${name}:update`) : [],
      };
    });
  }

  private needsPhase(plugin: PluginState, phase: 'download' | 'update'): boolean {
    if (!plugin.applicable || plugin.packages.length === 0) return false;
    if (plugin.phases.estimate?.status !== 'completed') return false;
    if (phase === 'download' && !plugin.canSeparateDownload) return false;
    if (phase === 'update' && plugin.phases.download?.status === 'failed') return false;
    const status = plugin.phases[phase]?.status;
    return status !== 'completed' && status !== 'skipped';
  }

  private limitsFor(phase: Phase): { parallel: number; downloads: number } {
    return { parallel: this.options.limits.parallel, downloads: phase === 'download' ? this.options.limits.maxDownloads : this.options.limits.parallel };
  }

  private async runPhase(phase: 'download' | 'update'): Promise<void> {
    const tasks = this.phaseTasks(phase);
    const blocked = new Set<string>();
    for (const task of tasks) {
      const plugin = this.pluginState(task.plugin);
      if (plugin.requiresSudo && !(await this.mayElevate(this.manifests.get(task.plugin)!, phase))) {
        blocked.add(task.id);
        plugin.phases[phase] = { status: 'skipped', attempts: 0, note: 'needs root, and sudo asks for a password: run upkeep as root, or `upkeep sudo-setup`' };
        this.emit({ type: 'phase', plugin: plugin.name, phase, status: 'skipped', attempt: 0, note: plugin.phases[phase]!.note!, time: this.time() });
      }
    }
    await this.store?.save();
    await this.schedule(tasks, this.limitsFor(phase), (task) => this.executePhase(this.manifests.get(task.plugin)!, phase), blocked);
  }

  /**
   * Whether the plugin's programs may run as root: upkeep is root, sudo asks
   * no password at all, or it asks none for each program the plugin lists in
   * sudo-programs-paths (`sudo -n -l PATH`; `upkeep sudo-setup` allows only those).
   */
  private mayElevate(manifest: PluginManifest, phase: Phase): Promise<boolean> {
    if (this.options.isRoot || this.options.canSudo) return Promise.resolve(true);
    let asked = this.elevation.get(manifest.name);
    if (!asked) {
      asked = (async () => {
        const answer = await this.ask(manifest, 'sudo-programs-paths', phase);
        if (answer.kind !== 'success' || answer.data.paths.length === 0) return false;
        for (const path of answer.data.paths) {
          const listed = await this.options.executor
            .run(['sudo', '-n', '-l', path], { mode: 'always', timeout: 5000, env: this.options.environment })
            .catch(() => null);
          if (listed?.exitCode !== 0) return false;
        }
        return true;
      })();
      this.elevation.set(manifest.name, asked);
    }
    return asked;
  }

  private async executePhase(manifest: PluginManifest, phase: 'download' | 'update'): Promise<'done' | 'retry'> {
    const plugin = this.pluginState(manifest.name);
    const phaseState = this.beginPhase(plugin, phase);
    const meter = new ProcessTreeMeter();
    const started = this.options.now();
    const { answer, result } = await invokePlugin(manifest, phase, {
      ...this.invocation(manifest, phase),
      signal: this.abort.signal,
      nice: this.options.limits.nice,
      onStart: (pid) => {
        meter.start(pid);
        this.memory.register(pid);
        phaseState.processGroup = pid;
        void processStartTime(pid).then((start) => {
          if (start !== null) phaseState.processStart = start;
          return this.store?.save();
        });
      },
    });
    const usage = await meter.finish();
    if (phaseState.processGroup !== undefined) this.memory.unregister(phaseState.processGroup);
    const data = answer.kind === 'success' ? (answer.data as { package_count?: number; packages_updated?: unknown[]; downloaded_bytes?: number; requires_reboot?: boolean }) : undefined;
    const packageCount = data?.package_count ?? data?.packages_updated?.length ?? plugin.packages.length;
    const failure = answer.kind === 'success' ? null : this.failureOf(answer);
    this.record(plugin, phase, started, usage, failure, { packageCount, downloadBytes: data?.downloaded_bytes ?? plugin.downloadBytes });
    delete phaseState.processGroup;
    delete phaseState.processStart;
    if (failure === null) {
      if (data?.requires_reboot) plugin.requiresReboot = true;
      const note = phase === 'update' ? `${packageCount} package${packageCount === 1 ? '' : 's'} updated` : `${packageCount} package${packageCount === 1 ? '' : 's'} downloaded`;
      await this.endPhase(plugin, phase, phaseState, 'completed', note);
      return 'done';
    }
    if (result.aborted) {
      await this.endPhase(plugin, phase, phaseState, 'interrupted', 'stopped by a second interrupt', failure.error);
      return 'done';
    }
    return this.failPhase(plugin, phase, failure);
  }

  private failureOf(answer: PluginAnswer): Extract<PluginAnswer, { kind: 'failed' }> {
    if (answer.kind === 'failed') return answer;
    return {
      kind: 'failed',
      error: { code: 'PROTOCOL', message: `the plugin answered ${answer.kind}` },
      transient: false,
      timedOut: false,
    };
  }

  /** A transient failure with retries left goes back to the scheduler; anything else is final. */
  private async failPhase(plugin: PluginState, phase: Phase, answer: PluginAnswer): Promise<'done' | 'retry'> {
    const failure = this.failureOf(answer);
    const phaseState = plugin.phases[phase]!;
    if (failure.transient && phaseState.attempts <= this.options.retries && !this.interrupted) {
      const base = this.options.retryDelay * 2 ** (phaseState.attempts - 1);
      // Jitter, so that plugins failing on the same outage do not retry in step.
      const delaySeconds = base * (0.75 + Math.random() * 0.5);
      phaseState.status = 'pending';
      phaseState.error = failure.error;
      this.emit({ type: 'retry', plugin: plugin.name, phase, attempt: phaseState.attempts, delaySeconds, reason: failure.error.message, time: this.time() });
      this.retryAt.set(`${plugin.name}:${phase}`, Date.now() + delaySeconds * 1000);
      await this.store?.save();
      return 'retry';
    }
    const code = failure.timedOut ? 'TIMEOUT' : failure.error.code;
    await this.endPhase(plugin, phase, phaseState, 'failed', undefined, { ...failure.error, code });
    if (!this.options.continueOnError && phase !== 'estimate') this.scheduler?.stop();
    return 'done';
  }

  // ---- scheduling loop --------------------------------------------------------------------

  /**
   * Drives one phase's tasks through the scheduler: start what may start,
   * and look again whenever a task ends, a retry's wait is over, or memory
   * was short.
   */
  private async schedule(
    tasks: Task[],
    limits: { parallel: number; downloads?: number },
    execute: (task: Task) => Promise<'done' | 'retry'>,
    skipped: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    if (tasks.length === 0) return;
    const scheduler = new Scheduler(buildGraph(tasks), limits);
    this.scheduler = scheduler;
    if (this.interrupted || this.stoppedByFailure()) scheduler.stop();
    for (const id of skipped) scheduler.skip(id);
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const pump = (): void => {
        clearTimeout(timer);
        timer = undefined;
        if (scheduler.done) {
          resolve();
          return;
        }
        for (const task of scheduler.next({ memoryFull: this.memory.full() })) {
          execute(task).then((outcome) => {
            if (outcome === 'retry') scheduler.requeue(task.id, this.retryAt.get(task.id));
            else scheduler.finish(task.id);
            pump();
          }, reject);
        }
        if (scheduler.done) {
          resolve();
          return;
        }
        // Something waits on a clock (a retry) or on memory: look again later.
        const wakeup = scheduler.nextWakeup();
        const wait = wakeup === undefined ? POLL_MILLISECONDS : Math.max(10, wakeup - Date.now());
        if (scheduler.pending().length > 0 && !scheduler.stopped) timer = setTimeout(pump, Math.min(wait, 1000));
      };
      pump();
    });
    this.scheduler = null;
  }

  // ---- phases, events, state --------------------------------------------------------------

  private invocation(manifest: PluginManifest, phase: Phase): InvokeOptions {
    const extra: Record<string, string> = this.options.selfCommand ? { UPKEEP_COMMAND: JSON.stringify(this.options.selfCommand) } : {};
    return {
      executor: this.options.executor,
      runDir: join(runFolder(this.options.stateRoot), 'runs', this.state.runId, manifest.name),
      environment: this.options.environment,
      settings: this.options.settings[manifest.name] ?? {},
      dryRun: this.options.dryRun,
      extra,
      onProgress: (progress: Progress) =>
        this.emit({
          type: 'progress',
          plugin: manifest.name,
          phase,
          percent: progress.percent,
          ...(progress.message ? { message: progress.message } : {}),
          time: this.time(),
        }),
      onOutput: (line: string) => this.emit({ type: 'output', plugin: manifest.name, phase, line, time: this.time() }),
    };
  }

  private async ask<C extends PluginCommand>(manifest: PluginManifest, command: C, phase: Phase, onStart?: (pid: number) => void): Promise<PluginAnswer<C>> {
    const { answer } = await invokePlugin(manifest, command, { ...this.invocation(manifest, phase), signal: this.abort.signal, ...(onStart ? { onStart } : {}) });
    return answer;
  }

  /** One row of history (seed 002 §11.3); the estimate phase is measured on its estimate-update. */
  private record(plugin: PluginState, phase: Phase, started: Date, usage: ResourceUsage, failure: PluginAnswer | null, counts: { packageCount: number; downloadBytes: number }): void {
    const error = failure === null ? null : this.failureOf(failure).error;
    this.options.stats?.record({
      runId: this.state.runId,
      plugin: plugin.name,
      phase,
      startedAt: started.toISOString(),
      wallSeconds: (this.options.now().getTime() - started.getTime()) / 1000,
      cpuUserSeconds: usage.cpuUserSeconds,
      cpuSystemSeconds: usage.cpuSystemSeconds,
      peakRssBytes: usage.peakRssBytes,
      readBytes: usage.readBytes,
      writeBytes: usage.writeBytes,
      downloadBytes: counts.downloadBytes,
      packageCount: counts.packageCount,
      success: failure === null,
      attempts: plugin.phases[phase]?.attempts ?? 1,
      error: error ? `${error.code}: ${error.message}` : null,
    });
  }

  private beginPhase(plugin: PluginState, phase: Phase): PhaseState {
    const previous = plugin.phases[phase];
    const phaseState: PhaseState = { status: 'running', startedAt: this.time(), attempts: (previous?.status === 'pending' ? previous.attempts : 0) + 1 };
    plugin.phases[phase] = phaseState;
    this.emit({ type: 'phase', plugin: plugin.name, phase, status: 'running', attempt: phaseState.attempts, time: phaseState.startedAt! });
    void this.store?.save();
    return phaseState;
  }

  private async endPhase(plugin: PluginState, phase: Phase, phaseState: PhaseState, status: PhaseStatus, note?: string, error?: PluginFailure): Promise<void> {
    phaseState.status = status;
    phaseState.endedAt = this.time();
    if (note) phaseState.note = note;
    if (error) phaseState.error = error;
    else delete phaseState.error;
    const seconds = phaseState.startedAt ? (Date.parse(phaseState.endedAt) - Date.parse(phaseState.startedAt)) / 1000 : undefined;
    this.emit({
      type: 'phase',
      plugin: plugin.name,
      phase,
      status,
      attempt: phaseState.attempts,
      time: phaseState.endedAt,
      ...(seconds === undefined ? {} : { seconds }),
      ...(note ? { note } : {}),
      ...(error ? { error } : {}),
    });
    await this.store?.save();
  }

  private async setStatus(status: RunStatus): Promise<void> {
    this.state.status = status;
    this.emit({ type: 'run', runId: this.state.runId, status, time: this.time() });
    await this.store?.save();
  }

  private pluginState(name: string): PluginState {
    const existing = this.state.plugins[name];
    if (existing) return existing;
    const created = newPluginState(name);
    this.state.plugins[name] = created;
    return created;
  }

  private failedPlugins(phases: readonly Phase[] = ['estimate', 'download', 'update']): string[] {
    return Object.values(this.state.plugins)
      .filter((plugin) => phases.some((phase) => plugin.phases[phase]?.status === 'failed'))
      .map((plugin) => plugin.name);
  }

  private emit(event: UpdateEvent): void {
    this.options.log?.write({ runId: this.state.runId, ...event });
    this.options.onEvent(event);
  }

  private time(): string {
    return this.options.now().toISOString();
  }

  private async finish(status: RunStatus): Promise<UpdateReport> {
    const endedAt = this.options.now();
    this.state.endedAt = endedAt.toISOString();
    await this.setStatus(status);
    await this.store?.flush();
    if (status !== 'interrupted' || !this.store) {
      // The per-plugin folders matter only to a resume.
      await rm(join(runFolder(this.options.stateRoot), 'runs', this.state.runId), { recursive: true, force: true });
    }
    return this.report(endedAt);
  }

  private report(endedAt: Date): UpdateReport {
    const plugins: PluginReport[] = this.options.plugins.map((manifest) => {
      const plugin = this.pluginState(manifest.name);
      return {
        name: plugin.name,
        applicable: plugin.applicable ?? false,
        ...(plugin.reason ? { reason: plugin.reason } : {}),
        updates: plugin.packages,
        downloadBytes: plugin.downloadBytes,
        securityUpdates: plugin.securityUpdates,
        requiresReboot: plugin.requiresReboot,
        estimates: this.estimatesOf(plugin.name),
        phases: plugin.phases,
      };
    });
    const ran = plugins.filter((plugin) => plugin.phases.update !== undefined || plugin.phases.download !== undefined);
    const failed = this.failedPlugins();
    const lastPhase = this.options.kind === 'download' ? 'download' : 'update';
    const report: UpdateReport = {
      runId: this.state.runId,
      kind: this.options.kind,
      status: this.state.status,
      dryRun: this.options.dryRun,
      startedAt: this.startedAt.toISOString(),
      endedAt: endedAt.toISOString(),
      seconds: (endedAt.getTime() - this.startedAt.getTime()) / 1000,
      estimate: this.estimate,
      plugins,
      summary: {
        pluginsRun: ran.length,
        succeeded: ran.filter((plugin) => plugin.phases[lastPhase]?.status === 'completed').map((plugin) => plugin.name),
        failed,
        notRun: plugins
          .filter((plugin) => this.needsPhase(this.pluginState(plugin.name), lastPhase) && !failed.includes(plugin.name))
          .map((plugin) => plugin.name),
        downloadedBytes: ran.reduce((total, plugin) => total + (plugin.phases.download?.status === 'completed' || plugin.phases.update?.status === 'completed' ? plugin.downloadBytes : 0), 0),
        packagesUpdated: ran.reduce((total, plugin) => total + (plugin.phases.update?.status === 'completed' ? plugin.updates.length : 0), 0),
        requiresReboot: plugins.some((plugin) => plugin.requiresReboot && plugin.phases.update?.status === 'completed'),
      },
    };
    if (this.options.dryRun && this.options.kind !== 'check') report.plan = this.planOrder();
    return report;
  }

  /** For a dry run: when each task would start, by the estimates. */
  private planOrder(): UpdateReport['plan'] {
    const plan: NonNullable<UpdateReport['plan']> = [];
    let offset = 0;
    for (const phase of ['download', 'update'] as const) {
      if (phase === 'update' && this.options.kind === 'download') break;
      const tasks = this.phaseTasks(phase);
      if (tasks.length === 0) continue;
      const simulation = simulate(tasks, this.limitsFor(phase));
      const entries = [...simulation.intervals].sort((a, b) => a[1].start - b[1].start || (a[0] < b[0] ? -1 : 1));
      for (const [id, interval] of entries) {
        plan.push({ plugin: id.slice(0, id.lastIndexOf(':')), phase, startSeconds: offset + interval.start, seconds: interval.end - interval.start });
      }
      offset += simulation.makespan;
    }
    return plan;
  }
}

function union(left: readonly string[], right: readonly string[]): string[] {
  return [...new Set([...left, ...right])];
}

function delay(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
