import type { Phase } from '../plugin/manifest.ts';
import type { PhaseRecord } from './db.ts';

/**
 * How long a plugin phase will take (seed 002 §12), from its own history.
 *
 * Durations are skewed (a big upgrade takes many times the usual) and noisy
 * (mirrors, caches, a busy machine), so everything here is robust: outliers
 * are found with the median absolute deviation, which outliers cannot
 * inflate (mean ± 2σ, the seed's method, lets one huge run widen σ until it
 * hides itself), and the point estimate is a median weighted towards recent
 * runs. Work is measured on a log scale because noise is multiplicative:
 * 15 % of a 10-minute run is more seconds than 15 % of a 10-second one.
 */

export type EstimateBasis = 'history' | 'model' | 'plugin' | 'default';

export interface Estimate {
  /** Point estimate, seconds. */
  seconds: number;
  /**
   * The interval most runs fall in, seconds: the 10th to 90th percentile of
   * the history (of the model's leave-one-out misses for 'model'), widened
   * when there are few points.
   */
  low: number;
  high: number;
  /** History points the estimate rests on (after outliers were set aside); 0 without history. */
  dataPoints: number;
  basis: EstimateBasis;
}

export interface EstimateFeatures {
  /** What estimate-update says this run will download. */
  downloadBytes?: number;
  /** How many packages estimate-update says this run will update. */
  packageCount?: number;
  /** The plugin's own guess (estimate-update's estimated_time_seconds). */
  pluginSeconds?: number;
  /** The phase estimated; picks the default when there is neither history nor a plugin guess. Default 'update'. */
  phase?: Phase;
}

/** The most recent successful runs an estimate looks at: older ones describe a machine that changed since. */
export const HISTORY_WINDOW = 30;
/** A regression on size and package count needs this many points to be worth trying. */
const MODEL_MINIMUM_POINTS = 8;
/**
 * The model must beat the median's leave-one-out error by this factor, so
 * that chance fits on noise lose (in the replay, 0.9 still let features that
 * explain nothing win one estimate in eight, 0.8 one in twenty, for 0.1 to
 * 0.3 points more error where size does matter).
 */
const MODEL_MARGIN = 0.8;
/**
 * Weight of a run relative to the next newer one in the median: machines
 * drift (more tools installed, another mirror). In the replay (bench/
 * update-estimate.ts, 30 seeds) 0.95 against the plain median: the slowly
 * growing plugin 10.6 % -> 9.3 %, the heavy-tailed one 34.7 % -> 35.3 %, the
 * others unchanged, all 12.6 % -> 12.2 %; 0.9 gained more on the first and
 * lost more on the second.
 */
const RECENCY_DECAY = 0.95;
/** A point further than this many scaled MADs from the median is an outlier (Hampel's rule). */
const OUTLIER_THRESHOLD = 3;
/** Scales the MAD to σ for normal data. */
const MAD_TO_SIGMA = 1.4826;
/** Floor of the spread (log scale, ~10 %): when most runs take the same time, a run 20 % slower is not an outlier. */
const MINIMUM_SPREAD = 0.1;
const DEFAULT_SECONDS: Record<Phase, number> = { estimate: 10, download: 30, update: 60 };
/** Without history the interval says how little is known. */
const DEFAULT_FACTOR = 4;
const PLUGIN_FACTOR = 2;

export function estimatePhase(history: readonly PhaseRecord[], features: EstimateFeatures = {}): Estimate {
  const recent = history
    .filter((record) => record.success && Number.isFinite(record.wallSeconds) && record.wallSeconds >= 0)
    .toSorted((a, b) => b.startedAt.localeCompare(a.startedAt))
    .slice(0, HISTORY_WINDOW);
  if (recent.length === 0) return estimateWithoutHistory(features);
  const fromHistory = estimateFromDurations(recent.map((record) => record.wallSeconds));
  return estimateFromModel(recent, features) ?? fromHistory;
}

function estimateWithoutHistory(features: EstimateFeatures): Estimate {
  if (features.pluginSeconds !== undefined && Number.isFinite(features.pluginSeconds) && features.pluginSeconds > 0) {
    const seconds = features.pluginSeconds;
    return { seconds, low: seconds / PLUGIN_FACTOR, high: seconds * PLUGIN_FACTOR, dataPoints: 0, basis: 'plugin' };
  }
  const seconds = DEFAULT_SECONDS[features.phase ?? 'update'];
  return { seconds, low: seconds / DEFAULT_FACTOR, high: seconds * DEFAULT_FACTOR, dataPoints: 0, basis: 'default' };
}

/** Recency-weighted median of the inliers (durations newest first), interval from their 10th and 90th percentiles. */
function estimateFromDurations(durations: readonly number[]): Estimate {
  const weights = durations.map((_, age) => RECENCY_DECAY ** age);
  // Weighted here too: after a lasting change (a slower mirror) the new level is the norm, not the outliers.
  const mask = inliers(durations.map(toLog), weights);
  const entries = durations.map((value, index) => ({ value, weight: weights[index]! })).filter((_, index) => mask[index]);
  const seconds = weightedMedian(entries);
  const kept = entries.map((entry) => entry.value).toSorted((a, b) => a - b);
  const [low, high] = widen(seconds, quantile(kept, 0.1), quantile(kept, 0.9), kept.length);
  return { seconds, low, high, dataPoints: kept.length, basis: 'history' };
}

/**
 * A few points cannot show the spread of the many runs to come: the interval
 * is at least point/(1 + 1/n) .. point·(1 + 1/n), i.e. a factor of 2 either
 * way from a single run (the seed's width) narrowing as runs accumulate.
 */
function widen(point: number, low: number, high: number, count: number): [number, number] {
  const factor = 1 + 1 / count;
  return [Math.min(low, point / factor), Math.max(high, point * factor)];
}

// ---- the regression --------------------------------------------------------

interface Sample {
  seconds: number;
  /** Values of the chosen features, in column order. */
  features: number[];
}

interface LinearModel {
  predict(features: readonly number[]): number;
}

type FeatureName = 'downloadBytes' | 'packageCount';
const FEATURE_NAMES: readonly FeatureName[] = ['downloadBytes', 'packageCount'];

/**
 * seconds ≈ a + b·downloadBytes + c·packageCount, fitted on the history
 * points that know those features, and used only when its leave-one-out
 * error beats the plain median's on the same points: a regression that
 * merely fits noise never replaces the median.
 */
function estimateFromModel(recent: readonly PhaseRecord[], features: EstimateFeatures): Estimate | null {
  const usable = FEATURE_NAMES.filter((name) => {
    const current = features[name];
    if (current === undefined || !Number.isFinite(current)) return false;
    const values = recent.map((record) => record[name]).filter((value): value is number => value !== null && Number.isFinite(value));
    return values.length >= MODEL_MINIMUM_POINTS && new Set(values).size >= 3;
  });

  let best: { columns: FeatureName[]; model: LinearModel; error: number; ratios: number[] } | null = null;
  for (const columns of nonEmptySubsets(usable)) {
    const samples = recent
      .filter((record) => columns.every((name) => record[name] !== null))
      .map((record) => ({ seconds: record.wallSeconds, features: columns.map((name) => record[name]!) }));
    if (samples.length < MODEL_MINIMUM_POINTS) continue;
    const model = fitRobust(samples);
    if (model === null) continue;
    const modelMisses = leaveOneOut(samples, fitRobust);
    const medianMisses = leaveOneOut(samples, (rest) => constantModel(estimateFromDurations(rest.map((sample) => sample.seconds)).seconds));
    if (modelMisses.error < MODEL_MARGIN * medianMisses.error && (best === null || modelMisses.error < best.error)) {
      best = { columns, model, ...modelMisses };
    }
  }
  if (best === null) return null;

  const seconds = best.model.predict(best.columns.map((name) => features[name]!));
  // The interval comes from how far the leave-one-out predictions missed: out-of-sample misses, stalls included.
  const ratios = best.ratios.toSorted((a, b) => a - b);
  const [low, high] = widen(
    seconds,
    fromLog(toLog(seconds) + quantile(ratios, 0.1)),
    fromLog(toLog(seconds) + quantile(ratios, 0.9)),
    ratios.length,
  );
  return { seconds, low, high, dataPoints: ratios.length, basis: 'model' };
}

/** Median absolute percentage error of predicting each sample from the others, and the log ratios of those predictions. */
function leaveOneOut(samples: readonly Sample[], fit: (rest: Sample[]) => LinearModel | null): { error: number; ratios: number[] } {
  const errors: number[] = [];
  const ratios: number[] = [];
  samples.forEach((sample, index) => {
    const model = fit(samples.filter((_, other) => other !== index));
    const predicted = model?.predict(sample.features) ?? Number.NaN;
    if (!Number.isFinite(predicted)) {
      errors.push(Number.POSITIVE_INFINITY);
      return;
    }
    errors.push(Math.abs(predicted - sample.seconds) / Math.max(sample.seconds, Number.EPSILON));
    ratios.push(toLog(sample.seconds) - toLog(predicted));
  });
  return { error: median(errors), ratios };
}

function constantModel(seconds: number): LinearModel {
  return { predict: () => seconds };
}

/** Least squares, then once more without the points it misses by too much (a stalled mirror is not a size effect). */
function fitRobust(samples: readonly Sample[]): LinearModel | null {
  const first = leastSquares(samples);
  if (first === null) return null;
  const mask = inliers(samples.map((sample) => toLog(sample.seconds) - toLog(first.predict(sample.features))));
  const kept = samples.filter((_, index) => mask[index]);
  return kept.length === samples.length ? first : leastSquares(kept);
}

/**
 * Weighted least squares on standardised columns. The weight
 * 1/(seconds + 1)² minimises relative rather than absolute error, which is what a percentage
 * error asks for and what multiplicative noise calls for. A slope below zero
 * (more to download, faster?) or a singular system means the data cannot
 * support the model: no model.
 */
function leastSquares(samples: readonly Sample[]): LinearModel | null {
  const columnCount = samples[0]?.features.length ?? 0;
  if (samples.length < columnCount + 3) return null;
  const centres: number[] = [];
  const scales: number[] = [];
  for (let column = 0; column < columnCount; column++) {
    const values = samples.map((sample) => sample.features[column]!);
    const centre = values.reduce((sum, value) => sum + value, 0) / values.length;
    const spread = Math.sqrt(values.reduce((sum, value) => sum + (value - centre) ** 2, 0) / values.length);
    if (!(spread > 0)) return null;
    centres.push(centre);
    scales.push(spread);
  }
  const row = (features: readonly number[]) => [1, ...features.map((value, column) => (value - centres[column]!) / scales[column]!)];

  const size = columnCount + 1;
  const normal = Array.from({ length: size }, () => new Array<number>(size + 1).fill(0));
  for (const sample of samples) {
    const x = row(sample.features);
    const weight = 1 / (sample.seconds + 1) ** 2;
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) normal[i]![j]! += weight * x[i]! * x[j]!;
      normal[i]![size]! += weight * x[i]! * sample.seconds;
    }
  }
  const coefficients = solve(normal);
  if (coefficients === null || coefficients.slice(1).some((slope) => slope < 0)) return null;
  const floor = Math.min(...samples.map((sample) => sample.seconds)) / 2;
  return {
    predict: (features) => {
      const x = row(features);
      // Far below every observed run is an extrapolation artefact, not a prediction.
      return Math.max(floor, x.reduce((sum, value, index) => sum + value * coefficients[index]!, 0));
    },
  };
}

/** Gaussian elimination with partial pivoting on an augmented matrix; null when (nearly) singular. */
function solve(augmented: number[][]): number[] | null {
  const size = augmented.length;
  const tolerance = 1e-10 * Math.max(...augmented.map((row, index) => Math.abs(row[index]!)));
  for (let column = 0; column < size; column++) {
    let pivot = column;
    for (let row = column + 1; row < size; row++) {
      if (Math.abs(augmented[row]![column]!) > Math.abs(augmented[pivot]![column]!)) pivot = row;
    }
    if (!(Math.abs(augmented[pivot]![column]!) > tolerance)) return null;
    [augmented[column], augmented[pivot]] = [augmented[pivot]!, augmented[column]!];
    for (let row = column + 1; row < size; row++) {
      const factor = augmented[row]![column]! / augmented[column]![column]!;
      for (let k = column; k <= size; k++) augmented[row]![k]! -= factor * augmented[column]![k]!;
    }
  }
  const solution = new Array<number>(size).fill(0);
  for (let row = size - 1; row >= 0; row--) {
    let sum = augmented[row]![size]!;
    for (let k = row + 1; k < size; k++) sum -= augmented[row]![k]! * solution[k]!;
    solution[row] = sum / augmented[row]![row]!;
  }
  return solution;
}

function nonEmptySubsets<T>(items: readonly T[]): T[][] {
  const subsets: T[][] = [];
  for (let bits = (1 << items.length) - 1; bits > 0; bits--) subsets.push(items.filter((_, index) => bits & (1 << index)));
  return subsets;
}

// ---- robust statistics -----------------------------------------------------

/**
 * Which values lie within OUTLIER_THRESHOLD scaled MADs of the median (both
 * weighted when weights are given); with fewer than three values, all do.
 */
function inliers(values: readonly number[], weights: readonly number[] = values.map(() => 1)): boolean[] {
  if (values.length < 3) return values.map(() => true);
  const centre = weightedMedian(values.map((value, index) => ({ value, weight: weights[index]! })));
  const deviation = weightedMedian(values.map((value, index) => ({ value: Math.abs(value - centre), weight: weights[index]! })));
  const spread = Math.max(MAD_TO_SIGMA * deviation, MINIMUM_SPREAD);
  return values.map((value) => Math.abs(value - centre) <= OUTLIER_THRESHOLD * spread);
}

/**
 * Durations on a log scale. One second is added so that sub-second phases,
 * whose ratios mean nothing (0.1 s against 0.3 s), never look like outliers.
 */
function toLog(seconds: number): number {
  return Math.log(seconds + 1);
}

function fromLog(value: number): number {
  return Math.exp(value) - 1;
}

/** Linear interpolation between order statistics of sorted values (numpy's default). */
export function quantile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * fraction;
  const below = Math.floor(position);
  const lower = sorted[below]!;
  const upper = sorted[Math.min(below + 1, sorted.length - 1)]!;
  return lower + (upper - lower) * (position - below);
}

/** The smallest value holding at least half of the total weight. */
function weightedMedian(entries: ReadonlyArray<{ value: number; weight: number }>): number {
  const sorted = entries.toSorted((a, b) => a.value - b.value);
  const half = sorted.reduce((sum, entry) => sum + entry.weight, 0) / 2;
  let cumulative = 0;
  for (const entry of sorted) {
    cumulative += entry.weight;
    if (cumulative >= half) return entry.value;
  }
  return Number.NaN;
}

export function median(values: readonly number[]): number {
  return quantile(values.toSorted((a, b) => a - b), 0.5);
}

// ---- display ---------------------------------------------------------------

/** 45s, 2m 10s, 2m, 1h 5m: whole seconds under an hour, whole minutes above. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds > 0 && seconds < 0.5) return '<1s';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) {
    const minutes = Math.floor(whole / 60);
    const rest = whole % 60;
    return rest === 0 ? `${minutes}m` : `${minutes}m ${rest}s`;
  }
  const totalMinutes = Math.round(whole / 60);
  const hours = Math.floor(totalMinutes / 60);
  const minutes = totalMinutes % 60;
  return minutes === 0 ? `${hours}h` : `${hours}h ${minutes}m`;
}

/** Seed §12.3: `~2m 10s (no history)`, `~2m (limited data)`, `2m 10s (1m 50s - 2m 40s)`. */
export function formatEstimate(estimate: Estimate): string {
  const point = formatDuration(estimate.seconds);
  if (estimate.dataPoints === 0) return `~${point} (no history)`;
  if (estimate.dataPoints < 5) return `~${point} (limited data)`;
  return `${point} (${formatDuration(estimate.low)} - ${formatDuration(estimate.high)})`;
}
