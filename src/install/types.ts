import type { Family, Method } from '../catalog/schema.ts';

/** Where upkeep runs: what `upkeep platform` prints and every plan starts from. */

export type OperatingSystem = 'linux' | 'darwin';
/** Normalised machine names (uname -m): amd64 is x86_64, arm64 is aarch64. */
export type Architecture = 'x86_64' | 'aarch64';

export interface Distribution {
  /** os-release ID, e.g. debian, ubuntu, fedora, rocky, arch, alpine, opensuse-tumbleweed; `macos` on macOS. */
  id: string;
  /** PRETTY_NAME or NAME. */
  name: string;
  /** VERSION_ID; null on rolling releases that have none. */
  version: string | null;
  /** ID_LIKE, split on spaces. */
  idLike: string[];
}

export type EnvironmentMode = 'ci' | 'server' | 'workstation';

export interface EnvironmentDetection {
  mode: EnvironmentMode;
  /** 0..1: how sure the detection is (1 when set in config). */
  confidence: number;
  /** What decided it, e.g. ["CI=true"], ["DISPLAY=:0"], ["config install.environment=server"]. */
  indicators: string[];
  overridden: boolean;
}

/** How upkeep can get root: already root, sudo without a password, sudo that asks, or not at all. */
export type Privilege = 'root' | 'sudo-passwordless' | 'sudo-password' | 'none';

export interface Platform {
  /** null when the OS is neither Linux nor macOS (installs are refused there). */
  os: OperatingSystem | null;
  /** The raw value when it is neither x86_64 nor aarch64. */
  arch: Architecture | null;
  rawOs: string;
  rawArch: string;
  distribution: Distribution | null;
  /** null when the distribution is not one upkeep knows a family for. */
  family: Family | null;
  /** Methods whose package manager is on PATH (binary is always there; script needs sh). */
  methods: Method[];
  /** The command each available method runs, e.g. { apt: '/usr/bin/apt-get', pipx: '/home/me/.local/bin/pipx' }. */
  managerPaths: Partial<Record<Method, string>>;
  privilege: Privilege;
  environment: EnvironmentDetection;
}
