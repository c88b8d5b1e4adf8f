import type { Category, UpstreamSource } from '../catalog/schema.ts';

/** How a binary got onto the machine. */
export const INSTALL_METHODS = [
  'apt',
  'rpm',
  'pacman',
  'apk',
  'zypper',
  'homebrew',
  'snap',
  'flatpak',
  'nix',
  'nvm',
  'fnm',
  'pyenv',
  'rbenv',
  'nodenv',
  'goenv',
  'asdf',
  'mise',
  'volta',
  'uv',
  'pipx',
  'pip-user',
  'npm-global',
  'npm-user',
  'npm-project',
  'pnpm',
  'bun',
  'deno',
  'cargo',
  'rustup',
  'go',
  'sdkman',
  'conda',
  'venv',
  'manual',
  'unknown',
] as const;
export type InstallMethod = (typeof INSTALL_METHODS)[number];

export interface Classification {
  method: InstallMethod;
  /** Why: the rule that matched, e.g. "owned by dpkg package ripgrep". */
  reason: string;
  /** The system package that owns the binary, when one does. */
  package?: string;
}

export type ToolStatus =
  | 'up-to-date'
  | 'outdated'
  | 'ahead'
  | 'not-installed'
  | 'different-tool'
  | 'unknown';

export interface Installation {
  path: string;
  realPath: string;
  version: string | null;
  method: InstallMethod;
  reason: string;
  /** True when found in a PATH folder (the first such one is the one that runs). */
  onPath?: boolean;
  /** Set when the binary is another program with the same name. */
  differentTool?: string;
  /** Set when the version could not be read, and why. */
  error?: string;
  /** For shims: the file the shim runs. */
  shimTarget?: string;
}

export interface LatestVersion {
  version: string;
  source: UpstreamSource;
  url: string | null;
  /** True when the value is older than the cache's time to live, or a fallback after a failed fetch. */
  stale: boolean;
  fetchedAt: string | null;
}

export interface ToolReport {
  id: string;
  name: string;
  category: Category;
  status: ToolStatus;
  /** For outdated tools: how far behind. */
  delta?: 'major' | 'minor' | 'patch';
  /** Why the status is unknown or different-tool. */
  reason?: string;
  /** For outdated tools: the command that would upgrade the active installation. */
  upgrade?: string;
  installed: { version: string | null; path: string; method: InstallMethod; reason: string } | null;
  installations: Installation[];
  latest: LatestVersion | null;
}

export interface AuditDocument {
  schemaVersion: 1;
  meta: { createdAt: string; offline: boolean; host: string; upkeepVersion: string };
  tools: ToolReport[];
}
