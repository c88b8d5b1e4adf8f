import type { Method, Tool } from '../catalog/schema.ts';
import type { Config } from '../core/config.ts';
import { ExitCode, UpkeepError } from '../core/errors.ts';
import { METHOD_TRAITS, recipeMethods } from './managers.ts';
import type { EnvironmentMode, Platform } from './types.ts';

/**
 * Chooses how to install a tool here (seed 000, package manager selection):
 * an explicit `--method`, then the per-tool config, then an order built from
 * config preferences, the language ecosystem's preferences, the recipe's
 * `prefer` and the environment mode, filtered by what this platform can run.
 * Every decision carries its reason, and every method left out says why.
 */

export interface MethodChoice {
  method: Method;
  reason: string;
}

export interface Rejected {
  method: Method;
  reason: string;
}

export interface Selection {
  chosen: MethodChoice;
  /** Usable methods ranked after the chosen one (fallbacks for switch-method). */
  alternatives: MethodChoice[];
  rejected: Rejected[];
}

/**
 * Default orders per environment mode. CI wants user-level, non-interactive,
 * fast methods; servers want what the distribution ships and patches;
 * workstations want current versions in the user's own folders.
 */
const MODE_ORDER: Record<EnvironmentMode, Method[]> = {
  ci: ['uv', 'pipx', 'binary', 'npm', 'go', 'brew', 'apt', 'dnf', 'yum', 'pacman', 'apk', 'zypper', 'cargo', 'pip', 'flatpak', 'snap', 'script'],
  server: ['apt', 'dnf', 'yum', 'pacman', 'apk', 'zypper', 'binary', 'pipx', 'uv', 'npm', 'go', 'cargo', 'brew', 'pip', 'snap', 'flatpak', 'script'],
  workstation: ['brew', 'apt', 'dnf', 'yum', 'pacman', 'apk', 'zypper', 'uv', 'pipx', 'binary', 'npm', 'go', 'cargo', 'flatpak', 'snap', 'pip', 'script'],
};

export interface SelectOptions {
  platform: Platform;
  config: Config['install'];
  /** `--method`. */
  method?: Method;
  /** A version is asked for: methods that cannot pin one are left out. */
  version?: string | null;
  /** Whether a platform-specific check (binary targets) allows the method; a reason when not. */
  supports?: (method: Method) => string | null;
}

/** Why `method` cannot run here, or null when it can. */
export function unavailableReason(method: Method, platform: Platform): string | null {
  const traits = METHOD_TRAITS[method];
  if (traits.family && platform.family !== traits.family) {
    return `${method} is the package manager of the ${traits.family} family; this system is ${platform.family ?? 'of no known family'}`;
  }
  if (method !== 'binary' && !platform.methods.includes(method)) {
    return `${traits.command ?? method} is not installed`;
  }
  if (traits.needsRoot && platform.privilege === 'none') return `${method} needs root, and upkeep is not root and has no sudo`;
  if (method === 'brew' && platform.privilege === 'root') return 'Homebrew refuses to run as root';
  if (method === 'binary' && (platform.os === null || platform.arch === null)) {
    return `no release binaries for ${platform.rawOs}/${platform.rawArch}`;
  }
  return null;
}

export function selectMethod(tool: Tool, options: SelectOptions): Selection {
  const methods = recipeMethods(tool);
  if (methods.length === 0) {
    throw new UpkeepError('E_NO_RECIPE', `${tool.id} has no install recipe`, {
      hint: `install it by hand (${tool.homepage}), or add an install: section to catalog/tools/${tool.id}.yaml`,
    });
  }
  const { platform, config } = options;
  const rejectedReason = (method: Method): string | null => {
    if (config.avoid.includes(method)) return 'config install.avoid lists it';
    const unavailable = unavailableReason(method, platform);
    if (unavailable) return unavailable;
    if (options.version && !METHOD_TRAITS[method].pinsVersions) return `${method} cannot install a chosen version`;
    return options.supports?.(method) ?? null;
  };

  if (options.method) {
    if (!methods.includes(options.method)) {
      throw new UpkeepError('E_METHOD_UNAVAILABLE', `${tool.id} has no ${options.method} recipe`, {
        hint: `its recipe has: ${methods.join(', ')}`,
        exitCode: ExitCode.usage,
      });
    }
    if (METHOD_TRAITS[options.method].needsRoot && platform.privilege === 'none' && platform.methods.includes(options.method)) {
      throw new UpkeepError('E_NEEDS_ROOT', `installing ${tool.id} with ${options.method} needs root (${options.method} changes system folders), and upkeep is not root and sudo is not installed`, {
        hint: `run upkeep as root, or install sudo; its recipe also has: ${methods.filter((method) => method !== options.method).join(', ') || 'nothing else'}`,
      });
    }
    const reason = unavailableReason(options.method, platform) ?? options.supports?.(options.method) ?? null;
    if (reason) {
      throw new UpkeepError(
        options.method !== 'binary' && !platform.methods.includes(options.method) ? 'E_METHOD_UNAVAILABLE' : 'E_PLATFORM_UNSUPPORTED',
        `cannot install ${tool.id} with ${options.method}: ${reason}`,
        { hint: `its recipe also has: ${methods.filter((method) => method !== options.method).join(', ') || 'nothing else'}`, exitCode: ExitCode.usage },
      );
    }
    if (options.version && !METHOD_TRAITS[options.method].pinsVersions) {
      throw new UpkeepError('E_VERSION_UNSUPPORTED', `${options.method} installs only the current version of ${tool.id}`, {
        hint: 'drop --version, or choose a method that pins versions (apt, dnf, npm, pipx, uv, cargo, go, binary)',
        exitCode: ExitCode.usage,
      });
    }
    return { chosen: { method: options.method, reason: 'chosen with --method' }, alternatives: [], rejected: [] };
  }

  // Rank: each source contributes the methods it names, in its order; the first source to name a method gives the reason.
  const ranked: MethodChoice[] = [];
  const seen = new Set<Method>();
  const add = (list: readonly Method[], reason: (method: Method) => string): void => {
    for (const method of list) {
      if (!methods.includes(method) || seen.has(method)) continue;
      seen.add(method);
      ranked.push({ method, reason: reason(method) });
    }
  };
  const pinned = config.tools[tool.id]?.method;
  if (pinned) add([pinned], () => `config install.tools.${tool.id}.method`);
  add(config.prefer, () => 'first in config install.prefer');
  if (tool.ecosystem) {
    const ecosystem = tool.ecosystem;
    add(config.ecosystems[ecosystem] ?? [], () => `config install.ecosystems.${ecosystem} prefers it`);
  }
  add(tool.prefer ?? [], () => `${tool.id}'s recipe prefers it`);
  const mode = platform.environment.mode;
  add(MODE_ORDER[mode], (method) => modeReason(method, mode, platform));
  add(methods, () => 'listed in the recipe');

  const usable: MethodChoice[] = [];
  const rejected: Rejected[] = [];
  for (const choice of ranked) {
    const reason = rejectedReason(choice.method);
    if (reason) rejected.push({ method: choice.method, reason });
    else usable.push(choice);
  }
  const [chosen, ...alternatives] = usable;
  if (!chosen) {
    const platformName = platform.distribution?.name ?? platform.rawOs;
    throw new UpkeepError('E_NO_METHOD', `no install method for ${tool.id} works on ${platformName}`, {
      hint: rejected.map((entry) => `${entry.method}: ${entry.reason}`).join('; '),
      details: { rejected },
    });
  }
  return { chosen, alternatives, rejected };
}

function modeReason(method: Method, mode: EnvironmentMode, platform: Platform): string {
  const system = METHOD_TRAITS[method].family !== null;
  if (mode === 'server' && system) return `the ${platform.family} system package manager, preferred on servers`;
  if (mode === 'ci' && !system) return `a user-level, non-interactive method, preferred in CI`;
  if (mode === 'workstation' && method === 'brew') return 'Homebrew, preferred on workstations that have it';
  if (system) return `the ${platform.family} system package manager`;
  return `the first usable method for a ${mode}`;
}
