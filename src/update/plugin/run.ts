import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isUpkeepError } from '../../core/errors.ts';
import type { Executor, ExecResult } from '../../core/exec.ts';
import type { Environment } from '../../core/paths.ts';
import type { PluginManifest } from './manifest.ts';
import { PROTOCOL_VERSION } from './manifest.ts';
import { interpretOutput, isPluginCommand, parseProgressLine, PLUGIN_COMMANDS } from './protocol.ts';
import type { PluginAnswer, PluginCommand, Progress } from './protocol.ts';
import { MANAGER_VARIABLES, NETWORK_VARIABLES } from '../environment.ts';

/**
 * Running one plugin command in isolation (seed 002 §3.6): a minimal
 * environment, the plugin's run folder as working folder, a timeout per
 * phase that stops the whole process group.
 */

export type PluginSettings = Readonly<Record<string, string | number | boolean>>;

/** Passed through from upkeep's environment when set; nothing else leaks into a plugin. */
const PASSED_THROUGH: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'TZ',
  'CI',
  ...NETWORK_VARIABLES,
  ...MANAGER_VARIABLES,
  'UPKEEP_HOME',
  'UPKEEP_CONFIG_DIR',
  'UPKEEP_CACHE_DIR',
  'UPKEEP_STATE_DIR',
  'UPKEEP_DATA_DIR',
  'UPKEEP_CATALOG_DIR',
  'UPKEEP_OS_RELEASE',
  'UPKEEP_SYSTEM_CONFIG',
];
const XDG_HOME = /^XDG_[A-Z]+_HOME$/;

/** Milliseconds between SIGTERM and SIGKILL when a plugin is stopped: time for a package manager to release its lock. */
const KILL_GRACE = 5000;

export interface PluginEnvironmentOptions {
  /** upkeep's own environment, the source of the variables passed through. */
  environment: Environment;
  /** The plugin's folder for this run (kept across the run's phases). */
  runDir: string;
  /** Overrides of the manifest's settings (config update.settings.<plugin>). */
  settings?: PluginSettings;
  dryRun?: boolean;
  /** Added last, e.g. UPKEEP_COMMAND for the upkeep-tools plugin. */
  extra?: Readonly<Record<string, string>>;
}

/** `UPKEEP_<PLUGIN>_<KEY>`: both upper-cased, every character outside [A-Z0-9] becomes `_`. */
export function settingVariable(plugin: string, key: string): string {
  return `UPKEEP_${plugin}_${key}`.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** The whole environment of a plugin process. */
export function pluginEnvironment(manifest: PluginManifest, options: PluginEnvironmentOptions): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...manifest.settings, ...options.settings })) {
    environment[settingVariable(manifest.name, key)] = String(value);
  }
  // Everything after the settings, so that a setting whose variable happens
  // to spell one of upkeep's own (plugin "dry", key "run") cannot replace it.
  for (const [name, value] of Object.entries(options.environment)) {
    if (value !== undefined && (PASSED_THROUGH.includes(name) || XDG_HOME.test(name))) environment[name] = value;
  }
  const runDir = resolve(options.runDir);
  const temporary = join(runDir, 'tmp');
  Object.assign(environment, {
    TERM: 'dumb',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TMPDIR: temporary,
    UPKEEP_PLUGIN_TMPDIR: temporary,
    UPKEEP_PLUGIN_STATE: runDir,
    UPKEEP_PROTOCOL_VERSION: String(PROTOCOL_VERSION),
    UPKEEP_PLUGIN_NAME: manifest.name,
  });
  if (options.dryRun) environment.UPKEEP_DRY_RUN = '1';
  else delete environment.UPKEEP_DRY_RUN;
  Object.assign(environment, options.extra);
  return environment;
}

export interface InvokeOptions extends PluginEnvironmentOptions {
  executor: Executor;
  /** Replaces the manifest's timeout for this command. */
  timeoutSeconds?: number;
  /** Aborting stops the plugin's process group (SIGTERM, SIGKILL after 5 s). */
  signal?: AbortSignal;
  nice?: number;
  /** Each progress line the plugin writes on stderr. */
  onProgress?: (progress: Progress) => void;
  /** Each other stderr line (plain log text). */
  onOutput?: (line: string) => void;
  /** The plugin's pid, which is also its process group id. */
  onStart?: (pid: number) => void;
}

export interface Invocation<C extends PluginCommand = PluginCommand> {
  answer: PluginAnswer<C>;
  result: ExecResult;
}

/**
 * Runs `<executable> <command>` and reads its answer. Never throws for
 * anything the plugin does: an executable that cannot start is answer
 * `failed` with code EXEC. Queries run even under a dry-run executor (they
 * change nothing); actions are then recorded instead, while a plugin run
 * with `dryRun` is told so by UPKEEP_DRY_RUN=1.
 */
export async function invokePlugin<C extends PluginCommand>(manifest: PluginManifest, command: C, options: InvokeOptions): Promise<Invocation<C>>;
export async function invokePlugin(manifest: PluginManifest, command: string, options: InvokeOptions): Promise<Invocation>;
export async function invokePlugin(manifest: PluginManifest, command: string, options: InvokeOptions): Promise<Invocation> {
  const facts = isPluginCommand(command) ? PLUGIN_COMMANDS[command] : undefined;
  const seconds = options.timeoutSeconds ?? manifest.timeouts[facts?.timeout ?? 'other'];
  const argv = [manifest.executable, command];
  const environment = pluginEnvironment(manifest, options);
  await mkdir(environment.TMPDIR!, { recursive: true });
  const { onProgress, onOutput } = options;
  try {
    const result = await options.executor.run(argv, {
      cwd: environment.UPKEEP_PLUGIN_STATE,
      env: environment,
      timeout: seconds * 1000,
      killGrace: KILL_GRACE,
      mode: facts?.action ? 'change' : 'always',
      signal: options.signal,
      nice: options.nice,
      onStart: options.onStart,
      onLine: (stream, line) => {
        // stdout is the envelope, read whole at the end.
        if (stream !== 'stderr') return;
        const progress = parseProgressLine(line);
        if (progress) onProgress?.(progress);
        else onOutput?.(line);
      },
    });
    return { answer: interpretOutput(command, result), result };
  } catch (error) {
    if (!isUpkeepError(error)) throw error;
    const result: ExecResult = { argv, exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false, durationMs: 0, dryRun: false };
    return {
      answer: { kind: 'failed', error: { code: 'EXEC', message: error.message, ...(error.hint ? { details: error.hint } : {}) }, transient: false, timedOut: false },
      result,
    };
  }
}
