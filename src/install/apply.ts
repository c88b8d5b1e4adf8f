import { mkdir, mkdtemp, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tool } from '../catalog/schema.ts';
import { findCandidates, indexFolders, searchFolders } from '../audit/discover.ts';
import { runProbe, versionFromProbe } from '../audit/probe.ts';
import type { Config } from '../core/config.ts';
import { UpkeepError, describeError } from '../core/errors.ts';
import type { ExecResult, Executor } from '../core/exec.ts';
import type { HttpClient } from '../core/http.ts';
import type { Logger } from '../core/log.ts';
import type { Environment } from '../core/paths.ts';
import { compareVersions } from '../core/version.ts';
import { installBinary } from './binary.ts';
import type { PlannedStep, ToolPlan } from './plan.ts';
import type { Platform } from './types.ts';

/**
 * Runs plans: argv arrays only, one operation per package database at a
 * time, retries with backoff when another process holds a lock or the
 * network blinked, then verification that the tool runs and reports the
 * version asked for.
 */

/** In-process mutexes by key: `dpkg`, `rpm`, `brew`, `npm`... */
export class Mutexes {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string | null, action: () => Promise<T>): Promise<T> {
    if (key === null) return action();
    const previous = this.tails.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(action);
    this.tails.set(key, current);
    try {
      return await current;
    } finally {
      if (this.tails.get(key) === current) this.tails.delete(key);
    }
  }
}

export type StepEvent =
  | { tool: string; step: PlannedStep; state: 'start' }
  | { tool: string; step: PlannedStep; state: 'retry'; attempt: number; reason: string; delayMs: number }
  | { tool: string; step: PlannedStep; state: 'done'; durationMs: number }
  | { tool: string; step: PlannedStep; state: 'failed'; exitCode: number | null };

export interface ApplyContext {
  executor: Executor;
  mutexes: Mutexes;
  config: Config;
  platform: Platform;
  environment: Environment;
  /** Made on first use: most plans never download. */
  http: () => Promise<HttpClient>;
  /** Folder for downloads in flight; removed after each step. */
  stagingRoot: string;
  logger: Logger;
  onStep?: (event: StepEvent) => void;
  /** Test seam for backoff waits. */
  sleep?: (milliseconds: number) => Promise<void>;
  random?: () => number;
}

export interface AppliedStep {
  description: string;
  argv?: string[];
  exitCode: number | null;
  attempts: number;
  durationMs: number;
  /** Files the step placed (binary method), with their digests. */
  files?: Array<{ name: string; path: string; sha256: string }>;
}

/** Waiting on another package operation: dpkg/apt, rpm/dnf/yum, zypper, pacman, apk, Homebrew. */
const LOCK_HELD =
  /could not get lock|unable to acquire the dpkg frontend lock|dpkg frontend lock|waiting for cache lock|lock file exists|another app is currently holding the yum lock|waiting for process with pid|system management is locked|unable to lock database|failed to init transaction \(unable to lock database\)|has already locked|already locked|\.lck['"]? exists/i;
/** The network blinked: worth a retry (the infrastructure handlers explain lasting outages). */
const NETWORK =
  /connection refused|connection timed out|connection reset|network is unreachable|could not resolve host|temporary failure in name resolution|temporary failure resolving|ETIMEDOUT|ECONNRESET|EAI_AGAIN|ENETUNREACH|socket hang up|failed to fetch|curl: \(\d+\)|TLS handshake timeout|i\/o timeout/i;

/** Why a failed step is worth retrying, or null. */
export function retryableReason(exitCode: number | null, output: string): string | null {
  if (LOCK_HELD.test(output)) return 'another process holds the package manager lock';
  if (NETWORK.test(output)) return 'a network error';
  if (exitCode === 75) return 'a temporary failure (exit code 75)';
  return null;
}

export async function checkRoot(plan: ToolPlan, context: ApplyContext): Promise<void> {
  const rootSteps = plan.steps.filter((step) => step.root !== null);
  if (rootSteps.length === 0 || context.platform.privilege === 'root' || context.platform.privilege === 'sudo-passwordless') return;
  const what = rootSteps.map((step) => `${step.description} (${step.root})`).join('; ');
  if (context.platform.privilege === 'sudo-password') {
    // The password may have been cached since the platform was detected.
    const check = await context.executor.run(['sudo', '-n', 'true'], { timeout: 5000, mode: 'always' }).catch(() => null);
    if (check?.exitCode === 0) return;
    throw new UpkeepError('E_NEEDS_ROOT', `${plan.tool} needs root for: ${what}; sudo asks for a password upkeep cannot type`, {
      hint: 'run `sudo -v` first (it caches your password for a few minutes), then run upkeep again; or run upkeep as root',
    });
  }
  throw new UpkeepError('E_NEEDS_ROOT', `${plan.tool} needs root for: ${what}; upkeep is not root and sudo is not installed`, {
    hint: 'run upkeep as root, install and configure sudo, or choose a user-level method with --method',
  });
}

/** Runs every step of a plan in order; throws E_INSTALL_FAILED with the output of the step that failed. */
export async function applyPlan(plan: ToolPlan, context: ApplyContext): Promise<AppliedStep[]> {
  await checkRoot(plan, context);
  const applied: AppliedStep[] = [];
  for (const step of plan.steps) applied.push(await context.mutexes.run(step.lock, () => runStep(plan, step, context)));
  return applied;
}

async function runStep(plan: ToolPlan, step: PlannedStep, context: ApplyContext): Promise<AppliedStep> {
  const started = performance.now();
  context.onStep?.({ tool: plan.tool, step, state: 'start' });
  const sleep = context.sleep ?? ((milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds)));
  const random = context.random ?? Math.random;
  const { retries, retryDelay } = context.config.install;
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await runOnce(plan, step, context);
      if (outcome.result === null || outcome.result.exitCode === 0) {
        const durationMs = performance.now() - started;
        context.onStep?.({ tool: plan.tool, step, state: 'done', durationMs });
        return {
          description: step.description,
          ...(step.kind === 'command' ? { argv: step.argv } : {}),
          exitCode: 0,
          attempts: attempt,
          durationMs,
          ...(outcome.files ? { files: outcome.files } : {}),
        };
      }
      const result = outcome.result;
      const output = combinedOutput(result);
      const reason = result.timedOut ? null : retryableReason(result.exitCode, output);
      if (reason && attempt <= retries) {
        const delayMs = retryDelay * 1000 * 2 ** (attempt - 1) * (0.75 + random() * 0.5);
        context.onStep?.({ tool: plan.tool, step, state: 'retry', attempt, reason, delayMs });
        await sleep(delayMs);
        continue;
      }
      context.onStep?.({ tool: plan.tool, step, state: 'failed', exitCode: result.exitCode });
      throw stepFailure(plan, step, result, attempt);
    } catch (error) {
      if (error instanceof UpkeepError) throw error;
      context.onStep?.({ tool: plan.tool, step, state: 'failed', exitCode: null });
      throw new UpkeepError('E_INSTALL_FAILED', `${plan.action} of ${plan.tool} failed: ${step.description}: ${describeError(error)}`, {
        hint: 'see the message; rerun with --verbose for details',
        cause: error,
        details: { tool: plan.tool, method: plan.method, exitCode: null, output: describeError(error), attempts: attempt },
      });
    }
  }
}

function combinedOutput(result: ExecResult): string {
  return [result.stdout, result.stderr].filter(Boolean).join('\n');
}

function stepFailure(plan: ToolPlan, step: PlannedStep, result: ExecResult, attempts: number): UpkeepError {
  const output = combinedOutput(result);
  const how = result.timedOut
    ? `did not finish within ${step.timeoutSeconds} s and was stopped`
    : result.signal
      ? `was killed by ${result.signal}`
      : `exited with code ${result.exitCode}`;
  const lastLine = output.trim().split('\n').at(-1)?.trim() ?? '';
  return new UpkeepError('E_INSTALL_FAILED', `${plan.action} of ${plan.tool} failed: \`${step.kind === 'command' ? step.argv.join(' ') : step.description}\` ${how}${lastLine ? `: ${lastLine.slice(0, 200)}` : ''}`, {
    hint: 'see the matched failure handlers below, or rerun with --auto-remediate',
    details: {
      tool: plan.tool,
      method: plan.method,
      argv: step.kind === 'command' ? step.argv : undefined,
      // 137 is how a shell reports SIGKILL (the out-of-memory killer); handlers match on it.
      exitCode: result.exitCode ?? (result.signal === 'SIGKILL' ? 137 : null),
      attempts,
      // The timeout handler matches this sentence; the process said nothing about it itself.
      output: `${output.slice(-16_000)}${result.timedOut ? `\nupkeep: the command ${how}` : ''}`,
    },
  });
}

async function runOnce(
  plan: ToolPlan,
  step: PlannedStep,
  context: ApplyContext,
): Promise<{ result: ExecResult | null; files?: AppliedStep['files'] }> {
  const timeout = step.timeoutSeconds * 1000;
  switch (step.kind) {
    case 'command':
      return {
        result: await context.executor.run(step.argv, {
          timeout,
          maxOutput: 256 * 1024,
          env: { ...context.environment, ...step.env },
        }),
      };
    case 'remove-files':
      if (!context.executor.dryRun) {
        for (const file of step.files) await unlink(file).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
      }
      return { result: null };
    case 'binary': {
      if (context.executor.dryRun) return { result: null };
      await mkdir(context.stagingRoot, { recursive: true });
      const installed = await installBinary({
        toolId: plan.tool,
        binaries: step.download.files.map((file) => file.name),
        rendered: step.download,
        binDir: step.binDir,
        stagingRoot: context.stagingRoot,
        http: await context.http(),
        executor: context.executor,
      });
      return { result: null, files: installed.files };
    }
    case 'script': {
      if (context.executor.dryRun) {
        context.executor.recorded.push([step.shell, step.url, ...step.args]);
        return { result: null };
      }
      await mkdir(context.stagingRoot, { recursive: true });
      const folder = await mkdtemp(join(context.stagingRoot, `${plan.tool}-`));
      try {
        const file = join(folder, 'install.sh');
        const http = await context.http();
        await http.download(step.url, file, { maxBytes: 8 * 1024 * 1024 });
        return {
          result: await context.executor.run([step.shell, file, ...step.args], {
            timeout,
            maxOutput: 256 * 1024,
            env: { ...context.environment, ...step.env },
          }),
        };
      } finally {
        await rm(folder, { recursive: true, force: true });
      }
    }
  }
}

export interface Verification {
  path: string;
  version: string | null;
  onPath: boolean;
  warning?: string;
}

/**
 * After an install: the binary is found (on PATH, or in the method's folder
 * with a warning that PATH lacks it) and its probe reports `expected` when a
 * version was asked for.
 */
export async function verifyInstalled(
  tool: Tool,
  expected: string | null,
  context: { executor: Executor; environment: Environment; config: Config; home: string; cwd: string; binDir: string },
): Promise<Verification> {
  const folders = searchFolders(context.environment.PATH, [context.binDir, ...context.config.audit.extraPaths], context.home, context.cwd);
  const candidates = findCandidates(indexFolders(folders), tool.binaries);
  const found = candidates.find((candidate) => candidate.onPath) ?? candidates[0];
  if (!found) {
    throw new UpkeepError('E_VERIFY_FAILED', `${tool.id} was installed but ${tool.binaries.join(' or ')} is not on PATH or in ${context.binDir}`, {
      hint: 'open a new shell (PATH may have changed) or check where the package manager put it',
    });
  }
  if (context.executor.dryRun) return { path: found.path, version: null, onPath: found.onPath };
  const probe = await runProbe(tool, found.path, { executor: context.executor, timeout: context.config.audit.probeTimeout, environment: context.environment });
  const version = versionFromProbe(tool, probe);
  if (expected && (version === null || !sameVersion(version, expected))) {
    throw new UpkeepError('E_VERIFY_FAILED', `${tool.id} at ${found.path} reports ${version ?? 'no version'}, not ${expected}`, {
      hint: 'another installation may come first on PATH; `upkeep reconcile ' + tool.id + '` lists them',
      details: { path: found.path, version, expected, output: probe.output?.slice(0, 2000) ?? null },
    });
  }
  return {
    path: found.path,
    version,
    onPath: found.onPath,
    ...(found.onPath ? {} : { warning: `${found.path} is not on PATH; add ${join(found.path, '..')} to PATH` }),
  };
}

/** 1.2.3 matches 1.2.3, v1.2.3 and 1.2.3-1 (a distribution's revision). */
export function sameVersion(actual: string, expected: string): boolean {
  const a = actual.replace(/^v/, '');
  const e = expected.replace(/^v/, '');
  return a === e || compareVersions(a, e) === 0 || a.startsWith(`${e}-`) || a.startsWith(`${e}+`) || e.startsWith(`${a}-`);
}
