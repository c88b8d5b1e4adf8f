import type { BinarySpec, Groups, Method, Packages, ScriptSpec, Tool } from '../catalog/schema.ts';
import { resolvePackages } from '../catalog/handlers.ts';
import type { Config } from '../core/config.ts';
import { ExitCode, UpkeepError } from '../core/errors.ts';
import { renderBinary, type RenderedBinary } from './binary.ts';
import {
  METHOD_TRAITS,
  familyManager,
  installCommands,
  methodSpec,
  systemPackageInstall,
  uninstallCommands,
  upgradeCommands,
  type CommandStep,
  type MethodSpec,
} from './managers.ts';
import { selectMethod, type MethodChoice, type Rejected } from './select.ts';
import type { Platform } from './types.ts';

/**
 * A plan is everything upkeep will do, decided before anything runs: the
 * exact argv of every step, which steps need root and why, what gets
 * downloaded. `--dry-run` prints it; apply.ts runs it.
 */

export type PlannedStep =
  | {
      kind: 'command';
      description: string;
      /** The exact argv, `sudo -n` first when it needs root and upkeep is not root. */
      argv: string[];
      env?: Record<string, string>;
      /** Why it needs root, when it does. */
      root: string | null;
      lock: string | null;
      timeoutSeconds: number;
      method: Method;
    }
  | {
      kind: 'binary';
      description: string;
      download: RenderedBinary;
      version: string;
      binDir: string;
      lock: null;
      root: null;
      timeoutSeconds: number;
      method: 'binary';
    }
  | {
      kind: 'script';
      description: string;
      url: string;
      /** argv after the downloaded file: `sh <file> ...args`. */
      shell: string;
      args: string[];
      env?: Record<string, string>;
      lock: null;
      root: null;
      timeoutSeconds: number;
      method: 'script';
    }
  | {
      kind: 'remove-files';
      description: string;
      files: string[];
      lock: null;
      root: null;
      timeoutSeconds: number;
      method: Method;
    };

export type Action = 'install' | 'upgrade' | 'uninstall';

export interface ToolPlan {
  action: Action;
  tool: string;
  name: string;
  method: Method;
  reason: string;
  alternatives: MethodChoice[];
  rejected: Rejected[];
  /** The version asked for, or the latest known when the method needs one (binary); null: the method's current. */
  version: string | null;
  steps: PlannedStep[];
  /** Catalog tools this one requires (bulk runs put them in an earlier level). */
  requires: string[];
  /** Commands the recipe needs on PATH that are not there and no catalog tool provides. */
  missingBinaries: string[];
  /** The packages, crate or module the method acts on (empty for binary and script). */
  packages: string[];
}

export interface PlanContext {
  platform: Platform;
  config: Config;
  groups: Groups;
  /** Expanded `install.binDir`. */
  binDir: string;
  /** Commands on PATH now (for `requires.binaries` and cargo-binstall). */
  hasCommand: (name: string) => boolean;
  /** Catalog tools by binary name, for turning a missing command into a requirement. */
  toolForBinary: (name: string) => string | null;
  /** Latest known version of a tool without the network (cache or baseline), for release downloads. */
  knownLatest: (toolId: string) => string | null;
}

export interface PlanRequest {
  action: Action;
  method?: Method;
  version?: string | null;
  /** For upgrade and uninstall: the method and package of the installation acted on. */
  installed?: { method: Method; package?: string; files?: string[] };
  reinstall?: boolean;
}

const VERSION = /^v?\d+(\.[0-9A-Za-z]+){0,4}([-+~][0-9A-Za-z.+~-]+)?$/;

/** A version that is safe inside an argv and a URL: digits, dots, a pre-release suffix. */
export function checkVersion(version: string, flag: string): string {
  if (!VERSION.test(version) || version.length > 64) {
    throw new UpkeepError('E_VERSION_INVALID', `${flag} ${JSON.stringify(version)} is not a plain version`, {
      hint: 'pass a version such as 1.2.3 or v1.2.3',
      exitCode: ExitCode.usage,
    });
  }
  return version.replace(/^v(?=\d)/, '');
}

export function planTool(tool: Tool, request: PlanRequest, context: PlanContext): ToolPlan {
  const { platform, config } = context;
  const version = request.version ? checkVersion(request.version, request.action === 'upgrade' ? '--to' : '--version') : null;
  const binarySupport = (method: Method): string | null => {
    if (method !== 'binary' || !tool.install?.binary || !platform.os || !platform.arch) return null;
    try {
      renderBinary(tool.install.binary, { version: version ?? context.knownLatest(tool.id) ?? '0.0.0', os: platform.os, arch: platform.arch, binaries: tool.binaries });
      return null;
    } catch (error) {
      return error instanceof UpkeepError ? error.message : String(error);
    }
  };
  const selection =
    request.installed && request.action !== 'install'
      ? { chosen: { method: request.installed.method, reason: `it was installed with ${request.installed.method}` }, alternatives: [], rejected: [] }
      : selectMethod(tool, { platform, config: config.install, method: request.method, version, supports: binarySupport });
  const method = selection.chosen.method;

  const requires = new Set(tool.requires?.tools ?? []);
  const missingBinaries: string[] = [];
  const steps: PlannedStep[] = [];
  const methodRequires = methodRequirements(tool, method);
  for (const binary of [...(tool.requires?.binaries ?? []), ...(methodRequires?.binaries ?? [])]) {
    if (context.hasCommand(binary)) continue;
    const provider = context.toolForBinary(binary);
    if (provider && provider !== tool.id) requires.add(provider);
    else missingBinaries.push(binary);
  }
  for (const id of methodRequires?.tools ?? []) requires.add(id);
  if (request.action !== 'uninstall') {
    const packages = [...(tool.requires?.packages ?? []), ...(methodRequires?.packages ?? []), ...repositoryOf(tool, method, platform)];
    const prerequisite = prerequisiteStep(packages, context);
    if (prerequisite) steps.push(prerequisite);
  }

  const timeoutSeconds = config.install.stepTimeout * (METHOD_TRAITS[method].compiles ? 2 : 1);
  const spec = tool.install ? methodSpec(tool.install, method) : null;
  const packageOverride = request.installed?.package;
  const effective: MethodSpec | null = spec && packageOverride ? { ...spec, packages: [packageOverride] } : spec;
  const command = (entry: CommandStep): PlannedStep => commandStep(entry, method, timeoutSeconds, platform);

  let targetVersion = version;
  if (method === 'binary') {
    const binary = tool.install?.binary as BinarySpec | undefined;
    if (request.action === 'uninstall') steps.push(removeFiles(request.installed?.files ?? tool.binaries.map((name) => `${context.binDir}/${name}`), method));
    else if (binary) {
      targetVersion = version ?? context.knownLatest(tool.id);
      if (!targetVersion) {
        throw new UpkeepError('E_NO_METHOD', `the latest version of ${tool.id} is unknown, and a release download needs one`, {
          hint: 'pass --version, or run `upkeep audit` online first',
        });
      }
      const download = renderBinary(binary, { version: targetVersion, os: platform.os!, arch: platform.arch!, binaries: tool.binaries, githubEndpoint: config.endpoints.github });
      steps.push({
        kind: 'binary',
        description: `download ${download.url} and place ${download.files.map((file) => file.name).join(', ')} in ${context.binDir}`,
        download,
        version: targetVersion,
        binDir: context.binDir,
        lock: null,
        root: null,
        timeoutSeconds,
        method: 'binary',
      });
    }
  } else if (method === 'script') {
    const script = tool.install?.script as ScriptSpec;
    if (request.action === 'uninstall') {
      if (!script.uninstall) {
        throw new UpkeepError('E_UNINSTALL_REFUSED', `${tool.id} was installed by its vendor's script, which has no known uninstall command`, {
          hint: `remove it as ${tool.homepage} describes`,
        });
      }
      steps.push(commandStep({ argv: script.uninstall, description: `remove ${tool.id} with its own uninstaller` }, method, timeoutSeconds, platform));
    } else {
      const args = request.action === 'upgrade' && script.updateArgs ? script.updateArgs : script.args;
      steps.push({
        kind: 'script',
        description: `download the installer ${script.url} and run it with ${script.shell}`,
        url: script.url,
        shell: script.shell,
        args,
        ...(script.env ? { env: script.env } : {}),
        lock: null,
        root: null,
        timeoutSeconds,
        method: 'script',
      });
    }
  } else if (method === 'go' && request.action === 'uninstall') {
    steps.push(removeFiles(request.installed?.files ?? [], method));
  } else if (effective) {
    const hasBinstall = method === 'cargo' && context.hasCommand('cargo-binstall');
    const entries =
      request.action === 'uninstall'
        ? uninstallCommands(effective)
        : request.action === 'upgrade' && version === null
          ? upgradeCommands(effective, { hasBinstall })
          : installCommands(effective, version, { hasBinstall, reinstall: request.reinstall || request.action === 'upgrade' });
    steps.push(...entries.map(command));
  } else {
    throw new UpkeepError('E_NO_RECIPE', `${tool.id} has no ${method} recipe to ${request.action} it with`, {
      hint: `${request.action} it with ${method} by hand`,
    });
  }

  return {
    action: request.action,
    tool: tool.id,
    name: tool.name,
    method,
    reason: selection.chosen.reason,
    alternatives: selection.alternatives,
    rejected: selection.rejected,
    version: targetVersion,
    steps,
    requires: [...requires].filter((id) => id !== tool.id),
    missingBinaries,
    packages: effective?.packages ?? [],
  };
}

function methodRequirements(tool: Tool, method: Method): Tool['requires'] {
  const raw = tool.install?.[method];
  return raw && typeof raw === 'object' && !Array.isArray(raw) && 'requires' in raw ? raw.requires : undefined;
}

/** `repository: epel` on a dnf recipe: the group that enables it goes first. */
function repositoryOf(tool: Tool, method: Method, platform: Platform): Packages[] {
  // EPEL and its kind extend Enterprise Linux; Fedora ships those packages itself.
  if (platform.distribution?.id === 'fedora') return [];
  const raw = tool.install?.[method];
  return raw && typeof raw === 'object' && !Array.isArray(raw) && 'repository' in raw && raw.repository ? [raw.repository] : [];
}

function prerequisiteStep(packages: Packages[], context: PlanContext): PlannedStep | null {
  if (packages.length === 0) return null;
  const family = context.platform.family;
  if (!family) return null;
  const names = new Set<string>();
  for (const entry of packages) for (const name of resolvePackages(entry, family, context.groups) ?? []) names.add(name);
  if (names.size === 0) return null;
  const method = familyManager(family, context.platform.methods);
  const entry = systemPackageInstall(method, [...names]);
  return commandStep(
    { ...entry, description: `install the packages it needs first: ${[...names].join(', ')}` },
    method,
    context.config.install.stepTimeout,
    context.platform,
  );
}

function commandStep(entry: CommandStep, method: Method, timeoutSeconds: number, platform: Platform): PlannedStep {
  const traits = METHOD_TRAITS[method];
  const root = traits.needsRoot ? `${traits.command} changes system folders` : null;
  const sudo = root !== null && platform.privilege !== 'root';
  return {
    kind: 'command',
    description: entry.description,
    argv: sudo ? ['sudo', '-n', ...(entry.env ? ['env', ...Object.entries(entry.env).map(([key, value]) => `${key}=${value}`)] : []), ...entry.argv] : entry.argv,
    ...(entry.env ? { env: entry.env } : {}),
    root,
    lock: traits.lock,
    timeoutSeconds,
    method,
  };
}

function removeFiles(files: string[], method: Method): PlannedStep {
  return { kind: 'remove-files', description: `remove ${files.join(', ')}`, files, lock: null, root: null, timeoutSeconds: 30, method };
}
