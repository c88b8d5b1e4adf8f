/**
 * How accurate the time estimates are, on a replayed history: synthetic but
 * shaped like real plugins (apt: time grows with download size and package
 * count, a few stalled mirrors; npm: nearly constant; flatpak: heavy-tailed;
 * cargo: compiling, so time follows the number of crates; pipx: slowly
 * growing as tools accumulate). Runs are replayed in time order: each run is
 * estimated from the runs before it (after a warm-up of three), as upkeep
 * would have done that day. The error is the median absolute percentage
 * error (MdAPE); the seed's method (mean after dropping points beyond 2σ,
 * seed 002 §12.2) is scored on the same replay.
 * Run: npx tsx bench/update-estimate.ts
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PhaseRecord } from '../src/update/stats/db.ts';
import { HISTORY_WINDOW, estimatePhase, median } from '../src/update/stats/estimate.ts';
import { generator } from './random.ts';

export interface PluginAccuracy {
  medianAbsolutePercentageError: number;
  baselineSeedMethod: number;
  points: number;
  /** Share of estimates that used the size/package regression. */
  modelShare: number;
  /** Share of actual durations inside the estimate's interval (10th..90th percentile: about 0.8 is right). */
  intervalCoverage: number;
}

export interface EstimateBenchmark {
  medianAbsolutePercentageError: number;
  byPlugin: Record<string, PluginAccuracy>;
  baselineSeedMethod: number;
  points: number;
  intervalCoverage: number;
}

const RUNS_PER_PLUGIN = 60;
const WARM_UP = 3;
const MB = 1024 * 1024;

interface Run {
  seconds: number;
  downloadBytes: number;
  packageCount: number;
}

type Random = () => number;

function normal(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const SCENARIOS: Record<string, (random: Random, index: number) => Run> = {
  apt: (random) => {
    const packageCount = Math.max(1, Math.min(150, Math.round(8 * Math.exp(0.9 * normal(random)))));
    const downloadBytes = Math.round(packageCount * 1.5 * MB * Math.exp(0.6 * normal(random)));
    const clean = 8 + 0.9 * (downloadBytes / (10 * MB)) + 0.6 * packageCount;
    const outlier = random() < 0.05 ? 3 : 1;
    return { seconds: Math.max(1, clean * (1 + 0.15 * normal(random)) * outlier), downloadBytes, packageCount };
  },
  npm: (random) => {
    const packageCount = 1 + Math.floor(random() * 4);
    const downloadBytes = Math.round(packageCount * 2 * MB * Math.exp(0.5 * normal(random)));
    const outlier = random() < 0.03 ? 2.5 : 1;
    return { seconds: Math.max(1, 12 * (1 + 0.08 * normal(random)) * outlier), downloadBytes, packageCount };
  },
  flatpak: (random) => {
    const packageCount = 1 + Math.floor(random() * 6);
    const downloadBytes = Math.round(80 * MB * Math.exp(1.2 * normal(random)));
    // Lognormal body with a Pareto tail (α = 1.5) one run in ten: runtimes rebuilt, deltas that fall back to full downloads.
    const tail = random() < 0.1 ? (1 - random()) ** (-1 / 1.5) : 1;
    return { seconds: 20 * Math.exp(0.5 * normal(random)) * tail, downloadBytes, packageCount };
  },
  cargo: (random) => {
    const packageCount = Math.max(1, Math.round(1.5 + 1.2 * normal(random)));
    const downloadBytes = Math.round(packageCount * 0.5 * MB * Math.exp(0.4 * normal(random)));
    return { seconds: Math.max(1, (3 + 45 * packageCount) * (1 + 0.2 * normal(random))), downloadBytes, packageCount };
  },
  pipx: (random, index) => {
    const packageCount = 1 + Math.floor(random() * 3);
    const downloadBytes = Math.round(packageCount * 5 * MB * Math.exp(0.5 * normal(random)));
    return { seconds: Math.max(1, 20 * (1 + 0.01 * index) * (1 + 0.1 * normal(random))), downloadBytes, packageCount };
  },
};

/** The seed's estimator (§12.2): mean, after dropping points beyond 2σ once there are five. */
function seedEstimate(durations: readonly number[]): number {
  const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  let times = [...durations];
  if (times.length >= 5) {
    const average = mean(times);
    const deviation = Math.sqrt(times.reduce((sum, value) => sum + (value - average) ** 2, 0) / (times.length - 1));
    times = times.filter((value) => Math.abs(value - average) <= 2 * deviation);
  }
  return mean(times);
}

function record(plugin: string, index: number, run: Run): PhaseRecord {
  return {
    runId: `run-${index}`,
    plugin,
    phase: 'update',
    startedAt: new Date(Date.UTC(2025, 0, 1) + index * 86_400_000).toISOString(),
    wallSeconds: run.seconds,
    cpuUserSeconds: 0,
    cpuSystemSeconds: 0,
    peakRssBytes: 0,
    readBytes: 0,
    writeBytes: 0,
    downloadBytes: run.downloadBytes,
    packageCount: run.packageCount,
    success: true,
    attempts: 1,
    error: null,
  };
}

const percentError = (estimate: number, actual: number) => (Math.abs(estimate - actual) / actual) * 100;
const round = (value: number) => Math.round(value * 10) / 10;
const share = (part: number, whole: number) => Math.round((part / whole) * 100) / 100;

export function benchmarkEstimates(options: { seed?: number } = {}): EstimateBenchmark {
  const random = generator(options.seed ?? 1);
  const byPlugin: Record<string, PluginAccuracy> = {};
  const allErrors: number[] = [];
  const allSeedErrors: number[] = [];
  let covered = 0;
  for (const [plugin, scenario] of Object.entries(SCENARIOS)) {
    const runs = Array.from({ length: RUNS_PER_PLUGIN }, (_, index) => scenario(random, index));
    const errors: number[] = [];
    const seedErrors: number[] = [];
    let modelUsed = 0;
    let pluginCovered = 0;
    for (let index = WARM_UP; index < runs.length; index++) {
      const actual = runs[index]!;
      const history = runs
        .slice(0, index)
        .map((run, past) => record(plugin, past, run))
        .reverse();
      const estimate = estimatePhase(history, { downloadBytes: actual.downloadBytes, packageCount: actual.packageCount, phase: 'update' });
      errors.push(percentError(estimate.seconds, actual.seconds));
      seedErrors.push(percentError(seedEstimate(history.slice(0, HISTORY_WINDOW).map((past) => past.wallSeconds)), actual.seconds));
      if (estimate.basis === 'model') modelUsed++;
      if (estimate.low <= actual.seconds && actual.seconds <= estimate.high) pluginCovered++;
    }
    byPlugin[plugin] = {
      medianAbsolutePercentageError: round(median(errors)),
      baselineSeedMethod: round(median(seedErrors)),
      points: errors.length,
      modelShare: share(modelUsed, errors.length),
      intervalCoverage: share(pluginCovered, errors.length),
    };
    allErrors.push(...errors);
    allSeedErrors.push(...seedErrors);
    covered += pluginCovered;
  }
  return {
    medianAbsolutePercentageError: round(median(allErrors)),
    byPlugin,
    baselineSeedMethod: round(median(allSeedErrors)),
    points: allErrors.length,
    intervalCoverage: share(covered, allErrors.length),
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = benchmarkEstimates();
  const rows = Object.entries(result.byPlugin).map(([plugin, accuracy]) => ({ plugin, ...accuracy }));
  rows.push({
    plugin: 'all',
    medianAbsolutePercentageError: result.medianAbsolutePercentageError,
    baselineSeedMethod: result.baselineSeedMethod,
    points: result.points,
    modelShare: share(rows.reduce((sum, row) => sum + row.modelShare * row.points, 0), result.points),
    intervalCoverage: result.intervalCoverage,
  });
  console.log('estimation error on a replayed history (MdAPE, %): upkeep vs the seed\'s mean±2σ');
  console.table(rows);
}
