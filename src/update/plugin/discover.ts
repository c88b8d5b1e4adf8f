import { existsSync } from 'node:fs';
import { access, constants, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUpkeepError } from '../../core/errors.ts';
import type { Environment, Paths } from '../../core/paths.ts';
import { parseManifest } from './manifest.ts';
import type { PluginLayer, PluginManifest } from './manifest.ts';

/**
 * Plugin discovery (seed 002 §3.2): the built-in plugins, then the system's,
 * then the user's; a later manifest with the same plugin name replaces an
 * earlier one. A manifest that cannot be used is skipped with a warning,
 * never fatal: one broken plugin must not stop the others.
 */

export interface PluginDirectory {
  layer: PluginLayer;
  path: string;
}

export interface DiscoveredPlugin {
  manifest: PluginManifest;
  /** False when the configuration disables it (it is still listed). */
  enabled: boolean;
  /** The manifests it replaced, earliest first. */
  overridden: string[];
}

export interface Discovery {
  /** Sorted by name. */
  plugins: DiscoveredPlugin[];
  warnings: string[];
}

/**
 * `<package>/plugins`, found upward from this module (it lives at different
 * depths in the sources and in the bundle); UPKEEP_BUILTIN_PLUGINS_DIR
 * overrides it. null when upkeep was installed without its plugins.
 */
export function builtinPluginsDir(environment: Environment): string | null {
  if (environment.UPKEEP_BUILTIN_PLUGINS_DIR) return environment.UPKEEP_BUILTIN_PLUGINS_DIR;
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(folder, 'plugins');
    // The helper library marks upkeep's own plugins folder, not any folder of that name.
    if (existsSync(join(candidate, 'lib', 'plugin.mjs'))) return candidate;
    const parent = dirname(folder);
    if (parent === folder) return null;
    folder = parent;
  }
}

/** The folders searched, in discovery order. */
export function pluginDirectories(paths: Paths, environment: Environment): PluginDirectory[] {
  const builtin = builtinPluginsDir(environment);
  return [
    ...(builtin ? [{ layer: 'builtin' as const, path: builtin }] : []),
    { layer: 'system', path: environment.UPKEEP_SYSTEM_PLUGINS_DIR || '/etc/upkeep/plugins.d' },
    { layer: 'user', path: join(paths.config, 'plugins.d') },
  ];
}

export interface DiscoverOptions {
  directories: readonly PluginDirectory[];
  /** Names of disabled plugins (config update.disabled). */
  disabled?: readonly string[];
}

export async function discoverPlugins(options: DiscoverOptions): Promise<Discovery> {
  const warnings: string[] = [];
  const found = new Map<string, { manifest: PluginManifest; overridden: string[] }>();
  for (const directory of options.directories) {
    for (const path of await manifestFiles(directory.path, warnings)) {
      const manifest = await readManifest(path, directory.layer, warnings);
      if (!manifest) continue;
      const previous = found.get(manifest.name);
      if (previous && previous.manifest.source.layer === directory.layer) {
        warnings.push(`plugin ${manifest.name} is declared by both ${previous.manifest.source.path} and ${path}; ${path} is used`);
      }
      found.set(manifest.name, {
        manifest,
        overridden: previous ? [...previous.overridden, previous.manifest.source.path] : [],
      });
    }
  }
  const disabled = new Set(options.disabled ?? []);
  const plugins = [...found.values()]
    .sort((left, right) => left.manifest.name.localeCompare(right.manifest.name))
    .map(({ manifest, overridden }) => ({ manifest, enabled: !disabled.has(manifest.name), overridden }));
  return { plugins, warnings };
}

/** `*.yaml` and `*.yml` of a folder, sorted by file name; a missing folder has none. */
async function manifestFiles(folder: string, warnings: string[]): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') warnings.push(`cannot read the plugin folder ${folder}: ${(error as Error).message}`);
    return [];
  }
  return names
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => join(folder, name));
}

async function readManifest(path: string, layer: PluginLayer, warnings: string[]): Promise<PluginManifest | null> {
  const skip = (problem: string): null => {
    warnings.push(`skipped plugin manifest ${path}: ${problem}`);
    return null;
  };
  let manifest: PluginManifest;
  try {
    manifest = parseManifest(await readFile(path, 'utf8'), path, layer);
  } catch (error) {
    if (isUpkeepError(error)) {
      const { field, problem } = error.details as { field: string; problem: string };
      return skip(`${field}: ${problem}`);
    }
    return skip((error as Error).message);
  }
  const problem = await executableProblem(manifest.executable);
  return problem ? skip(problem) : manifest;
}

/** Why an executable cannot run, or null when it can. */
export async function executableProblem(executable: string): Promise<string | null> {
  try {
    if (!(await stat(executable)).isFile()) return `executable ${executable} is not a file`;
  } catch {
    return `executable ${executable} does not exist`;
  }
  try {
    await access(executable, constants.X_OK);
    return null;
  } catch {
    return `executable ${executable} is not executable (chmod +x it)`;
  }
}
