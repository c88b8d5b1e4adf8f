import type { Family, Install, Method, Tool } from '../catalog/schema.ts';

/**
 * What each install method runs: the argv to install (optionally a given
 * version), to upgrade (derived for package managers, the seed 001 table), and
 * to uninstall; whether that needs root; and which mutex it takes, so two
 * operations on one package database never overlap (dnf, yum and zypper all
 * write the rpm database; apt takes dpkg's lock).
 */

export interface MethodTraits {
  /** The command that must be on PATH for the method to be available. */
  command: string | null;
  /** The family whose system package manager this is; null for cross-platform methods. */
  family: Family | null;
  /** Steps change system folders. */
  needsRoot: boolean;
  /** Mutex key: one operation at a time per key. */
  lock: string | null;
  /** The method can install a chosen version (brew, pacman and snap install only the current one). */
  pinsVersions: boolean;
  /** Builds from source: allowed more time. */
  compiles: boolean;
}

export const METHOD_TRAITS: Record<Method, MethodTraits> = {
  apt: { command: 'apt-get', family: 'debian', needsRoot: true, lock: 'dpkg', pinsVersions: true, compiles: false },
  dnf: { command: 'dnf', family: 'rhel', needsRoot: true, lock: 'rpm', pinsVersions: true, compiles: false },
  yum: { command: 'yum', family: 'rhel', needsRoot: true, lock: 'rpm', pinsVersions: true, compiles: false },
  pacman: { command: 'pacman', family: 'arch', needsRoot: true, lock: 'pacman', pinsVersions: false, compiles: false },
  apk: { command: 'apk', family: 'alpine', needsRoot: true, lock: 'apk', pinsVersions: true, compiles: false },
  zypper: { command: 'zypper', family: 'suse', needsRoot: true, lock: 'rpm', pinsVersions: true, compiles: false },
  // Homebrew refuses to run as root; it is per-user on both macOS and Linux.
  brew: { command: 'brew', family: null, needsRoot: false, lock: 'brew', pinsVersions: false, compiles: false },
  snap: { command: 'snap', family: null, needsRoot: true, lock: 'snap', pinsVersions: false, compiles: false },
  flatpak: { command: 'flatpak', family: null, needsRoot: false, lock: 'flatpak', pinsVersions: false, compiles: false },
  binary: { command: null, family: null, needsRoot: false, lock: null, pinsVersions: true, compiles: false },
  pipx: { command: 'pipx', family: null, needsRoot: false, lock: 'pipx', pinsVersions: true, compiles: false },
  uv: { command: 'uv', family: null, needsRoot: false, lock: 'uv', pinsVersions: true, compiles: false },
  pip: { command: 'python3', family: null, needsRoot: false, lock: 'pip', pinsVersions: true, compiles: false },
  npm: { command: 'npm', family: null, needsRoot: false, lock: 'npm', pinsVersions: true, compiles: false },
  cargo: { command: 'cargo', family: null, needsRoot: false, lock: 'cargo', pinsVersions: true, compiles: true },
  go: { command: 'go', family: null, needsRoot: false, lock: null, pinsVersions: true, compiles: true },
  script: { command: 'sh', family: null, needsRoot: false, lock: null, pinsVersions: false, compiles: false },
};

/** The system package manager of each family, for `requires.packages` and handlers' install-packages. */
export const FAMILY_MANAGER: Record<Family, Method> = {
  debian: 'apt',
  rhel: 'dnf',
  arch: 'pacman',
  alpine: 'apk',
  suse: 'zypper',
  macos: 'brew',
};

/** A method's recipe entry in one shape, whatever form the YAML used. */
export interface MethodSpec {
  method: Method;
  /** Packages, crate, module or application id. */
  packages: string[];
  cask: boolean;
  tap: string | null;
  classic: boolean;
  channel: string | null;
  remote: string | null;
  features: string[];
  locked: boolean;
  git: string | null;
}

function emptySpec(method: Method): MethodSpec {
  return { method, packages: [], cask: false, tap: null, classic: false, channel: null, remote: null, features: [], locked: true, git: null };
}

export function methodSpec(install: Install, method: Method): MethodSpec | null {
  const raw = install[method];
  if (raw === undefined) return null;
  const base = emptySpec(method);
  if (typeof raw === 'string') return { ...base, packages: [raw] };
  if (Array.isArray(raw)) return { ...base, packages: raw };
  if ('url' in raw) return base; // binary and script carry their own spec
  if ('crate' in raw) return { ...base, packages: [raw.crate], features: raw.features ?? [], locked: raw.locked ?? true, git: raw.git ?? null };
  if ('module' in raw) return { ...base, packages: [raw.module] };
  const packages = Array.isArray(raw.package) ? raw.package : [raw.package];
  return {
    ...base,
    packages,
    cask: 'cask' in raw ? (raw.cask ?? false) : false,
    tap: 'tap' in raw ? (raw.tap ?? null) : null,
    classic: 'classic' in raw ? (raw.classic ?? false) : false,
    channel: 'channel' in raw ? (raw.channel ?? null) : null,
    remote: 'remote' in raw ? raw.remote : null,
  };
}

/** The methods a recipe has, in the order it lists them. */
export function recipeMethods(tool: Tool): Method[] {
  return tool.install ? (Object.keys(tool.install) as Method[]).filter((method) => tool.install?.[method] !== undefined) : [];
}

export interface CommandStep {
  argv: string[];
  /** Variables added to the environment (DEBIAN_FRONTEND...). */
  env?: Record<string, string>;
  description: string;
}

const NONINTERACTIVE: Partial<Record<Method, Record<string, string>>> = {
  apt: { DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_MODE: 'a' },
  brew: { HOMEBREW_NO_AUTO_UPDATE: '1', HOMEBREW_NO_ENV_HINTS: '1' },
  pip: { PIP_DISABLE_PIP_VERSION_CHECK: '1' },
  npm: { npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' },
};

function step(method: Method, argv: string[], description: string): CommandStep {
  const env = NONINTERACTIVE[method];
  return env ? { argv, env, description } : { argv, description };
}

/** `name=version` and friends: how each manager spells "this version of that package". */
function pinned(method: Method, name: string, version: string | null): string {
  if (version === null) return name;
  switch (method) {
    case 'apt':
    case 'apk':
    case 'zypper':
      return `${name}=${version}`;
    case 'dnf':
    case 'yum':
      return `${name}-${version}`;
    case 'pipx':
    case 'uv':
    case 'pip':
      return `${name}==${version}`;
    case 'npm':
      return `${name}@${version}`;
    case 'go':
      return `${name}@v${version.replace(/^v/, '')}`;
    default:
      return name;
  }
}

/**
 * The argv that install `spec` (with `version` when given). `hasBinstall`:
 * cargo-binstall is on PATH, which fetches prebuilt crates instead of compiling.
 */
export function installCommands(spec: MethodSpec, version: string | null, options: { hasBinstall?: boolean; reinstall?: boolean } = {}): CommandStep[] {
  const { method, packages } = spec;
  const targets = packages.map((name) => pinned(method, name, version));
  const list = packages.join(', ');
  switch (method) {
    case 'apt':
      return [step(method, ['apt-get', 'install', '-y', ...(version ? ['--allow-downgrades'] : []), ...targets], `install ${list} with apt`)];
    case 'dnf':
    case 'yum':
      return [step(method, [method, 'install', '-y', ...targets], `install ${list} with ${method}`)];
    case 'pacman':
      return [step(method, ['pacman', '-S', '--noconfirm', '--needed', ...targets], `install ${list} with pacman`)];
    case 'apk':
      return [step(method, ['apk', 'add', ...targets], `install ${list} with apk`)];
    case 'zypper':
      return [step(method, ['zypper', '--non-interactive', 'install', ...targets], `install ${list} with zypper`)];
    case 'brew': {
      const steps: CommandStep[] = [];
      if (spec.tap) steps.push(step(method, ['brew', 'tap', spec.tap], `add the Homebrew tap ${spec.tap}`));
      steps.push(step(method, ['brew', 'install', ...(spec.cask ? ['--cask'] : []), ...targets], `install ${list} with Homebrew`));
      return steps;
    }
    case 'snap':
      return [
        step(
          method,
          ['snap', 'install', ...targets, ...(spec.classic ? ['--classic'] : []), ...(spec.channel ? [`--channel=${spec.channel}`] : [])],
          `install ${list} with snap`,
        ),
      ];
    case 'flatpak':
      return [step(method, ['flatpak', 'install', '--user', '-y', '--noninteractive', spec.remote ?? 'flathub', ...targets], `install ${list} with flatpak`)];
    case 'pipx':
      return [step(method, ['pipx', 'install', ...(options.reinstall || version ? ['--force'] : []), ...targets], `install ${list} with pipx`)];
    case 'uv':
      return [step(method, ['uv', 'tool', 'install', ...(options.reinstall || version ? ['--force'] : []), ...targets], `install ${list} with uv`)];
    case 'pip':
      return [step(method, ['python3', '-m', 'pip', 'install', '--user', ...targets], `install ${list} with pip (user site)`)];
    case 'npm':
      return [step(method, ['npm', 'install', '-g', ...targets], `install ${list} with npm`)];
    case 'cargo': {
      const crate = packages[0]!;
      if (options.hasBinstall && !spec.git) {
        return [step(method, ['cargo', 'binstall', '-y', ...(version ? [`${crate}@${version}`] : [crate])], `install ${crate} with cargo-binstall`)];
      }
      return [
        step(
          method,
          [
            'cargo',
            'install',
            ...(spec.locked ? ['--locked'] : []),
            ...(spec.git ? ['--git', spec.git] : []),
            ...(spec.features.length > 0 ? ['--features', spec.features.join(',')] : []),
            ...(version ? ['--version', version] : []),
            ...(options.reinstall ? ['--force'] : []),
            crate,
          ],
          `build and install ${crate} with cargo`,
        ),
      ];
    }
    case 'go':
      return [step(method, ['go', 'install', version ? targets[0]! : `${packages[0]!}@latest`], `build and install ${packages[0]!} with go`)];
    case 'binary':
    case 'script':
      throw new Error(`${method} has no package-manager command`);
  }
}

/** Upgrade commands, derived per manager (seed 001, evolution D). */
export function upgradeCommands(spec: MethodSpec, options: { hasBinstall?: boolean } = {}): CommandStep[] {
  const { method, packages } = spec;
  const list = packages.join(', ');
  switch (method) {
    case 'apt':
      return [step(method, ['apt-get', 'install', '--only-upgrade', '-y', ...packages], `upgrade ${list} with apt`)];
    case 'dnf':
      return [step(method, ['dnf', 'upgrade', '-y', ...packages], `upgrade ${list} with dnf`)];
    case 'yum':
      return [step(method, ['yum', 'update', '-y', ...packages], `upgrade ${list} with yum`)];
    case 'pacman':
      return [step(method, ['pacman', '-S', '--noconfirm', ...packages], `upgrade ${list} with pacman`)];
    case 'apk':
      return [step(method, ['apk', 'upgrade', ...packages], `upgrade ${list} with apk`)];
    case 'zypper':
      return [step(method, ['zypper', '--non-interactive', 'update', ...packages], `upgrade ${list} with zypper`)];
    case 'brew':
      return [step(method, ['brew', 'upgrade', ...(spec.cask ? ['--cask'] : []), ...packages], `upgrade ${list} with Homebrew`)];
    case 'snap':
      return [step(method, ['snap', 'refresh', ...packages], `refresh ${list} with snap`)];
    case 'flatpak':
      return [step(method, ['flatpak', 'update', '--user', '-y', '--noninteractive', ...packages], `update ${list} with flatpak`)];
    case 'pipx':
      return [step(method, ['pipx', 'upgrade', ...packages], `upgrade ${list} with pipx`)];
    case 'uv':
      return [step(method, ['uv', 'tool', 'upgrade', ...packages], `upgrade ${list} with uv`)];
    case 'pip':
      return [step(method, ['python3', '-m', 'pip', 'install', '--user', '--upgrade', ...packages], `upgrade ${list} with pip`)];
    case 'npm':
      return [step(method, ['npm', 'install', '-g', ...packages.map((name) => `${name}@latest`)], `upgrade ${list} with npm`)];
    case 'cargo':
    case 'go':
      return installCommands(spec, null, { ...options, reinstall: method === 'cargo' });
    case 'binary':
    case 'script':
      throw new Error(`${method} upgrades by installing again`);
  }
}

export function uninstallCommands(spec: MethodSpec): CommandStep[] {
  const { method, packages } = spec;
  const list = packages.join(', ');
  switch (method) {
    case 'apt':
      return [step(method, ['apt-get', 'remove', '-y', ...packages], `remove ${list} with apt`)];
    case 'dnf':
    case 'yum':
      return [step(method, [method, 'remove', '-y', ...packages], `remove ${list} with ${method}`)];
    case 'pacman':
      return [step(method, ['pacman', '-R', '--noconfirm', ...packages], `remove ${list} with pacman`)];
    case 'apk':
      return [step(method, ['apk', 'del', ...packages], `remove ${list} with apk`)];
    case 'zypper':
      return [step(method, ['zypper', '--non-interactive', 'remove', ...packages], `remove ${list} with zypper`)];
    case 'brew':
      return [step(method, ['brew', 'uninstall', ...(spec.cask ? ['--cask'] : []), ...packages], `remove ${list} with Homebrew`)];
    case 'snap':
      return [step(method, ['snap', 'remove', ...packages], `remove ${list} with snap`)];
    case 'flatpak':
      return [step(method, ['flatpak', 'uninstall', '--user', '-y', '--noninteractive', ...packages], `remove ${list} with flatpak`)];
    case 'pipx':
      return [step(method, ['pipx', 'uninstall', ...packages], `remove ${list} with pipx`)];
    case 'uv':
      return [step(method, ['uv', 'tool', 'uninstall', ...packages], `remove ${list} with uv`)];
    case 'pip':
      return [step(method, ['python3', '-m', 'pip', 'uninstall', '-y', ...packages], `remove ${list} with pip`)];
    case 'npm':
      return [step(method, ['npm', 'uninstall', '-g', ...packages], `remove ${list} with npm`)];
    case 'cargo':
      return [step(method, ['cargo', 'uninstall', ...packages], `remove ${list} with cargo`)];
    case 'go':
    case 'binary':
    case 'script':
      throw new Error(`${method} removes files, not packages`);
  }
}

/** The family's package manager on this machine: yum only where dnf is absent (RHEL/CentOS 7). */
export function familyManager(family: Family, available: readonly Method[]): Method {
  return family === 'rhel' && !available.includes('dnf') && available.includes('yum') ? 'yum' : FAMILY_MANAGER[family];
}

/** Installs system packages for `requires.packages` and handlers' install-packages (pacman skips what is there). */
export function systemPackageInstall(method: Method, packages: string[]): CommandStep {
  return installCommands({ ...emptySpec(method), packages }, null)[0]!;
}
