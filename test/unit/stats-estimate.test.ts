import { describe, expect, it } from 'vitest';
import { benchmarkEstimates } from '../../bench/update-estimate.ts';
import type { PhaseRecord } from '../../src/update/stats/db.ts';
import { type Estimate, estimatePhase, formatDuration, formatEstimate } from '../../src/update/stats/estimate.ts';

const MB = 1024 * 1024;

/** Records for the given runs, newest first (the first entry ran most recently). */
function history(runs: Array<number | Partial<PhaseRecord>>): PhaseRecord[] {
  const start = Date.UTC(2025, 5, 1);
  return runs.map((run, age) => ({
    runId: `run-${age}`,
    plugin: 'apt',
    phase: 'update',
    startedAt: new Date(start - age * 86_400_000).toISOString(),
    wallSeconds: 0,
    cpuUserSeconds: 0,
    cpuSystemSeconds: 0,
    peakRssBytes: 0,
    readBytes: 0,
    writeBytes: 0,
    downloadBytes: null,
    packageCount: null,
    success: true,
    attempts: 1,
    error: null,
    ...(typeof run === 'number' ? { wallSeconds: run } : run),
  }));
}

/** A fixed wobble in [-1, 1] that looks irregular but is the same on every run of the tests. */
const wobble = (index: number) => Math.sin(index * 12.9898) * 0.5 + Math.sin(index * 78.233) * 0.5;

describe('estimatePhase from history', () => {
  const typical = [20, 21, 19, 20, 22, 20, 21, 19, 20, 21, 18, 23];

  it('sets outliers aside instead of letting them drag the estimate', () => {
    const estimate = estimatePhase(history([...typical.slice(0, 6), 200, ...typical.slice(6), 2]));
    expect(estimate.basis).toBe('history');
    expect(estimate.seconds).toBeGreaterThanOrEqual(19);
    expect(estimate.seconds).toBeLessThanOrEqual(21);
    expect(estimate.high).toBeLessThan(30);
    expect(estimate.low).toBeGreaterThan(15);
    expect(estimate.dataPoints).toBe(typical.length);
  });

  it('gives an interval that holds most runs and the point', () => {
    const estimate = estimatePhase(history(typical));
    const inside = typical.filter((seconds) => estimate.low <= seconds && seconds <= estimate.high);
    // The 10th to 90th percentile of twelve points, interpolated: the extremes fall just outside.
    expect(inside.length / typical.length).toBeGreaterThanOrEqual(0.7);
    expect(estimate.low).toBeLessThanOrEqual(19);
    expect(estimate.high).toBeGreaterThanOrEqual(21);
    expect(estimate.low).toBeLessThan(estimate.seconds);
    expect(estimate.seconds).toBeLessThan(estimate.high);
  });

  it('widens the interval when there are few points', () => {
    expect(estimatePhase(history([60]))).toEqual({ seconds: 60, low: 30, high: 120, dataPoints: 1, basis: 'history' });
    const three = estimatePhase(history([60, 60, 60]));
    expect(three.low).toBeCloseTo(45);
    expect(three.high).toBeCloseTo(80);
  });

  it('ignores failed runs, looks only at the 30 most recent successes, whatever the order given', () => {
    const recent = Array.from({ length: 30 }, () => 10);
    const older = Array.from({ length: 20 }, () => 100);
    const records = history([...recent, ...older]);
    records.splice(3, 0, ...history([{ wallSeconds: 500, success: false, error: 'E' }]));
    const estimate = estimatePhase(records.toReversed());
    expect(estimate.seconds).toBe(10);
    expect(estimate.dataPoints).toBe(30);
  });

  it('follows a lasting change: recent runs weigh more, and the old level becomes the outlier', () => {
    // Newest first: the last ten runs took 30 s, the eleven before them 20 s.
    const estimate = estimatePhase(history([...Array.from({ length: 10 }, () => 30), ...Array.from({ length: 11 }, () => 20)]));
    expect(estimate.seconds).toBe(30);
    expect(estimate.dataPoints).toBe(10);
  });
});

describe('estimatePhase with download size and package count', () => {
  // apt-like: 8 s, plus 0.9 s per 10 MB, plus 0.6 s per package, with ±5 % noise.
  const linear = Array.from({ length: 20 }, (_, index) => {
    const packageCount = 2 + ((index * 7) % 23);
    const downloadBytes = Math.round((1 + ((index * 11) % 17)) * 12 * MB);
    const clean = 8 + 0.9 * (downloadBytes / (10 * MB)) + 0.6 * packageCount;
    return { wallSeconds: clean * (1 + 0.05 * wobble(index)), downloadBytes, packageCount };
  });

  it('uses the model when the time follows the size and count', () => {
    const estimate = estimatePhase(history(linear), { downloadBytes: 200 * MB, packageCount: 40 });
    const truth = 8 + 0.9 * 20 + 0.6 * 40;
    expect(estimate.basis).toBe('model');
    expect(Math.abs(estimate.seconds - truth) / truth).toBeLessThan(0.1);
    expect(estimate.low).toBeLessThan(truth);
    expect(estimate.high).toBeGreaterThan(truth);
  });

  it('keeps the model when a few runs stalled', () => {
    const stalled = linear.map((run, index) => (index % 7 === 3 ? { ...run, wallSeconds: run.wallSeconds * 3 } : run));
    const estimate = estimatePhase(history(stalled), { downloadBytes: 200 * MB, packageCount: 40 });
    expect(estimate.basis).toBe('model');
    expect(Math.abs(estimate.seconds - 50) / 50).toBeLessThan(0.15);
  });

  it('stays with the median when the time has nothing to do with size or count', () => {
    const noise = linear.map((run, index) => ({ ...run, wallSeconds: 30 * (1 + 0.25 * wobble(index + 100)) }));
    const estimate = estimatePhase(history(noise), { downloadBytes: 200 * MB, packageCount: 40 });
    expect(estimate.basis).toBe('history');
    expect(estimate.seconds).toBeGreaterThan(22);
    expect(estimate.seconds).toBeLessThan(38);
  });

  it('needs eight points, features that vary, and this run\'s features', () => {
    const features = { downloadBytes: 200 * MB, packageCount: 40 };
    expect(estimatePhase(history(linear.slice(0, 7)), features).basis).toBe('history');
    const constant = linear.map((run) => ({ ...run, downloadBytes: 5 * MB, packageCount: 3 }));
    expect(estimatePhase(history(constant), features).basis).toBe('history');
    expect(estimatePhase(history(linear)).basis).toBe('history');
    const unknown = linear.map((run) => ({ ...run, downloadBytes: null, packageCount: null }));
    expect(estimatePhase(history(unknown), features).basis).toBe('history');
  });

  it('copes with features that move together (one of them is enough)', () => {
    const collinear = linear.map((run) => ({ ...run, downloadBytes: run.packageCount * 3 * MB, wallSeconds: 5 + run.packageCount * 2 }));
    const estimate = estimatePhase(history(collinear), { downloadBytes: 30 * 3 * MB, packageCount: 30 });
    expect(estimate.basis).toBe('model');
    expect(estimate.seconds).toBeCloseTo(65, 0);
  });

  it('uses the package count alone when the plugin reports no sizes', () => {
    const countOnly = linear.map((run, index) => ({ ...run, downloadBytes: null, wallSeconds: (4 + 3 * run.packageCount) * (1 + 0.05 * wobble(index)) }));
    const estimate = estimatePhase(history(countOnly), { packageCount: 10 });
    expect(estimate.basis).toBe('model');
    expect(Math.abs(estimate.seconds - 34) / 34).toBeLessThan(0.1);
  });
});

describe('estimatePhase without history', () => {
  it('takes the plugin\'s own guess', () => {
    expect(estimatePhase([], { pluginSeconds: 90 })).toEqual({ seconds: 90, low: 45, high: 180, dataPoints: 0, basis: 'plugin' });
  });

  it('falls back to a default per phase, with a wide interval', () => {
    expect(estimatePhase([], { phase: 'update' })).toMatchObject({ seconds: 60, dataPoints: 0, basis: 'default' });
    expect(estimatePhase([], { phase: 'estimate' })).toMatchObject({ seconds: 10, basis: 'default' });
    expect(estimatePhase([], { phase: 'download' })).toMatchObject({ seconds: 30, basis: 'default' });
    const fallback = estimatePhase([]);
    expect(fallback.seconds).toBe(60);
    expect(fallback.high / fallback.low).toBeGreaterThanOrEqual(9);
    expect(estimatePhase([], { pluginSeconds: 0, phase: 'estimate' }).basis).toBe('default');
  });

  it('treats a history of failures as no history', () => {
    expect(estimatePhase(history([{ wallSeconds: 5, success: false }]), { pluginSeconds: 42 }).basis).toBe('plugin');
  });
});

describe('formatDuration and formatEstimate', () => {
  it.each([
    [0, '0s'],
    [0.2, '<1s'],
    [45, '45s'],
    [59.6, '1m'],
    [120, '2m'],
    [130, '2m 10s'],
    [3599.7, '1h'],
    [3900, '1h 5m'],
    [7200, '2h'],
    [Number.NaN, '?'],
  ])('%s seconds -> %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });

  const estimate = (overrides: Partial<Estimate>): Estimate => ({ seconds: 130, low: 110, high: 160, dataPoints: 12, basis: 'history', ...overrides });

  it('writes the seed\'s three forms', () => {
    expect(formatEstimate(estimate({}))).toBe('2m 10s (1m 50s - 2m 40s)');
    expect(formatEstimate(estimate({ dataPoints: 0, basis: 'plugin' }))).toBe('~2m 10s (no history)');
    expect(formatEstimate(estimate({ seconds: 120, dataPoints: 3 }))).toBe('~2m (limited data)');
  });
});

describe('the replay benchmark', () => {
  it('beats the seed\'s mean ± 2σ on the same replay, the same way every time', () => {
    const result = benchmarkEstimates({ seed: 7 });
    expect(result.medianAbsolutePercentageError).toBeLessThan(result.baselineSeedMethod);
    expect(result.points).toBe(Object.values(result.byPlugin).reduce((sum, plugin) => sum + plugin.points, 0));
    expect(result.byPlugin.apt!.modelShare).toBeGreaterThan(0.5);
    expect(result.byPlugin.npm!.modelShare).toBeLessThan(0.5);
    expect(benchmarkEstimates({ seed: 7 })).toEqual(result);
  });
});
