import { join } from 'node:path';
import type { Command } from 'commander';
import type { LoadedConfig } from '../../core/config.ts';
import { ExitCode, UpkeepError, isUpkeepError } from '../../core/errors.ts';
import { Executor, stillRunning } from '../../core/exec.ts';
import { discoverPlugins, pluginDirectories, type Discovery } from '../../update/plugin/discover.ts';
import type { Phase, PluginManifest } from '../../update/plugin/manifest.ts';
import { notifyRunFinished } from '../../update/notify.ts';
import { openRunLog } from '../../update/run/log.ts';
import { UpdateRun, type UpdateReport, type UpdateRunOptions } from '../../update/run/orchestrator.ts';
import { acquireRunLock, loadRunState, TERMINAL_RUN_STATUSES, type RunState } from '../../update/run/state.ts';
import { openStatsDatabase, type StatsDatabase } from '../../update/stats/db.ts';
import { estimatePhase, formatDuration, formatEstimate } from '../../update/stats/estimate.ts';
import type { CommandResult, Context } from '../context.ts';
import { colors, formatColumns } from '../output/colors.ts';
import { createUpdateDisplay, renderCheck, renderSummary } from '../output/update.ts';
import type { Handler } from '../run.ts';
import { upkeepVersion } from '../version.ts';
import { splitList } from './select.ts';
import { configFor } from './shared.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

interface RunOptions {
  plugins?: string;
  dryRun?: boolean;
  parallel?: string;
  continueOnError?: boolean;
}

export function registerUpdateCommands(program: Command, run: Register): void {
  const update = program
    .command('update')
    .summary('update everything through plugins (apt, brew, npm, pipx, cargo, ...), in parallel where safe')
    .description(
      'Asks every update plugin what it would update, then downloads and updates in parallel wherever no two plugins touch the same resource (their mutexes), in the order their runs-after relations ask. Runs survive interruption (`upkeep update resume`), every phase is recorded for history and time estimates. docs/update.md has the details.',
    );
  const selection = (command: Command): Command => command.option('--plugins <names>', 'only these plugins (comma-separated)');
  selection(update.command('check').summary('list what each plugin would update, sizes, security updates and the estimated time; changes nothing'))
    .addHelpText('after', '\nExamples:\n  upkeep update check\n  upkeep update check --plugins apt,npm --json\n')
    .action(run(checkHandler));
  const runCommand = (name: string, summary: string, handler: Handler<RunOptions>): Command =>
    selection(update.command(name).summary(summary))
      .option('-n, --dry-run', 'estimate and print the plan; download and update nothing')
      .option('--parallel <count>', 'plugins that may run at once (update.parallel)')
      .option('--continue-on-error', 'go on with the other plugins when one fails (update.continueOnError)')
      .action(run(handler));
  runCommand('run', 'estimate, download and update with every applicable plugin', runHandler).addHelpText(
    'after',
    '\nExamples:\n  upkeep update run\n  upkeep update run --plugins apt,flatpak --dry-run\n  upkeep update run --continue-on-error --json   # NDJSON events\n',
  );
  runCommand('download', 'estimate and download only (for plugins that can separate the download)', downloadHandler);
  update
    .command('retry')
    .summary('run again only the plugins that failed (or did not get to run) in the last run')
    .option('--parallel <count>', 'plugins that may run at once')
    .option('--continue-on-error', 'go on with the other plugins when one fails')
    .action(run(retryHandler));
  update
    .command('resume')
    .summary('continue an interrupted run with what had not finished')
    .option('--parallel <count>', 'plugins that may run at once')
    .action(run(resumeHandler));
  update
    .command('history')
    .summary('recorded plugin phases, newest first')
    .option('--plugin <name>', 'only this plugin')
    .option('--limit <count>', 'at most this many rows', '30')
    .action(run(historyHandler));
  update.command('stats').summary('per plugin and phase: runs, success rate, typical duration and the next estimate').action(run(statsHandler));
}

// ---- shared ---------------------------------------------------------------------------------

async function discover(context: Context, config: LoadedConfig['config']): Promise<Discovery> {
  return discoverPlugins({ directories: pluginDirectories(context.paths, context.environment), disabled: config.update.disabled });
}

/** The enabled plugins, narrowed to --plugins; unknown names are an error, disabled ones a warning. */
export function selectPlugins(discovery: Discovery, names: string[] | undefined, warnings: string[]): PluginManifest[] {
  const known = new Map(discovery.plugins.map((plugin) => [plugin.manifest.name, plugin]));
  if (names) {
    const unknown = names.filter((name) => !known.has(name));
    if (unknown.length > 0) {
      throw new UpkeepError('E_PLUGIN_UNKNOWN', `no update plugin is called ${unknown.join(', ')}`, {
        hint: `known plugins: ${[...known.keys()].sort().join(', ') || 'none'} (\`upkeep plugins list\`)`,
        exitCode: ExitCode.usage,
      });
    }
    for (const name of names) if (!known.get(name)!.enabled) warnings.push(`plugin ${name} is disabled; run \`upkeep plugins enable ${name}\` to use it`);
  }
  const chosen = discovery.plugins.filter((plugin) => plugin.enabled && (!names || names.includes(plugin.manifest.name)));
  if (chosen.length === 0) {
    throw new UpkeepError('E_NO_PLUGINS', names ? 'none of the plugins named is enabled' : 'no update plugin is enabled', {
      hint: 'see `upkeep plugins list`; `upkeep plugins enable NAME` turns one back on',
    });
  }
  return chosen.map((plugin) => plugin.manifest);
}

function parallelFlag(value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 32) {
    throw new UpkeepError('E_USAGE', `--parallel must be a whole number from 1 to 32, not ${value}`, {
      hint: 'for example --parallel 4',
      exitCode: ExitCode.usage,
    });
  }
  return { 'update.parallel': count };
}

async function openStats(context: Context, warnings: string[]): Promise<StatsDatabase | null> {
  try {
    const opened = await openStatsDatabase(join(context.paths.state, 'update', 'stats.sqlite'));
    if (opened.warning) warnings.push(opened.warning);
    return opened.database;
  } catch (error) {
    if (isUpkeepError(error) && error.code === 'E_STATS_UNAVAILABLE') {
      warnings.push(`${error.message}; this run is not recorded and estimates use no history`);
      return null;
    }
    throw error;
  }
}

async function canSudo(context: Context, executor: Executor): Promise<boolean> {
  if (context.uid === 0) return true;
  try {
    const result = await executor.run(['sudo', '-n', 'true'], { mode: 'always', timeout: 5000, env: context.environment });
    return result.exitCode === 0;
  } catch {
    return false;
  }
}

interface Execution {
  kind: UpdateRunOptions['kind'];
  plugins: PluginManifest[];
  dryRun: boolean;
  resume?: RunState;
  selection?: string[];
}

/** Runs the orchestrator with everything it needs from the context, and renders what it reports. */
async function execute(context: Context, loaded: LoadedConfig, execution: Execution, warnings: string[]): Promise<CommandResult<UpdateReport>> {
  const { config } = loaded;
  const executor = new Executor({ env: context.environment, logger: context.logger });
  const persistent = execution.kind !== 'check' && !execution.dryRun;
  const release = persistent ? await acquireRunLock(context.paths.state, context.pid) : async () => undefined;
  const stats = await openStats(context, warnings);
  const log = await openRunLog(join(context.paths.state, 'logs', 'update.log'));
  // A check prints its table at the end; only a terminal shows it being built.
  const display = execution.kind === 'check' && (context.json || !context.stderrIsTTY) ? { event() {}, done() {} } : createUpdateDisplay(context);
  try {
    const orchestrator = new UpdateRun({
      kind: execution.kind,
      plugins: execution.plugins,
      executor,
      environment: context.environment,
      stateRoot: context.paths.state,
      settings: config.update.settings,
      limits: { parallel: config.update.parallel, maxDownloads: config.update.maxDownloads, maxMemoryMb: config.update.maxMemoryMb, nice: config.update.nice },
      retries: config.update.retries,
      retryDelay: config.update.retryDelay,
      continueOnError: config.update.continueOnError,
      dryRun: execution.dryRun,
      stats,
      ...(execution.resume ? { resume: execution.resume } : {}),
      ...(execution.selection ? { selection: execution.selection } : {}),
      now: context.now,
      pid: context.pid,
      isRoot: context.uid === 0,
      canSudo: persistent ? await canSudo(context, executor) : context.uid === 0,
      ...(context.selfCommand ? { selfCommand: context.selfCommand } : {}),
      onEvent: (event) => display.event(event),
      log,
      onInterrupt: context.onInterrupt,
    });
    const report = await orchestrator.run();
    display.done();
    if (context.json && execution.kind !== 'check') context.stdout.write(`${JSON.stringify({ type: 'summary', report })}\n`);
    if (report.status === 'interrupted') warnings.push('the run was interrupted; `upkeep update resume` continues with what did not finish');
    else if (report.summary.failed.length > 0 && execution.kind !== 'check') warnings.push('`upkeep update retry` runs the failed plugins again');
    // Last, and never able to fail the run: a notification problem is only a warning.
    const notified = await notifyRunFinished(report, {
      config,
      executor,
      environment: context.environment,
      logger: context.logger,
      userAgent: `upkeep/${upkeepVersion}`,
    });
    warnings.push(...notified.warnings);
    return {
      exitCode: exitCodeOf(report),
      data: report,
      warnings,
      streamed: execution.kind !== 'check',
      human: (color) => (execution.kind === 'check' ? renderCheck(report, color, context.verbose) : renderSummary(report, color)),
    };
  } finally {
    stats?.close();
    await log.close();
    await release();
  }
}

function exitCodeOf(report: UpdateReport): ExitCode {
  if (report.status === 'interrupted') return ExitCode.failure;
  if (report.summary.failed.length === 0) return ExitCode.success;
  return report.summary.succeeded.length > 0 ? ExitCode.partial : ExitCode.failure;
}

/** A run that did not reach its end, and whose upkeep is gone: it can be resumed. */
async function resumable(context: Context, warnings: string[]): Promise<RunState | null> {
  const { state, warning } = await loadRunState(context.paths.state);
  if (warning) warnings.push(warning);
  if (!state) return null;
  if (state.status === 'interrupted') return state;
  if (TERMINAL_RUN_STATUSES.includes(state.status)) return null;
  return (await stillRunning(state.owner.pid, state.owner.start)) && state.owner.pid !== context.pid ? null : state;
}

// ---- handlers -------------------------------------------------------------------------------

const checkHandler: Handler<{ plugins?: string }> = async (options, context) => {
  const loaded = await configFor(context);
  const discovery = await discover(context, loaded.config);
  const warnings = [...discovery.warnings];
  const plugins = selectPlugins(discovery, options.plugins ? splitList(options.plugins) : undefined, warnings);
  const result = await execute(context, loaded, { kind: 'check', plugins, dryRun: false }, warnings);
  const report = result.data;
  // The shape the issue promises scripts: {plugins: [{name, applicable, reason, updates, estimate}], estimate}.
  const data = {
    plugins: report.plugins.map((plugin) => ({
      name: plugin.name,
      applicable: plugin.applicable,
      reason: plugin.phases.estimate?.status === 'failed' ? (plugin.phases.estimate.error?.message ?? 'estimate failed') : (plugin.reason ?? null),
      ...(plugin.phases.estimate?.status === 'failed' ? { error: plugin.phases.estimate.error } : {}),
      updates: plugin.updates,
      downloadBytes: plugin.downloadBytes,
      securityUpdates: plugin.securityUpdates,
      requiresReboot: plugin.requiresReboot,
      estimate: plugin.estimates,
    })),
    estimate: report.estimate,
  };
  const failed = report.plugins.some((plugin) => plugin.phases.estimate?.status === 'failed');
  return { ...result, data, exitCode: failed ? ExitCode.partial : ExitCode.success };
};

function runHandlerFor(kind: 'run' | 'download'): Handler<RunOptions> {
  return async (options, context) => {
    const loaded = await configFor(context, {
      ...parallelFlag(options.parallel),
      ...(options.continueOnError ? { 'update.continueOnError': true } : {}),
    });
    const discovery = await discover(context, loaded.config);
    const warnings = [...discovery.warnings];
    const names = options.plugins ? splitList(options.plugins) : undefined;
    const plugins = selectPlugins(discovery, names, warnings);
    if (!options.dryRun) {
      const interrupted = await resumable(context, warnings);
      if (interrupted) {
        const left = unfinishedPlugins(interrupted);
        const question = `an interrupted update run from ${interrupted.startedAt} did not finish ${left.join(', ')}. Resume it instead?`;
        if (context.confirm && (await context.confirm(question))) {
          return resumeWith(context, loaded, discovery, interrupted, warnings);
        }
        warnings.push(`starting a new run; the interrupted run of ${interrupted.startedAt} (${left.join(', ')} unfinished) is dropped`);
      }
    }
    return execute(context, loaded, { kind, plugins, dryRun: options.dryRun ?? false, ...(names ? { selection: names } : {}) }, warnings);
  };
}

const runHandler = runHandlerFor('run');
const downloadHandler = runHandlerFor('download');

function unfinishedPlugins(state: RunState): string[] {
  const last: Phase = state.kind === 'download' ? 'download' : 'update';
  return Object.values(state.plugins)
    .filter((plugin) => {
      if (plugin.phases.estimate?.status !== 'completed') return true;
      if (!plugin.applicable || plugin.packages.length === 0) return false;
      const status = plugin.phases[last]?.status ?? plugin.phases.download?.status;
      return status !== 'completed' && status !== 'skipped' && status !== 'failed';
    })
    .map((plugin) => plugin.name);
}

async function resumeWith(context: Context, loaded: LoadedConfig, discovery: Discovery, state: RunState, warnings: string[]): Promise<CommandResult<UpdateReport>> {
  const manifests = new Map(discovery.plugins.map((plugin) => [plugin.manifest.name, plugin.manifest]));
  const plugins: PluginManifest[] = [];
  for (const name of Object.keys(state.plugins)) {
    const manifest = manifests.get(name);
    if (manifest) plugins.push(manifest);
    else warnings.push(`plugin ${name} of the interrupted run is gone; it is left out`);
  }
  return execute(context, loaded, { kind: state.kind, plugins, dryRun: false, resume: state }, warnings);
}

const resumeHandler: Handler<{ parallel?: string }> = async (options, context) => {
  const loaded = await configFor(context, parallelFlag(options.parallel));
  const warnings: string[] = [];
  const state = await resumable(context, warnings);
  if (!state) {
    const { state: last } = await loadRunState(context.paths.state);
    if (last && !TERMINAL_RUN_STATUSES.includes(last.status)) {
      throw new UpkeepError('E_RUN_IN_PROGRESS', `the update run ${last.runId} is still going (pid ${last.owner.pid})`, {
        hint: 'wait for it to finish, or stop it with Ctrl-C in its terminal',
      });
    }
    throw new UpkeepError('E_NO_RUN', last ? `the last update run (${last.runId}) ${last.status}; there is nothing to resume` : 'no update run has been interrupted', {
      hint: last?.status === 'failed' ? '`upkeep update retry` runs the failed plugins again' : 'start one with `upkeep update run`',
    });
  }
  const discovery = await discover(context, loaded.config);
  warnings.push(...discovery.warnings);
  return resumeWith(context, loaded, discovery, state, warnings);
};

const retryHandler: Handler<{ parallel?: string; continueOnError?: boolean }> = async (options, context) => {
  const loaded = await configFor(context, {
    ...parallelFlag(options.parallel),
    ...(options.continueOnError ? { 'update.continueOnError': true } : {}),
  });
  const warnings: string[] = [];
  const { state, warning } = await loadRunState(context.paths.state);
  if (warning) warnings.push(warning);
  if (!state) throw new UpkeepError('E_NO_RUN', 'no update run is recorded', { hint: 'start one with `upkeep update run`' });
  if (!TERMINAL_RUN_STATUSES.includes(state.status) || state.status === 'interrupted') {
    throw new UpkeepError('E_NO_RUN', `the last update run (${state.runId}) did not finish`, { hint: '`upkeep update resume` continues it' });
  }
  const unfinished = unfinishedPlugins(state);
  const failed = Object.values(state.plugins)
    .filter((plugin) => unfinished.includes(plugin.name) || Object.values(plugin.phases).some((phase) => phase?.status === 'failed'))
    .map((plugin) => plugin.name);
  if (failed.length === 0) {
    throw new UpkeepError('E_NO_RUN', `nothing failed in the last update run (${state.runId})`, { hint: 'start a new one with `upkeep update run`' });
  }
  const discovery = await discover(context, loaded.config);
  warnings.push(...discovery.warnings);
  const plugins = selectPlugins(discovery, failed, warnings);
  return execute(context, loaded, { kind: state.kind, plugins, dryRun: false, selection: failed }, warnings);
};

const historyHandler: Handler<{ plugin?: string; limit?: string }> = async (options, context) => {
  const limit = Number(options.limit ?? 30);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new UpkeepError('E_USAGE', `--limit must be a whole number of at least 1, not ${options.limit}`, { hint: 'for example --limit 50', exitCode: ExitCode.usage });
  }
  const warnings: string[] = [];
  const stats = await openStats(context, warnings);
  const records = stats?.history({ ...(options.plugin ? { plugin: options.plugin } : {}), limit }) ?? [];
  stats?.close();
  return {
    exitCode: ExitCode.success,
    data: { records },
    warnings,
    human: (color) => {
      const c = colors(color);
      if (records.length === 0) return options.plugin ? `no recorded runs of ${options.plugin}` : 'no update runs recorded yet';
      return formatColumns([
        ['started', 'plugin', 'phase', 'result', 'time', 'cpu', 'peak memory', 'packages'].map((title) => c.dim(title)),
        ...records.map((record) => [
          record.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
          record.plugin,
          record.phase,
          record.success ? c.green('ok') : c.red(record.error ?? 'failed'),
          formatDuration(record.wallSeconds),
          `${(record.cpuUserSeconds + record.cpuSystemSeconds).toFixed(1)} s`,
          `${Math.round(record.peakRssBytes / 1024 / 1024)} MB`,
          record.packageCount === null ? '' : String(record.packageCount),
        ]),
      ]);
    },
  };
};

const statsHandler: Handler<Record<string, never>> = async (_options, context) => {
  const warnings: string[] = [];
  const stats = await openStats(context, warnings);
  const summary = stats?.summary() ?? [];
  const rows = summary.map((entry) => ({
    ...entry,
    nextEstimate: estimatePhase(stats?.history({ plugin: entry.plugin, phase: entry.phase, successOnly: true, limit: 30 }) ?? [], { phase: entry.phase }),
  }));
  const runs = stats?.runs(10) ?? [];
  stats?.close();
  return {
    exitCode: ExitCode.success,
    data: { phases: rows, runs },
    warnings,
    human: (color) => {
      const c = colors(color);
      if (rows.length === 0) return 'no update runs recorded yet';
      const lines = [
        formatColumns([
          ['plugin', 'phase', 'runs', 'success', 'median', 'p90', 'next estimate'].map((title) => c.dim(title)),
          ...rows.map((row) => [
            row.plugin,
            row.phase,
            String(row.count),
            `${Math.round((row.successes / Math.max(1, row.count)) * 100)}%`,
            row.medianSeconds === null ? '' : formatDuration(row.medianSeconds),
            row.p90Seconds === null ? '' : formatDuration(row.p90Seconds),
            formatEstimate(row.nextEstimate),
          ]),
        ]),
      ];
      if (runs.length > 0) {
        lines.push('', c.bold('Recent runs'));
        lines.push(
          formatColumns(
            runs.map((entry) => [entry.runId, formatDuration(entry.wallSeconds), `${entry.plugins.length} plugins`, entry.failures.length > 0 ? c.red(`failed: ${entry.failures.join(', ')}`) : c.green('ok')]),
            '  ',
          ),
        );
      }
      return lines.join('\n');
    },
  };
};
