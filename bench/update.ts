/**
 * Speed and accuracy of `upkeep update`, in one run:
 *   schedules: 40 synthetic plugins (random durations, mutexes, runs-after)
 *     scheduled one after another (topgrade's way), in the seed's waves, and by
 *     upkeep's scheduler, against the lower bound (target: upkeep <= 1.10 x);
 *   overhead: the real orchestrator (state written after every transition,
 *     stats recorded, events emitted) driving 40 plugins whose answers come back
 *     at once, so that all the time measured is upkeep's own (target < 5 ms per plugin);
 *   estimates: the median absolute percentage error of the estimator on a
 *     replayed history, beside the seed's mean +- 2 sigma method.
 * Prints a table and writes bench/results/update.json. Run: npm run bench:update
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Executor, type ExecOptions, type ExecResult } from '../src/core/exec.ts';
import type { PluginManifest } from '../src/update/plugin/manifest.ts';
import { UpdateRun } from '../src/update/run/orchestrator.ts';
import { openStatsDatabase } from '../src/update/stats/db.ts';
import { benchmarkEstimates } from './update-estimate.ts';
import { benchmarkSchedules, syntheticPlugins } from './update-schedule.ts';

const root = resolve(import.meta.dirname, '..');
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

// --- schedules ---------------------------------------------------------------
const schedules = await benchmarkSchedules({ seed: 1, plugins: 40, runs: 20 });

// --- orchestration overhead ----------------------------------------------------
/** Answers every plugin command at once, as a plugin with one pending update would. */
class InstantPlugins extends Executor {
  override async run(argv: readonly string[], _options: ExecOptions = {}): Promise<ExecResult> {
    const command = argv[1];
    const data =
      command === 'estimate-update'
        ? { applicable: true, packages_to_update: [{ name: 'package', current_version: '1', new_version: '2' }] }
        : command === 'is-applicable'
          ? { applicable: true }
          : command === 'does-require-sudo'
            ? { requires_sudo: false }
            : { package_count: 1 };
    const exitCode = command === 'does-require-sudo' ? 1 : 0;
    const stdout = `${JSON.stringify({ protocol: 1, status: 'success', data, error: null })}\n`;
    return { argv, exitCode, signal: null, stdout, stderr: '', timedOut: false, truncated: false, durationMs: 0, dryRun: false };
  }
}

function manifestsFor(seed: number): PluginManifest[] {
  return syntheticPlugins(seed, 40).map((task) => ({
    name: task.plugin,
    version: '1.0.0',
    description: 'synthetic',
    executable: '/bench/plugin',
    protocol: 1,
    requiresSudo: false,
    canSeparateDownload: false,
    supportsSelfUpdate: false,
    supportsDynamicMutexes: false,
    mutexes: { estimate: [], download: [], update: task.mutexes },
    dependencies: { estimate: [], download: [], update: task.dependencies },
    runsAfter: task.after.map((id) => id.slice(0, id.lastIndexOf(':'))),
    timeouts: { isApplicable: 10, estimateUpdate: 60, download: 600, update: 600, other: 10 },
    potentialAffects: [],
    settings: {},
    source: { layer: 'builtin', path: '/bench/plugin.yaml' },
  }));
}

async function overheadRun(): Promise<{ milliseconds: number; plugins: number }> {
  const folder = mkdtempSync(join(tmpdir(), 'upkeep-bench-update-'));
  try {
    const { database } = await openStatsDatabase(join(folder, 'stats.sqlite'));
    const plugins = manifestsFor(7);
    const started = performance.now();
    const run = new UpdateRun({
      kind: 'run',
      plugins,
      executor: new InstantPlugins(),
      environment: { PATH: '/usr/bin:/bin', HOME: folder },
      stateRoot: folder,
      settings: {},
      limits: { parallel: 4, maxDownloads: 2, maxMemoryMb: 4096, nice: 0 },
      retries: 0,
      retryDelay: 0,
      continueOnError: true,
      dryRun: false,
      stats: database,
      now: () => new Date(),
      pid: process.pid,
      isRoot: true,
      canSudo: true,
      onEvent: () => undefined,
    });
    const report = await run.run();
    const milliseconds = performance.now() - started;
    database.close();
    if (report.summary.succeeded.length !== plugins.length) throw new Error(`the overhead run updated ${report.summary.succeeded.length} of ${plugins.length} plugins`);
    return { milliseconds, plugins: plugins.length };
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

await overheadRun(); // warm-up: module loading, the native sqlite module
const overheadRuns = [];
for (let index = 0; index < 5; index += 1) overheadRuns.push(await overheadRun());
const perPlugin = overheadRuns.map((entry) => entry.milliseconds / entry.plugins).sort((a, b) => a - b);
const overheadPerPlugin = perPlugin[Math.floor(perPlugin.length / 2)]!;

// --- estimates -----------------------------------------------------------------
const estimates = benchmarkEstimates({ seed: 1 });

const result = {
  sequential: round(schedules.sequential, 1),
  waves: round(schedules.waves, 1),
  upkeep: round(schedules.upkeep, 1),
  lowerBound: round(schedules.lowerBound, 1),
  ratioToLowerBound: round(schedules.ratioToLowerBound, 3),
  worstRatio: round(schedules.worstRatio, 3),
  instances: schedules.instances.length,
  plugins: schedules.plugins,
  parallel: schedules.parallel,
  overheadMillisecondsPerPlugin: round(overheadPerPlugin, 2),
  estimationMedianAbsolutePercentageError: round(estimates.medianAbsolutePercentageError, 1),
  seedMethodMedianAbsolutePercentageError: round(estimates.baselineSeedMethod, 1),
};

console.log('upkeep update: 40 synthetic plugins, parallel 4, mean of', schedules.instances.length, 'random instances (seconds)');
console.table({
  'one after another (topgrade)': { seconds: result.sequential, 'x lower bound': round(schedules.sequential / schedules.lowerBound) },
  "the seed's waves": { seconds: result.waves, 'x lower bound': round(schedules.waves / schedules.lowerBound) },
  upkeep: { seconds: result.upkeep, 'x lower bound': result.ratioToLowerBound },
  'lower bound': { seconds: result.lowerBound, 'x lower bound': 1 },
});
console.log(`orchestration overhead: ${result.overheadMillisecondsPerPlugin} ms per plugin (target < 5)`);
console.log(
  `estimation error (median absolute percentage error on a replayed history): ${result.estimationMedianAbsolutePercentageError}% (the seed's method: ${result.seedMethodMedianAbsolutePercentageError}%)`,
);
writeFileSync(join(root, 'bench', 'results', 'update.json'), `${JSON.stringify(result, null, 2)}\n`);
