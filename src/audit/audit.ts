import { stat, realpath } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import pLimit from 'p-limit';
import type { Tool } from '../catalog/schema.ts';
import type { Config } from '../core/config.ts';
import type { Executor } from '../core/exec.ts';
import type { Logger } from '../core/log.ts';
import type { Environment, Paths } from '../core/paths.ts';
import { compareVersions, versionDelta } from '../core/version.ts';
import { classifyInstallation, gatherEvidence, type GatheredEvidence } from './classify.ts';
import { findCandidates, indexFolders, searchFolders, type Candidate } from './discover.ts';
import { createPackageDatabase, type PackageOwner } from './packages.ts';
import {
  identityAfterProbe,
  identityBeforeProbe,
  ProbeCache,
  probeFailure,
  probeKey,
  runProbe,
  versionFromProbe,
  type BinaryIdentity,
  type ProbeRecord,
} from './probe.ts';
import { detectShim, resolveShim } from './shims.ts';
import type { AuditDocument, Installation, LatestVersion, ToolReport } from './types.ts';
import { upgradeHint } from './upgrade-hint.ts';

/**
 * One audit: find every installation of every selected tool, read its
 * version (from the probe cache when the binary is unchanged), classify how
 * it was installed, and compare it with the latest upstream version. Local
 * probing and upstream look-ups run at the same time; a failure of either
 * is confined to its tool.
 */

export interface AuditProgress {
  phase: 'probe' | 'upstream';
  done: number;
  total: number;
}

export interface LatestLookup {
  latest: LatestVersion | null;
  reason?: string;
}

export type LatestResolver = (tools: Tool[]) => Promise<{ results: Map<string, LatestLookup>; warnings: string[] }>;

export interface AuditOptions {
  tools: Tool[];
  config: Config;
  paths: Paths;
  environment: Environment;
  cwd: string;
  home: string;
  executor: Executor;
  logger: Logger;
  offline: boolean;
  resolveLatest: LatestResolver;
  now?: () => Date;
  /** Root of the file system for package databases (tests use a temp tree). */
  systemRoot?: string;
  onProgress?: (progress: AuditProgress) => void;
  upkeepVersion: string;
}

export interface AuditOutcome {
  document: AuditDocument;
  warnings: string[];
}

interface ProbeTarget {
  tool: Tool;
  candidate: Candidate;
  /** What is actually run and keyed: the shim's target when resolved. */
  binary: BinaryIdentity & { path: string };
  shimTarget?: string;
  shimReason?: string;
  key: string;
}

export async function runAudit(options: AuditOptions): Promise<AuditOutcome> {
  const now = options.now ?? (() => new Date());
  const warnings: string[] = [];
  const latestPromise = options.resolveLatest(options.tools);

  const folders = searchFolders(options.environment.PATH, options.config.audit.extraPaths, options.home, options.cwd);
  const index = indexFolders(folders);
  const cache = await ProbeCache.open(ProbeCache.fileIn(options.paths.cache));
  if (cache.warning) warnings.push(cache.warning);
  const pathFolders = folders.filter((folder) => folder.onPath).map((folder) => folder.path);

  const perTool = await Promise.all(
    options.tools.map(async (tool) => {
      const candidates = findCandidates(index, tool.binaries);
      const targets = await Promise.all(candidates.map((candidate) => targetFor(tool, candidate, options, pathFolders)));
      return { tool, targets };
    }),
  );

  const allTargets = perTool.flatMap(({ targets }) => targets);
  const uncached = allTargets.filter((target) => !cache.get(target.key));
  // Several tools may share one binary with the same probe; run it once.
  const uniqueUncached = [...new Map(uncached.map((target) => [target.key, target])).values()];
  /** Records of this run, including timed-out ones the cache does not keep. */
  const probed = new Map<string, ProbeRecord>();

  if (uniqueUncached.length > 0) {
    const packages = createPackageDatabase({ root: options.systemRoot ?? '/', executor: options.executor });
    const lookupPaths = [...new Set(uniqueUncached.flatMap(({ candidate, binary }) => [candidate.path, candidate.realPath, binary.realPath]))];
    // The package database is read while the first probes already run: only
    // tools whose identity names packages must wait for it before spawning.
    const ownersPromise = packages.ownersOf(lookupPaths).catch((error: unknown) => {
      warnings.push(`could not read the system package database: ${(error as Error).message}`);
      return new Map<string, PackageOwner>();
    });
    const evidence = await Promise.all(
      uniqueUncached.map(
        (target): Promise<GatheredEvidence> =>
          gatherEvidence({ path: target.candidate.path, realPath: target.binary.realPath, home: options.home, environment: options.environment }),
      ),
    );
    const ownerOf = async (target: ProbeTarget): Promise<PackageOwner | null> => {
      const owners = await ownersPromise;
      return owners.get(target.binary.realPath) ?? owners.get(target.candidate.realPath) ?? owners.get(target.candidate.path) ?? null;
    };
    const limit = pLimit(options.config.audit.concurrency ?? defaultConcurrency());
    let done = 0;
    const total = uniqueUncached.length;
    options.onProgress?.({ phase: 'probe', done, total });
    // Longest first: the last probe to start bounds the wall time, so an
    // 800 ms Python start-up must not be left for the end (measured here:
    // 1.9 s instead of 2.6 s for the same probes on two cores).
    const order = uniqueUncached.map((_, position) => position);
    order.sort((a, b) => expectedCost(uniqueUncached[b]!, evidence[b]) - expectedCost(uniqueUncached[a]!, evidence[a]));
    await Promise.all(
      order.map((position) => [uniqueUncached[position]!, position] as const).map(([target, position]) =>
        limit(async () => {
          const gathered = evidence[position];
          const shebang = gathered?.shebang ?? null;
          const identity = target.tool.identity;
          const needsOwner = Boolean(identity?.packages || identity?.notPackages);
          let owner = needsOwner ? await ownerOf(target) : null;
          let result: Awaited<ReturnType<typeof runProbe>> | null = null;
          if (!identityBeforeProbe(target.tool, owner, shebang)) {
            result = await runProbe(target.tool, target.binary.path, {
              executor: options.executor,
              timeout: options.config.audit.probeTimeout,
              environment: options.environment,
            });
          }
          if (!needsOwner) owner = await ownerOf(target);
          const record: ProbeRecord = {
            output: null,
            exitCode: null,
            timedOut: false,
            error: null,
            ...result,
            owner,
            shebang,
            probedAt: now().toISOString(),
            ...(gathered ? { evidence: gathered.evidence } : {}),
          };
          // A timed-out probe is not remembered: the next audit tries again.
          if (!record.timedOut) cache.set(target.key, record);
          probed.set(target.key, record);
          options.onProgress?.({ phase: 'probe', done: ++done, total });
        }),
      ),
    );
  }

  const { results: latest, warnings: latestWarnings } = await latestPromise;
  warnings.push(...latestWarnings);
  await cache.save().catch((error: unknown) => warnings.push(`could not save the probe cache: ${(error as Error).message}`));

  const reports = perTool.map(({ tool, targets }) =>
    buildReport(tool, targets, (key) => probed.get(key) ?? cache.get(key), latest.get(tool.id), options),
  );
  return {
    document: {
      schemaVersion: 1,
      meta: { createdAt: now().toISOString(), offline: options.offline, host: hostname(), upkeepVersion: options.upkeepVersion },
      tools: reports,
    },
    warnings,
  };
}

function defaultConcurrency(): number {
  // Probes are mostly CPU-bound start-ups; more of them than cores only
  // makes each slower (measured: two at once beat four on two cores).
  return Math.max(2, availableParallelism());
}

/**
 * A guess at how long a probe takes, from what is known before running it:
 * interpreted programs (Python above all) start far slower than compiled
 * ones, and bigger binaries tend to do more at start-up.
 */
function expectedCost(target: ProbeTarget, gathered: GatheredEvidence | undefined): number {
  const interpreter = gathered?.shebang ? (gathered.shebang.match(/(python|node|ruby|perl|java|bash|sh)\b/)?.[1] ?? 'other') : null;
  const weight = interpreter === null ? 0 : interpreter === 'python' ? 3e9 : interpreter === 'sh' || interpreter === 'bash' ? 1e9 : 2e9;
  return weight + target.binary.size;
}

async function targetFor(tool: Tool, candidate: Candidate, options: AuditOptions, pathFolders: string[]): Promise<ProbeTarget> {
  const base: ProbeTarget = {
    tool,
    candidate,
    binary: { path: candidate.path, realPath: candidate.realPath, size: candidate.size, mtimeMs: candidate.mtimeMs, inode: candidate.inode },
    key: probeKey(candidate, candidate.path, tool.probe.args),
  };
  const shim = detectShim(candidate.path, candidate.realPath, { home: options.home, environment: options.environment });
  if (!shim) return base;
  const name = candidate.path.split('/').pop()!;
  try {
    const resolved = await resolveShim({
      path: candidate.path,
      realPath: candidate.realPath,
      name,
      manager: shim.manager,
      cwd: options.cwd,
      environment: options.environment,
      home: options.home,
      pathDirs: pathFolders,
      executor: options.executor,
    });
    if (!resolved) return base;
    const realPath = await realpath(resolved.target);
    const info = await stat(realPath);
    const binary = { path: resolved.target, realPath, size: info.size, mtimeMs: info.mtimeMs, inode: info.ino };
    return { ...base, binary, shimTarget: resolved.target, shimReason: resolved.reason, key: probeKey(binary, resolved.target, tool.probe.args) };
  } catch (error) {
    options.logger.debug('shim not resolved', { path: candidate.path, error: (error as Error).message });
    return base;
  }
}

function buildReport(
  tool: Tool,
  targets: ProbeTarget[],
  recordFor: (key: string) => ProbeRecord | undefined,
  lookup: LatestLookup | undefined,
  options: AuditOptions,
): ToolReport {
  const installations: Array<Installation & { package?: string }> = targets.map((target) => {
    const record = recordFor(target.key);
    const owner = record?.owner ?? null;
    const classification = classifyInstallation({
      path: target.candidate.path,
      realPath: target.candidate.realPath,
      shebang: record?.shebang ?? null,
      home: options.home,
      owner,
      environment: options.environment,
      ...(record?.evidence ? { evidence: record.evidence } : {}),
    });
    const broken = record ? probeFailure(record) : null;
    const differentTool =
      identityBeforeProbe(tool, owner, record?.shebang ?? null) ?? (broken ? null : identityAfterProbe(tool, record?.output ?? null));
    const version = differentTool || broken || !record ? null : versionFromProbe(tool, record);
    const installation: Installation & { package?: string } = {
      path: target.candidate.path,
      realPath: target.candidate.realPath,
      version,
      method: classification.method,
      reason: classification.reason,
      onPath: target.candidate.onPath,
    };
    if (classification.package) installation.package = classification.package;
    if (target.shimTarget) installation.shimTarget = target.shimTarget;
    if (differentTool) installation.differentTool = differentTool;
    else if (!record) installation.error = 'the binary was not probed';
    else if (record.error) installation.error = record.error;
    else if (broken) installation.error = broken;
    else if (version === null) installation.error = describeUnreadable(record);
    return installation;
  });

  const latest = lookup?.latest ?? null;
  const ours = installations.filter((installation) => !installation.differentTool);
  const active = ours.find((installation) => installation.onPath) ?? ours[0];
  const publicInstallations = installations.map(({ package: _package, ...installation }) => installation);
  const report: ToolReport = {
    id: tool.id,
    name: tool.name,
    category: tool.category,
    status: 'unknown',
    installed: active ? { version: active.version, path: active.path, method: active.method, reason: active.reason } : null,
    installations: publicInstallations,
    latest,
  };

  if (!active) {
    if (installations.length > 0) {
      report.status = 'different-tool';
      report.reason = `${installations[0]!.path} ${installations[0]!.differentTool}`;
    } else {
      report.status = 'not-installed';
    }
    return report;
  }
  if (active.version === null) {
    report.reason = `cannot read the version of ${active.path}: ${active.error ?? 'no version in its output'}`;
    return report;
  }
  if (!latest) {
    if (tool.upstream.source === 'none') {
      report.reason = `no upstream source is tracked${tool.upstream.reason ? ` (${tool.upstream.reason})` : ''}`;
    } else {
      report.reason = lookup?.reason ?? 'the latest version is not known';
    }
    return report;
  }
  const order = compareVersions(active.version, latest.version);
  if (order === 0) report.status = 'up-to-date';
  else if (order > 0) report.status = 'ahead';
  else {
    report.status = 'outdated';
    report.delta = versionDelta(active.version, latest.version);
    const hint = upgradeHint(tool, active.method, active.package);
    if (hint) report.upgrade = hint;
  }
  return report;
}

function describeUnreadable(record: ProbeRecord): string {
  const firstLine = record.output?.trim().split('\n')[0]?.slice(0, 80);
  if (!firstLine) return `the version probe printed nothing (exit code ${record.exitCode ?? 'none'})`;
  return `no version in its output ("${firstLine}")`;
}
