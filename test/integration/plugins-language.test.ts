import { accessSync, constants } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  estimateOf,
  expectExecutable,
  expectFailure,
  expectProgressToEnd,
  manifestOf,
  updatedOf,
  useBuiltinPlugins,
  type Reply,
} from '../helpers/builtin-plugins.ts';
import { writeStub } from '../helpers/sandbox.ts';

/**
 * The built-in plugins for language package managers and upkeep's own tools,
 * run as the executables they are, against stand-ins of the managers on a
 * sandbox PATH. The stand-ins print what the real tools print
 * (test/fixtures/plugins/<name>; the network failures of npm, pip, cargo and
 * rustup were captured on a machine without internet) and log every argv
 * they get. cargo, rustup and npm are also run for real where they are
 * installed. Tests run as root here, so no argv carries `sudo -n`: the path
 * through sudo is not tested.
 */

const LANGUAGE_PLUGINS = ['npm', 'pnpm', 'pipx', 'uv', 'cargo', 'rustup', 'go', 'gem'] as const;
const ALL_PLUGINS = [...LANGUAGE_PLUGINS, 'upkeep-tools'] as const;
const SYSTEM_MANAGERS = ['apt', 'dnf', 'pacman', 'zypper', 'apk', 'brew'];
const RUNTIME_OF: Record<(typeof LANGUAGE_PLUGINS)[number], string> = {
  npm: 'node',
  pnpm: 'node',
  pipx: 'python',
  uv: 'python',
  cargo: 'rust',
  rustup: 'rust',
  go: 'go',
  gem: 'ruby',
};

const harness = useBuiltinPlugins();
const { stub, plugin, ran, expectApplicable, expectNotApplicable } = harness;

describe('manifests of the language and tool plugins', () => {
  const MUTEX = /^(pkgmgr|runtime|app|system):[a-z0-9_-]+$/;

  it.each(ALL_PLUGINS)('%s: the manifest is complete and agrees with the executable', async (name) => {
    const manifest = await manifestOf(name);
    expect(manifest).toMatchObject({ name, version: '1.0.0', executable: `${name}.mjs`, protocol: 1, can_separate_download: false, supports_self_update: false });
    for (const flag of ['requires_sudo', 'supports_dynamic_mutexes'] as const) expect(typeof manifest[flag], flag).toBe('boolean');
    for (const field of ['static_mutexes', 'static_dependencies'] as const) {
      expect(Object.keys(manifest[field]).sort(), field).toEqual(['download', 'estimate', 'update']);
      for (const names of Object.values(manifest[field])) for (const mutex of names) expect(mutex).toMatch(MUTEX);
    }
    expect(Object.keys(manifest.timeouts).sort()).toEqual(['download', 'estimate_update', 'is_applicable', 'update']);
    // Every network query has a deadline the user can lengthen.
    expect(manifest.settings?.query_timeout).toEqual(expect.any(Number));
    expect(manifest.settings!.query_timeout as number).toBeLessThan(manifest.timeouts.estimate_update!);

    await expectExecutable(name);

    expect((await plugin(name, 'version')).envelope.data).toEqual({ version: manifest.version, protocol: 1 });
    const sudo = await plugin(name, 'does-require-sudo');
    expect(sudo.envelope.data).toEqual({ requires_sudo: false });
    expect(sudo.exitCode).toBe(1);
    const separate = await plugin(name, 'can-separate-download');
    expect(separate).toMatchObject({ exitCode: 1, envelope: { data: { can_separate_download: false } } });
    const download = await plugin(name, 'download');
    expect(download).toMatchObject({ exitCode: 1, envelope: { status: 'not_supported' } });
    const unknown = await plugin(name, 'no-such-command');
    expect(unknown.exitCode).toBe(64);
    expect(unknown.envelope.error?.code).toBe('UNKNOWN_COMMAND');
  });

  it.each(LANGUAGE_PLUGINS)('%s: runs after the system managers, and its update needs its runtime left alone', async (name) => {
    const manifest = await manifestOf(name);
    expect(manifest.runs_after).toEqual(expect.arrayContaining(SYSTEM_MANAGERS));
    expect(manifest.supports_dynamic_mutexes).toBe(false);
    if (name === 'rustup') {
      // rustup replaces the toolchain: it holds the runtime instead.
      expect(manifest.static_mutexes.update).toEqual(['runtime:rust']);
      expect(manifest.static_dependencies.update).toEqual([]);
    } else {
      expect(manifest.static_mutexes.update).toEqual([`pkgmgr:${name}`]);
      expect(manifest.static_dependencies.update).toEqual([`runtime:${RUNTIME_OF[name]}`]);
    }
    // Estimates only read: they hold nothing.
    expect(manifest.static_mutexes.estimate).toEqual([]);
  });

  it('builds crates after rustup has updated the compiler', async () => {
    expect((await manifestOf('cargo')).runs_after).toContain('rustup');
  });

  it('runs upkeep-tools after every other built-in plugin, with mutexes it learns from the plans', async () => {
    const manifest = await manifestOf('upkeep-tools');
    expect(manifest.runs_after.sort()).toEqual([...LANGUAGE_PLUGINS, ...SYSTEM_MANAGERS, 'snap', 'flatpak'].sort());
    expect(manifest.supports_dynamic_mutexes).toBe(true);
    expect(manifest.settings).toMatchObject({ offline: false, include_managed: false });
  });
});

describe('npm', () => {
  async function npmMachine(outdated: Reply, install: Partial<Reply> = { stdout: 'install.txt' }): Promise<void> {
    await stub('npm', 'npm', [
      { ...outdated, when: 'outdated -g --json' },
      { when: 'root -g', text: harness.box.root },
      { when: 'install -g *', ...install },
    ]);
  }

  it('is applicable exactly when npm is on PATH', async () => {
    await expectNotApplicable('npm', 'npm not found');
    await npmMachine({ when: '', stdout: 'outdated-none.json' });
    await expectApplicable('npm');
  });

  it('estimates from npm outdated -g, which exits 1 when something is outdated', async () => {
    await npmMachine({ when: '', stdout: 'outdated.json', exit: 1 });
    const run = await plugin('npm', 'estimate-update');
    // A linked package has no registry version; npm itself comes last.
    expect(estimateOf(run).packages_to_update).toEqual([
      { name: 'corepack', current_version: '0.34.6', new_version: '0.34.7' },
      { name: 'typescript', current_version: '5.4.5', new_version: '5.9.3' },
      { name: 'npm', current_version: '11.19.1', new_version: '11.21.2' },
    ]);
    expectProgressToEnd(run);
  });

  it('finds nothing to do when npm outdated prints {}', async () => {
    await npmMachine({ when: '', stdout: 'outdated-none.json' });
    expect(estimateOf(await plugin('npm', 'estimate-update')).packages_to_update).toEqual([]);
    expect(updatedOf(await plugin('npm', 'update'))).toMatchObject({ packages_updated: [], package_count: 0 });
    expect((await ran()).filter((line) => line.startsWith('npm install'))).toEqual([]);
  });

  it('installs exactly the versions the estimate saw, one package at a time, npm last', async () => {
    await npmMachine({ when: '', stdout: 'outdated.json', exit: 1 });
    estimateOf(await plugin('npm', 'estimate-update'));
    const run = await plugin('npm', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'corepack', from: '0.34.6', to: '0.34.7' },
        { name: 'typescript', from: '5.4.5', to: '5.9.3' },
        { name: 'npm', from: '11.19.1', to: '11.21.2' },
      ],
      package_count: 3,
    });
    expect((await ran()).filter((line) => line.startsWith('npm install'))).toEqual([
      'npm install -g corepack@0.34.7',
      'npm install -g typescript@5.9.3',
      'npm install -g npm@11.21.2',
    ]);
    expect(run.stderr).toContain('changed 1 package');
    expectProgressToEnd(run);
  });

  it('asks npm itself when update runs without an estimate in the run folder', async () => {
    await npmMachine({ when: '', stdout: 'outdated.json', exit: 1 });
    expect(updatedOf(await plugin('npm', 'update')).package_count).toBe(3);
    expect((await ran())[0]).toBe('npm outdated -g --json');
  });

  it('fails as a transient network error with npm`s own offline answer', async () => {
    await npmMachine({ when: '', stdout: 'outdated-offline.json', stderr: 'outdated-offline.txt', exit: 1 });
    const run = await plugin('npm', 'estimate-update');
    expectFailure(run, 75, 'NETWORK_ERROR');
  });

  it('reports a failed install with exit 1, after trying the other packages', async () => {
    await npmMachine({ when: '', stdout: 'outdated.json', exit: 1 }, { stderr: 'install-eacces.txt', exit: 243 });
    const run = await plugin('npm', 'update');
    expectFailure(run, 1, 'COMMAND_FAILED');
    expect(run.envelope.error?.message).toBe('3 of 3 packages failed to update');
    expect(run.envelope.error?.details).toContain('EACCES');
    expect((await ran()).filter((line) => line.startsWith('npm install'))).toHaveLength(3);
  });

  it('needs no sudo for a global folder it can write', async () => {
    await npmMachine({ when: '', stdout: 'outdated-none.json' });
    expect((await plugin('npm', 'does-require-sudo')).envelope.data).toEqual({ requires_sudo: false });
    expect((await plugin('npm', 'sudo-programs-paths')).envelope.data).toEqual({ paths: [join(harness.box.bin, 'npm')] });
  });
});

describe('pnpm', () => {
  async function pnpmMachine(outdated: Reply): Promise<void> {
    await stub('pnpm', 'pnpm', [
      { ...outdated, when: 'outdated -g --format json', also: 'echo "PNPM_HOME=$PNPM_HOME" >> "$STUB_LOG"' },
      { when: 'add -g *', stdout: 'add.txt', also: 'echo "PNPM_HOME=$PNPM_HOME" >> "$STUB_LOG"' },
    ]);
  }

  it('is applicable exactly when pnpm is on PATH', async () => {
    await expectNotApplicable('pnpm', 'pnpm not found');
    await pnpmMachine({ when: '', text: '{}' });
    await expectApplicable('pnpm');
  });

  it('estimates from pnpm outdated -g and adds each package again at that version', async () => {
    await pnpmMachine({ when: '', stdout: 'outdated.json', exit: 1 });
    const estimate = estimateOf(await plugin('pnpm', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'prettier', current_version: '3.2.5', new_version: '3.3.3' },
      { name: 'typescript', current_version: '5.4.5', new_version: '5.6.3' },
    ]);
    const run = await plugin('pnpm', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'prettier', from: '3.2.5', to: '3.3.3' },
        { name: 'typescript', from: '5.4.5', to: '5.6.3' },
      ],
      package_count: 2,
    });
    expect((await ran()).filter((line) => line.startsWith('pnpm add'))).toEqual(['pnpm add -g prettier@3.3.3', 'pnpm add -g typescript@5.6.3']);
    expectProgressToEnd(run);
  });

  it('finds the global folder `pnpm setup` made when PNPM_HOME is not passed on', async () => {
    const home = join(harness.box.home, '.local', 'share', 'pnpm');
    await mkdir(home, { recursive: true });
    await pnpmMachine({ when: '', text: '{}' });
    estimateOf(await plugin('pnpm', 'estimate-update'));
    expect(await ran()).toContain(`PNPM_HOME=${home}`);
  });

  it('fails as a transient network error when the registry cannot be reached', async () => {
    await pnpmMachine({ when: '', stdout: 'outdated-offline.txt', exit: 1 });
    expectFailure(await plugin('pnpm', 'estimate-update'), 75, 'NETWORK_ERROR');
  });
});

describe('pipx', () => {
  async function pipxMachine(runpip: Record<string, Reply> = {}): Promise<void> {
    await stub('pipx', 'pipx', [
      { when: 'list --json', stdout: 'list.json' },
      ...['black', 'httpie', 'pre-commit'].map((venv) => ({
        stdout: `runpip-${venv}.json`,
        ...runpip[venv],
        when: `runpip ${venv} list --outdated --format json --disable-pip-version-check --retries 1 --timeout 15`,
      })),
      { when: 'upgrade black', stdout: 'upgrade-black.txt' },
      { when: 'upgrade pre-commit', stdout: 'upgrade-pre-commit.txt' },
      { when: 'upgrade-all', stdout: 'upgrade-all.txt' },
    ]);
  }

  it('is applicable exactly when pipx is on PATH', async () => {
    await expectNotApplicable('pipx', 'pipx not found');
    await pipxMachine();
    await expectApplicable('pipx');
  });

  it('estimates each venv`s main package from pip list --outdated inside it', async () => {
    await pipxMachine();
    const run = await plugin('pipx', 'estimate-update');
    // httpie's venv has only an outdated dependency; pip writes pre-commit as pre_commit.
    expect(estimateOf(run).packages_to_update).toEqual([
      { name: 'black', current_version: '24.1.0', new_version: '24.10.0' },
      { name: 'pre-commit', current_version: '3.6.0', new_version: '4.0.1' },
    ]);
    expectProgressToEnd(run);
  });

  it('upgrades the venvs the estimate found, and counts only those that changed', async () => {
    await pipxMachine();
    estimateOf(await plugin('pipx', 'estimate-update'));
    const run = await plugin('pipx', 'update');
    expect(updatedOf(run)).toEqual({ packages_updated: [{ name: 'black', from: '24.1.0', to: '24.10.0' }], package_count: 1 });
    expect((await ran()).filter((line) => line.startsWith('pipx upgrade'))).toEqual(['pipx upgrade black', 'pipx upgrade pre-commit']);
  });

  it('runs pipx upgrade-all when no estimate ran in this run folder', async () => {
    await pipxMachine();
    const run = await plugin('pipx', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'black', from: '24.1.0', to: '24.10.0' },
        { name: 'pre-commit', from: '3.6.0', to: '4.0.1' },
      ],
      package_count: 2,
    });
    expect((await ran()).filter((line) => line.startsWith('pipx upgrade'))).toEqual(['pipx upgrade-all']);
  });

  it('fails as a transient network error when pip could not ask the index (it still exits 0)', async () => {
    await pipxMachine({ black: { when: '', stdout: 'runpip-offline.json', stderr: 'runpip-offline.txt' } });
    const run = await plugin('pipx', 'estimate-update');
    expectFailure(run, 75, 'NETWORK_ERROR');
    expect(run.envelope.error?.details).toContain('Failed to establish a new connection');
  });
});

describe('uv', () => {
  async function uvMachine(list: Omit<Reply, 'when'>): Promise<void> {
    await stub('uv', 'uv', [
      { ...list, when: 'tool list --outdated' },
      { when: '--version', text: 'uv 0.5.3' },
      { when: 'tool upgrade black', stderr: 'upgrade-black.txt' },
      { when: 'tool upgrade ruff', stderr: 'upgrade-ruff.txt' },
      { when: 'tool upgrade --all', stderr: 'upgrade-all.txt' },
    ]);
  }

  it('is applicable exactly when uv is on PATH', async () => {
    await expectNotApplicable('uv', 'uv not found');
    await uvMachine({ stderr: 'tool-list-empty.txt' });
    await expectApplicable('uv');
  });

  it('estimates from uv tool list --outdated and upgrades those tools', async () => {
    await uvMachine({ stdout: 'tool-list-outdated.txt' });
    const estimate = estimateOf(await plugin('uv', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'black', current_version: '24.1.0', new_version: '24.10.0' },
      { name: 'ruff', current_version: '0.6.9', new_version: '0.7.0' },
    ]);
    const run = await plugin('uv', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'black', from: '24.1.0', to: '24.10.0' },
        { name: 'ruff', from: '0.6.9', to: '0.7.0' },
      ],
      package_count: 2,
    });
    expect((await ran()).filter((line) => line.startsWith('uv tool upgrade'))).toEqual(['uv tool upgrade black', 'uv tool upgrade ruff']);
    expectProgressToEnd(run);
  });

  it('finds nothing when no tool is installed', async () => {
    await uvMachine({ stderr: 'tool-list-empty.txt' });
    expect(estimateOf(await plugin('uv', 'estimate-update')).packages_to_update).toEqual([]);
  });

  it('runs uv tool upgrade --all when no estimate ran in this run folder', async () => {
    await uvMachine({ stdout: 'tool-list-outdated.txt' });
    expect(updatedOf(await plugin('uv', 'update')).packages_updated.map((entry) => entry.name)).toEqual(['black', 'ruff']);
    expect((await ran()).filter((line) => line.startsWith('uv tool'))).toEqual(['uv tool upgrade --all']);
  });

  it('says which uv is too old to list outdated tools', async () => {
    await uvMachine({ stderr: 'tool-list-old.txt', exit: 2 });
    const run = await plugin('uv', 'estimate-update');
    expectFailure(run, 2, 'UNSUPPORTED_VERSION');
    expect(run.envelope.error?.message).toContain('uv 0.5.3 cannot list outdated tools');
  });

  it('fails as a transient network error when PyPI cannot be reached', async () => {
    await uvMachine({ stderr: 'tool-list-offline.txt', exit: 2 });
    expectFailure(await plugin('uv', 'estimate-update'), 75, 'NETWORK_ERROR');
  });
});

describe('cargo', () => {
  async function cargoMachine(options: { cargoUpdate?: boolean; search?: Partial<Reply> } = {}): Promise<void> {
    await stub('cargo', 'cargo', [
      { when: 'install --list', stdout: 'install-list.txt' },
      ...['ripgrep', 'fd-find', 'cargo-update'].map((crate) => ({ stdout: `search-${crate}.txt`, ...options.search, when: `search ${crate} --limit 1` })),
      { when: 'install-update -l', stdout: 'install-update-list.txt' },
      { when: 'install-update *', stderr: 'install-ripgrep.txt' },
      { when: 'install --locked --version 14.1.1 ripgrep', stderr: 'install-ripgrep.txt' },
      { when: 'install --locked --version 10.2.0 fd-find', stderr: 'install-fd-find.txt' },
    ]);
    // cargo runs `cargo install-update` as the program cargo-install-update; the plugin looks for it on PATH.
    if (options.cargoUpdate) await writeStub(harness.box.bin, 'cargo-install-update');
  }

  it('is applicable exactly when cargo is on PATH', async () => {
    await expectNotApplicable('cargo', 'cargo not found');
    await cargoMachine();
    await expectApplicable('cargo');
  });

  it('estimates with cargo search, crate by crate, leaving out crates built from a path', async () => {
    await cargoMachine();
    const run = await plugin('cargo', 'estimate-update');
    expect(estimateOf(run).packages_to_update).toEqual([
      { name: 'fd-find', current_version: '9.0.0', new_version: '10.2.0' },
      { name: 'ripgrep', current_version: '14.1.0', new_version: '14.1.1' },
    ]);
    expect((await ran()).filter((line) => line.startsWith('cargo search'))).toEqual([
      'cargo search cargo-update --limit 1',
      'cargo search fd-find --limit 1',
      'cargo search ripgrep --limit 1',
    ]);
    expectProgressToEnd(run);
  });

  it('rebuilds each crate at the version found, with its lock file', async () => {
    await cargoMachine();
    estimateOf(await plugin('cargo', 'estimate-update'));
    const run = await plugin('cargo', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'fd-find', from: '9.0.0', to: '10.2.0' },
        { name: 'ripgrep', from: '14.1.0', to: '14.1.1' },
      ],
      package_count: 2,
    });
    expect((await ran()).filter((line) => line.startsWith('cargo install --locked'))).toEqual([
      'cargo install --locked --version 10.2.0 fd-find',
      'cargo install --locked --version 14.1.1 ripgrep',
    ]);
    expectProgressToEnd(run);
  });

  it('uses cargo-update when it is installed: one registry pass, one upgrade run', async () => {
    await cargoMachine({ cargoUpdate: true });
    const estimate = estimateOf(await plugin('cargo', 'estimate-update'));
    expect(estimate.packages_to_update.map((entry) => `${entry.name} ${entry.new_version}`)).toEqual(['fd-find 10.2.0', 'ripgrep 14.1.1']);
    const run = await plugin('cargo', 'update');
    expect(updatedOf(run).package_count).toBe(2);
    const log = await ran();
    expect(log.filter((line) => line.startsWith('cargo search'))).toEqual([]);
    expect(log).toContain('cargo install-update fd-find ripgrep');
    expect(run.progress.some((line) => line.message === 'building ripgrep')).toBe(true);
  });

  it('fails as a transient network error with cargo`s own offline answer', async () => {
    await cargoMachine({ search: { stdout: undefined, stderr: 'search-offline.txt', exit: 101 } });
    const run = await plugin('cargo', 'estimate-update');
    expectFailure(run, 75, 'NETWORK_ERROR');
    expect(run.envelope.error?.details).toContain('Could not resolve host: index.crates.io');
  });
});

describe('rustup', () => {
  async function rustupMachine(check: Omit<Reply, 'when'>): Promise<void> {
    await stub('rustup', 'rustup', [
      { ...check, when: 'check' },
      { when: 'update', stdout: 'update.txt', stderr: 'update-info.txt' },
    ]);
  }

  it('is applicable exactly when rustup is on PATH', async () => {
    await expectNotApplicable('rustup', 'rustup not found');
    await rustupMachine({ stdout: 'check-current.txt' });
    await expectApplicable('rustup');
  });

  it.each([0, 100])('estimates toolchains and rustup itself from rustup check (exit code %i)', async (exit) => {
    await rustupMachine({ stdout: 'check.txt', exit });
    const estimate = estimateOf(await plugin('rustup', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'stable-x86_64-unknown-linux-gnu', current_version: '1.80.0', new_version: '1.81.0' },
      { name: 'rustup', current_version: '1.27.1', new_version: '1.28.1' },
    ]);
    expect(estimate.affects_runtimes).toEqual(['rust']);
  });

  it('takes exit code 1 without an error for "nothing to update" (rustup 1.28)', async () => {
    await rustupMachine({ stdout: 'check-current.txt', exit: 1 });
    const estimate = estimateOf(await plugin('rustup', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([]);
    expect(estimate.affects_runtimes).toBeUndefined();
    expect(updatedOf(await plugin('rustup', 'update')).package_count).toBe(0);
    expect(await ran()).toEqual(['rustup check']);
  });

  it('runs rustup update and reports what its summary says was updated', async () => {
    await rustupMachine({ stdout: 'check.txt' });
    estimateOf(await plugin('rustup', 'estimate-update'));
    const run = await plugin('rustup', 'update');
    expect(updatedOf(run)).toEqual({
      packages_updated: [
        { name: 'stable-x86_64-unknown-linux-gnu', from: '1.80.0', to: '1.81.0' },
        { name: 'rustup', from: '1.27.1', to: '1.28.1' },
      ],
      package_count: 2,
    });
    expect(await ran()).toEqual(['rustup check', 'rustup update']);
    expectProgressToEnd(run);
  });

  it('fails as a transient network error with rustup`s own offline answer', async () => {
    await rustupMachine({ stderr: 'check-offline.txt', exit: 1 });
    const run = await plugin('rustup', 'estimate-update');
    expectFailure(run, 75, 'NETWORK_ERROR');
    expect(run.envelope.error?.details).toContain('dns error');
  });

  it('gives up on a check that does not answer, as a transient timeout', async () => {
    await writeStub(harness.box.bin, 'rustup', { sleep: 30 });
    const run = await plugin('rustup', 'estimate-update', { UPKEEP_RUSTUP_QUERY_TIMEOUT: '1' });
    expectFailure(run, 75, 'TIMEOUT');
  });
});

describe('go', () => {
  async function goMachine(latest: Partial<Reply> = {}): Promise<void> {
    const gopath = join(harness.box.home, 'go');
    await mkdir(join(gopath, 'bin'), { recursive: true });
    await stub('go', 'go', [
      { when: 'env GOBIN GOPATH', text: `\n${gopath}` },
      { when: `version -m ${join(gopath, 'bin')}`, stdout: 'version-m.txt' },
      { stdout: 'list-gopls.json', ...latest, when: 'list -m -json golang.org/x/tools/gopls@latest' },
      { when: 'list -m -json github.com/golangci/golangci-lint@latest', stdout: 'list-golangci-lint.json' },
      { when: 'list -m -json honnef.co/go/tools@latest', stdout: 'list-staticcheck.json' },
      { when: 'install *', stderr: 'install-gopls.txt' },
    ]);
  }

  it('is applicable exactly when go is on PATH', async () => {
    await expectNotApplicable('go', 'go not found');
    await goMachine();
    await expectApplicable('go');
  });

  it('reads the build information of the installed programs and asks for each module`s latest version', async () => {
    await goMachine();
    const run = await plugin('go', 'estimate-update');
    // staticcheck is current; a program built from a checkout, (devel), has nothing to compare.
    expect(estimateOf(run).packages_to_update).toEqual([
      { name: 'golang.org/x/tools/gopls', current_version: 'v0.16.1', new_version: 'v0.16.2' },
      { name: 'github.com/golangci/golangci-lint/cmd/golangci-lint', current_version: 'v1.60.1', new_version: 'v1.61.0' },
    ]);
    expect((await ran()).filter((line) => line.startsWith('go list'))).toHaveLength(3);
    expectProgressToEnd(run);
  });

  it('installs each package path at the version found', async () => {
    await goMachine();
    estimateOf(await plugin('go', 'estimate-update'));
    const run = await plugin('go', 'update');
    expect(updatedOf(run).package_count).toBe(2);
    expect((await ran()).filter((line) => line.startsWith('go install'))).toEqual([
      'go install golang.org/x/tools/gopls@v0.16.2',
      'go install github.com/golangci/golangci-lint/cmd/golangci-lint@v1.61.0',
    ]);
  });

  it('finds nothing when the bin folder does not exist', async () => {
    await stub('go', 'go', [{ when: 'env GOBIN GOPATH', text: `\n${join(harness.box.root, 'no-such-gopath')}` }]);
    expect(estimateOf(await plugin('go', 'estimate-update')).packages_to_update).toEqual([]);
  });

  it('fails as a transient network error when the module proxy cannot be reached', async () => {
    await goMachine({ stdout: undefined, stderr: 'list-offline.txt', exit: 1 });
    expectFailure(await plugin('go', 'estimate-update'), 75, 'NETWORK_ERROR');
  });
});

describe('gem', () => {
  async function gemMachine(outdated: Omit<Reply, 'when'>, update: Omit<Reply, 'when'> = { stdout: 'update.txt' }): Promise<void> {
    await stub('gem', 'gem', [
      { ...outdated, when: 'outdated' },
      { when: 'env gemdir', text: harness.box.root },
      { ...update, when: 'update --no-document *' },
    ]);
  }

  it('is applicable exactly when gem is on PATH', async () => {
    await expectNotApplicable('gem', 'gem not found');
    await gemMachine({ text: '' });
    await expectApplicable('gem');
  });

  it('estimates from gem outdated and updates those gems in one run', async () => {
    await gemMachine({ stdout: 'outdated.txt' });
    const estimate = estimateOf(await plugin('gem', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'bundler', current_version: '2.4.19', new_version: '2.5.22' },
      { name: 'rake', current_version: '13.0.6', new_version: '13.2.1' },
      { name: 'rubocop', current_version: '1.56.3', new_version: '1.68.0' },
    ]);
    const run = await plugin('gem', 'update');
    expect(updatedOf(run)).toMatchObject({ package_count: 3, packages_updated: [{ name: 'bundler', from: '2.4.19', to: '2.5.22' }, { name: 'rake' }, { name: 'rubocop' }] });
    expect(await ran()).toContain('gem update --no-document bundler rake rubocop');
    expect(run.progress.map((line) => line.message)).toContain('updating rake');
    expectProgressToEnd(run);
  });

  it('counts only the gems gem reports as updated', async () => {
    await gemMachine({ stdout: 'outdated.txt' }, { stdout: 'update-none.txt' });
    expect(updatedOf(await plugin('gem', 'update'))).toMatchObject({ packages_updated: [], package_count: 0 });
  });

  it('fails as a transient network error when rubygems.org cannot be reached', async () => {
    await gemMachine({ stderr: 'outdated-offline.txt', exit: 2 });
    expectFailure(await plugin('gem', 'estimate-update'), 75, 'NETWORK_ERROR');
  });

  it('fails with exit 1 when gem update fails', async () => {
    await gemMachine({ stdout: 'outdated.txt' }, { text: 'ERROR:  While executing gem ... (Gem::FilePermissionError)', exit: 1 });
    expectFailure(await plugin('gem', 'update'), 1, 'COMMAND_FAILED');
  });
});

describe('upkeep-tools', () => {
  /** A stand-in for upkeep itself, answering audit and upgrade with the JSON the real one prints. */
  async function upkeepMachine(answers: { audit?: string; plan?: string; upgrade?: string; exit?: number } = {}): Promise<Record<string, string>> {
    await stub('upkeep-tools', 'upkeep', [
      { when: 'audit --json*', stdout: answers.audit ?? 'audit.json' },
      { when: 'upgrade --dry-run --offline --json *', stdout: answers.plan ?? 'upgrade-dry-run.json', exit: 3 },
      { when: 'upgrade --yes --json *', stdout: answers.upgrade ?? 'upgrade.json', exit: answers.exit ?? 0 },
    ]);
    return { UPKEEP_COMMAND: JSON.stringify([join(harness.box.bin, 'upkeep')]) };
  }

  it('is applicable exactly when upkeep says how to run itself', async () => {
    await expectNotApplicable('upkeep-tools', 'UPKEEP_COMMAND is not set (upkeep sets it when it runs its plugins)');
    await expectNotApplicable('upkeep-tools', 'UPKEEP_COMMAND is not a JSON array of strings', { UPKEEP_COMMAND: 'upkeep audit' });
    await expectApplicable('upkeep-tools', await upkeepMachine());
  });

  it('estimates the outdated tools upkeep can upgrade, leaving the managed ones to their plugins', async () => {
    const environment = await upkeepMachine();
    const run = await plugin('upkeep-tools', 'estimate-update', environment);
    // ripgrep (apt) and black (pipx) are their plugins' work; terraform was installed by hand.
    expect(estimateOf(run).packages_to_update).toEqual([{ name: 'jq', current_version: '1.6', new_version: '1.8.1' }]);
    expect(run.stderr).toContain('terraform left as it is: terraform at /usr/local/bin/terraform was installed by hand');
    expect(await ran()).toEqual(['upkeep audit --json', 'upkeep upgrade --dry-run --offline --json jq terraform']);
    // A release binary takes no package manager's lock.
    expect((await plugin('upkeep-tools', 'update-mutexes', environment)).envelope.data).toEqual({ mutexes: [] });
    expectProgressToEnd(run);
  });

  it('holds the mutexes of the managers its plans run, managed tools included when asked', async () => {
    const environment = { ...(await upkeepMachine({ plan: 'upgrade-dry-run-managed.json' })), UPKEEP_UPKEEP_TOOLS_INCLUDE_MANAGED: 'true', UPKEEP_UPKEEP_TOOLS_OFFLINE: 'true' };
    const estimate = estimateOf(await plugin('upkeep-tools', 'estimate-update', environment));
    expect(estimate.packages_to_update.map((entry) => entry.name)).toEqual(['jq', 'ripgrep', 'black']);
    expect((await ran())[0]).toBe('upkeep audit --json --offline');
    const answer = await plugin('upkeep-tools', 'update-mutexes', environment);
    expect(answer.exitCode).toBe(0);
    expect(answer.envelope.data).toEqual({ mutexes: ['pkgmgr:apt', 'pkgmgr:dpkg', 'pkgmgr:pipx'] });
    expect((await plugin('upkeep-tools', 'update-dependency', environment)).envelope.data).toEqual({ mutexes: [] });
  });

  it('holds the system manager`s mutexes when it cannot know better (no estimate in the run folder)', async () => {
    const environment = await upkeepMachine();
    expect((await plugin('upkeep-tools', 'update-mutexes', environment)).envelope.data).toEqual({ mutexes: ['pkgmgr:apt', 'pkgmgr:dpkg'] });
  });

  it('upgrades with upkeep upgrade --yes --json and reports the versions upkeep verified', async () => {
    const environment = await upkeepMachine();
    estimateOf(await plugin('upkeep-tools', 'estimate-update', environment));
    const run = await plugin('upkeep-tools', 'update', environment);
    expect(updatedOf(run)).toEqual({ packages_updated: [{ name: 'jq', from: '1.6', to: '1.8.1' }], package_count: 1 });
    expect((await ran()).at(-1)).toBe('upkeep upgrade --yes --json jq');
    expectProgressToEnd(run);
  });

  it('leaves a major bump the policy asks about to a person, without failing', async () => {
    const environment = await upkeepMachine({ upgrade: 'upgrade-breaking.json', exit: 1 });
    const run = await plugin('upkeep-tools', 'update', environment);
    expect(updatedOf(run)).toEqual({ packages_updated: [], package_count: 0, message: 'left for a person to decide: jq' });
    expect(run.stderr).toContain('jq left as it is: jq 1.6 -> 2.0.0 is a major version bump');
  });

  it('fails with exit 1 when an upgrade was rolled back', async () => {
    const environment = await upkeepMachine({ upgrade: 'upgrade-rolled-back.json', exit: 1 });
    const run = await plugin('upkeep-tools', 'update', environment);
    expectFailure(run, 1, 'COMMAND_FAILED');
    expect(run.envelope.error?.details).toContain('jq: rolled-back (E_VERIFY_FAILED');
  });

  it('fails transiently when upgrades failed on the network or a lock', async () => {
    const network = await upkeepMachine({ upgrade: 'upgrade-network.json', exit: 1 });
    expectFailure(await plugin('upkeep-tools', 'update', network), 75, 'NETWORK_ERROR');
    const locked = await upkeepMachine({ audit: 'error-lock.json' });
    expectFailure(await plugin('upkeep-tools', 'estimate-update', locked), 75, 'TEMPORARY_FAILURE');
  });
});

describe('on this machine, with the real managers', () => {
  const onPath = (program: string): boolean =>
    (process.env.PATH ?? '').split(delimiter).some((folder) => {
      try {
        accessSync(join(folder, program), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  // Real runs see the real PATH and home (rustup and cargo keep their toolchains there).
  const real = (): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? harness.box.home });

  it.skipIf(!onPath('npm'))('npm is applicable', async () => {
    await expectApplicable('npm', real());
  });

  it.skipIf(!onPath('rustup'))('rustup is applicable, and its estimate answers or fails as a transient network error', async () => {
    await expectApplicable('rustup', real());
    const run = await plugin('rustup', 'estimate-update', real(), 90_000);
    if (run.exitCode === 0) expect(run.envelope.status).toBe('success');
    else expectFailure(run, 75, 'NETWORK_ERROR');
  }, 120_000);

  it.skipIf(!onPath('cargo'))('cargo is applicable, and a crate from the registry is looked up there or fails transiently', async () => {
    await expectApplicable('cargo', real());
    // A cargo home of our own, listing one crate from crates.io and one from a path.
    const cargoHome = join(harness.box.root, 'cargo-home');
    await mkdir(cargoHome);
    await writeFile(
      join(cargoHome, '.crates.toml'),
      '[v1]\n"ripgrep 14.1.0 (registry+https://github.com/rust-lang/crates.io-index)" = ["rg"]\n"my-tool 0.1.0 (path+file:///home/dev/my-tool)" = ["my-tool"]\n',
    );
    const run = await plugin('cargo', 'estimate-update', { ...real(), CARGO_HOME: cargoHome }, 150_000);
    if (run.exitCode === 0) expect(estimateOf(run).packages_to_update.map((entry) => entry.name)).toEqual(['ripgrep']);
    else expectFailure(run, 75, 'NETWORK_ERROR');
  }, 180_000);

  it('upkeep-tools reads the real upkeep`s audit and plans', async () => {
    // A jq in the sandbox that upkeep's records say it placed as a release binary: upkeep can upgrade it.
    await writeStub(harness.box.bin, 'jq', { stdout: 'jq-1.6' });
    const state = join(harness.box.upkeepHome, 'state');
    await mkdir(state, { recursive: true });
    const record = { method: 'binary', version: '1.6', installedAt: '2026-01-01T00:00:00.000Z', files: [{ path: join(harness.box.bin, 'jq'), sha256: '0'.repeat(64) }] };
    await writeFile(join(state, 'installs-v1.json'), JSON.stringify({ schemaVersion: 1, tools: { jq: record } }));
    const main = resolve(import.meta.dirname, '../../src/cli/main.ts');
    const environment = { UPKEEP_COMMAND: JSON.stringify([process.execPath, '--import', import.meta.resolve('tsx'), main]), UPKEEP_UPKEEP_TOOLS_OFFLINE: 'true' };
    const run = await plugin('upkeep-tools', 'estimate-update', environment, 60_000);
    const [jq] = estimateOf(run).packages_to_update;
    expect(jq).toMatchObject({ name: 'jq', current_version: '1.6' });
    expect(jq!.new_version).toMatch(/^\d+\.\d+/);
    expect((await plugin('upkeep-tools', 'update-mutexes', environment)).envelope.data).toEqual({ mutexes: [] });
  }, 90_000);
});
