import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { createSandbox, type Sandbox } from './sandbox.ts';

/** The scripted plugin of test/fixtures/update: behaviour from its settings. */
export const MOCK_PLUGIN = fileURLToPath(new URL('../fixtures/update/mock-plugin.mjs', import.meta.url));

export interface MockPlugin {
  name: string;
  /** Settings of mock-plugin.mjs: seconds, update_seconds, download_seconds, updates, fail, hang, garbage, transient_failures, applicable, download, security, sudo_programs (a JSON array). */
  settings?: Record<string, string | number | boolean>;
  mutexes?: { estimate?: string[]; download?: string[]; update?: string[] };
  dependencies?: { estimate?: string[]; download?: string[]; update?: string[] };
  runsAfter?: string[];
  timeouts?: { is_applicable?: number; estimate_update?: number; download?: number; update?: number };
  canSeparateDownload?: boolean;
  /** The manifest's requires_sudo. */
  requiresSudo?: boolean;
}

export interface UpdateSandbox extends Sandbox {
  plugins: string;
  /** The mock plugins' pretend machine: `<name>.applied` once an update applied. */
  machine: string;
  /** Every phase of every mock plugin: `<name> <command> start|end|applied <epoch ms>`. */
  log: string;
}

/**
 * A sandbox whose only update plugins are the mock plugins given (the
 * built-in ones and /etc/upkeep/plugins.d are pointed elsewhere).
 */
export async function createUpdateSandbox(plugins: MockPlugin[], extra: Record<string, string> = {}): Promise<UpdateSandbox> {
  const sandbox = await createSandbox();
  const folder = join(sandbox.root, 'plugins');
  const machine = join(sandbox.root, 'machine');
  const log = join(sandbox.root, 'plugins.log');
  await Promise.all([mkdir(folder, { recursive: true }), mkdir(machine, { recursive: true }), mkdir(join(sandbox.root, 'no-system-plugins'))]);
  await writeFile(log, '');
  for (const plugin of plugins) await writeMockManifest(folder, plugin, { machine, log });
  Object.assign(sandbox.environment, {
    // The mock plugin is a node script: node must be on PATH.
    PATH: `${sandbox.bin}:${dirname(process.execPath)}:/usr/bin:/bin`,
    UPKEEP_BUILTIN_PLUGINS_DIR: folder,
    UPKEEP_SYSTEM_PLUGINS_DIR: join(sandbox.root, 'no-system-plugins'),
    UPKEEP_UPDATE_RETRY_DELAY: '0',
    ...extra,
  });
  return { ...sandbox, plugins: folder, machine, log };
}

export async function writeMockManifest(folder: string, plugin: MockPlugin, shared: { machine: string; log: string }): Promise<void> {
  const manifest = {
    plugin: {
      name: plugin.name,
      version: '1.0.0',
      description: `mock plugin ${plugin.name}`,
      executable: MOCK_PLUGIN,
      can_separate_download: plugin.canSeparateDownload ?? false,
      requires_sudo: plugin.requiresSudo ?? false,
      static_mutexes: { estimate: [], download: [], update: [], ...plugin.mutexes },
      static_dependencies: { estimate: [], download: [], update: [], ...plugin.dependencies },
      runs_after: plugin.runsAfter ?? [],
      timeouts: { is_applicable: 10, estimate_update: 20, download: 60, update: 60, ...plugin.timeouts },
      settings: {
        machine: shared.machine,
        log: shared.log,
        ...(plugin.canSeparateDownload ? { download: true } : {}),
        ...plugin.settings,
      },
    },
  };
  await writeFile(join(folder, `${plugin.name}.yaml`), stringify(manifest));
}

export interface LogEntry {
  plugin: string;
  command: string;
  event: 'start' | 'end' | 'applied';
  time: number;
}

export async function readPluginLog(path: string): Promise<LogEntry[]> {
  return (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [plugin, command, event, time] = line.split(' ');
      return { plugin: plugin!, command: command!, event: event as LogEntry['event'], time: Number(time) };
    });
}

/** [start, end] of each plugin's `command`, from the log (the last pair when it ran more than once). */
export function intervals(entries: LogEntry[], command: string): Map<string, { start: number; end: number }> {
  const result = new Map<string, { start: number; end: number }>();
  for (const entry of entries.filter((candidate) => candidate.command === command)) {
    const current = result.get(entry.plugin) ?? { start: Number.NaN, end: Number.NaN };
    if (entry.event === 'start') current.start = entry.time;
    if (entry.event === 'end') current.end = entry.time;
    result.set(entry.plugin, current);
  }
  return result;
}
