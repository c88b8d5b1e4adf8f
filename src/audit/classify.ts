import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Environment } from '../core/paths.ts';
import type { Classification, InstallMethod } from './types.ts';
import { homebrewKegOf, type PackageOwner } from './packages.ts';

/**
 * How did this binary get here? Decided from where it is (the PATH entry and
 * the file it resolves to), what runs it (the shebang), and which system
 * package owns it. `classifyInstallation` is pure; `gatherEvidence` reads the
 * few facts from the file system that the rules need.
 *
 * Precedence, first match wins:
 *   1. launcher folders, judged by the PATH entry: shims, /snap/bin, flatpak exports
 *   2. version managers and self-contained toolchains (nvm, pyenv, asdf, mise,
 *      volta, sdkman, rustup, conda, nix, ...): they win over everything
 *   3. rustup proxies in ~/.cargo/bin
 *   4. the system package owner (dpkg, rpm, pacman, apk)
 *   5. Homebrew (Cellar or a Homebrew prefix)
 *   6. per-user tool folders (uv, pipx, cargo, go, pnpm, bun, deno, npm)
 *   7. a bin/ folder next to pyvenv.cfg (venv)
 *   8. the shebang (pipx, uv, pip --user, venv)
 *   9. catch-all folders: /usr/local, ~/bin, ~/.local/bin, /opt (manual)
 *  10. system folders no package owns, and everything else (unknown)
 * Within a rule the resolved file is looked at before the PATH entry, so
 * `~/.local/bin/ruff -> ~/.local/share/uv/tools/ruff/bin/ruff` is uv's.
 */

export interface ClassificationEvidence {
  /** The folder holding `pyvenv.cfg` next to the binary's `bin/` folder, when there is one. */
  venvRoot?: string | null;
  /**
   * For a file in `~/.cargo/bin`: whether it is the same file as
   * `~/.cargo/bin/rustup` (rustup installs its proxies as hard links).
   * When unknown, proxies are recognised by name.
   */
  rustupProxy?: boolean;
}

export interface ClassifyInput {
  /** The file as found on PATH. */
  path: string;
  /** The same file with every symlink resolved. */
  realPath: string;
  /** The first line of the file when it starts with `#!`, else null. */
  shebang: string | null;
  home: string;
  /**
   * The system package owning `realPath` (or `path`), from
   * `PackageDatabase.ownersOf`; `manager` is `dpkg`, `rpm`, `pacman` or `apk`.
   */
  owner?: { manager: PackageOwner['manager'] | (string & {}); package: string; architecture?: string } | null;
  environment: Environment;
  evidence?: ClassificationEvidence;
}

/** Names rustup installs as proxies into ~/.cargo/bin. */
export const RUSTUP_PROXIES: ReadonlySet<string> = new Set([
  'cargo',
  'cargo-clippy',
  'cargo-fmt',
  'cargo-miri',
  'clippy-driver',
  'rls',
  'rust-analyzer',
  'rust-gdb',
  'rust-gdbgui',
  'rust-lldb',
  'rustc',
  'rustdoc',
  'rustfmt',
]);

/** Where each manager keeps its files, after environment overrides. */
export interface InstallRoots {
  home: string;
  pyenv: string;
  rbenv: string;
  nodenv: string;
  goenv: string;
  asdf: string;
  mise: string;
  volta: string;
  nvm: string;
  fnm: string[];
  sdkman: string;
  cargo: string;
  rustup: string;
  goPaths: string[];
  goBin: string | null;
  pnpm: string[];
  bun: string;
  deno: string;
  pipxVenvs: string[];
  uvTools: string[];
  uvPython: string[];
  /** Homebrew prefixes whose every file is Homebrew's (not /usr/local, which is shared). */
  homebrewPrefixes: string[];
  snapBins: string[];
  /** System and per-user flatpak installations; `exports/bin` in each is on PATH. */
  flatpakRoots: string[];
  localBin: string;
}

/** Computed once per environment and home: an audit asks for them for every installation. */
const rootsCache = new WeakMap<Environment, Map<string, InstallRoots>>();

export function installRoots(home: string, environment: Environment): InstallRoots {
  let byHome = rootsCache.get(environment);
  if (!byHome) rootsCache.set(environment, (byHome = new Map()));
  let roots = byHome.get(home);
  if (!roots) byHome.set(home, (roots = computeInstallRoots(home, environment)));
  return roots;
}

function computeInstallRoots(home: string, environment: Environment): InstallRoots {
  const homePath = normalize(home);
  const fromHome = (...parts: string[]): string => path.posix.join(homePath, ...parts);
  const variable = (name: string): string | undefined => {
    const value = environment[name];
    return value && path.posix.isAbsolute(value) ? normalize(value) : undefined;
  };
  const data = variable('XDG_DATA_HOME') ?? fromHome('.local', 'share');
  const unique = (values: Array<string | undefined>): string[] => [
    ...new Set(values.filter((value): value is string => value !== undefined)),
  ];
  const goPaths = (environment.GOPATH ?? '')
    .split(':')
    .filter((entry) => path.posix.isAbsolute(entry))
    .map(normalize);
  return {
    home: homePath,
    pyenv: variable('PYENV_ROOT') ?? fromHome('.pyenv'),
    rbenv: variable('RBENV_ROOT') ?? fromHome('.rbenv'),
    nodenv: variable('NODENV_ROOT') ?? fromHome('.nodenv'),
    goenv: variable('GOENV_ROOT') ?? fromHome('.goenv'),
    asdf: variable('ASDF_DATA_DIR') ?? fromHome('.asdf'),
    mise: variable('MISE_DATA_DIR') ?? path.posix.join(data, 'mise'),
    volta: variable('VOLTA_HOME') ?? fromHome('.volta'),
    nvm: variable('NVM_DIR') ?? fromHome('.nvm'),
    fnm: unique([
      variable('FNM_DIR'),
      path.posix.join(data, 'fnm'),
      fromHome('.local', 'share', 'fnm'),
      fromHome('.fnm'),
      fromHome('Library', 'Application Support', 'fnm'),
    ]),
    sdkman: variable('SDKMAN_DIR') ?? fromHome('.sdkman'),
    cargo: variable('CARGO_HOME') ?? fromHome('.cargo'),
    rustup: variable('RUSTUP_HOME') ?? fromHome('.rustup'),
    goPaths: goPaths.length > 0 ? goPaths : [fromHome('go')],
    goBin: variable('GOBIN') ?? null,
    pnpm: unique([variable('PNPM_HOME'), path.posix.join(data, 'pnpm'), fromHome('Library', 'pnpm')]),
    bun: variable('BUN_INSTALL') ?? fromHome('.bun'),
    deno: variable('DENO_INSTALL') ?? fromHome('.deno'),
    pipxVenvs: unique([
      variable('PIPX_HOME') && path.posix.join(variable('PIPX_HOME')!, 'venvs'),
      path.posix.join(data, 'pipx', 'venvs'),
      fromHome('.local', 'pipx', 'venvs'),
    ]),
    uvTools: unique([variable('UV_TOOL_DIR'), path.posix.join(data, 'uv', 'tools')]),
    uvPython: unique([variable('UV_PYTHON_INSTALL_DIR'), path.posix.join(data, 'uv', 'python')]),
    homebrewPrefixes: unique([
      variable('HOMEBREW_PREFIX') === '/usr/local' ? undefined : variable('HOMEBREW_PREFIX'),
      '/opt/homebrew',
      '/home/linuxbrew/.linuxbrew',
      fromHome('.linuxbrew'),
    ]),
    snapBins: ['/snap/bin', '/var/lib/snapd/snap/bin'],
    flatpakRoots: unique(['/var/lib/flatpak', path.posix.join(data, 'flatpak')]),
    localBin: fromHome('.local', 'bin'),
  };
}

const SYSTEM_MANAGER_METHOD: Readonly<Record<string, InstallMethod>> = {
  dpkg: 'apt',
  rpm: 'rpm',
  pacman: 'pacman',
  apk: 'apk',
};

/** Folders whose files come from the system package manager or the OS vendor. */
const SYSTEM_FOLDERS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/games', '/usr/share', '/lib', '/lib64'];

/** npm packages that ship with node itself: part of the node install, not global installs. */
const BUNDLED_WITH_NODE = new Set(['npm', 'corepack']);

interface Context {
  input: ClassifyInput;
  roots: InstallRoots;
  /** `~/x` for paths in the home folder. */
  show: (file: string) => string;
  path: string;
  realPath: string;
  /** realPath then path, without repeats. */
  candidates: string[];
  name: string;
}

type Rule = (context: Context) => Classification | null;

export function classifyInstallation(input: ClassifyInput): Classification {
  const roots = installRoots(input.home, input.environment);
  const filePath = normalize(input.path);
  const realPath = normalize(input.realPath || input.path);
  const context: Context = {
    input,
    roots,
    show: (file) => tilde(file, roots.home),
    path: filePath,
    realPath,
    candidates: realPath === filePath ? [realPath] : [realPath, filePath],
    name: path.posix.basename(filePath),
  };
  for (const rule of RULES) {
    const result = rule(context);
    if (result) return result;
  }
  return { method: 'unknown', reason: `no rule matches ${context.show(filePath)}` };
}

// 1. Launchers: judged by the folder on PATH, since the file they resolve to
// (the snap binary, a volta-shim, a bash script) says nothing of the tool.
const launcherRule: Rule = ({ path: filePath, realPath, roots, show, name }) => {
  const folder = path.posix.dirname(filePath);
  if (roots.snapBins.includes(folder)) {
    const snap = name.split('.')[0]!;
    return { method: 'snap', reason: `in ${folder} (snap ${snap})`, package: snap };
  }
  if (roots.flatpakRoots.some((root) => folder === path.posix.join(root, 'exports', 'bin'))) {
    return { method: 'flatpak', reason: `exported by flatpak app ${name} in ${show(folder)}`, package: name };
  }
  const shims: Array<[string, InstallMethod, string]> = [
    [roots.pyenv, 'pyenv', 'pyenv'],
    [roots.rbenv, 'rbenv', 'rbenv'],
    [roots.asdf, 'asdf', 'asdf'],
    [roots.mise, 'mise', 'mise'],
    [roots.nodenv, 'nodenv', 'nodenv'],
    [roots.goenv, 'goenv', 'goenv'],
  ];
  for (const [root, method, manager] of shims) {
    if (folder === path.posix.join(root, 'shims')) {
      return { method, reason: `${manager} shim in ${show(folder)}` };
    }
  }
  if (path.posix.basename(realPath) === 'mise' && path.posix.basename(folder) === 'shims') {
    return { method: 'mise', reason: `mise shim: ${show(filePath)} links to the mise binary` };
  }
  if (folder === path.posix.join(roots.volta, 'bin')) {
    return { method: 'volta', reason: `Volta shim in ${show(folder)}` };
  }
  const snap = /^\/(?:var\/lib\/snapd\/)?snap\/([^/]+)\/[^/]+\//.exec(realPath);
  if (snap && snap[1] !== 'bin') return { method: 'snap', reason: `inside snap ${snap[1]} (${realPath})`, package: snap[1]! };
  for (const flatpakRoot of roots.flatpakRoots) {
    const rest = below(realPath, flatpakRoot);
    if (rest && rest[0] === 'app' && rest[1]) {
      return { method: 'flatpak', reason: `inside flatpak app ${rest[1]}`, package: rest[1] };
    }
  }
  return null;
};

/** A global npm package inside a node install managed by a version manager. */
function nodeModulesPackage(segments: readonly string[]): string | null {
  const index = segments.indexOf('node_modules');
  if (index < 1 || segments[index - 1] !== 'lib') return null;
  const first = segments[index + 1];
  if (!first) return null;
  if (first.startsWith('@')) return segments[index + 2] ? `${first}/${segments[index + 2]}` : null;
  return first;
}

// 2. Version managers and self-contained toolchains.
const versionManagerRule: Rule = (context) => {
  const { roots, show } = context;
  for (const file of context.candidates) {
    /** A node install: its own files are the manager's, its global packages npm's. */
    const nodeInstall = (
      manager: InstallMethod,
      label: string,
      installRoot: string,
      version: string,
      rest: readonly string[],
    ): Classification => {
      const npmPackage = nodeModulesPackage(rest);
      if (npmPackage && !BUNDLED_WITH_NODE.has(npmPackage)) {
        return {
          method: 'npm-global',
          reason: `npm global package ${npmPackage} in ${manager}'s node ${version} (${show(installRoot)})`,
        };
      }
      return { method: manager, reason: `under ${show(installRoot)} (${label} ${version})` };
    };

    const nvm = below(file, path.posix.join(roots.nvm, 'versions'));
    if (nvm && nvm.length >= 3) {
      const [flavour, version] = [nvm[0]!, nvm[1]!];
      return nodeInstall('nvm', `nvm ${flavour}`, path.posix.join(roots.nvm, 'versions', flavour, version), version, nvm.slice(2));
    }

    for (const fnmRoot of roots.fnm) {
      const fnm = below(file, path.posix.join(fnmRoot, 'node-versions'));
      if (fnm && fnm.length >= 3) {
        const version = fnm[0]!;
        const rest = fnm[1] === 'installation' ? fnm.slice(2) : fnm.slice(1);
        return nodeInstall('fnm', 'fnm node', path.posix.join(fnmRoot, 'node-versions', version), version, rest);
      }
    }
    if (file.includes('/fnm_multishells/')) {
      return { method: 'fnm', reason: `in an fnm multishell folder (${show(file)})` };
    }

    const envStyle: Array<[string, InstallMethod, string]> = [
      [roots.pyenv, 'pyenv', 'pyenv'],
      [roots.rbenv, 'rbenv', 'rbenv'],
      [roots.nodenv, 'nodenv', 'nodenv'],
      [roots.goenv, 'goenv', 'goenv'],
    ];
    for (const [root, method, manager] of envStyle) {
      const rest = below(file, path.posix.join(root, 'versions'));
      if (rest && rest.length >= 2) {
        return { method, reason: `under ${show(path.posix.join(root, 'versions', rest[0]!))} (${manager} version ${rest[0]})` };
      }
    }

    for (const [root, method] of [[roots.asdf, 'asdf'], [roots.mise, 'mise']] as const) {
      const rest = below(file, path.posix.join(root, 'installs'));
      if (rest && rest.length >= 3) {
        const [tool, version] = [rest[0]!, rest[1]!];
        const installRoot = path.posix.join(root, 'installs', tool, version);
        if (tool === 'node' || tool === 'nodejs') return nodeInstall(method, `${method} ${tool}`, installRoot, version, rest.slice(2));
        return { method, reason: `under ${show(installRoot)} (${method} ${tool} ${version})` };
      }
    }

    const volta = below(file, roots.volta);
    if (volta) {
      const image = volta[0] === 'tools' && volta[1] === 'image' ? volta.slice(2) : null;
      if (image && image[0] === 'packages' && image[1]) {
        const packageName = image[1].startsWith('@') && image[2] ? `${image[1]}/${image[2]}` : image[1];
        return { method: 'volta', reason: `Volta package ${packageName} in ${show(roots.volta)}` };
      }
      if (image && image[0] && image[1]) {
        return { method: 'volta', reason: `Volta ${image[0]} ${image[1]} in ${show(roots.volta)}` };
      }
      return { method: 'volta', reason: `under ${show(roots.volta)}` };
    }

    const sdkman = below(file, path.posix.join(roots.sdkman, 'candidates'));
    if (sdkman && sdkman.length >= 2) {
      return { method: 'sdkman', reason: `under ${show(path.posix.join(roots.sdkman, 'candidates', sdkman[0]!, sdkman[1]!))} (sdkman ${sdkman[0]} ${sdkman[1]})` };
    }

    const toolchain = below(file, path.posix.join(roots.rustup, 'toolchains'));
    if (toolchain && toolchain.length >= 2) {
      return { method: 'rustup', reason: `in rustup toolchain ${toolchain[0]} (${show(roots.rustup)})` };
    }

    for (const uvPython of roots.uvPython) {
      const rest = below(file, uvPython);
      if (rest && rest.length >= 2) return { method: 'uv', reason: `uv-managed Python ${rest[0]} in ${show(uvPython)}` };
    }

    const conda = condaInstall(file);
    if (conda) {
      return {
        method: 'conda',
        reason: `in conda installation ${show(conda.root)}${conda.environment ? ` (environment ${conda.environment})` : ''}`,
      };
    }

    const nix = nixLocation(file, roots.home);
    if (nix) return { method: 'nix', reason: nix };

    // The managers' own files: ~/.pyenv/bin/pyenv, plugin shims, ~/.asdf/bin/asdf.
    const managerHomes: Array<[string, InstallMethod, string]> = [
      [roots.pyenv, 'pyenv', 'pyenv'],
      [roots.rbenv, 'rbenv', 'rbenv'],
      [roots.asdf, 'asdf', 'asdf'],
      [roots.mise, 'mise', 'mise'],
      [roots.nvm, 'nvm', 'nvm'],
      [roots.sdkman, 'sdkman', 'sdkman'],
      [roots.nodenv, 'nodenv', 'nodenv'],
      [roots.goenv, 'goenv', 'goenv'],
    ];
    for (const [root, method, manager] of managerHomes) {
      if (below(file, root)) return { method, reason: `part of ${manager}, under ${show(root)}` };
    }
  }
  return null;
};

function condaInstall(file: string): { root: string; environment: string | null } | null {
  const match = /^(.*?\/(?:(?:mini|ana)conda\d?|miniforge\d?|mambaforge\d?|micromamba|\.conda|conda))(\/envs\/([^/]+))?\/(?:bin|condabin)\//.exec(
    file,
  );
  if (!match) return null;
  return { root: match[1]!, environment: match[3] ?? null };
}

function nixLocation(file: string, home: string): string | null {
  const store = /^\/nix\/store\/[a-z0-9]{32}-([^/]+)/.exec(file);
  if (store) return `in the nix store (${store[1]})`;
  const profiles = [
    path.posix.join(home, '.nix-profile'),
    path.posix.join(home, '.local', 'state', 'nix', 'profiles'),
    '/nix/var/nix/profiles',
    '/run/current-system/sw',
    '/etc/profiles/per-user',
  ];
  for (const profile of profiles) {
    if (below(file, profile)) return `in nix profile ${tilde(profile, home)}`;
  }
  return null;
}

// 3. rustup installs cargo, rustc & co. into ~/.cargo/bin as links to itself.
const rustupProxyRule: Rule = ({ path: filePath, realPath, roots, show, name, input }) => {
  const cargoBin = path.posix.join(roots.cargo, 'bin');
  if (path.posix.dirname(filePath) !== cargoBin) return null;
  if (name === 'rustup') return { method: 'rustup', reason: `rustup itself, in ${show(cargoBin)}` };
  if (realPath !== filePath && path.posix.basename(realPath) === 'rustup') {
    return { method: 'rustup', reason: `rustup proxy: ${show(filePath)} links to ${show(realPath)}` };
  }
  const proxy = input.evidence?.rustupProxy;
  if (proxy === true) return { method: 'rustup', reason: `rustup proxy: ${show(filePath)} is a hard link to rustup` };
  if (proxy === undefined && RUSTUP_PROXIES.has(name)) {
    return { method: 'rustup', reason: `rustup proxy: ${name} in ${show(cargoBin)} is a name rustup installs` };
  }
  return null;
};

// 4. The package database is the strongest evidence outside version managers.
const ownerRule: Rule = ({ input }) => {
  const owner = input.owner;
  if (!owner) return null;
  return {
    method: SYSTEM_MANAGER_METHOD[owner.manager] ?? 'unknown',
    reason: `owned by ${owner.manager} package ${owner.package}`,
    package: owner.package,
  };
};

// 5. Homebrew.
const homebrewRule: Rule = ({ candidates, roots, show }) => {
  for (const file of candidates) {
    const keg = homebrewKegOf(file);
    if (keg) {
      return {
        method: 'homebrew',
        reason: `in the Homebrew ${keg.kind === 'cask' ? 'Caskroom' : 'Cellar'}: ${keg.name} ${keg.version} (${show(keg.prefix)})`,
        package: keg.name,
      };
    }
  }
  for (const file of candidates) {
    for (const prefix of roots.homebrewPrefixes) {
      if (below(file, prefix)) return { method: 'homebrew', reason: `under the Homebrew prefix ${show(prefix)}` };
    }
  }
  return null;
};

// 6. Folders that belong to one per-user installer.
const userToolRule: Rule = ({ candidates, roots, show, path: filePath }) => {
  for (const file of candidates) {
    for (const tools of roots.uvTools) {
      const rest = below(file, tools);
      if (rest && rest.length >= 2) return { method: 'uv', reason: `in uv tool ${rest[0]} (${show(path.posix.join(tools, rest[0]!))})` };
    }
    for (const venvs of roots.pipxVenvs) {
      const rest = below(file, venvs);
      if (rest && rest.length >= 2) return { method: 'pipx', reason: `in pipx venv ${rest[0]} (${show(path.posix.join(venvs, rest[0]!))})` };
    }
    const cargoBin = path.posix.join(roots.cargo, 'bin');
    if (below(file, cargoBin)) return { method: 'cargo', reason: `under ${show(cargoBin)}` };

    const goBins = [...(roots.goBin ? [roots.goBin] : []), ...roots.goPaths.map((goPath) => path.posix.join(goPath, 'bin'))];
    for (const goBin of goBins) {
      if (below(file, goBin)) return { method: 'go', reason: `under ${show(goBin)} (go install)` };
    }
    const sdk = below(file, path.posix.join(roots.home, 'sdk'));
    if (sdk && /^go\d/.test(sdk[0] ?? '')) return { method: 'go', reason: `Go toolchain ${sdk[0]} downloaded into ${show(path.posix.join(roots.home, 'sdk'))}` };

    for (const pnpm of roots.pnpm) {
      if (below(file, pnpm)) return { method: 'pnpm', reason: `under ${show(pnpm)}` };
    }
    if (below(file, roots.bun)) return { method: 'bun', reason: `under ${show(roots.bun)}` };
    if (below(file, roots.deno)) return { method: 'deno', reason: `under ${show(roots.deno)}` };

    const yarnGlobal = [path.posix.join(roots.home, '.config', 'yarn', 'global'), path.posix.join(roots.home, '.yarn')];
    for (const yarn of yarnGlobal) {
      if (below(file, yarn)) return { method: 'npm-user', reason: `yarn global package under ${show(yarn)}` };
    }

    const globalModules = file.indexOf('/lib/node_modules/');
    if (globalModules >= 0) {
      const prefix = file.slice(0, globalModules) || '/';
      const segments = file.slice(globalModules + 1).split('/');
      const npmPackage = nodeModulesPackage(segments) ?? 'unknown';
      const modules = show(path.posix.join(prefix, 'lib', 'node_modules'));
      if (below(prefix, roots.home)) return { method: 'npm-user', reason: `npm package ${npmPackage} in ${modules} (a per-user npm prefix)` };
      return { method: 'npm-global', reason: `npm global package ${npmPackage} in ${modules}` };
    }
  }
  const projectBin = filePath.lastIndexOf('/node_modules/.bin/');
  if (projectBin >= 0) {
    return { method: 'npm-project', reason: `in the node_modules/.bin of project ${show(filePath.slice(0, projectBin) || '/')}` };
  }
  for (const file of candidates) {
    const modules = file.lastIndexOf('/node_modules/');
    if (modules >= 0) return { method: 'npm-project', reason: `in the node_modules of project ${show(file.slice(0, modules) || '/')}` };
  }
  return null;
};

// 7. A bin/ folder with pyvenv.cfg beside it is a Python virtual environment.
const venvRule: Rule = ({ input, show }) => {
  const venvRoot = input.evidence?.venvRoot;
  if (!venvRoot) return null;
  return { method: 'venv', reason: `in a virtual environment: ${show(path.posix.join(venvRoot, 'pyvenv.cfg'))} is next to its bin folder` };
};

// 8. Scripts: the interpreter tells which environment installed them.
const shebangRule: Rule = ({ input, roots, show, path: filePath }) => {
  const interpreter = shebangInterpreter(input.shebang);
  if (!interpreter) return null;
  for (const venvs of roots.pipxVenvs) {
    const rest = below(interpreter, venvs);
    if (rest && rest.length >= 2) return { method: 'pipx', reason: `shebang points into pipx venv ${rest[0]} (${show(interpreter)})` };
  }
  for (const tools of roots.uvTools) {
    const rest = below(interpreter, tools);
    if (rest && rest.length >= 2) return { method: 'uv', reason: `shebang points into uv tool ${rest[0]} (${show(interpreter)})` };
  }
  const folder = path.posix.dirname(filePath);
  const userScripts = folder === roots.localBin || /^Library\/Python\/[^/]+\/bin$/.test(path.posix.relative(roots.home, folder));
  if (userScripts && /^python[0-9.]*$/.test(path.posix.basename(interpreter))) {
    const venv = /^(.*\/(?:\.?venv|\.?virtualenvs?|venvs|envs)\/[^/]+|.*\/\.?venv)\/bin\//.exec(interpreter);
    if (venv) return { method: 'venv', reason: `shebang points into virtual environment ${show(venv[1]!)}` };
    return { method: 'pip-user', reason: `${show(folder)} script whose shebang runs ${show(interpreter)} (pip install --user)` };
  }
  return null;
};

// 9. Folders people copy binaries into by hand.
const manualRule: Rule = ({ candidates, path: filePath, roots, show }) => {
  const folder = path.posix.dirname(filePath);
  if (below(filePath, '/usr/local/go')) return { method: 'manual', reason: 'in /usr/local/go, the Go release tarball' };
  for (const manual of ['/usr/local/bin', '/usr/local/sbin']) {
    if (folder === manual) return { method: 'manual', reason: `in ${manual}, which no package owns` };
  }
  if (folder === path.posix.join(roots.home, 'bin') || folder === roots.localBin) {
    return { method: 'manual', reason: `in ${show(folder)} with no other sign of how it got there` };
  }
  for (const file of candidates) {
    const opt = below(file, '/opt');
    if (opt && opt.length >= 2) return { method: 'manual', reason: `under /opt/${opt[0]}, which no package owns` };
    if (below(file, '/usr/local')) return { method: 'manual', reason: `under /usr/local, which no package owns` };
  }
  return null;
};

// 10. A system folder with no owner: put there by hand, or the database is unreadable.
const systemFolderRule: Rule = ({ candidates }) => {
  for (const file of candidates) {
    for (const folder of SYSTEM_FOLDERS) {
      if (below(file, folder)) return { method: 'unknown', reason: `in ${folder}, but no package database lists ${file}` };
    }
  }
  return null;
};

const RULES: readonly Rule[] = [
  launcherRule,
  versionManagerRule,
  rustupProxyRule,
  ownerRule,
  homebrewRule,
  userToolRule,
  venvRule,
  shebangRule,
  manualRule,
  systemFolderRule,
];

/** The program a `#!` line runs: `/usr/bin/python3`, or `python3` for `#!/usr/bin/env python3`. */
export function shebangInterpreter(shebang: string | null | undefined): string | null {
  if (!shebang || !shebang.startsWith('#!')) return null;
  const words = shebang.slice(2).trim().split(/\s+/).filter(Boolean);
  const program = words[0];
  if (!program) return null;
  if (path.posix.basename(program) !== 'env') return program;
  // `env -S python3 -u`, `env PYTHONX=1 python3`
  const rest = words.slice(1).filter((word) => !word.startsWith('-') && !word.includes('='));
  return rest[0] ?? null;
}

/** The path segments of `file` below `folder`, or null when it is not below it. */
function below(file: string, folder: string): string[] | null {
  if (folder === '/' ) return file.split('/').filter(Boolean);
  if (!file.startsWith(`${folder}/`)) return null;
  return file.slice(folder.length + 1).split('/').filter(Boolean);
}

function normalize(file: string): string {
  const normal = path.posix.normalize(file);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

function tilde(file: string, home: string): string {
  if (home && home !== '/' && (file === home || file.startsWith(`${home}/`))) return `~${file.slice(home.length)}`;
  return file;
}

// Evidence ---------------------------------------------------------------

export interface GatheredEvidence {
  shebang: string | null;
  evidence: ClassificationEvidence;
}

/**
 * Reads what `classifyInstallation` cannot see from paths alone: the
 * shebang, a `pyvenv.cfg` beside the bin folder, and whether a file in
 * ~/.cargo/bin is a hard link to rustup. Missing files are not errors.
 */
export async function gatherEvidence(input: {
  path: string;
  realPath: string;
  home: string;
  environment: Environment;
}): Promise<GatheredEvidence> {
  const roots = installRoots(input.home, input.environment);
  const filePath = normalize(input.path);
  const realPath = normalize(input.realPath || input.path);
  const [shebang, venvRoot, rustupProxy] = await Promise.all([
    readShebang(realPath),
    findVenvRoot(realPath === filePath ? [realPath] : [realPath, filePath]),
    isRustupProxy(filePath, roots),
  ]);
  const evidence: ClassificationEvidence = { venvRoot };
  if (rustupProxy !== undefined) evidence.rustupProxy = rustupProxy;
  return { shebang, evidence };
}

async function readShebang(file: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(file, 'r');
    const buffer = Buffer.alloc(512);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead < 2 || buffer[0] !== 0x23 || buffer[1] !== 0x21) return null;
    const text = buffer.toString('utf8', 0, bytesRead);
    const end = text.search(/\r?\n/);
    return end < 0 ? text : text.slice(0, end);
  } catch {
    return null;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function findVenvRoot(files: readonly string[]): Promise<string | null> {
  for (const file of files) {
    const folder = path.posix.dirname(file);
    if (path.posix.basename(folder) !== 'bin') continue;
    const root = path.posix.dirname(folder);
    const exists = await stat(path.posix.join(root, 'pyvenv.cfg')).then((info) => info.isFile(), () => false);
    if (exists) return root;
  }
  return null;
}

async function isRustupProxy(filePath: string, roots: InstallRoots): Promise<boolean | undefined> {
  const cargoBin = path.posix.join(roots.cargo, 'bin');
  if (path.posix.dirname(filePath) !== cargoBin || path.posix.basename(filePath) === 'rustup') return undefined;
  try {
    const [file, rustup] = await Promise.all([stat(filePath), stat(path.posix.join(cargoBin, 'rustup'))]);
    return file.dev === rustup.dev && file.ino === rustup.ino;
  } catch {
    // No rustup next to it: not a proxy.
    return false;
  }
}
