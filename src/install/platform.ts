import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { machine, platform as osPlatform, userInfo } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { METHODS, type Family, type Method } from '../catalog/schema.ts';
import type { Executor } from '../core/exec.ts';
import { detectEnvironmentMode, type EnvironmentSetting } from './environment-mode.ts';
import type { Architecture, Distribution, OperatingSystem, Platform, Privilege } from './types.ts';

/**
 * Where upkeep runs: OS, distribution family, architecture, the package
 * managers on PATH, how root can be had, and whether this is CI, a server or a
 * workstation. Every plan starts from this, so it stays cheap: file reads and
 * stat calls, plus one spawn at most (sudo, or sw_vers on macOS).
 */

export { detectEnvironmentMode } from './environment-mode.ts';

export interface DetectPlatformOptions {
  /** The environment upkeep runs with: PATH and the CI/display variables come from here. */
  environment: Readonly<Record<string, string | undefined>>;
  /** The install section of the config (only `environment` is read). */
  config?: { environment: EnvironmentSetting };
  executor: Executor;
  /** The os-release file; /etc/os-release then /usr/lib/os-release when absent. */
  osRelease?: string;
  /** node's `os.platform()` when absent. */
  os?: string;
  /** node's `os.machine()` when absent. */
  arch?: string;
  /** The caller's user id; the current user's when absent. */
  uid?: number;
  /** Replaced in tests so that /.dockerenv can be faked. */
  fileExists?: (path: string) => boolean;
}

const OS_RELEASE_FILES = ['/etc/os-release', '/usr/lib/os-release'] as const;
const SUDO_TIMEOUT = 5_000;
const SW_VERS_TIMEOUT = 5_000;

/** Distribution ids, and the generic words that ID_LIKE uses, by family. */
const FAMILY_IDS: Record<Exclude<Family, 'macos'>, readonly string[]> = {
  debian: ['debian', 'ubuntu', 'linuxmint', 'pop', 'raspbian', 'kali', 'elementary', 'zorin', 'devuan', 'neon'],
  rhel: ['fedora', 'rhel', 'centos', 'rocky', 'almalinux', 'ol', 'amzn', 'nobara'],
  arch: ['arch', 'manjaro', 'endeavouros', 'garuda', 'artix'],
  alpine: ['alpine'],
  suse: ['opensuse-leap', 'opensuse-tumbleweed', 'sles', 'sled', 'opensuse-microos', 'opensuse', 'suse'],
};

const FAMILY_BY_ID = new Map<string, Family>([
  ...Object.entries(FAMILY_IDS).flatMap(([family, ids]) => ids.map((id) => [id, family as Family] as const)),
  ['macos', 'macos'],
]);

/** The commands that stand for each method, in the order they are preferred. */
const METHOD_COMMANDS: Partial<Record<Method, readonly string[]>> = {
  apt: ['apt-get'],
  dnf: ['dnf'],
  yum: ['yum'],
  pacman: ['pacman'],
  apk: ['apk'],
  zypper: ['zypper'],
  brew: ['brew'],
  snap: ['snap'],
  flatpak: ['flatpak'],
  pipx: ['pipx'],
  uv: ['uv'],
  pip: ['pip3', 'pip'],
  npm: ['npm'],
  cargo: ['cargo'],
  go: ['go'],
  script: ['sh'],
};

export async function detectPlatform(options: DetectPlatformOptions): Promise<Platform> {
  const rawOs = options.os ?? osPlatform();
  const rawArch = options.arch ?? machine();
  const os = normaliseOs(rawOs);
  const fileExists = options.fileExists ?? pathExists;
  const searchPath = pathFolders(options.environment.PATH);

  const [distribution, privilege] = await Promise.all([
    os === 'darwin' ? macDistribution(options.executor, options.environment) : Promise.resolve(os === 'linux' ? linuxDistribution(options.osRelease) : null),
    detectPrivilege(options.uid ?? currentUid(), searchPath, options.executor, options.environment),
  ]);
  const { methods, managerPaths } = availableMethods(searchPath);

  return {
    os,
    arch: normaliseArch(rawArch),
    rawOs,
    rawArch,
    distribution,
    family: distribution ? familyOf(distribution) : null,
    methods,
    managerPaths,
    privilege,
    environment: detectEnvironmentMode({ environment: options.environment, setting: options.config?.environment, os: rawOs, fileExists }),
  };
}

export function normaliseOs(raw: string): OperatingSystem | null {
  return raw === 'linux' || raw === 'darwin' ? raw : null;
}

export function normaliseArch(raw: string): Architecture | null {
  switch (raw.toLowerCase()) {
    case 'x64':
    case 'amd64':
    case 'x86_64':
      return 'x86_64';
    case 'arm64':
    case 'aarch64':
      return 'aarch64';
    default:
      return null;
  }
}

/**
 * Reads os-release(5): shell-style KEY=value lines where the value may be
 * quoted with " or ' (or pieces of both), and backslash escapes $ " \ ` in
 * double quotes and anything outside quotes. Comments, blank lines and lines
 * that are not assignments are skipped, as systemd does.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue;
    const value = unquote(match[2]!);
    if (value !== null) fields[match[1]!] = value;
  }
  return fields;
}

/** null when a quote is left open: the line is broken and better ignored than half read. */
function unquote(raw: string): string | null {
  let value = '';
  let quote: '"' | "'" | null = null;
  for (let index = 0; index < raw.length; index++) {
    const character = raw[index]!;
    if (quote === "'") {
      if (character === "'") quote = null;
      else value += character;
    } else if (quote === '"') {
      if (character === '"') quote = null;
      else if (character === '\\' && index + 1 < raw.length && '$"\\`'.includes(raw[index + 1]!)) value += raw[++index];
      else value += character;
    } else if (character === '"' || character === "'") {
      quote = character;
    } else if (character === '\\' && index + 1 < raw.length) {
      value += raw[++index];
    } else {
      value += character;
    }
  }
  return quote === null ? value : null;
}

export function distributionFromOsRelease(fields: Record<string, string>): Distribution {
  const id = (fields.ID ?? 'linux').toLowerCase();
  const name = fields.PRETTY_NAME || fields.NAME || 'Linux';
  const version = fields.VERSION_ID || null;
  const idLike = (fields.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  return { id, name, version, idLike };
}

/** The family of a distribution from its ID, else from the first ID_LIKE word upkeep knows. */
export function familyOf(distribution: Pick<Distribution, 'id' | 'idLike'>): Family | null {
  for (const id of [distribution.id, ...distribution.idLike]) {
    const family = FAMILY_BY_ID.get(id.toLowerCase());
    if (family) return family;
  }
  return null;
}

function linuxDistribution(osRelease: string | undefined): Distribution | null {
  for (const path of osRelease ? [osRelease] : OS_RELEASE_FILES) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    return distributionFromOsRelease(parseOsRelease(text));
  }
  return null;
}

async function macDistribution(executor: Executor, environment: DetectPlatformOptions['environment']): Promise<Distribution> {
  let version: string | null = null;
  try {
    const result = await executor.run(['sw_vers', '-productVersion'], { mode: 'always', timeout: SW_VERS_TIMEOUT, env: environment });
    const output = result.stdout.trim();
    if (result.exitCode === 0 && /^\d+(\.\d+)*$/.test(output)) version = output;
  } catch {
    // Without sw_vers the version is unknown; the family is still macOS.
  }
  return { id: 'macos', name: version ? `macOS ${version}` : 'macOS', version, idLike: [] };
}

async function detectPrivilege(
  uid: number,
  searchPath: string[],
  executor: Executor,
  environment: DetectPlatformOptions['environment'],
): Promise<Privilege> {
  if (uid === 0) return 'root';
  const sudo = findExecutable('sudo', searchPath);
  if (!sudo) return 'none';
  try {
    // -n fails instead of prompting, so this never waits for a password.
    const result = await executor.run([sudo, '-n', 'true'], { mode: 'always', timeout: SUDO_TIMEOUT, env: environment });
    return result.exitCode === 0 ? 'sudo-passwordless' : 'sudo-password';
  } catch {
    return 'none';
  }
}

function availableMethods(searchPath: string[]): { methods: Method[]; managerPaths: Partial<Record<Method, string>> } {
  const methods: Method[] = [];
  const managerPaths: Partial<Record<Method, string>> = {};
  for (const method of METHODS) {
    if (method === 'binary') {
      methods.push(method);
      continue;
    }
    for (const command of METHOD_COMMANDS[method] ?? []) {
      const path = findExecutable(command, searchPath);
      if (!path) continue;
      methods.push(method);
      managerPaths[method] = path;
      break;
    }
  }
  return { methods, managerPaths };
}

/** Relative and empty PATH entries mean the working folder, which must never decide what runs as a package manager. */
function pathFolders(path: string | undefined): string[] {
  return (path ?? '').split(delimiter).filter((folder) => folder !== '' && isAbsolute(folder));
}

export function findExecutable(command: string, searchPath: readonly string[]): string | null {
  for (const folder of searchPath) {
    const candidate = join(folder, command);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return null;
}

function pathExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function currentUid(): number {
  try {
    return userInfo().uid;
  } catch {
    // A uid without a passwd entry (common in containers) cannot be root: root always has one.
    return -1;
  }
}
