import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyInstallation, gatherEvidence, shebangInterpreter, type ClassifyInput } from '../../src/audit/classify.ts';
import type { InstallMethod } from '../../src/audit/types.ts';

const HOME = '/home/u';
const STORE = '/nix/store/0c8v0q4x9z7w6y5s4r3p2n1m0l9k8j7h';

interface Case {
  input: Partial<ClassifyInput> & { path: string };
  method: InstallMethod;
  /** The evidence the reason must name. */
  reason: RegExp;
  package?: string;
}

const cases: Array<[string, Case]> = [
  // System packages
  ['dpkg-owned ripgrep', { input: { path: '/usr/bin/rg', owner: { manager: 'dpkg', package: 'ripgrep' } }, method: 'apt', reason: /owned by dpkg package ripgrep/, package: 'ripgrep' }],
  ['dpkg-owned python via versioned file', { input: { path: '/usr/bin/python3', realPath: '/usr/bin/python3.11', owner: { manager: 'dpkg', package: 'python3.11-minimal' } }, method: 'apt', reason: /dpkg package python3\.11-minimal/ }],
  ['alternatives link owned by dpkg', { input: { path: '/usr/bin/editor', realPath: '/usr/bin/vim.basic', owner: { manager: 'dpkg', package: 'vim' } }, method: 'apt', reason: /dpkg package vim/ }],
  ['rpm-owned git', { input: { path: '/usr/bin/git', owner: { manager: 'rpm', package: 'git-core' } }, method: 'rpm', reason: /rpm package git-core/ }],
  ['pacman-owned jq', { input: { path: '/usr/bin/jq', owner: { manager: 'pacman', package: 'jq' } }, method: 'pacman', reason: /pacman package jq/ }],
  ['apk-owned curl', { input: { path: '/usr/bin/curl', owner: { manager: 'apk', package: 'curl' } }, method: 'apk', reason: /apk package curl/ }],
  ['owner wins over /opt', { input: { path: '/opt/google/chrome/chrome', owner: { manager: 'dpkg', package: 'google-chrome-stable' } }, method: 'apt', reason: /dpkg package google-chrome-stable/ }],
  ['owner wins over npm-global for a packaged npm', { input: { path: '/usr/bin/npm', realPath: '/usr/lib/node_modules/npm/bin/npm-cli.js', owner: { manager: 'dpkg', package: 'nodejs' } }, method: 'apt', reason: /dpkg package nodejs/ }],
  ['unowned file in /usr/bin', { input: { path: '/usr/bin/mystery' }, method: 'unknown', reason: /in \/usr\/bin, but no package database lists/ }],

  // Rust
  ['cargo install in /root', { input: { path: '/root/.cargo/bin/rg', home: '/root' }, method: 'cargo', reason: /under ~\/\.cargo\/bin/ }],
  ['rustup proxy by name', { input: { path: '/root/.cargo/bin/cargo', home: '/root' }, method: 'rustup', reason: /rustup proxy: cargo/ }],
  ['rustup proxy as hard link', { input: { path: '/home/u/.cargo/bin/rustc', evidence: { rustupProxy: true } }, method: 'rustup', reason: /hard link to rustup/ }],
  ['rustup proxy as symlink', { input: { path: '/home/u/.cargo/bin/rustfmt', realPath: '/home/u/.cargo/bin/rustup' }, method: 'rustup', reason: /links to ~\/\.cargo\/bin\/rustup/ }],
  ['proxy name that is not rustup', { input: { path: '/home/u/.cargo/bin/rust-analyzer', evidence: { rustupProxy: false } }, method: 'cargo', reason: /under ~\/\.cargo\/bin/ }],
  ['rustup itself', { input: { path: '/home/u/.cargo/bin/rustup' }, method: 'rustup', reason: /rustup itself/ }],
  ['rustup toolchain binary', { input: { path: '/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc' }, method: 'rustup', reason: /toolchain stable-x86_64-unknown-linux-gnu/ }],
  ['CARGO_HOME honoured', { input: { path: '/srv/cargo/bin/bat', environment: { CARGO_HOME: '/srv/cargo' } }, method: 'cargo', reason: /under \/srv\/cargo\/bin/ }],

  // Python
  ['pipx by shebang', { input: { path: '/home/u/.local/bin/black', shebang: '#!/home/u/.local/share/pipx/venvs/black/bin/python' }, method: 'pipx', reason: /shebang points into pipx venv black/ }],
  ['pipx (old home) by symlink', { input: { path: '/home/u/.local/bin/http', realPath: '/home/u/.local/pipx/venvs/httpie/bin/http' }, method: 'pipx', reason: /pipx venv httpie/ }],
  ['uv tool by symlink', { input: { path: '/home/u/.local/bin/ruff', realPath: '/home/u/.local/share/uv/tools/ruff/bin/ruff' }, method: 'uv', reason: /uv tool ruff/ }],
  ['uv tool by shebang', { input: { path: '/home/u/.local/bin/mypy', shebang: '#!/home/u/.local/share/uv/tools/mypy/bin/python3' }, method: 'uv', reason: /shebang points into uv tool mypy/ }],
  ['uv-managed python', { input: { path: '/home/u/.local/share/uv/python/cpython-3.12.4-linux-x86_64-gnu/bin/python3.12' }, method: 'uv', reason: /uv-managed Python cpython-3\.12\.4/ }],
  ['pip --user with system python', { input: { path: '/home/u/.local/bin/flask', shebang: '#!/usr/bin/python3' }, method: 'pip-user', reason: /shebang runs \/usr\/bin\/python3/ }],
  ['pip --user with pyenv python', { input: { path: '/home/u/.local/bin/tox', shebang: '#!/home/u/.pyenv/versions/3.12.1/bin/python3.12' }, method: 'pip-user', reason: /~\/\.pyenv\/versions\/3\.12\.1\/bin\/python3\.12/ }],
  ['pip --user with env python', { input: { path: '/home/u/.local/bin/httpx', shebang: '#!/usr/bin/env python3' }, method: 'pip-user', reason: /shebang runs python3/ }],
  ['script whose shebang is a virtualenv', { input: { path: '/home/u/.local/bin/ansible', shebang: '#!/home/u/.virtualenvs/ops/bin/python' }, method: 'venv', reason: /virtual environment ~\/\.virtualenvs\/ops/ }],
  ['venv with pyvenv.cfg', { input: { path: '/work/proj/.venv/bin/black', evidence: { venvRoot: '/work/proj/.venv' } }, method: 'venv', reason: /\/work\/proj\/\.venv\/pyvenv\.cfg/ }],
  ['pyenv shim', { input: { path: '/home/u/.pyenv/shims/python3' }, method: 'pyenv', reason: /pyenv shim in ~\/\.pyenv\/shims/ }],
  ['pyenv version binary', { input: { path: '/home/u/.pyenv/versions/3.12.1/bin/python3.12' }, method: 'pyenv', reason: /pyenv version 3\.12\.1/ }],
  ['pyenv itself', { input: { path: '/home/u/.pyenv/bin/pyenv', realPath: '/home/u/.pyenv/libexec/pyenv' }, method: 'pyenv', reason: /part of pyenv, under ~\/\.pyenv/ }],
  ['pyenv plugin shim', { input: { path: '/home/u/.pyenv/plugins/pyenv-virtualenv/shims/activate' }, method: 'pyenv', reason: /part of pyenv/ }],
  ['PYENV_ROOT outside home wins over /opt', { input: { path: '/opt/pyenv/shims/python', environment: { PYENV_ROOT: '/opt/pyenv' } }, method: 'pyenv', reason: /pyenv shim in \/opt\/pyenv\/shims/ }],
  ['conda base', { input: { path: '/home/u/miniconda3/bin/conda' }, method: 'conda', reason: /conda installation ~\/miniconda3/ }],
  ['conda environment', { input: { path: '/home/u/miniforge3/envs/ml/bin/python' }, method: 'conda', reason: /~\/miniforge3 \(environment ml\)/ }],
  ['conda in /opt', { input: { path: '/opt/conda/bin/python3' }, method: 'conda', reason: /conda installation \/opt\/conda/ }],

  // Homebrew
  ['Homebrew on Apple silicon', { input: { path: '/opt/homebrew/bin/jq', realPath: '/opt/homebrew/Cellar/jq/1.7.1/bin/jq' }, method: 'homebrew', reason: /Cellar: jq 1\.7\.1/, package: 'jq' }],
  ['Homebrew on Intel (/usr/local)', { input: { path: '/usr/local/bin/wget', realPath: '/usr/local/Cellar/wget/1.24.5/bin/wget' }, method: 'homebrew', reason: /Cellar: wget 1\.24\.5/ }],
  ['Linuxbrew prefix', { input: { path: '/home/linuxbrew/.linuxbrew/bin/gh' }, method: 'homebrew', reason: /Homebrew prefix \/home\/linuxbrew\/\.linuxbrew/ }],

  // Sandboxed and store-based
  ['snap launcher beats the snapd owner', { input: { path: '/snap/bin/kubectl', realPath: '/usr/bin/snap', owner: { manager: 'dpkg', package: 'snapd' } }, method: 'snap', reason: /\/snap\/bin \(snap kubectl\)/, package: 'kubectl' }],
  ['snap app with a dotted name', { input: { path: '/var/lib/snapd/snap/bin/lxd.lxc', realPath: '/usr/bin/snap' }, method: 'snap', reason: /snap lxd/ }],
  ['system flatpak export', { input: { path: '/var/lib/flatpak/exports/bin/org.gimp.GIMP' }, method: 'flatpak', reason: /flatpak app org\.gimp\.GIMP/ }],
  ['user flatpak export', { input: { path: '/home/u/.local/share/flatpak/exports/bin/com.visualstudio.code' }, method: 'flatpak', reason: /flatpak app com\.visualstudio\.code in ~\/\.local\/share\/flatpak\/exports\/bin/ }],
  ['nix store', { input: { path: `${STORE}-ripgrep-14.1.0/bin/rg` }, method: 'nix', reason: /nix store \(ripgrep-14\.1\.0\)/ }],
  ['nix profile link', { input: { path: '/home/u/.nix-profile/bin/hello', realPath: `${STORE}-hello-2.12.1/bin/hello` }, method: 'nix', reason: /hello-2\.12\.1/ }],

  // Node
  ['npm bundled with nvm node', { input: { path: '/home/u/.nvm/versions/node/v20.11.0/bin/npm', realPath: '/home/u/.nvm/versions/node/v20.11.0/lib/node_modules/npm/bin/npm-cli.js' }, method: 'nvm', reason: /nvm node v20\.11\.0/ }],
  ['global package in nvm node', { input: { path: '/home/u/.nvm/versions/node/v20.11.0/bin/tsc', realPath: '/home/u/.nvm/versions/node/v20.11.0/lib/node_modules/typescript/bin/tsc' }, method: 'npm-global', reason: /npm global package typescript in nvm's node v20\.11\.0/ }],
  ['version manager wins over /usr/local/bin', { input: { path: '/usr/local/bin/node', realPath: '/home/u/.nvm/versions/node/v18.19.0/bin/node' }, method: 'nvm', reason: /nvm node v18\.19\.0/ }],
  ['fnm node', { input: { path: '/home/u/.local/share/fnm/node-versions/v20.11.0/installation/bin/node' }, method: 'fnm', reason: /fnm node v20\.11\.0/ }],
  ['fnm multishell', { input: { path: '/run/user/1000/fnm_multishells/1234_5678/bin/node' }, method: 'fnm', reason: /fnm multishell/ }],
  ['npm -g into /usr/local', { input: { path: '/usr/local/bin/tsc', realPath: '/usr/local/lib/node_modules/typescript/bin/tsc' }, method: 'npm-global', reason: /typescript in \/usr\/local\/lib\/node_modules/ }],
  ['npm -g into /usr without owner', { input: { path: '/usr/bin/yarn', realPath: '/usr/lib/node_modules/yarn/bin/yarn.js' }, method: 'npm-global', reason: /yarn in \/usr\/lib\/node_modules/ }],
  ['scoped npm -g package', { input: { path: '/usr/local/bin/ng', realPath: '/usr/local/lib/node_modules/@angular/cli/bin/ng.js' }, method: 'npm-global', reason: /@angular\/cli/ }],
  ['npm user prefix ~/.npm-global', { input: { path: '/home/u/.npm-global/bin/prettier', realPath: '/home/u/.npm-global/lib/node_modules/prettier/bin/prettier.cjs' }, method: 'npm-user', reason: /prettier in ~\/\.npm-global\/lib\/node_modules/ }],
  ['npm user prefix ~/.local', { input: { path: '/home/u/.local/bin/eslint', realPath: '/home/u/.local/lib/node_modules/eslint/bin/eslint.js' }, method: 'npm-user', reason: /eslint in ~\/\.local\/lib\/node_modules/ }],
  ['project node_modules/.bin', { input: { path: '/work/app/node_modules/.bin/eslint', realPath: '/work/app/node_modules/eslint/bin/eslint.js' }, method: 'npm-project', reason: /project \/work\/app/ }],
  ['pnpm home', { input: { path: '/home/u/.local/share/pnpm/pnpm' }, method: 'pnpm', reason: /under ~\/\.local\/share\/pnpm/ }],
  ['bun', { input: { path: '/home/u/.bun/bin/bun' }, method: 'bun', reason: /under ~\/\.bun/ }],
  ['deno', { input: { path: '/home/u/.deno/bin/deno' }, method: 'deno', reason: /under ~\/\.deno/ }],
  ['volta shim', { input: { path: '/home/u/.volta/bin/node', realPath: '/home/u/.volta/bin/volta-shim' }, method: 'volta', reason: /Volta shim in ~\/\.volta\/bin/ }],
  ['volta node image', { input: { path: '/home/u/.volta/tools/image/node/20.11.0/bin/node' }, method: 'volta', reason: /Volta node 20\.11\.0/ }],
  ['volta package image', { input: { path: '/home/u/.volta/tools/image/packages/typescript/bin/tsc' }, method: 'volta', reason: /Volta package typescript/ }],

  // Other version managers
  ['rbenv shim', { input: { path: '/home/u/.rbenv/shims/ruby' }, method: 'rbenv', reason: /rbenv shim/ }],
  ['rbenv version', { input: { path: '/home/u/.rbenv/versions/3.3.0/bin/ruby' }, method: 'rbenv', reason: /rbenv version 3\.3\.0/ }],
  ['asdf shim', { input: { path: '/home/u/.asdf/shims/terraform' }, method: 'asdf', reason: /asdf shim in ~\/\.asdf\/shims/ }],
  ['asdf install', { input: { path: '/home/u/.asdf/installs/nodejs/20.11.0/bin/node' }, method: 'asdf', reason: /asdf nodejs 20\.11\.0/ }],
  ['asdf terraform install', { input: { path: '/home/u/.asdf/installs/terraform/1.7.3/bin/terraform' }, method: 'asdf', reason: /asdf terraform 1\.7\.3/ }],
  ['mise install', { input: { path: '/home/u/.local/share/mise/installs/node/22/bin/node' }, method: 'mise', reason: /mise node 22/ }],
  ['mise shim', { input: { path: '/home/u/.local/share/mise/shims/node', realPath: '/home/u/.local/bin/mise' }, method: 'mise', reason: /mise shim in ~\/\.local\/share\/mise\/shims/ }],
  ['mise shim under MISE_DATA_DIR', { input: { path: '/data/mise/shims/python', realPath: '/usr/bin/mise', environment: { MISE_DATA_DIR: '/data/mise' } }, method: 'mise', reason: /mise shim in \/data\/mise\/shims/ }],
  ['sdkman candidate', { input: { path: '/home/u/.sdkman/candidates/java/current/bin/java', realPath: '/home/u/.sdkman/candidates/java/21.0.2-tem/bin/java' }, method: 'sdkman', reason: /sdkman java 21\.0\.2-tem/ }],
  ['nodenv shim', { input: { path: '/home/u/.nodenv/shims/node' }, method: 'nodenv', reason: /nodenv shim/ }],
  ['goenv shim', { input: { path: '/home/u/.goenv/shims/go' }, method: 'goenv', reason: /goenv shim/ }],

  // Go
  ['go install into ~/go/bin', { input: { path: '/home/u/go/bin/gopls' }, method: 'go', reason: /under ~\/go\/bin/ }],
  ['go install into $GOPATH/bin', { input: { path: '/srv/gopath/bin/dlv', environment: { GOPATH: '/srv/gopath' } }, method: 'go', reason: /under \/srv\/gopath\/bin/ }],
  ['go install into $GOBIN', { input: { path: '/home/u/gobin/staticcheck', environment: { GOBIN: '/home/u/gobin' } }, method: 'go', reason: /under ~\/gobin/ }],
  ['Go tarball', { input: { path: '/usr/local/go/bin/go' }, method: 'manual', reason: /\/usr\/local\/go, the Go release tarball/ }],

  // Manual and unknown
  ['terraform dropped into /usr/local/bin', { input: { path: '/usr/local/bin/terraform' }, method: 'manual', reason: /in \/usr\/local\/bin/ }],
  ['~/bin', { input: { path: '/home/u/bin/mytool' }, method: 'manual', reason: /in ~\/bin/ }],
  ['~/.local/bin binary', { input: { path: '/home/u/.local/bin/kubectx' }, method: 'manual', reason: /in ~\/\.local\/bin with no other sign/ }],
  ['~/.local/bin shell script', { input: { path: '/home/u/.local/bin/deploy', shebang: '#!/bin/bash' }, method: 'manual', reason: /~\/\.local\/bin/ }],
  ['/opt tarball', { input: { path: '/opt/nvim-linux64/bin/nvim' }, method: 'manual', reason: /under \/opt\/nvim-linux64/ }],
  ['unknown place', { input: { path: '/home/u/weird/place/tool' }, method: 'unknown', reason: /no rule matches ~\/weird\/place\/tool/ }],
];

describe('classifyInstallation', () => {
  it('covers at least 40 real paths', () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)('%s', (_name, testCase) => {
    const input: ClassifyInput = {
      realPath: testCase.input.path,
      shebang: null,
      home: HOME,
      environment: {},
      ...testCase.input,
    };
    const result = classifyInstallation(input);
    expect(result.method).toBe(testCase.method);
    expect(result.reason).toMatch(testCase.reason);
    if (testCase.package !== undefined) expect(result.package).toBe(testCase.package);
  });

  it('gives the system owner the package name', () => {
    const result = classifyInstallation({
      path: '/usr/bin/rg',
      realPath: '/usr/bin/rg',
      shebang: null,
      home: HOME,
      owner: { manager: 'dpkg', package: 'ripgrep', architecture: 'amd64' },
      environment: {},
    });
    expect(result).toEqual({ method: 'apt', reason: 'owned by dpkg package ripgrep', package: 'ripgrep' });
  });

  it('lets version-manager paths win over a package owner', () => {
    const result = classifyInstallation({
      path: '/home/u/.pyenv/versions/3.12.1/bin/python3',
      realPath: '/home/u/.pyenv/versions/3.12.1/bin/python3.12',
      shebang: null,
      home: HOME,
      owner: { manager: 'dpkg', package: 'bogus' },
      environment: {},
    });
    expect(result.method).toBe('pyenv');
  });
});

describe('shebangInterpreter', () => {
  it.each([
    ['#!/usr/bin/python3', '/usr/bin/python3'],
    ['#! /usr/bin/python3 -E', '/usr/bin/python3'],
    ['#!/usr/bin/env python3', 'python3'],
    ['#!/usr/bin/env -S python3 -u', 'python3'],
    ['#!/usr/bin/env PYTHONUTF8=1 python3', 'python3'],
    ['not a shebang', null],
    [null, null],
  ])('%s -> %s', (line, expected) => {
    expect(shebangInterpreter(line)).toBe(expected);
  });
});

describe('gatherEvidence', () => {
  let root: string;
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('reads the shebang, finds pyvenv.cfg and recognises rustup hard links', async () => {
    root = await mkdtemp(join(tmpdir(), 'upkeep-classify-'));
    const home = join(root, 'home');
    const cargoBin = join(home, '.cargo', 'bin');
    const venv = join(root, 'proj', '.venv');
    await mkdir(cargoBin, { recursive: true });
    await mkdir(join(venv, 'bin'), { recursive: true });
    await writeFile(join(venv, 'pyvenv.cfg'), 'home = /usr/bin\n');
    await writeFile(join(venv, 'bin', 'black'), `#!${venv}/bin/python\nimport black\n`);
    await writeFile(join(cargoBin, 'rustup'), 'ELF');
    await link(join(cargoBin, 'rustup'), join(cargoBin, 'cargo'));
    await writeFile(join(cargoBin, 'rg'), 'ELF');
    await symlink(join(venv, 'bin', 'black'), join(home, 'black-link'));

    const black = await gatherEvidence({ path: join(home, 'black-link'), realPath: join(venv, 'bin', 'black'), home, environment: {} });
    expect(black.shebang).toBe(`#!${venv}/bin/python`);
    expect(black.evidence.venvRoot).toBe(venv);
    const blackClass = classifyInstallation({ path: join(home, 'black-link'), realPath: join(venv, 'bin', 'black'), home, environment: {}, ...black });
    expect(blackClass.method).toBe('venv');

    const cargo = await gatherEvidence({ path: join(cargoBin, 'cargo'), realPath: join(cargoBin, 'cargo'), home, environment: {} });
    expect(cargo.evidence.rustupProxy).toBe(true);
    expect(cargo.shebang).toBeNull();
    const rg = await gatherEvidence({ path: join(cargoBin, 'rg'), realPath: join(cargoBin, 'rg'), home, environment: {} });
    expect(rg.evidence.rustupProxy).toBe(false);
    expect(rg.evidence.venvRoot).toBeNull();
    expect(classifyInstallation({ path: join(cargoBin, 'rg'), realPath: join(cargoBin, 'rg'), home, environment: {}, ...rg }).method).toBe('cargo');
  });

  it('treats a missing file as having no shebang', async () => {
    root = await mkdtemp(join(tmpdir(), 'upkeep-classify-'));
    const result = await gatherEvidence({ path: join(root, 'nope'), realPath: join(root, 'nope'), home: root, environment: {} });
    expect(result).toEqual({ shebang: null, evidence: { venvRoot: null } });
  });
});
