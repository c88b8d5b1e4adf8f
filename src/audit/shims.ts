import { constants } from 'node:fs';
import { access, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Executor } from '../core/exec.ts';
import type { Environment } from '../core/paths.ts';
import { compareVersions } from '../core/version.ts';
import { installRoots, type InstallRoots } from './classify.ts';

/**
 * Version-manager shims resolved to the binary they run. The managers' own
 * files (version files, install folders, Volta's JSON) are read directly, in
 * the order the manager itself consults them; only when those files do not
 * settle it (a version alias like `lts`, a config format not read here) is
 * `<manager> which <name>` run through the executor.
 */

export type ShimManager = 'pyenv' | 'rbenv' | 'nodenv' | 'goenv' | 'asdf' | 'mise' | 'volta';

export interface ShimInfo {
  manager: ShimManager;
}

export interface ShimContext {
  home: string;
  environment: Environment;
}

export interface ResolveShimOptions {
  /** The shim as found on PATH. */
  path: string;
  /** The shim with symlinks resolved (mise shims are links to the mise binary); `path` when absent. */
  realPath?: string;
  /** The command name (`python3`). */
  name: string;
  manager: ShimManager;
  /** The folder whose version files apply (the working folder of the audit). */
  cwd: string;
  environment: Environment;
  home: string;
  /** The PATH folders in order, for `system` versions and for finding the manager. */
  pathDirs: readonly string[];
  executor: Pick<Executor, 'run'>;
  /** Milliseconds for the `<manager> which` fallback. */
  timeout?: number;
}

export interface ShimTarget {
  /** The file the shim runs. */
  target: string;
  /** The selected version, when a version manager selected one. */
  version?: string;
  /** Where the choice came from, for people: "~/.pyenv/version selects 3.12.1". */
  reason: string;
}

const DEFAULT_WHICH_TIMEOUT = 5_000;

/** Env-style managers: one root with `shims/` and `versions/<v>/bin/`. */
interface EnvStyle {
  root: (roots: InstallRoots) => string;
  versionVariable: string;
  /** Where to start looking for the local version file instead of the working folder. */
  directoryVariable: string;
  versionFile: string;
  /** pyenv selects several versions at once (`3.12.1:2.7.18`). */
  multiple: boolean;
  /** Prefixes the manager strips (`.ruby-version` may say `ruby-3.3.0`). */
  prefixes: string[];
}

const ENV_STYLE: Record<'pyenv' | 'rbenv' | 'nodenv' | 'goenv', EnvStyle> = {
  pyenv: {
    root: (roots) => roots.pyenv,
    versionVariable: 'PYENV_VERSION',
    directoryVariable: 'PYENV_DIR',
    versionFile: '.python-version',
    multiple: true,
    prefixes: ['python-'],
  },
  rbenv: {
    root: (roots) => roots.rbenv,
    versionVariable: 'RBENV_VERSION',
    directoryVariable: 'RBENV_DIR',
    versionFile: '.ruby-version',
    multiple: false,
    prefixes: ['ruby-'],
  },
  nodenv: {
    root: (roots) => roots.nodenv,
    versionVariable: 'NODENV_VERSION',
    directoryVariable: 'NODENV_DIR',
    versionFile: '.node-version',
    multiple: false,
    prefixes: ['node-', 'v'],
  },
  goenv: {
    root: (roots) => roots.goenv,
    versionVariable: 'GOENV_VERSION',
    directoryVariable: 'GOENV_DIR',
    versionFile: '.go-version',
    multiple: false,
    prefixes: ['go'],
  },
};

/** Files volta-shim stands in for that are not package binaries. */
const VOLTA_OWN = new Set(['volta', 'volta-shim', 'volta-migrate']);
const VOLTA_PLATFORM_TOOLS = new Set(['node', 'npm', 'npx', 'yarn', 'yarnpkg', 'pnpm', 'pnpx']);

/**
 * Which manager's shim this is, from where it lies. Without a context the
 * managers' default folders are recognised (`~/.pyenv/shims`,
 * `~/.local/share/mise/shims`, `~/.volta/bin`, ...) wherever the home is;
 * with one, `PYENV_ROOT`, `ASDF_DATA_DIR`, `MISE_DATA_DIR`, `VOLTA_HOME` & co.
 * are honoured too.
 */
export function detectShim(filePath: string, realPath?: string, context?: ShimContext): ShimInfo | null {
  const file = path.posix.normalize(filePath);
  const real = path.posix.normalize(realPath || filePath);
  const folder = path.posix.dirname(file);
  const name = path.posix.basename(file);

  if (context) {
    const roots = installRoots(context.home, context.environment);
    const shimFolders: Array<[string, ShimManager]> = [
      [roots.pyenv, 'pyenv'],
      [roots.rbenv, 'rbenv'],
      [roots.nodenv, 'nodenv'],
      [roots.goenv, 'goenv'],
      [roots.asdf, 'asdf'],
      [roots.mise, 'mise'],
    ];
    for (const [root, manager] of shimFolders) {
      if (folder === path.posix.join(root, 'shims')) return { manager };
    }
    if (folder === path.posix.join(roots.volta, 'bin')) return VOLTA_OWN.has(name) ? null : { manager: 'volta' };
  }

  const conventional: Array<[RegExp, ShimManager]> = [
    [/\/\.pyenv\/shims$/, 'pyenv'],
    [/\/\.rbenv\/shims$/, 'rbenv'],
    [/\/\.nodenv\/shims$/, 'nodenv'],
    [/\/\.goenv\/shims$/, 'goenv'],
    [/\/\.asdf\/shims$/, 'asdf'],
    [/\/mise\/shims$/, 'mise'],
  ];
  for (const [pattern, manager] of conventional) if (pattern.test(folder)) return { manager };
  // mise shims are symlinks to the mise binary; Volta's to volta-shim.
  if (path.posix.basename(real) === 'mise' && name !== 'mise' && path.posix.basename(folder) === 'shims') return { manager: 'mise' };
  if (path.posix.basename(real) === 'volta-shim' && !VOLTA_OWN.has(name)) return { manager: 'volta' };
  if (/\/\.volta\/bin$/.test(folder) && !VOLTA_OWN.has(name)) return { manager: 'volta' };
  return null;
}

/** What the manager's files say. `unknown` sends the question to `<manager> which`. */
type Outcome =
  | { kind: 'found'; target: string; version?: string; reason: string }
  | { kind: 'missing'; reason: string }
  | { kind: 'unknown'; reason: string };

/**
 * The binary a shim runs for the given working folder and environment, or
 * null when the manager would fail (version not installed, no such command)
 * or cannot be asked. Never throws for a missing or unreadable file.
 */
export async function resolveShim(options: ResolveShimOptions): Promise<ShimTarget | null> {
  const roots = installRoots(options.home, options.environment);
  let outcome: Outcome;
  try {
    switch (options.manager) {
      case 'pyenv':
      case 'rbenv':
      case 'nodenv':
      case 'goenv':
        outcome = await resolveEnvStyle(options, roots, options.manager);
        break;
      case 'asdf':
        outcome = await resolveAsdf(options, roots);
        break;
      case 'mise':
        outcome = await resolveMise(options, roots);
        break;
      case 'volta':
        outcome = await resolveVolta(options, roots);
        break;
    }
  } catch (error) {
    outcome = { kind: 'unknown', reason: (error as Error).message };
  }
  if (outcome.kind === 'found') {
    const result: ShimTarget = { target: outcome.target, reason: outcome.reason };
    if (outcome.version !== undefined) result.version = outcome.version;
    return result;
  }
  if (outcome.kind === 'missing') return null;
  return askManager(options, roots);
}

// pyenv, rbenv, nodenv, goenv ------------------------------------------------

async function resolveEnvStyle(options: ResolveShimOptions, roots: InstallRoots, manager: keyof typeof ENV_STYLE): Promise<Outcome> {
  const style = ENV_STYLE[manager];
  const root = style.root(roots);
  const show = (file: string): string => tilde(file, roots.home);
  const split = (text: string): string[] =>
    style.multiple ? text.split(/[:\s]+/).filter(Boolean) : text.trim().split(/\s+/).filter(Boolean).slice(0, 1);

  let versions: string[];
  let origin: string;
  const fromVariable = options.environment[style.versionVariable];
  if (fromVariable && fromVariable.trim()) {
    versions = split(fromVariable);
    origin = `${style.versionVariable}=${fromVariable.trim()}`;
  } else {
    const start = options.environment[style.directoryVariable] || options.cwd;
    const local = await findUpVersionFile(start, style.versionFile, split);
    if (local) {
      versions = local.versions;
      origin = show(local.file);
    } else {
      const globalFile = path.posix.join(root, 'version');
      const global = await readVersionFile(globalFile, split);
      if (global && global.length > 0) {
        versions = global;
        origin = show(globalFile);
      } else {
        versions = ['system'];
        origin = `no ${manager} version is set`;
      }
    }
  }

  const shims = path.posix.join(root, 'shims');
  const skipped: string[] = [];
  for (const requested of versions) {
    if (requested === 'system') {
      const system = await nextOnPath(options.name, options.pathDirs, shims);
      if (system) {
        const why = origin.startsWith('no ') ? origin : `${origin} selects system`;
        return { kind: 'found', target: system, reason: `${why}: ${show(system)} is the next ${options.name} on PATH after ${show(shims)}` };
      }
      skipped.push('system');
      continue;
    }
    const version = await installedVersion(path.posix.join(root, 'versions'), requested, style.prefixes);
    if (!version) {
      skipped.push(`${requested} (not installed)`);
      continue;
    }
    const target = path.posix.join(root, 'versions', version, 'bin', options.name);
    if (await isExecutable(target)) {
      const resolvedNote = version === requested ? '' : ` (${requested} resolves to ${version})`;
      return { kind: 'found', target, version, reason: `${origin} selects ${manager} ${version}${resolvedNote}` };
    }
    skipped.push(`${version} (no ${options.name})`);
  }
  return { kind: 'missing', reason: `${origin} selects ${skipped.join(', ') || 'nothing'}` };
}

/**
 * The installed folder name for a requested version: itself, without a
 * manager prefix (`python-3.12`), or the newest installed version it is a
 * prefix of (`3.12` -> `3.12.4`), as pyenv's `latest` does.
 */
async function installedVersion(versionsFolder: string, requested: string, prefixes: readonly string[]): Promise<string | null> {
  const candidates = [requested, ...prefixes.filter((prefix) => requested.startsWith(prefix)).map((prefix) => requested.slice(prefix.length))];
  for (const candidate of candidates) {
    if (!candidate || candidate.includes('/')) continue;
    const folder = path.posix.join(versionsFolder, candidate);
    if (!(await isDirectory(folder))) continue;
    // mise (and some pyenv users) keep `22 -> 22.11.0` links: name the real version.
    const real = await realpath(folder).catch(() => folder);
    return path.posix.dirname(real) === (await realpath(versionsFolder).catch(() => versionsFolder)) ? path.posix.basename(real) : candidate;
  }
  const installed = await listDirectories(versionsFolder);
  for (const candidate of candidates) {
    if (!candidate) continue;
    const matching = installed.filter((name) => name.startsWith(`${candidate}.`) || name.startsWith(`${candidate}-`));
    // Pre-releases and dev builds only when nothing else matches.
    const stable = matching.filter((name) => /^[\d.]+$/.test(name));
    const pool = stable.length > 0 ? stable : matching;
    if (pool.length > 0) return pool.sort(compareVersions).at(-1)!;
  }
  return null;
}

// asdf -------------------------------------------------------------------

async function resolveAsdf(options: ResolveShimOptions, roots: InstallRoots): Promise<Outcome> {
  const installs = path.posix.join(roots.asdf, 'installs');
  const show = (file: string): string => tilde(file, roots.home);
  // Plugins that provide the command: named in the shim's own comments
  // (`# asdf-plugin: nodejs 20.11.0`), or found in an install's bin folder.
  const plugins: string[] = [];
  const shimText = await readFile(options.path, 'utf8').catch(() => '');
  for (const match of shimText.matchAll(/^# asdf-plugin: (\S+)/gm)) if (!plugins.includes(match[1]!)) plugins.push(match[1]!);
  for (const plugin of await listDirectories(installs)) {
    if (plugins.includes(plugin)) continue;
    for (const version of await listDirectories(path.posix.join(installs, plugin))) {
      if (await isExecutable(path.posix.join(installs, plugin, version, 'bin', options.name))) {
        plugins.push(plugin);
        break;
      }
    }
  }
  if (plugins.length === 0) return { kind: 'unknown', reason: `no asdf install provides ${options.name}` };

  const fileName = options.environment.ASDF_DEFAULT_TOOL_VERSIONS_FILENAME || '.tool-versions';
  const shims = path.posix.join(roots.asdf, 'shims');
  let unsettled = false;
  for (const plugin of plugins) {
    const selection = await asdfVersions(plugin, options, fileName, roots.home);
    if (!selection) {
      unsettled = true;
      continue;
    }
    for (const version of selection.versions) {
      if (version === 'system') {
        const system = await nextOnPath(options.name, options.pathDirs, shims);
        if (system) return { kind: 'found', target: system, reason: `${selection.origin} selects system ${plugin}: ${show(system)} is next on PATH` };
        continue;
      }
      if (version.startsWith('path:')) {
        const target = path.posix.join(version.slice('path:'.length), 'bin', options.name);
        if (await isExecutable(target)) return { kind: 'found', target, reason: `${selection.origin} selects ${plugin} at ${version}` };
        continue;
      }
      if (version.startsWith('ref:')) return { kind: 'unknown', reason: `${selection.origin} selects ${plugin} ${version}` };
      const target = path.posix.join(installs, plugin, version, 'bin', options.name);
      if (await isExecutable(target)) {
        return { kind: 'found', target, version, reason: `${selection.origin} selects asdf ${plugin} ${version}` };
      }
    }
    return { kind: 'missing', reason: `${selection.origin} selects ${plugin} ${selection.versions.join(' ')}, which is not installed` };
  }
  // No version set in the files read here; asdf may still find one (legacy
  // version files such as .nvmrc), so ask it.
  return unsettled ? { kind: 'unknown', reason: `no .tool-versions sets ${plugins.join(' or ')}` } : { kind: 'missing', reason: 'not installed' };
}

async function asdfVersions(
  plugin: string,
  options: ResolveShimOptions,
  fileName: string,
  home: string,
): Promise<{ versions: string[]; origin: string } | null> {
  const variable = `ASDF_${plugin.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION`;
  const fromVariable = options.environment[variable];
  if (fromVariable && fromVariable.trim()) return { versions: fromVariable.trim().split(/\s+/), origin: `${variable}=${fromVariable.trim()}` };
  // asdf walks up for each plugin: the nearest file that names the plugin wins.
  for (const folder of ancestors(options.cwd)) {
    const file = path.posix.join(folder, fileName);
    const versions = toolVersionsEntry(await readFile(file, 'utf8').catch(() => null), plugin);
    if (versions) return { versions, origin: tilde(file, home) };
  }
  const globalFile = path.posix.join(home, fileName);
  const versions = toolVersionsEntry(await readFile(globalFile, 'utf8').catch(() => null), plugin);
  return versions ? { versions, origin: tilde(globalFile, home) } : null;
}

/** The versions a `.tool-versions` text gives a tool: `nodejs 20.11.0 18.19.0`. */
function toolVersionsEntry(text: string | null, tool: string): string[] | null {
  if (!text) return null;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    const [name, ...versions] = line.split(/\s+/);
    if (name === tool && versions.length > 0) return versions;
  }
  return null;
}

// mise -------------------------------------------------------------------

/** Names mise accepts for the same tool. */
const MISE_ALIASES: Readonly<Record<string, string>> = { nodejs: 'node', golang: 'go' };

/** Per folder, the config files mise reads, most important first. */
const MISE_LOCAL_FILES = [
  'mise.local.toml',
  '.mise.local.toml',
  'mise.toml',
  '.mise.toml',
  '.config/mise.toml',
  '.config/mise/config.toml',
  'mise/config.toml',
  '.tool-versions',
];

/** A tool's versions in one config: strings, or null when the value is a form not read here. */
type MiseEntry = { versions: string[] | null; origin: string };

async function resolveMise(options: ResolveShimOptions, roots: InstallRoots): Promise<Outcome> {
  const installs = path.posix.join(roots.mise, 'installs');
  const show = (file: string): string => tilde(file, roots.home);
  // Tools whose installs have the command, by install folder name.
  const tools: string[] = [];
  for (const tool of await listDirectories(installs)) {
    for (const version of await listDirectories(path.posix.join(installs, tool))) {
      if (await isExecutable(path.posix.join(installs, tool, version, 'bin', options.name))) {
        tools.push(tool);
        break;
      }
    }
  }
  if (tools.length === 0) return { kind: 'unknown', reason: `no mise install provides ${options.name}` };

  const configs = await miseConfigs(options, roots);
  const shims = path.posix.join(roots.mise, 'shims');
  for (const tool of tools) {
    const found = miseEntry(tool, options.environment, configs);
    if (!found) continue;
    const entry = { ...found, origin: show(found.origin) };
    if (!entry.versions) return { kind: 'unknown', reason: `${entry.origin} sets ${tool} in a form read only by mise` };
    for (const requested of entry.versions) {
      if (requested === 'system') {
        const system = await nextOnPath(options.name, options.pathDirs, shims);
        if (system) return { kind: 'found', target: system, reason: `${entry.origin} selects system ${tool}: ${show(system)} is next on PATH` };
        continue;
      }
      if (requested.startsWith('path:')) {
        const target = path.posix.join(requested.slice('path:'.length), 'bin', options.name);
        if (await isExecutable(target)) return { kind: 'found', target, reason: `${entry.origin} selects ${tool} at ${requested}` };
        continue;
      }
      if (!/^[\w.+-]+$/.test(requested) || requested === 'lts') {
        // ref:, prefix:, sub-1:, lts: mise's own logic decides.
        return { kind: 'unknown', reason: `${entry.origin} selects ${tool} ${requested}` };
      }
      const folder = path.posix.join(installs, tool);
      const version = requested === 'latest' ? newest(await listDirectories(folder)) : await installedVersion(folder, requested, ['v']);
      if (!version) continue;
      const target = path.posix.join(folder, version, 'bin', options.name);
      if (await isExecutable(target)) {
        const resolvedNote = version === requested ? '' : ` (${requested} resolves to ${version})`;
        return { kind: 'found', target, version, reason: `${entry.origin} selects mise ${tool} ${version}${resolvedNote}` };
      }
    }
    return { kind: 'missing', reason: `${entry.origin} selects ${tool} ${entry.versions.join(' ')}, which is not installed` };
  }
  return { kind: 'unknown', reason: `no mise config read here sets ${tools.join(' or ')}` };
}

interface MiseConfig {
  file: string;
  /** Install folder name -> versions (null: present in a form not read here). */
  tools: Map<string, string[] | null>;
}

async function miseConfigs(options: ResolveShimOptions, roots: InstallRoots): Promise<MiseConfig[]> {
  const files: string[] = [];
  for (const folder of ancestors(options.cwd)) for (const name of MISE_LOCAL_FILES) files.push(path.posix.join(folder, name));
  const configHome = options.environment.XDG_CONFIG_HOME || path.posix.join(roots.home, '.config');
  const configFolder = options.environment.MISE_CONFIG_DIR || path.posix.join(configHome, 'mise');
  files.push(options.environment.MISE_GLOBAL_CONFIG_FILE || path.posix.join(configFolder, 'config.toml'));
  files.push(path.posix.join(roots.home, '.tool-versions'));
  const unique = [...new Set(files)];
  const texts = await Promise.all(unique.map((file) => readFile(file, 'utf8').catch(() => null)));
  const configs: MiseConfig[] = [];
  unique.forEach((file, index) => {
    const text = texts[index];
    if (text === null || text === undefined) return;
    configs.push({ file, tools: file.endsWith('.tool-versions') ? parseToolVersions(text) : parseMiseTools(text) });
  });
  return configs;
}

function miseEntry(tool: string, environment: Environment, configs: readonly MiseConfig[]): MiseEntry | null {
  const variable = `MISE_${tool.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION`;
  const fromVariable = environment[variable];
  if (fromVariable && fromVariable.trim()) return { versions: fromVariable.trim().split(/\s+/), origin: `${variable}=${fromVariable.trim()}` };
  for (const config of configs) {
    if (config.tools.has(tool)) return { versions: config.tools.get(tool)!, origin: config.file };
  }
  return null;
}

/** mise's install folder for a config key: `npm:prettier` -> `npm-prettier`, `nodejs` -> `node`. */
function miseInstallName(key: string): string {
  const name = key.replace(/[:/]/g, '-');
  return MISE_ALIASES[name] ?? name;
}

function parseToolVersions(text: string): Map<string, string[] | null> {
  const tools = new Map<string, string[] | null>();
  for (const rawLine of text.split('\n')) {
    const [name, ...versions] = rawLine.replace(/#.*/, '').trim().split(/\s+/);
    if (name && versions.length > 0 && !tools.has(miseInstallName(name))) tools.set(miseInstallName(name), versions);
  }
  return tools;
}

/**
 * The `[tools]` table of a mise TOML file, in its simple forms:
 * `node = "22"`, `"npm:prettier" = "3"`, `python = ["3.12", "3.11"]`,
 * `go = { version = "1.22" }`. Anything else is recorded as present but
 * unread (null), so that mise itself is asked.
 */
export function parseMiseTools(text: string): Map<string, string[] | null> {
  const tools = new Map<string, string[] | null>();
  let inTools = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const table = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (table) {
      inTools = table[1] === 'tools';
      continue;
    }
    if (!inTools) continue;
    const entry = /^("([^"]+)"|'([^']+)'|([\w.:/@-]+))\s*=\s*(.+)$/.exec(line);
    if (!entry) continue;
    const key = miseInstallName(entry[2] ?? entry[3] ?? entry[4]!);
    const value = entry[5]!.replace(/\s+#.*$/, '').trim();
    if (!tools.has(key)) tools.set(key, parseMiseValue(value));
  }
  return tools;
}

function parseMiseValue(value: string): string[] | null {
  const single = /^"([^"]*)"$|^'([^']*)'$/.exec(value);
  if (single) return [(single[1] ?? single[2])!];
  const list = /^\[(.*)\]$/.exec(value);
  if (list) {
    const items = [...list[1]!.matchAll(/"([^"]*)"|'([^']*)'/g)].map((match) => (match[1] ?? match[2])!);
    return items.length > 0 ? items : null;
  }
  const inline = /^\{.*\bversion\s*=\s*"([^"]+)".*\}$/.exec(value);
  if (inline) return [inline[1]!];
  return null;
}

// Volta ------------------------------------------------------------------

interface VoltaPlatform {
  node?: string;
  npm?: string;
  yarn?: string;
  pnpm?: string;
}

async function resolveVolta(options: ResolveShimOptions, roots: InstallRoots): Promise<Outcome> {
  const image = path.posix.join(roots.volta, 'tools', 'image');
  const show = (file: string): string => tilde(file, roots.home);
  const name = options.name;

  if (VOLTA_PLATFORM_TOOLS.has(name)) {
    const defaultFile = path.posix.join(roots.volta, 'tools', 'user', 'platform.json');
    const defaults = voltaPlatform(await readJson(defaultFile));
    const project = await voltaProjectPlatform(options.cwd);
    // A project pins what it names; the default platform fills in the rest.
    const pick = (tool: keyof VoltaPlatform): { version: string; origin: string } | null => {
      if (project?.platform[tool]) return { version: project.platform[tool]!, origin: show(project.file) };
      if (defaults[tool]) return { version: defaults[tool]!, origin: show(defaultFile) };
      return null;
    };
    const node = pick('node');
    if (!node) {
      const system = await nextOnPath(name, options.pathDirs, path.posix.join(roots.volta, 'bin'));
      if (system) return { kind: 'found', target: system, reason: `no Volta platform is set: ${show(system)} is next on PATH` };
      return { kind: 'missing', reason: 'no Volta platform is set' };
    }
    let target: string;
    let selected: { version: string; origin: string };
    if (name === 'node') {
      selected = node;
      target = path.posix.join(image, 'node', node.version, 'bin', 'node');
    } else if (name === 'npm' || name === 'npx') {
      const npm = pick('npm');
      selected = npm ?? node;
      target = npm ? path.posix.join(image, 'npm', npm.version, 'bin', name) : path.posix.join(image, 'node', node.version, 'bin', name);
    } else {
      const tool: keyof VoltaPlatform = name.startsWith('yarn') ? 'yarn' : 'pnpm';
      const chosen = pick(tool);
      if (!chosen) return { kind: 'missing', reason: `no ${tool} version is set in Volta` };
      selected = chosen;
      target = path.posix.join(image, tool, chosen.version, 'bin', name);
    }
    if (!(await isExecutable(target))) return { kind: 'missing', reason: `${show(target)} is not installed` };
    const tool = name === 'npx' ? 'npm' : name.startsWith('yarn') ? 'yarn' : name === 'pnpx' ? 'pnpm' : name;
    const bundled = (name === 'npm' || name === 'npx') && selected === node ? ' (the npm bundled with node)' : '';
    return { kind: 'found', target, version: selected.version, reason: `${selected.origin} selects Volta ${tool === 'npm' && bundled ? 'node' : tool} ${selected.version}${bundled}` };
  }

  const binFile = path.posix.join(roots.volta, 'tools', 'user', 'bins', `${name}.json`);
  const bin = await readJson(binFile);
  if (!isRecord(bin) || typeof bin.package !== 'string') return { kind: 'unknown', reason: `${show(binFile)} is missing` };
  const target = path.posix.join(image, 'packages', bin.package, 'bin', name);
  if (!(await isExecutable(target))) return { kind: 'missing', reason: `${show(target)} is not installed` };
  const result: Outcome = { kind: 'found', target, reason: `${show(binFile)}: Volta package ${bin.package}` };
  if (typeof bin.version === 'string') {
    result.version = bin.version;
    result.reason += ` ${bin.version}`;
  }
  return result;
}

function voltaPlatform(raw: unknown): VoltaPlatform {
  const platform: VoltaPlatform = {};
  if (!isRecord(raw)) return platform;
  const version = (value: unknown): string | undefined => {
    if (typeof value === 'string' && value) return value;
    if (isRecord(value) && typeof value.version === 'string') return value.version;
    return undefined;
  };
  // ~/.volta/tools/user/platform.json: {"node": {"runtime": "20.11.0", "npm": null}, "yarn": "1.22.19"}
  if (isRecord(raw.node)) {
    const runtime = version(raw.node.runtime);
    const npm = version(raw.node.npm);
    if (runtime) platform.node = runtime;
    if (npm) platform.npm = npm;
  } else {
    // package.json "volta": {"node": "20.11.0", "npm": "10.2.4"}
    const node = version(raw.node);
    const npm = version(raw.npm);
    if (node) platform.node = node;
    if (npm) platform.npm = npm;
  }
  const yarn = version(raw.yarn);
  const pnpm = version(raw.pnpm);
  if (yarn) platform.yarn = yarn;
  if (pnpm) platform.pnpm = pnpm;
  return platform;
}

/** The `volta` key of the nearest package.json, following `extends`. */
async function voltaProjectPlatform(cwd: string): Promise<{ file: string; platform: VoltaPlatform } | null> {
  for (const folder of ancestors(cwd)) {
    const file = path.posix.join(folder, 'package.json');
    const manifest = await readJson(file);
    if (manifest === undefined) continue;
    // The nearest package.json is the project, pinned or not.
    if (!isRecord(manifest) || !isRecord(manifest.volta)) return null;
    const platform: VoltaPlatform = {};
    let current: Record<string, unknown> | null = manifest.volta;
    let currentFile = file;
    for (let depth = 0; current && depth < 8; depth++) {
      const own = voltaPlatform(current);
      for (const key of ['node', 'npm', 'yarn', 'pnpm'] as const) if (!platform[key] && own[key]) platform[key] = own[key];
      if (typeof current.extends !== 'string') break;
      currentFile = path.posix.resolve(path.posix.dirname(currentFile), current.extends);
      const parent = await readJson(currentFile);
      current = isRecord(parent) && isRecord(parent.volta) ? parent.volta : null;
    }
    return Object.keys(platform).length > 0 ? { file, platform } : null;
  }
  return null;
}

// Fallback ---------------------------------------------------------------

async function askManager(options: ResolveShimOptions, roots: InstallRoots): Promise<ShimTarget | null> {
  const program = await findManager(options, roots);
  if (!program) return null;
  const manager = options.manager;
  try {
    const result = await options.executor.run([program, 'which', options.name], {
      mode: 'always',
      timeout: options.timeout ?? DEFAULT_WHICH_TIMEOUT,
      cwd: options.cwd,
      env: options.environment,
    });
    if (result.timedOut || result.exitCode !== 0) return null;
    const target = result.stdout.split('\n').map((line) => line.trim()).find(Boolean);
    if (!target || !path.posix.isAbsolute(target)) return null;
    const shimTarget: ShimTarget = { target, reason: `\`${manager} which ${options.name}\` printed ${tilde(target, roots.home)}` };
    const version = versionInPath(target, roots);
    if (version) shimTarget.version = version;
    return shimTarget;
  } catch {
    return null;
  }
}

async function findManager(options: ResolveShimOptions, roots: InstallRoots): Promise<string | null> {
  const manager = options.manager;
  // A mise shim is the mise binary itself.
  if (manager === 'mise' && options.realPath && path.posix.basename(options.realPath) === 'mise') return options.realPath;
  for (const folder of options.pathDirs) {
    const candidate = path.posix.join(folder, manager);
    if (await isExecutable(candidate)) return candidate;
  }
  const usual: Record<ShimManager, string[]> = {
    pyenv: [path.posix.join(roots.pyenv, 'bin', 'pyenv')],
    rbenv: [path.posix.join(roots.rbenv, 'bin', 'rbenv')],
    nodenv: [path.posix.join(roots.nodenv, 'bin', 'nodenv')],
    goenv: [path.posix.join(roots.goenv, 'bin', 'goenv')],
    asdf: [path.posix.join(roots.asdf, 'bin', 'asdf')],
    mise: [path.posix.join(roots.localBin, 'mise')],
    volta: [path.posix.join(roots.volta, 'bin', 'volta')],
  };
  for (const candidate of usual[manager]) if (await isExecutable(candidate)) return candidate;
  return null;
}

/** The version folder in a manager's path: `.../versions/3.12.1/bin/python` -> `3.12.1`. */
function versionInPath(target: string, roots: InstallRoots): string | undefined {
  const patterns: Array<[string, number]> = [
    [path.posix.join(roots.pyenv, 'versions'), 0],
    [path.posix.join(roots.rbenv, 'versions'), 0],
    [path.posix.join(roots.nodenv, 'versions'), 0],
    [path.posix.join(roots.goenv, 'versions'), 0],
    [path.posix.join(roots.asdf, 'installs'), 1],
    [path.posix.join(roots.mise, 'installs'), 1],
    [path.posix.join(roots.volta, 'tools', 'image'), 1],
  ];
  for (const [folder, index] of patterns) {
    if (!target.startsWith(`${folder}/`)) continue;
    const segments = target.slice(folder.length + 1).split('/');
    if (segments.length > index + 1) return segments[index];
  }
  return undefined;
}

// Helpers ----------------------------------------------------------------

/** The next executable called `name` on PATH after the shims folder (or anywhere but it). */
async function nextOnPath(name: string, pathDirs: readonly string[], shims: string): Promise<string | null> {
  const normal = pathDirs.map((folder) => path.posix.normalize(folder).replace(/(.)\/$/, '$1'));
  const index = normal.indexOf(shims);
  const folders = index >= 0 ? normal.slice(index + 1) : normal;
  for (const folder of folders) {
    if (folder === shims || !path.posix.isAbsolute(folder)) continue;
    const candidate = path.posix.join(folder, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

async function findUpVersionFile(
  start: string,
  fileName: string,
  split: (text: string) => string[],
): Promise<{ file: string; versions: string[] } | null> {
  for (const folder of ancestors(start)) {
    const file = path.posix.join(folder, fileName);
    const versions = await readVersionFile(file, split);
    if (versions && versions.length > 0) return { file, versions };
  }
  return null;
}

/** Words of a version file, without comments; null when there is no such file. */
async function readVersionFile(file: string, split: (text: string) => string[]): Promise<string[] | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  const content = text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean)
    .join('\n');
  return split(content);
}

/** `start` and each folder above it, up to `/`. */
function ancestors(start: string): string[] {
  const folders: string[] = [];
  let folder = path.posix.resolve(start);
  for (;;) {
    folders.push(folder);
    const parent = path.posix.dirname(folder);
    if (parent === folder) return folders;
    folder = parent;
  }
}

async function listDirectories(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  const names: string[] = [];
  for (const entry of entries) {
    // mise keeps `22 -> 22.11.0` style links next to the real folders.
    if (entry.isDirectory() || (entry.isSymbolicLink() && (await isDirectory(path.posix.join(folder, entry.name))))) names.push(entry.name);
  }
  return names.sort();
}

function newest(versions: readonly string[]): string | null {
  const real = versions.filter((version) => /^\d/.test(version));
  return real.length > 0 ? [...real].sort(compareVersions).at(-1)! : null;
}

async function isDirectory(folder: string): Promise<boolean> {
  return stat(folder).then((info) => info.isDirectory(), () => false);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    const info = await stat(file);
    if (!info.isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tilde(file: string, home: string): string {
  const normal = path.posix.normalize(home);
  if (normal !== '/' && (file === normal || file.startsWith(`${normal}/`))) return `~${file.slice(normal.length)}`;
  return file;
}
