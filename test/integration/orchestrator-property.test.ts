import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Executor, type ExecOptions, type ExecResult } from '../../src/core/exec.ts';
import type { PluginManifest } from '../../src/update/plugin/manifest.ts';
import { UpdateRun } from '../../src/update/run/orchestrator.ts';

const POOL = ['pkgmgr:apt', 'pkgmgr:dpkg', 'runtime:python', 'runtime:node'];

interface Recorded {
  plugin: string;
  command: string;
  start: number;
  end: number;
}

/**
 * Plugins answered in-process: every download and update takes a few random
 * milliseconds and is recorded with its real start and end, so that the
 * properties below are checked on what the orchestrator actually did, not on
 * a simulation.
 */
class RecordingPlugins extends Executor {
  readonly phases: Recorded[] = [];

  constructor(private readonly delays: Map<string, number>) {
    super();
  }

  override async run(argv: readonly string[], _options: ExecOptions = {}): Promise<ExecResult> {
    const plugin = argv[0]!.slice(argv[0]!.lastIndexOf('/') + 1);
    const command = argv[1]!;
    let data: unknown = { package_count: 1 };
    if (command === 'is-applicable') data = { applicable: true };
    if (command === 'estimate-update') data = { applicable: true, packages_to_update: [{ name: `${plugin}-package`, current_version: '1', new_version: '2' }] };
    if (command === 'can-separate-download') data = { can_separate_download: true };
    if (command === 'download' || command === 'update') {
      const start = performance.now();
      await new Promise((resolve) => setTimeout(resolve, this.delays.get(`${plugin}:${command}`) ?? 0));
      this.phases.push({ plugin, command, start, end: performance.now() });
    }
    const stdout = `${JSON.stringify({ protocol: 1, status: 'success', data, error: null })}\n`;
    return { argv, exitCode: 0, signal: null, stdout, stderr: '', timedOut: false, truncated: false, durationMs: 0, dryRun: false };
  }
}

const pluginSets = fc
  .array(
    fc.record({
      mutexes: fc.subarray(POOL, { maxLength: 2 }),
      dependencies: fc.subarray(POOL, { maxLength: 1 }),
      after: fc.array(fc.nat(), { maxLength: 2 }),
      download: fc.boolean(),
      downloadMs: fc.integer({ min: 0, max: 6 }),
      updateMs: fc.integer({ min: 0, max: 6 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((specs) =>
    specs.map((spec, index) => ({
      name: `plugin-${index}`,
      ...spec,
      // Runs-after only towards earlier plugins, and a needed-free mutex only when no later plugin holds it: acyclic.
      after: index === 0 ? [] : [...new Set(spec.after.map((before) => `plugin-${before % index}`))],
      dependencies: spec.dependencies.filter((mutex) => !specs.slice(index + 1).some((later) => later.mutexes.includes(mutex)) && !spec.mutexes.includes(mutex)),
    })),
  );

function manifest(spec: { name: string; mutexes: string[]; dependencies: string[]; after: string[]; download: boolean }): PluginManifest {
  return {
    name: spec.name,
    version: '1.0.0',
    description: 'property',
    executable: `/property/${spec.name}`,
    protocol: 1,
    requiresSudo: false,
    canSeparateDownload: spec.download,
    supportsSelfUpdate: false,
    supportsDynamicMutexes: false,
    mutexes: { estimate: [], download: spec.mutexes, update: spec.mutexes },
    dependencies: { estimate: [], download: [], update: spec.dependencies },
    runsAfter: spec.after,
    timeouts: { isApplicable: 10, estimateUpdate: 10, download: 10, update: 10, other: 10 },
    potentialAffects: [],
    settings: {},
    source: { layer: 'builtin', path: `/property/${spec.name}.yaml` },
  };
}

const overlap = (a: Recorded, b: Recorded): boolean => a.start < b.end && b.start < a.end;

describe('the orchestrator, on random plugin sets', () => {
  it('never overlaps two holders of a mutex, respects runs-after, and runs every phase exactly once', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'upkeep-orchestrator-property-'));
    try {
      await fc.assert(
        fc.asyncProperty(pluginSets, fc.integer({ min: 1, max: 4 }), async (specs, parallel) => {
          const delays = new Map(specs.flatMap((spec) => [[`${spec.name}:download`, spec.downloadMs], [`${spec.name}:update`, spec.updateMs]] as Array<[string, number]>));
          const executor = new RecordingPlugins(delays);
          const stateRoot = await mkdtemp(join(folder, 'run-'));
          const report = await new UpdateRun({
            kind: 'run',
            plugins: specs.map(manifest),
            executor,
            environment: {},
            stateRoot,
            settings: {},
            limits: { parallel, maxDownloads: 1, maxMemoryMb: 4096, nice: 0 },
            retries: 0,
            retryDelay: 0,
            continueOnError: true,
            dryRun: false,
            stats: null,
            now: () => new Date(),
            pid: process.pid,
            isRoot: true,
            canSudo: true,
            onEvent: () => undefined,
          }).run();
          expect(report.status).toBe('completed');
          const byKey = new Map(specs.map((spec) => [spec.name, spec]));
          const updates = executor.phases.filter((entry) => entry.command === 'update');
          const downloads = executor.phases.filter((entry) => entry.command === 'download');
          // Exactly once each.
          expect(updates.map((entry) => entry.plugin).sort()).toEqual(specs.map((spec) => spec.name).sort());
          expect(downloads.map((entry) => entry.plugin).sort()).toEqual(specs.filter((spec) => spec.download).map((spec) => spec.name).sort());
          // Downloads, then updates; one download at a time (maxDownloads 1).
          for (const download of downloads) for (const update of updates) expect(download.end).toBeLessThanOrEqual(update.start);
          for (const [index, first] of downloads.entries()) for (const second of downloads.slice(index + 1)) expect(overlap(first, second)).toBe(false);
          for (const [index, first] of updates.entries()) {
            const firstSpec = byKey.get(first.plugin)!;
            for (const second of updates.slice(index + 1)) {
              if (!overlap(first, second)) continue;
              const secondSpec = byKey.get(second.plugin)!;
              // Overlapping updates share no held mutex, and neither needs free what the other holds.
              expect(firstSpec.mutexes.filter((mutex) => secondSpec.mutexes.includes(mutex))).toEqual([]);
              expect(firstSpec.dependencies.filter((mutex) => secondSpec.mutexes.includes(mutex))).toEqual([]);
              expect(secondSpec.dependencies.filter((mutex) => firstSpec.mutexes.includes(mutex))).toEqual([]);
            }
            for (const before of firstSpec.after) {
              expect(first.start).toBeGreaterThanOrEqual(updates.find((entry) => entry.plugin === before)!.end);
            }
            // Never more than `parallel` at once.
            expect(updates.filter((other) => other.start <= first.start && first.start < other.end).length).toBeLessThanOrEqual(parallel);
          }
        }),
        { numRuns: 40 },
      );
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
