import type { EnvironmentDetection, EnvironmentMode } from './types.ts';

/**
 * Whether upkeep runs in CI, on a server or on a workstation. The mode decides
 * how careful an install is: CI never prompts and fails fast, a server prefers
 * the system package manager, a workstation the user's own managers. Only
 * cheap evidence is used (variables and one file test), because every command
 * that plans an install pays for this.
 */

export type EnvironmentSetting = EnvironmentMode | 'auto';

export interface EnvironmentModeOptions {
  environment: Readonly<Record<string, string | undefined>>;
  /** install.environment from the config; anything but `auto` wins outright. */
  setting?: EnvironmentSetting;
  /** The raw OS name (node's `os.platform()`): linux, darwin, ... */
  os: string;
  /** Replaced in tests so that /.dockerenv can be faked. */
  fileExists: (path: string) => boolean;
}

/** Variables that only a CI service sets, so their presence is near certain. */
const CI_SERVICES = ['GITHUB_ACTIONS', 'GITLAB_CI', 'BUILDKITE', 'CIRCLECI', 'JENKINS_URL', 'TF_BUILD', 'TEAMCITY_VERSION', 'TRAVIS'] as const;

const CONFIDENCE = {
  override: 1,
  ciService: 0.99,
  ciVariable: 0.95,
  display: 0.9,
  /** A Linux machine without a display is probably a server; each extra sign adds to it. */
  serverBase: 0.6,
  serverStep: 0.1,
  serverMaximum: 0.8,
  fallback: 0.5,
} as const;

/** Files that container runtimes create: Docker's and Podman's. */
const CONTAINER_FILES = ['/.dockerenv', '/run/.containerenv'] as const;

export function detectEnvironmentMode(options: EnvironmentModeOptions): EnvironmentDetection {
  const { environment, os } = options;
  const setting = options.setting ?? 'auto';
  if (setting !== 'auto') {
    return { mode: setting, confidence: CONFIDENCE.override, indicators: [`config install.environment=${setting}`], overridden: true };
  }

  const ci = ciIndicators(environment);
  if (ci.indicators.length > 0) return { mode: 'ci', confidence: ci.confidence, indicators: ci.indicators, overridden: false };

  const display = displayIndicators(environment);
  if (os === 'darwin') {
    return { mode: 'workstation', confidence: CONFIDENCE.display, indicators: ['macOS', ...display.local], overridden: false };
  }
  if (display.local.length > 0) {
    return { mode: 'workstation', confidence: CONFIDENCE.display, indicators: display.local, overridden: false };
  }

  const server = [...sshIndicators(environment), ...containerIndicators(environment, options.fileExists)];
  if (os === 'linux') {
    // The absence of a display counts as the first sign; the rest add to it.
    const indicators = [...server, display.forwarded ?? 'no DISPLAY or WAYLAND_DISPLAY'];
    const confidence = Math.min(CONFIDENCE.serverMaximum, CONFIDENCE.serverBase + CONFIDENCE.serverStep * server.length);
    return { mode: 'server', confidence: round(confidence), indicators, overridden: false };
  }
  if (server.length > 0) {
    const confidence = Math.min(CONFIDENCE.serverMaximum, CONFIDENCE.serverBase + CONFIDENCE.serverStep * (server.length - 1));
    return { mode: 'server', confidence: round(confidence), indicators: server, overridden: false };
  }
  return { mode: 'workstation', confidence: CONFIDENCE.fallback, indicators: ['no CI, display or server indicators'], overridden: false };
}

function ciIndicators(environment: EnvironmentModeOptions['environment']): { confidence: number; indicators: string[] } {
  const indicators: string[] = [];
  let confidence = 0;
  for (const name of CI_SERVICES) {
    const value = environment[name];
    if (!isSet(value)) continue;
    indicators.push(describeVariable(name, value));
    confidence = CONFIDENCE.ciService;
  }
  const generic = environment.CI;
  if (generic !== undefined && ['true', '1'].includes(generic.trim().toLowerCase())) {
    indicators.unshift(`CI=${generic}`);
    confidence = Math.max(confidence, CONFIDENCE.ciVariable);
  }
  return { confidence, indicators };
}

/**
 * A DISPLAY with a host part (`localhost:10.0`) is X11 forwarded over SSH: the
 * screen belongs to the client, and the machine itself is still headless.
 */
function displayIndicators(environment: EnvironmentModeOptions['environment']): { local: string[]; forwarded: string | null } {
  const local: string[] = [];
  let forwarded: string | null = null;
  const display = environment.DISPLAY;
  if (isSet(display)) {
    const overSsh = !display.startsWith(':') && isSet(environment.SSH_CONNECTION);
    if (overSsh) forwarded = `DISPLAY=${display} is forwarded over SSH, not local`;
    else local.push(`DISPLAY=${display}`);
  }
  const wayland = environment.WAYLAND_DISPLAY;
  if (isSet(wayland)) local.push(`WAYLAND_DISPLAY=${wayland}`);
  return { local, forwarded };
}

function sshIndicators(environment: EnvironmentModeOptions['environment']): string[] {
  for (const name of ['SSH_CONNECTION', 'SSH_CLIENT', 'SSH_TTY']) {
    if (isSet(environment[name])) return [`${name} set`];
  }
  return [];
}

function containerIndicators(environment: EnvironmentModeOptions['environment'], fileExists: (path: string) => boolean): string[] {
  const indicators = CONTAINER_FILES.filter((path) => fileExists(path)).map((path) => `${path} exists`);
  // systemd-nspawn, podman, LXC and others set `container` for their init.
  const container = environment.container;
  if (isSet(container)) indicators.push(`container=${container}`);
  return indicators;
}

function isSet(value: string | undefined): value is string {
  if (value === undefined) return false;
  const trimmed = value.trim().toLowerCase();
  return trimmed !== '' && trimmed !== 'false' && trimmed !== '0';
}

/** Short values are shown; URLs and the like only as "set", to keep the line readable. */
function describeVariable(name: string, value: string): string {
  return value.length <= 16 && !value.includes('/') ? `${name}=${value}` : `${name} set`;
}

/** 0.6 + 0.1 is 0.7000000000000001 in floating point; people read this number. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}
