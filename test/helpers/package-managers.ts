import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSandbox, writeStub, type Sandbox } from './sandbox.ts';

/**
 * Stand-ins for package managers: shell scripts that understand just enough
 * of each manager's argv to install a package (a script in the sandbox's bin
 * folder that prints "<binary> <version>"), remove it again, and fail the way
 * the real ones do when asked to. Every run is logged to $STUB_LOG by
 * writeStub, so tests read the order of what upkeep ran from one file.
 */

export type ManagerName = 'apt' | 'dnf' | 'pacman' | 'apk' | 'zypper' | 'npm' | 'pipx';

export interface ManagerBehaviour {
  /** Version an unpinned install gives, per package (default: `version`). */
  versions?: Record<string, string>;
  /** Default version of an unpinned install (default 1.0.0). */
  version?: string;
  /** Version an upgrade (or `@latest`) gives, per package (default: the unpinned version). */
  latest?: Record<string, string>;
  /** The binary each package provides (default: the package name). */
  binaries?: Record<string, string>;
  /** Where the binaries go (default: the sandbox's bin folder, which is the whole PATH). */
  binDir?: string;
  /** The real file goes to <venvRoot>/<package>/bin/<binary> and binDir gets a symlink to it, as pipx does. */
  venvRoot?: string;
  /** Installs fail with "lock held" this many times, then work (a counter file keeps count across runs). */
  lockHeld?: number;
  /** Every install fails with the manager's DNS error. */
  networkError?: boolean;
  /** Every install exits 137, as after the out-of-memory killer. */
  killed?: boolean;
  /** Installs fail with "Unable to locate package" until `update` has run once. */
  missingUntilUpdate?: boolean;
  /** Packages whose install fails with a plain error. */
  failPackages?: string[];
  /** Versions whose install overwrites the binary with a broken one, then exits 1. */
  brokenVersions?: string[];
  /** Seconds each install sleeps between logging "start <package>" and "end <package>". */
  sleep?: number;
  /**
   * A rendezvous with another stub: each install creates `arrive`, then waits
   * (up to `seconds`) for `await` to exist, and fails if it never does. Two
   * stubs that await each other's files prove that their installs overlapped.
   */
  rendezvous?: { arrive: string; await: string; seconds: number };
  /** Other packages `-s remove` reports as removed along with the asked ones (apt). */
  alsoRemoves?: string[];
}

interface ManagerSyntax {
  command: string;
  /** The leading arguments of each action, tried in order. */
  actions: Array<[action: 'install' | 'upgrade' | 'remove' | 'update' | 'simulate-remove', words: string[]]>;
  /** How a version is attached to a package name (`alpha=1.2`, `beta@1.2`); null where it is not parsed. */
  separator: string | null;
  /** Arguments that turn an install into an upgrade (`--only-upgrade`). */
  upgradeFlags: string[];
  exitCode: number;
  lockMessage: string;
  networkMessage: (name: string) => string;
  notFoundMessage: (name: string) => string;
  failMessage: (name: string) => string;
  brokenMessage: (name: string) => string;
}

const SYNTAX: Record<ManagerName, ManagerSyntax> = {
  apt: {
    command: 'apt-get',
    actions: [
      ['simulate-remove', ['-s', 'remove']],
      ['update', ['update']],
      ['install', ['install']],
      ['remove', ['remove']],
    ],
    separator: '=',
    upgradeFlags: ['--only-upgrade'],
    exitCode: 100,
    lockMessage:
      'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?',
    networkMessage: (name) =>
      `Err:1 http://deb.debian.org/debian bookworm/main amd64 ${name} amd64 1.0.0-1\n  Temporary failure resolving 'deb.debian.org'\nE: Failed to fetch http://deb.debian.org/debian/pool/main/${name}/${name}_1.0.0-1_amd64.deb  Temporary failure resolving 'deb.debian.org'\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?`,
    notFoundMessage: (name) => `Reading package lists...\nBuilding dependency tree...\nReading state information...\nE: Unable to locate package ${name}`,
    failMessage: (name) => `E: Package '${name}' has no installation candidate`,
    brokenMessage: (name) => `dpkg: error processing archive ${name}_1.0.0-1_amd64.deb (--unpack):\nE: Sub-process /usr/bin/dpkg returned an error code (1)`,
  },
  dnf: {
    command: 'dnf',
    actions: [
      ['install', ['install']],
      ['upgrade', ['upgrade']],
      ['remove', ['remove']],
    ],
    separator: null,
    upgradeFlags: [],
    exitCode: 1,
    lockMessage: 'Waiting for process with pid 4242 to finish.',
    networkMessage: () => "Curl error (6): Couldn't resolve host name for https://mirrors.fedoraproject.org/metalink [Could not resolve host: mirrors.fedoraproject.org]",
    notFoundMessage: (name) => `No match for argument: ${name}\nError: Unable to find a match: ${name}`,
    failMessage: (name) => `Error: Unable to find a match: ${name}`,
    brokenMessage: (name) => `Error: Transaction test error:\n  file /usr/bin/${name} conflicts`,
  },
  pacman: {
    command: 'pacman',
    actions: [
      ['install', ['-S']],
      ['remove', ['-R']],
    ],
    separator: null,
    upgradeFlags: [],
    exitCode: 1,
    lockMessage: "error: failed to init transaction (unable to lock database)\nerror: could not lock database: File exists\n  if you're sure a package manager is not already\n  running, you can remove /var/lib/pacman/db.lck",
    networkMessage: () => "error: failed retrieving file 'core.db' from geo.mirror.pkgbuild.com : Could not resolve host: geo.mirror.pkgbuild.com",
    notFoundMessage: (name) => `error: target not found: ${name}`,
    failMessage: (name) => `error: target not found: ${name}`,
    brokenMessage: (name) => `error: failed to commit transaction (conflicting files)\n${name}: /usr/bin/${name} exists in filesystem`,
  },
  apk: {
    command: 'apk',
    actions: [
      ['install', ['add']],
      ['upgrade', ['upgrade']],
      ['remove', ['del']],
    ],
    separator: '=',
    upgradeFlags: [],
    exitCode: 1,
    lockMessage: 'ERROR: Unable to lock database: temporary error (try again later)',
    networkMessage: () => 'WARNING: fetching https://dl-cdn.alpinelinux.org/alpine/v3.20/main: temporary error (try again later)\nERROR: could not resolve host',
    notFoundMessage: (name) => `ERROR: unable to select packages:\n  ${name} (no such package):\n    required by: world[${name}]`,
    failMessage: (name) => `ERROR: unable to select packages:\n  ${name} (no such package):`,
    brokenMessage: (name) => `ERROR: ${name}-1.0.0-r0: trying to overwrite usr/bin/${name}`,
  },
  zypper: {
    command: 'zypper',
    actions: [
      ['install', ['--non-interactive', 'install']],
      ['upgrade', ['--non-interactive', 'update']],
      ['remove', ['--non-interactive', 'remove']],
    ],
    separator: '=',
    upgradeFlags: [],
    exitCode: 7,
    lockMessage: 'System management is locked by the application with pid 4242 (zypper).\nClose this application before trying again.',
    networkMessage: () => "Download (curl) error for 'https://download.opensuse.org/tumbleweed/repo/oss/repodata/repomd.xml':\nError code: Connection failed\nError message: Could not resolve host: download.opensuse.org",
    notFoundMessage: (name) => `Package '${name}' not found.`,
    failMessage: (name) => `Package '${name}' not found.`,
    brokenMessage: (name) => `Installation of ${name}-1.0.0 failed:\nError: Subprocess failed.`,
  },
  npm: {
    command: 'npm',
    actions: [
      ['install', ['install', '-g']],
      ['remove', ['uninstall', '-g']],
    ],
    separator: '@',
    upgradeFlags: [],
    exitCode: 1,
    lockMessage: 'npm ERR! code ELOCKED',
    networkMessage: (name) =>
      `npm ERR! code EAI_AGAIN\nnpm ERR! syscall getaddrinfo\nnpm ERR! errno EAI_AGAIN\nnpm ERR! request to https://registry.npmjs.org/${name} failed, reason: getaddrinfo EAI_AGAIN registry.npmjs.org`,
    notFoundMessage: (name) => `npm ERR! code E404\nnpm ERR! 404 Not Found - GET https://registry.npmjs.org/${name} - Not found`,
    failMessage: (name) => `npm ERR! code E404\nnpm ERR! 404 Not Found - GET https://registry.npmjs.org/${name} - Not found`,
    brokenMessage: (name) => `npm ERR! code 1\nnpm ERR! path /usr/lib/node_modules/${name}\nnpm ERR! command failed\nnpm ERR! command sh -c node install.js`,
  },
  pipx: {
    command: 'pipx',
    actions: [
      ['install', ['install']],
      ['upgrade', ['upgrade']],
      ['remove', ['uninstall']],
    ],
    separator: '==',
    upgradeFlags: [],
    exitCode: 1,
    lockMessage: 'pipx: another pipx process is running',
    networkMessage: () =>
      "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError(': Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/gamma/",
    notFoundMessage: (name) => `ERROR: Could not find a version that satisfies the requirement ${name} (from versions: none)\nERROR: No matching distribution found for ${name}`,
    failMessage: (name) => `ERROR: No matching distribution found for ${name}`,
    brokenMessage: (name) => `Fatal error from pip prevented installation. Full pip output in file:\n    /root/.local/state/pipx/log/cmd_pip_errors.log\nError installing ${name}.`,
  },
};

/** The command each manager stub is installed as. */
export function managerCommand(manager: ManagerName): string {
  return SYNTAX[manager].command;
}

function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A shell `case` that maps a package name to a value, with a default. */
function lookup(functionName: string, map: Record<string, string> | undefined, fallback: string): string {
  const arms = Object.entries(map ?? {}).map(([key, value]) => `    ${quote(key)}) echo ${quote(value)} ;;`);
  return [`${functionName}() {`, '  case "$1" in', ...arms, `    *) echo ${fallback} ;;`, '  esac', '}'].join('\n');
}

/** Prints text on stderr, one printf per line so that no quoting survives into it. */
function say(text: string): string {
  return `printf '%s\\n' ${quote(text)} >&2`;
}

function rendezvous(meeting: NonNullable<ManagerBehaviour['rendezvous']>): string[] {
  const tries = Math.ceil(meeting.seconds * 10);
  return [
    `      : > ${quote(meeting.arrive)}`,
    '      waited=0',
    `      while [ ! -e ${quote(meeting.await)} ]; do`,
    `        if [ "$waited" -ge ${tries} ]; then echo 'the other install never started' >&2; exit 1; fi`,
    '        /bin/sleep 0.1; waited=$((waited + 1))',
    '      done',
  ];
}

/** Writes <bin>/<manager command>, a stub that installs and removes packages as described. */
export async function writeManagerStub(sandbox: Sandbox, manager: ManagerName, behaviour: ManagerBehaviour = {}): Promise<string> {
  const syntax = SYNTAX[manager];
  const state = join(sandbox.root, 'stub-state', manager);
  const binDir = behaviour.binDir ?? sandbox.bin;
  const defaultVersion = behaviour.version ?? '1.0.0';
  const actionTests = syntax.actions.map(([action, words]) => {
    const test = words.map((word, index) => `[ "\${${index + 1}:-}" = ${quote(word)} ]`).join(' && ');
    return `if [ -z "$action" ] && ${test}; then action=${action}; shift ${words.length}; fi`;
  });
  // The package name is known only at run time: messages carry @PACKAGE@, which `fill` replaces.
  const message = (build: (name: string) => string): string => quote(build('@PACKAGE@'));
  const failures = (name: string): string[] => {
    const lines: string[] = [];
    if (behaviour.lockHeld !== undefined) {
      lines.push(
        `attempts=$(/bin/cat "$state/lock-attempts" 2>/dev/null || echo 0)`,
        'attempts=$((attempts + 1))',
        'echo "$attempts" > "$state/lock-attempts"',
        `if [ "$attempts" -le ${behaviour.lockHeld} ]; then ${say(syntax.lockMessage)}; exit ${syntax.exitCode}; fi`,
      );
    }
    if (behaviour.networkError) lines.push(`fill ${message(syntax.networkMessage)} "${name}"; exit ${syntax.exitCode}`);
    if (behaviour.killed) lines.push(`echo "Unpacking ${name} ..."`, 'exit 137');
    if (behaviour.missingUntilUpdate) lines.push(`if [ ! -f "$state/updated" ]; then fill ${message(syntax.notFoundMessage)} "${name}"; exit ${syntax.exitCode}; fi`);
    return lines;
  };
  const failPackages = (behaviour.failPackages ?? []).map(quote).join(' ');
  const brokenVersions = (behaviour.brokenVersions ?? []).map(quote).join(' ');
  const separator = syntax.separator;
  const split = separator
    ? [
        `      case "$spec" in`,
        `        *${separator}*) name="\${spec%%${separator}*}"; pinned="\${spec#*${separator}}" ;;`,
        `        *) name="$spec"; pinned='' ;;`,
        '      esac',
      ]
    : ['      name="$spec"; pinned=\'\''];
  const place = behaviour.venvRoot
    ? [
        `      real="${behaviour.venvRoot}/$name/bin/$binary"`,
        '      /bin/mkdir -p "${real%/*}"',
        '      write_binary "$real" "$version"',
        `      /bin/rm -f "${binDir}/$binary"`,
        `      /bin/ln -s "$real" "${binDir}/$binary"`,
      ]
    : [`      write_binary "${binDir}/$binary" "$version"`];
  const script = [
    'set -u',
    `state=${quote(state)}`,
    `/bin/mkdir -p "$state" ${quote(binDir)}`,
    lookup('version_of', behaviour.versions, quote(defaultVersion)),
    lookup('latest_of', behaviour.latest, '"$(version_of "$1")"'),
    lookup('binary_of', behaviour.binaries, '"$1"'),
    'fill() {',
    '  text="$1"; result=""',
    '  while :; do',
    '    case "$text" in',
    '      *@PACKAGE@*) result="$result${text%%@PACKAGE@*}$2"; text="${text#*@PACKAGE@}" ;;',
    '      *) result="$result$text"; break ;;',
    '    esac',
    '  done',
    `  printf '%s\\n' "$result" >&2`,
    '}',
    'write_binary() {',
    `  printf '#!/bin/sh\\necho "%s %s"\\n' "$binary" "$2" > "$1"`,
    '  /bin/chmod 755 "$1"',
    '}',
    'action=""',
    ...actionTests,
    'upgrade=""',
    '[ "$action" = upgrade ] && upgrade=1',
    'specs=""',
    'for argument in "$@"; do',
    '  case "$argument" in',
    ...syntax.upgradeFlags.map((flag) => `    ${quote(flag)}) upgrade=1 ;;`),
    '    -*) ;;',
    '    *) specs="$specs $argument" ;;',
    '  esac',
    'done',
    'case "$action" in',
    '  update)',
    '    : > "$state/updated"',
    "    echo 'Reading package lists... Done'",
    '    exit 0 ;;',
    '  simulate-remove)',
    "    echo 'NOTE: This is only a simulation!'",
    "    echo 'Reading package lists...'",
    "    echo 'The following packages will be REMOVED:'",
    `    echo "  $specs ${(behaviour.alsoRemoves ?? []).join(' ')}"`,
    '    for spec in $specs; do echo "Remv $spec [$(version_of "$spec")]"; done',
    ...(behaviour.alsoRemoves ?? []).map((other) => `    echo ${quote(`Remv ${other} [1.0-1]`)}`),
    '    exit 0 ;;',
    '  remove)',
    '    for spec in $specs; do',
    '      binary=$(binary_of "$spec")',
    `      /bin/rm -f "${binDir}/$binary"`,
    ...(behaviour.venvRoot ? [`      /bin/rm -rf "${behaviour.venvRoot}/$spec"`] : []),
    '      echo "Removing $spec ..."',
    '    done',
    '    exit 0 ;;',
    '  install|upgrade)',
    '    for spec in $specs; do',
    ...split,
    '      binary=$(binary_of "$name")',
    '      if [ -n "$pinned" ] && [ "$pinned" != latest ]; then version="$pinned"',
    '      elif [ -n "$upgrade" ] || [ "$pinned" = latest ]; then version=$(latest_of "$name")',
    '      else version=$(version_of "$name"); fi',
    ...failures('$name').map((line) => `      ${line}`),
    `      for failing in ${failPackages || "''"}; do`,
    `        if [ "$failing" = "$name" ]; then fill ${message(syntax.failMessage)} "$name"; exit ${syntax.exitCode}; fi`,
    '      done',
    ...(behaviour.sleep ? ['      echo "start $name" >> "$STUB_LOG"', `      /bin/sleep ${behaviour.sleep}`] : []),
    ...(behaviour.rendezvous ? rendezvous(behaviour.rendezvous) : []),
    `      for broken in ${brokenVersions || "''"}; do`,
    '        if [ "$broken" = "$version" ]; then',
    `          printf '#!/bin/sh\\necho "Segmentation fault" >&2\\nexit 139\\n' > "${binDir}/$binary"`,
    `          fill ${message(syntax.brokenMessage)} "$name"`,
    '          exit 1',
    '        fi',
    '      done',
    ...place,
    ...(behaviour.sleep ? ['      echo "end $name" >> "$STUB_LOG"'] : []),
    '      echo "Setting up $name ($version) ..."',
    '    done',
    '    exit 0 ;;',
    'esac',
    'exit 0',
  ].join('\n');
  return writeStub(sandbox.bin, syntax.command, { script });
}

export const writeAptStub = (sandbox: Sandbox, behaviour: ManagerBehaviour = {}): Promise<string> => writeManagerStub(sandbox, 'apt', behaviour);
export const writeNpmStub = (sandbox: Sandbox, behaviour: ManagerBehaviour = {}): Promise<string> => writeManagerStub(sandbox, 'npm', behaviour);
export const writePipxStub = (sandbox: Sandbox, behaviour: ManagerBehaviour = {}): Promise<string> => writeManagerStub(sandbox, 'pipx', behaviour);

/**
 * `sudo`: `-n true` answers whether a password is needed; anything else runs
 * the command (after `env K=V...`, which sudo would hand to env(1), not on
 * the sandbox's PATH).
 */
export async function writeSudoStub(sandbox: Sandbox, options: { passwordless?: boolean } = {}): Promise<string> {
  const passwordless = options.passwordless ?? true;
  const script = [
    'if [ "${1:-}" = -n ]; then shift; fi',
    `if [ "\${1:-}" = true ]; then ${passwordless ? 'exit 0' : "echo 'sudo: a password is required' >&2; exit 1"}; fi`,
    ...(passwordless ? [] : ["echo 'sudo: a password is required' >&2", 'exit 1']),
    'if [ "${1:-}" = env ]; then',
    '  shift',
    '  while [ $# -gt 0 ]; do',
    '    case "$1" in *=*) export "$1"; shift ;; *) break ;; esac',
    '  done',
    'fi',
    'exec "$@"',
  ].join('\n');
  return writeStub(sandbox.bin, 'sudo', { script });
}

/** The lines of $STUB_LOG: one per stub run ("<name> <args>"), plus the stubs' own "start X"/"end X". */
export async function stubLog(sandbox: Sandbox): Promise<string[]> {
  try {
    return (await readFile(sandbox.spawnLog, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The fixture catalog for install tests. */
export const INSTALL_CATALOG_FIXTURE = resolve(import.meta.dirname, '../fixtures/catalogs/install');
const REPOSITORY_CATALOG = resolve(import.meta.dirname, '../../catalog');

/**
 * A temporary catalog: the install fixture's tools, presets and baseline,
 * with the repository's own package groups and failure handlers, so the
 * handler assertions follow the real data.
 */
export async function prepareInstallCatalog(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-install-catalog-'));
  await cp(INSTALL_CATALOG_FIXTURE, root, { recursive: true });
  await cp(join(REPOSITORY_CATALOG, 'handlers'), join(root, 'handlers'), { recursive: true });
  await cp(join(REPOSITORY_CATALOG, 'groups.yaml'), join(root, 'groups.yaml'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** The real os-release files of each distribution family. */
export const OS_RELEASE_FIXTURES = resolve(import.meta.dirname, '../fixtures/os-release');

/**
 * A sandbox that looks like a Debian 12 server (the mode decides the method
 * order; a server prefers the system package manager) using `catalogRoot`,
 * whose retries never wait.
 */
export function createInstallSandbox(catalogRoot: string, extra: Record<string, string> = {}): Promise<Sandbox> {
  return createSandbox({
    UPKEEP_CATALOG_DIR: catalogRoot,
    UPKEEP_OS_RELEASE: join(OS_RELEASE_FIXTURES, 'debian-12'),
    UPKEEP_INSTALL_ENVIRONMENT: 'server',
    UPKEEP_INSTALL_RETRY_DELAY: '0',
    ...extra,
  });
}
