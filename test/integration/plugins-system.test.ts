import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  estimateOf,
  expectExecutable,
  expectFailure,
  expectProgressToEnd,
  manifestOf,
  PLUGINS,
  updatedOf,
  useBuiltinPlugins,
  type Estimate,
  type Package,
  type Reply,
} from '../helpers/builtin-plugins.ts';
import { writeStub } from '../helpers/sandbox.ts';

/**
 * The built-in plugins for system package managers, run as the executables
 * they are, against stand-ins of the managers on a sandbox PATH. The
 * stand-ins print what the real tools print (test/fixtures/plugins/<name>)
 * and log every argv they get. Tests run as root here, so the argv carry no
 * `sudo -n`: the path through sudo is not tested.
 */

const SYSTEM_PLUGINS = ['apt', 'dnf', 'pacman', 'zypper', 'apk', 'brew', 'snap', 'flatpak'] as const;

const harness = useBuiltinPlugins();
const { stub, plugin, ran, expectApplicable, expectNotApplicable } = harness;

function byName(estimate: Estimate): Map<string, Package> {
  return new Map(estimate.packages_to_update.map((entry) => [entry.name, entry]));
}

const sum = (values: Array<number | undefined>): number => values.reduce<number>((total, value) => total + (value ?? 0), 0);

async function mutexes(name: string, query: string): Promise<string[]> {
  const run = await plugin(name, query);
  expect(run.exitCode).toBe(0);
  return (run.envelope.data as { mutexes: string[] }).mutexes;
}

describe('manifests of the system plugins', () => {
  const MUTEX = /^(pkgmgr|runtime|app|system):[a-z0-9_-]+$/;

  it('lists exactly the system plugins this file tests among the built-ins', async () => {
    const manifests = (await readdir(PLUGINS)).filter((file) => file.endsWith('.yaml')).map((file) => file.slice(0, -'.yaml'.length));
    expect(manifests).toEqual(expect.arrayContaining([...SYSTEM_PLUGINS]));
  });

  it.each(SYSTEM_PLUGINS)('%s: the manifest is complete and agrees with the executable', async (name) => {
    const manifest = await manifestOf(name);
    expect(manifest).toMatchObject({ name, version: '1.0.0', executable: `${name}.mjs`, protocol: 1 });
    expect(manifest.description).toEqual(expect.any(String));
    for (const flag of ['requires_sudo', 'can_separate_download', 'supports_self_update', 'supports_dynamic_mutexes'] as const) {
      expect(typeof manifest[flag], flag).toBe('boolean');
    }
    for (const field of ['static_mutexes', 'static_dependencies'] as const) {
      const phases = manifest[field];
      expect(Object.keys(phases).sort(), field).toEqual(['download', 'estimate', 'update']);
      for (const names of Object.values(phases)) for (const mutex of names) expect(mutex).toMatch(MUTEX);
    }
    expect(manifest.static_mutexes.update).toContain(`pkgmgr:${name}`);
    expect(Object.keys(manifest.timeouts).sort()).toEqual(['download', 'estimate_update', 'is_applicable', 'update']);
    for (const key of Object.keys(manifest.settings ?? {})) expect(key).toMatch(/^[a-z][a-z0-9_]*$/);

    await expectExecutable(name);

    const version = await plugin(name, 'version');
    expect(version.envelope.data).toEqual({ version: manifest.version, protocol: 1 });
    // Asked by sudo-setup, which runs as root: the answer cannot depend on who asks.
    const sudo = await plugin(name, 'does-require-sudo');
    expect(sudo.envelope.data).toEqual({ requires_sudo: manifest.requires_sudo });
    expect(sudo.exitCode).toBe(manifest.requires_sudo ? 0 : 1);
    const separate = await plugin(name, 'can-separate-download');
    expect(separate.envelope.data).toEqual({ can_separate_download: manifest.can_separate_download });
    expect(separate.exitCode).toBe(manifest.can_separate_download ? 0 : 1);
    if (!manifest.can_separate_download) {
      const download = await plugin(name, 'download');
      expect(download.exitCode).toBe(1);
      expect(download.envelope.status).toBe('not_supported');
    }
    const unknown = await plugin(name, 'no-such-command');
    expect(unknown.exitCode).toBe(64);
    expect(unknown.envelope.error?.code).toBe('UNKNOWN_COMMAND');
    // Without an estimate in the run folder, the dynamic answer is the static set.
    expect(await mutexes(name, 'update-mutexes')).toEqual(manifest.static_mutexes.update);
  });

  it('holds the rpm database lock in both rpm-based managers', async () => {
    for (const name of ['dnf', 'zypper']) {
      expect((await manifestOf(name)).static_mutexes.update).toEqual([`pkgmgr:${name}`, 'pkgmgr:rpm']);
    }
  });
});

describe('apt', () => {
  /** apt-get and apt-cache as they answer on a Debian 12 machine with ten pending updates. */
  async function aptMachine(extra: Reply[] = []): Promise<void> {
    await stub('apt', 'apt-get', [
      ...extra,
      { when: 'update -qq' },
      { when: '-s -o Debug::NoLocking=1 upgrade', stdout: 'simulate-upgrade.txt' },
      { when: '--print-uris -qq -y -o Debug::NoLocking=1 upgrade', stdout: 'print-uris.txt' },
      { when: '-s -o Debug::NoLocking=1 dist-upgrade', stdout: 'simulate-dist-upgrade.txt' },
      { when: '--print-uris -qq -y -o Debug::NoLocking=1 dist-upgrade', stdout: 'print-uris-dist-upgrade.txt' },
      {
        when: '-y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade',
        stdout: 'upgrade.txt',
        also: 'echo "frontend=$DEBIAN_FRONTEND" >> "$STUB_LOG"',
      },
      { when: '-y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold autoremove' },
      { when: '--download-only -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade', stdout: 'download.txt' },
      { when: 'check -o Debug::NoLocking=1' },
    ]);
    await stub('apt', 'apt-cache', [{ when: 'show *', stdout: 'cache-show.txt' }]);
    await stub('apt', 'apt', [{ when: 'list --upgradable', stdout: 'list-upgradable.txt' }]);
    await stub('apt', 'dpkg', [{ when: '--audit' }]);
  }

  it('is applicable exactly when apt-get is on PATH', async () => {
    await expectNotApplicable('apt', 'apt-get not found');
    await aptMachine();
    await expectApplicable('apt');
  });

  it('estimates from apt-get -s upgrade, with sizes, security updates, runtimes and reboot', async () => {
    await aptMachine();
    const run = await plugin('apt', 'estimate-update');
    const estimate = estimateOf(run);
    const packages = byName(estimate);
    expect([...packages.keys()].sort()).toEqual([
      'bash',
      'curl',
      'krb5-locales',
      'libcap2',
      'libcurl4',
      'liblzma5',
      'libpython3.11-minimal',
      'python3.11',
      'systemd',
      'tzdata',
    ]);
    expect(packages.get('bash')).toEqual({
      name: 'bash',
      current_version: '5.2.15-2+b8',
      new_version: '5.2.15-2+b13',
      download_size_bytes: 1490652,
      installed_size_bytes: 7164 * 1024,
      security: false,
    });
    // An epoch stays part of the version; a file print-uris leaves out is already downloaded.
    expect(packages.get('libcap2')).toMatchObject({ current_version: '1:2.66-4+deb12u2+b2', new_version: '1:2.66-4+deb12u3+b1', download_size_bytes: 27708 });
    expect(packages.get('curl')).toMatchObject({ download_size_bytes: 0, security: false });
    expect(packages.get('tzdata')).toMatchObject({ download_size_bytes: 307832, security: true });
    // Found in both the point release and the security suite: a security update.
    expect(packages.get('krb5-locales')?.security).toBe(true);
    expect(packages.get('liblzma5')?.security).toBe(true);
    expect(estimate.total_download_size_bytes).toBe(1490652 + 205796 + 27708 + 307832);
    expect(estimate.total_installed_size_bytes).toBe(sum(estimate.packages_to_update.map((entry) => entry.installed_size_bytes)));
    for (const entry of estimate.packages_to_update) expect(entry.installed_size_bytes).toBeGreaterThan(0);
    expect(estimate.affects_runtimes).toEqual(['python']);
    expect(estimate.requires_reboot).toBe(true);
    expect(estimate.security_updates).toBe(true);
    expect(run.stderr).toContain('held back by apt-get upgrade (dist_upgrade: true includes those that need new packages): linux-image-amd64');
    expectProgressToEnd(run);
    const log = await ran();
    expect(log[0]).toBe('apt-get update -qq');
    expect(log).toContain('apt-get -s -o Debug::NoLocking=1 upgrade');
  });

  it('leaves the package lists alone when the refresh setting is off', async () => {
    await aptMachine();
    estimateOf(await plugin('apt', 'estimate-update', { UPKEEP_APT_REFRESH: 'false' }));
    expect(await ran()).not.toContain('apt-get update -qq');
  });

  it('plans a dist-upgrade when asked: new packages have no current version', async () => {
    await aptMachine();
    const run = await plugin('apt', 'estimate-update', { UPKEEP_APT_DIST_UPGRADE: 'true' });
    const packages = byName(estimateOf(run));
    expect(packages.get('linux-image-6.1.0-41-amd64')).toMatchObject({
      current_version: null,
      new_version: '6.1.158-1',
      download_size_bytes: 69122880,
      security: true,
    });
    expect(packages.get('linux-image-amd64')?.current_version).toBe('6.1.153-1');
    expect(estimateOf(run).requires_reboot).toBe(true);
    expect(run.stderr).toContain('apt-get dist-upgrade would remove: libssl1.1');
  });

  it('falls back to apt list --upgradable when apt-get cannot plan the upgrade', async () => {
    await aptMachine([{ when: '-s -o Debug::NoLocking=1 upgrade', stdout: 'simulate-broken.txt', exit: 100 }]);
    const run = await plugin('apt', 'estimate-update');
    const estimate = estimateOf(run);
    expect(estimate.packages_to_update).toHaveLength(10);
    expect(byName(estimate).get('krb5-locales')).toMatchObject({
      current_version: '1.20.1-2+deb12u3',
      new_version: '1.20.1-2+deb12u5',
      security: true,
      installed_size_bytes: expect.any(Number),
    });
    expect(byName(estimate).get('bash')?.security).toBe(false);
    expect(run.stderr).toContain("apt-get cannot plan the upgrade (E: Unmet dependencies. Try 'apt --fix-broken install' with no packages");
    expect((await ran()).some((line) => line.includes('--print-uris'))).toBe(false);
  });

  it('retries later when another apt holds the lists lock, but estimates from old lists when the network is down', async () => {
    await aptMachine([{ when: 'update -qq', stderr: 'lock-error.txt', exit: 100 }]);
    expectFailure(await plugin('apt', 'estimate-update'), 75, 'TEMPORARY_FAILURE');

    await aptMachine([{ when: 'update -qq', stderr: 'network-error.txt', exit: 100 }]);
    const run = await plugin('apt', 'estimate-update');
    expect(estimateOf(run).packages_to_update).toHaveLength(10);
    expect(run.stderr).toContain('apt-get update failed, estimating from the package lists as they are');
  });

  it('holds the runtimes its pending updates touch during update', async () => {
    await aptMachine();
    expect(await mutexes('apt', 'update-mutexes')).toEqual(['pkgmgr:apt', 'pkgmgr:dpkg']);
    estimateOf(await plugin('apt', 'estimate-update'));
    expect(await mutexes('apt', 'update-mutexes')).toEqual(['pkgmgr:apt', 'pkgmgr:dpkg', 'runtime:python']);
    expect(await mutexes('apt', 'download-mutexes')).toEqual(['pkgmgr:apt']);
    expect(await mutexes('apt', 'estimate-update-dependency')).toEqual([]);
  });

  it('updates unattended and reports what dpkg unpacked', async () => {
    await aptMachine();
    estimateOf(await plugin('apt', 'estimate-update'));
    const run = await plugin('apt', 'update');
    const updated = updatedOf(run);
    expect(updated.packages_updated).toEqual([
      { name: 'bash', from: '5.2.15-2+b8', to: '5.2.15-2+b13' },
      { name: 'libcap2', from: '1:2.66-4+deb12u2+b2', to: '1:2.66-4+deb12u3+b1' },
      { name: 'systemd', from: '252.38-1~deb12u1', to: '252.39-1~deb12u2' },
    ]);
    expect(updated.package_count).toBe(3);
    expect(updated.downloaded_bytes).toBe(1518000);
    expect(updated.requires_reboot).toBe(true);
    expectProgressToEnd(run);
    const log = await ran();
    // The estimate refreshed the lists in this run: update does not refresh them again.
    expect(log.filter((line) => line === 'apt-get update -qq')).toHaveLength(1);
    expect(log.at(-2)).toBe('apt-get -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade');
    expect(log.at(-1)).toBe('frontend=noninteractive');
    expect(run.stderr).toContain('Unpacking bash (5.2.15-2+b13) over (5.2.15-2+b8) ...');
  });

  it('refreshes the lists first when no estimate ran, and removes unneeded packages when asked', async () => {
    await aptMachine();
    updatedOf(await plugin('apt', 'update', { UPKEEP_APT_AUTO_REMOVE: 'true' }));
    const log = (await ran()).filter((line) => !line.startsWith('frontend='));
    expect(log).toEqual([
      'apt-get update -qq',
      'apt-get -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade',
      'apt-get -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold autoremove',
    ]);
  });

  it('reports a held dpkg lock as transient and a failing package as a failed update', async () => {
    const upgrade = '-y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade';
    await aptMachine([{ when: upgrade, stderr: 'lock-error.txt', exit: 100 }]);
    expectFailure(await plugin('apt', 'update'), 75, 'TEMPORARY_FAILURE');

    await aptMachine([{ when: upgrade, stdout: 'dpkg-error.txt', exit: 100 }]);
    const failed = await plugin('apt', 'update');
    expectFailure(failed, 1, 'COMMAND_FAILED');
    expect(failed.envelope.error?.details).toContain('E: Sub-process /usr/bin/dpkg returned an error code (1)');
  });

  it('downloads without installing', async () => {
    await aptMachine();
    const run = await plugin('apt', 'download');
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.envelope.data).toEqual({ downloaded_bytes: 1518000, package_count: 2 });
    expect(await ran()).toContain(
      'apt-get --download-only -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade',
    );

    await aptMachine([
      {
        when: '--download-only -y -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade',
        stderr: 'network-error.txt',
        exit: 100,
      },
    ]);
    expectFailure(await plugin('apt', 'download'), 75, 'NETWORK_ERROR');
  });

  it('names the program it needs sudo for', async () => {
    await aptMachine();
    expect((await plugin('apt', 'sudo-programs-paths')).envelope.data).toEqual({ paths: [join(harness.box.bin, 'apt-get')] });
    expect((await plugin('apt', 'runs-after')).envelope.data).toEqual({ plugins: [] });
  });

  it('validates: healthy, or the problems dpkg and apt-get see', async () => {
    await aptMachine();
    const healthy = await plugin('apt', 'validate');
    expect(healthy.exitCode).toBe(0);
    expect(healthy.envelope.data).toEqual({ healthy: true, problems: [] });

    await stub('apt', 'dpkg', [{ when: '--audit', text: 'The following packages are only half configured, probably due to problems' }]);
    const unhealthy = await plugin('apt', 'validate');
    expect(unhealthy.exitCode).toBe(1);
    expect(unhealthy.envelope.data).toEqual({
      healthy: false,
      problems: ['dpkg --audit: The following packages are only half configured, probably due to problems'],
    });
  });
});

describe('dnf', () => {
  async function dnfMachine(extra: Reply[] = []): Promise<void> {
    await stub('dnf', 'dnf', [
      ...extra,
      { when: 'check-update', stdout: 'check-update.txt', exit: 100 },
      { when: 'updateinfo list --security', stdout: 'updateinfo-security.txt' },
      { when: '-y upgrade', stdout: 'upgrade.txt' },
      { when: '-y upgrade --downloadonly' },
      { when: 'needs-restarting -r', text: 'No core libraries or services have been updated since boot-up.\nReboot should not be necessary.' },
    ]);
    await stub('dnf', 'rpm', [{ when: '-q --queryformat *', stdout: 'rpm-query.txt' }]);
  }

  it('is applicable exactly when dnf is on PATH', async () => {
    await expectNotApplicable('dnf', 'dnf not found');
    await dnfMachine();
    await expectApplicable('dnf');
  });

  it('estimates from check-update (exit 100), rpm and the security advisories', async () => {
    await dnfMachine();
    const run = await plugin('dnf', 'estimate-update');
    const estimate = estimateOf(run);
    const packages = byName(estimate);
    // grub2-tools is only listed under "Obsoleting Packages": it is not an update of its own.
    expect([...packages.keys()]).toEqual([
      'curl',
      'kernel',
      'kernel-core',
      'libcurl',
      'python3',
      'python3-libs',
      'texlive-collection-latexrecommended',
      'vim-minimal',
    ]);
    expect(packages.get('curl')).toEqual({ name: 'curl', current_version: '8.2.1-4.fc39', new_version: '8.2.1-5.fc39', security: true });
    // The newest of the installed kernels is the one updated from.
    expect(packages.get('kernel')).toMatchObject({ current_version: '6.7.7-200.fc39', new_version: '6.7.9-100.fc39', security: true });
    // A name too long for its column is wrapped onto two lines.
    expect(packages.get('texlive-collection-latexrecommended')).toMatchObject({
      current_version: '11:svn65512-61.fc39',
      new_version: '11:svn65512-62.fc39',
      security: false,
    });
    expect(packages.get('vim-minimal')).toMatchObject({ current_version: '2:9.1.113-1.fc39', new_version: '2:9.1.158-1.fc39' });
    expect(estimate.affects_runtimes).toEqual(['python']);
    expect(estimate.requires_reboot).toBe(true);
    expect(estimate.security_updates).toBe(true);
    expect((await ran())[0]).toBe('dnf check-update');
  });

  it('reads the dnf5 format too, and forces a metadata refresh when asked', async () => {
    await dnfMachine([
      { when: 'check-update --refresh', stdout: 'check-upgrade-dnf5.txt', exit: 100 },
      { when: 'updateinfo list --security', stdout: 'advisory-list-dnf5.txt' },
    ]);
    await stub('dnf', 'rpm', [{ when: '-q --queryformat *', text: 'curl.x86_64 8.11.1-4.fc42\nlibcurl.x86_64 8.11.1-4.fc42\nnodejs.x86_64 1:22.13.1-1.fc42' }]);
    const estimate = estimateOf(await plugin('dnf', 'estimate-update', { UPKEEP_DNF_REFRESH: 'true' }));
    expect(estimate.packages_to_update).toEqual([
      { name: 'curl', current_version: '8.11.1-4.fc42', new_version: '8.11.1-5.fc42', security: true },
      { name: 'libcurl', current_version: '8.11.1-4.fc42', new_version: '8.11.1-5.fc42', security: true },
      { name: 'nodejs', current_version: '1:22.13.1-1.fc42', new_version: '1:22.14.0-1.fc42', security: false },
    ]);
    expect(estimate.affects_runtimes).toEqual(['node']);
    expect(estimate.requires_reboot).toBe(false);
  });

  it('finds nothing to do when check-update exits 0, and fails when it exits 1', async () => {
    await dnfMachine([{ when: 'check-update', text: '' }]);
    const estimate = estimateOf(await plugin('dnf', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([]);
    expect(estimate.security_updates).toBe(false);
    expect((await ran()).some((line) => line.startsWith('dnf updateinfo'))).toBe(false);

    await dnfMachine([{ when: 'check-update', text: 'Error: Failed to download metadata for repo \'updates\'', exit: 1 }]);
    expectFailure(await plugin('dnf', 'estimate-update'), 2, 'COMMAND_FAILED');
  });

  it('upgrades with -y, follows the transaction and reports the estimated packages', async () => {
    await dnfMachine();
    estimateOf(await plugin('dnf', 'estimate-update'));
    expect(await mutexes('dnf', 'update-mutexes')).toEqual(['pkgmgr:dnf', 'pkgmgr:rpm', 'runtime:python']);
    const run = await plugin('dnf', 'update');
    const updated = updatedOf(run);
    expect(updated.package_count).toBe(8);
    expect(updated.packages_updated).toContainEqual({ name: 'curl', from: '8.2.1-4.fc39', to: '8.2.1-5.fc39' });
    expect(updated.requires_reboot).toBe(true);
    expect(run.progress.map((line) => line.percent)).toEqual(expect.arrayContaining([25, 50, 100]));
    expect(await ran()).toContain('dnf -y upgrade');
  });

  it('asks needs-restarting whether a reboot is needed', async () => {
    await dnfMachine([
      { when: 'check-update', text: 'curl.x86_64    8.2.1-5.fc39    updates', exit: 100 },
      { when: 'needs-restarting -r', stdout: 'needs-restarting-reboot.txt', exit: 1 },
    ]);
    expect(updatedOf(await plugin('dnf', 'update')).requires_reboot).toBe(true);
  });

  it('downloads with --downloadonly; a held rpm lock is transient', async () => {
    await dnfMachine();
    expect((await plugin('dnf', 'download')).exitCode).toBe(0);
    expect(await ran()).toContain('dnf -y upgrade --downloadonly');

    await dnfMachine([{ when: '-y upgrade', stderr: 'lock-dnf5.txt', exit: 1 }]);
    expectFailure(await plugin('dnf', 'update'), 75, 'TEMPORARY_FAILURE');
  });
});

describe('pacman', () => {
  async function pacmanMachine(extra: Reply[] = [], withCheckupdates = true): Promise<void> {
    await stub('pacman', 'pacman', [
      ...extra,
      { when: '-Qu', stdout: 'pacman-Qu.txt' },
      { when: '-Sup --print-format %n %s*', stdout: 'sup-print.txt' },
      { when: '-Syu --noconfirm --noprogressbar', stdout: 'syu.txt' },
      { when: '-Syuw --noconfirm --noprogressbar' },
    ]);
    if (withCheckupdates) {
      await stub('pacman', 'checkupdates', [{ when: '', stdout: 'checkupdates.txt', also: 'echo "db=$CHECKUPDATES_DB" >> "$STUB_LOG"' }]);
    }
  }

  it('is applicable exactly when pacman is on PATH', async () => {
    await expectNotApplicable('pacman', 'pacman not found');
    await pacmanMachine();
    await expectApplicable('pacman');
  });

  it('estimates with checkupdates, never syncing the real database, with sizes from its copy', async () => {
    await pacmanMachine();
    const estimate = estimateOf(await plugin('pacman', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'glibc', current_version: '2.39-1', new_version: '2.39-2', download_size_bytes: 10354432 },
      { name: 'linux', current_version: '6.8.1.arch1-1', new_version: '6.8.2.arch1-1', download_size_bytes: 139215984 },
      { name: 'python', current_version: '3.11.8-1', new_version: '3.12.2-1', download_size_bytes: 27463240 },
      { name: 'python-pip', current_version: '24.0-1', new_version: '24.0-2', download_size_bytes: 3123456 },
      { name: 'xorg-server', current_version: '21.1.11-1', new_version: '21.1.12-1', download_size_bytes: 1685732 },
    ]);
    expect(estimate.total_download_size_bytes).toBe(10354432 + 139215984 + 27463240 + 3123456 + 1685732);
    expect(estimate.affects_runtimes).toEqual(['python']);
    expect(estimate.requires_reboot).toBe(true);
    const database = join(harness.box.root, 'run', 'checkup-db');
    expect(await ran()).toEqual(['checkupdates', `db=${database}`, `pacman -Sup --print-format %n %s --dbpath ${database} --logfile /dev/null`]);
  });

  it('falls back to pacman -Qu without checkupdates, leaving ignored packages out', async () => {
    await pacmanMachine([], false);
    const run = await plugin('pacman', 'estimate-update');
    const estimate = estimateOf(run);
    expect(estimate.packages_to_update.map((entry) => entry.name)).toEqual(['linux', 'nodejs']);
    expect(estimate.affects_runtimes).toEqual(['node']);
    expect(run.stderr).toContain('checkupdates (pacman-contrib) not found');
    expect((await ran()).some((line) => /^pacman -Sy( |$)/.test(line))).toBe(false);
  });

  it('treats exit 2 of checkupdates as nothing to do and a failed fetch as a network error', async () => {
    await pacmanMachine();
    await stub('pacman', 'checkupdates', [{ when: '', exit: 2 }]);
    expect(estimateOf(await plugin('pacman', 'estimate-update')).packages_to_update).toEqual([]);

    await writeStub(harness.box.bin, 'checkupdates', { stderr: '==> ERROR: Cannot fetch updates', exitCode: 1 });
    expectFailure(await plugin('pacman', 'estimate-update'), 75, 'NETWORK_ERROR');
  });

  it('upgrades the whole system with -Syu and names what it upgraded', async () => {
    await pacmanMachine();
    estimateOf(await plugin('pacman', 'estimate-update'));
    expect(await mutexes('pacman', 'update-mutexes')).toEqual(['pkgmgr:pacman', 'runtime:python']);
    const run = await plugin('pacman', 'update');
    const updated = updatedOf(run);
    expect(updated.packages_updated).toEqual([
      { name: 'linux', from: '6.8.1.arch1-1', to: '6.8.2.arch1-1' },
      { name: 'python-pip', from: '24.0-1', to: '24.0-2' },
    ]);
    expect(updated.requires_reboot).toBe(true);
    expectProgressToEnd(run);
    expect((await ran()).at(-1)).toBe('pacman -Syu --noconfirm --noprogressbar');
  });

  it('downloads with -Syuw; a locked database is transient', async () => {
    await pacmanMachine();
    expect((await plugin('pacman', 'download')).exitCode).toBe(0);
    expect(await ran()).toContain('pacman -Syuw --noconfirm --noprogressbar');

    await pacmanMachine([{ when: '-Syu --noconfirm --noprogressbar', stderr: 'lock-error.txt', exit: 1 }]);
    expectFailure(await plugin('pacman', 'update'), 75, 'TEMPORARY_FAILURE');
  });
});

describe('zypper', () => {
  async function zypperMachine(extra: Reply[] = []): Promise<void> {
    await stub('zypper', 'zypper', [
      ...extra,
      { when: '--non-interactive --quiet refresh' },
      { when: '--non-interactive --xmlout list-updates', stdout: 'list-updates.xml' },
      { when: '--non-interactive --xmlout list-patches --category security', stdout: 'list-patches-security.xml' },
      { when: '--non-interactive update --auto-agree-with-licenses', stdout: 'update.txt' },
      { when: '--non-interactive dist-upgrade --auto-agree-with-licenses', stdout: 'update.txt' },
      { when: '--non-interactive update --auto-agree-with-licenses --download-only' },
    ]);
  }

  it('is applicable exactly when zypper is on PATH', async () => {
    await expectNotApplicable('zypper', 'zypper not found');
    await zypperMachine();
    await expectApplicable('zypper');
  });

  it('estimates from the XML of list-updates and list-patches after a refresh', async () => {
    await zypperMachine();
    const estimate = estimateOf(await plugin('zypper', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'curl', current_version: '8.0.1-150400.5.41.1', new_version: '8.0.1-150400.5.44.1' },
      { name: 'kernel-default', current_version: '6.4.0-150600.23.22.1', new_version: '6.4.0-150600.23.25.1' },
      { name: 'python311-base', current_version: '3.11.9-150600.3.3.1', new_version: '3.11.10-150600.3.6.1' },
      { name: 'libzypp', current_version: '17.35.8-150600.3.22.1', new_version: '17.35.12-150600.3.30.1' },
    ]);
    expect(estimate.security_updates).toBe(true);
    expect(estimate.requires_reboot).toBe(true);
    expect(estimate.affects_runtimes).toEqual(['python']);
    expect((await ran())[0]).toBe('zypper --non-interactive --quiet refresh');

    await zypperMachine([{ when: '--non-interactive --xmlout list-patches --category security', stdout: 'list-patches-none.xml' }]);
    expect(estimateOf(await plugin('zypper', 'estimate-update', { UPKEEP_ZYPPER_REFRESH: 'false' })).security_updates).toBe(false);
  });

  it('counts exit 102 as done with a reboot needed, and uses dist-upgrade when asked', async () => {
    await zypperMachine([{ when: '--non-interactive update --auto-agree-with-licenses', stdout: 'update.txt', exit: 102 }]);
    estimateOf(await plugin('zypper', 'estimate-update'));
    const run = await plugin('zypper', 'update');
    const updated = updatedOf(run);
    expect(updated.packages_updated).toEqual([
      { name: 'libcurl4', to: '8.0.1-150400.5.44.1' },
      { name: 'curl', from: '8.0.1-150400.5.41.1', to: '8.0.1-150400.5.44.1' },
      { name: 'kernel-default', from: '6.4.0-150600.23.22.1', to: '6.4.0-150600.23.25.1' },
    ]);
    expect(updated.package_count).toBe(3);
    expect(updated.requires_reboot).toBe(true);
    expectProgressToEnd(run);

    await zypperMachine();
    updatedOf(await plugin('zypper', 'update', { UPKEEP_ZYPPER_DIST_UPGRADE: 'true' }));
    expect((await ran()).at(-1)).toBe('zypper --non-interactive dist-upgrade --auto-agree-with-licenses');
  });

  it('reports the zypp lock (exit 7) as transient', async () => {
    await zypperMachine([{ when: '--non-interactive update --auto-agree-with-licenses', stderr: 'locked.txt', exit: 7 }]);
    expectFailure(await plugin('zypper', 'update'), 75, 'TEMPORARY_FAILURE');
    await zypperMachine([{ when: '--non-interactive --quiet refresh', stderr: 'locked.txt', exit: 7 }]);
    expectFailure(await plugin('zypper', 'estimate-update'), 75, 'TEMPORARY_FAILURE');
  });

  it('downloads with --download-only', async () => {
    await zypperMachine();
    expect((await plugin('zypper', 'download')).exitCode).toBe(0);
    expect(await ran()).toContain('zypper --non-interactive update --auto-agree-with-licenses --download-only');
  });
});

describe('apk', () => {
  const UPGRADE = 'upgrade --no-interactive --no-progress --wait 120';

  async function apkMachine(extra: Reply[] = []): Promise<void> {
    await stub('apk', 'apk', [
      ...extra,
      { when: 'update --quiet' },
      { when: 'version -l <', stdout: 'version.txt' },
      { when: UPGRADE, stdout: 'upgrade.txt' },
    ]);
  }

  it('is applicable exactly when apk is on PATH', async () => {
    await expectNotApplicable('apk', 'apk not found');
    await apkMachine();
    await expectApplicable('apk');
  });

  it("estimates from apk version -l '<' after apk update", async () => {
    await apkMachine();
    const estimate = estimateOf(await plugin('apk', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'busybox', current_version: '1.36.1-r29', new_version: '1.36.1-r31' },
      { name: 'linux-lts', current_version: '6.6.52-r0', new_version: '6.6.58-r0' },
      { name: 'py3-pip', current_version: '24.0-r2', new_version: '24.0-r3' },
      { name: 'python3', current_version: '3.12.6-r0', new_version: '3.12.7-r0' },
      { name: 'ssl_client', current_version: '1.36.1-r29', new_version: '1.36.1-r31' },
    ]);
    expect(estimate.requires_reboot).toBe(true);
    expect(estimate.affects_runtimes).toEqual(['python']);
    expect(await ran()).toEqual(['apk update --quiet', 'apk version -l <']);
  });

  it('upgrades unattended and reads what it upgraded and installed', async () => {
    await apkMachine();
    const run = await plugin('apk', 'update');
    const updated = updatedOf(run);
    expect(updated.packages_updated).toEqual([
      { name: 'busybox', from: '1.36.1-r29', to: '1.36.1-r31' },
      { name: 'ssl_client', from: '1.36.1-r29', to: '1.36.1-r31' },
      { name: 'python3', from: '3.12.6-r0', to: '3.12.7-r0' },
      { name: 'mpdecimal', to: '4.0.0-r0' },
      { name: 'py3-pip', from: '24.0-r2', to: '24.0-r3' },
    ]);
    expect(updated.requires_reboot).toBe(false);
    expectProgressToEnd(run);
    expect(await ran()).toEqual([`apk ${UPGRADE}`]);
  });

  it('reports a locked database and an unreachable mirror as transient', async () => {
    await apkMachine([{ when: UPGRADE, stderr: 'locked.txt', exit: 1 }]);
    expectFailure(await plugin('apk', 'update'), 75, 'TEMPORARY_FAILURE');
    await apkMachine([{ when: UPGRADE, stderr: 'network-error.txt', exit: 1 }]);
    expectFailure(await plugin('apk', 'update'), 75, 'NETWORK_ERROR');
    await apkMachine([{ when: UPGRADE, text: 'ERROR: unable to select packages:\n  foo (no such package)', exit: 1 }]);
    expectFailure(await plugin('apk', 'update'), 1, 'COMMAND_FAILED');
  });
});

describe('brew', () => {
  async function brewMachine(extra: Reply[] = []): Promise<void> {
    await stub('brew', 'brew', [
      ...extra,
      { when: 'update --quiet' },
      { when: 'outdated --json=v2', stdout: 'outdated.json' },
      {
        when: 'upgrade --formula *',
        stdout: 'upgrade-formulae.txt',
        also: 'echo "auto-update-off=$HOMEBREW_NO_AUTO_UPDATE" >> "$STUB_LOG"',
      },
      { when: 'upgrade --cask *', stdout: 'upgrade-casks.txt' },
      { when: 'fetch *' },
    ]);
  }

  it('is applicable exactly when brew is on PATH', async () => {
    await expectNotApplicable('brew', 'brew not found');
    await brewMachine();
    await expectApplicable('brew');
  });

  it('estimates outdated formulae and casks, leaving pinned formulae out', async () => {
    await brewMachine();
    const estimate = estimateOf(await plugin('brew', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'git', current_version: '2.45.2', new_version: '2.46.0' },
      { name: 'node', current_version: '22.6.0', new_version: '22.7.0' },
      { name: 'python@3.12', current_version: '3.12.5', new_version: '3.12.6' },
      { name: 'firefox', current_version: '129.0.2', new_version: '130.0' },
    ]);
    expect(estimate.affects_runtimes).toEqual(['python', 'node']);
    expect(await ran()).toEqual(['brew update --quiet', 'brew outdated --json=v2']);
    expect(await mutexes('brew', 'update-mutexes')).toEqual(['pkgmgr:brew', 'runtime:python', 'runtime:node']);
  });

  it('upgrades exactly the estimated formulae and casks, without a second brew update', async () => {
    await brewMachine();
    estimateOf(await plugin('brew', 'estimate-update'));
    const run = await plugin('brew', 'update');
    const updated = updatedOf(run);
    expect(updated.package_count).toBe(4);
    expect(updated.packages_updated).toContainEqual({ name: 'firefox', from: '129.0.2', to: '130.0' });
    expectProgressToEnd(run);
    expect((await ran()).slice(2)).toEqual([
      'brew upgrade --formula git node python@3.12',
      'auto-update-off=1',
      'brew upgrade --cask firefox',
    ]);
  });

  it('fetches formulae with their dependencies, and casks', async () => {
    await brewMachine();
    const run = await plugin('brew', 'download');
    expect(run.exitCode).toBe(0);
    expect(await ran()).toEqual(['brew outdated --json=v2', 'brew fetch --deps --formula git node python@3.12', 'brew fetch --cask firefox']);
  });

  it('runs nothing when nothing is outdated; another brew holding the lock is transient', async () => {
    await brewMachine([{ when: 'outdated --json=v2', stdout: 'outdated-none.json' }]);
    expect(updatedOf(await plugin('brew', 'update')).package_count).toBe(0);
    expect(await ran()).toEqual(['brew outdated --json=v2']);

    await brewMachine([{ when: 'upgrade --formula *', stderr: 'locked.txt', exit: 1 }]);
    expectFailure(await plugin('brew', 'update'), 75, 'TEMPORARY_FAILURE');
  });
});

describe('snap', () => {
  async function snapMachine(extra: Reply[] = []): Promise<void> {
    await stub('snap', 'snap', [
      ...extra,
      { when: 'version', stdout: 'version.txt' },
      { when: 'refresh --list', stdout: 'refresh-list.txt' },
      { when: 'list', stdout: 'list.txt' },
      { when: 'refresh', stdout: 'refresh.txt' },
    ]);
  }

  it('is applicable when snap is on PATH and snapd answers', async () => {
    await expectNotApplicable('snap', 'snap not found');
    await snapMachine([{ when: 'version', stdout: 'version-unavailable.txt' }]);
    await expectNotApplicable('snap', 'snapd is not running');
    await snapMachine();
    await expectApplicable('snap');
  });

  it('estimates from snap refresh --list and snap list', async () => {
    await snapMachine();
    const estimate = estimateOf(await plugin('snap', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'core22', current_version: '20240731', new_version: '20240823', download_size_bytes: 77e6 },
      { name: 'firefox', current_version: '129.0.2-1', new_version: '130.0-2', download_size_bytes: 285e6 },
      { name: 'node', current_version: '22.6.0', new_version: '22.7.0', download_size_bytes: 32e6 },
    ]);
    expect(estimate.total_download_size_bytes).toBe(394e6);
    expect(estimate.affects_runtimes).toEqual(['node']);
    expect(await mutexes('snap', 'update-mutexes')).toEqual(['pkgmgr:snap', 'runtime:node']);
  });

  it('finds nothing when all snaps are up to date', async () => {
    await snapMachine([{ when: 'refresh --list', also: 'echo "All snaps up to date." >&2' }]);
    expect(estimateOf(await plugin('snap', 'estimate-update')).packages_to_update).toEqual([]);
  });

  it('refreshes and names what snapd refreshed; a change in progress is transient', async () => {
    await snapMachine();
    estimateOf(await plugin('snap', 'estimate-update'));
    const updated = updatedOf(await plugin('snap', 'update'));
    expect(updated.packages_updated).toEqual([
      { name: 'core22', from: '20240731', to: '20240823' },
      { name: 'firefox', from: '129.0.2-1', to: '130.0-2' },
      { name: 'node', from: '22.6.0', to: '22.7.0' },
    ]);
    expect((await ran()).at(-1)).toBe('snap refresh');

    await snapMachine([{ when: 'refresh', stderr: 'busy.txt', exit: 1 }]);
    expectFailure(await plugin('snap', 'update'), 75, 'TEMPORARY_FAILURE');
  });
});

describe('flatpak', () => {
  const COLUMNS = '--columns=application,branch,version,commit,download-size,installed-size';

  async function flatpakMachine(extra: Reply[] = []): Promise<void> {
    await stub('flatpak', 'flatpak', [
      ...extra,
      { when: `remote-ls --updates ${COLUMNS}`, stdout: 'remote-ls-updates.txt' },
      { when: 'list --columns=application,branch,version,active', stdout: 'list.txt' },
      { when: 'update -y --noninteractive', stdout: 'update.txt' },
      { when: 'update -y --noninteractive --no-deploy', stdout: 'update.txt' },
    ]);
  }

  it('is applicable exactly when flatpak is on PATH', async () => {
    await expectNotApplicable('flatpak', 'flatpak not found');
    await flatpakMachine();
    await expectApplicable('flatpak');
  });

  it('estimates from remote-ls --updates: versions, or commits for runtimes without one, and sizes', async () => {
    await flatpakMachine();
    const estimate = estimateOf(await plugin('flatpak', 'estimate-update'));
    expect(estimate.packages_to_update).toEqual([
      { name: 'org.mozilla.firefox', current_version: '129.0.2', new_version: '130.0', download_size_bytes: 97.3e6, installed_size_bytes: 301.2e6 },
      { name: 'org.freedesktop.Platform', current_version: '9f8e7d6c5b4a', new_version: '0c9e2f5d7a14', download_size_bytes: 12.5e6, installed_size_bytes: 542e6 },
      {
        name: 'org.freedesktop.Platform.GL.default',
        current_version: '24.1.5',
        new_version: '24.1.7',
        download_size_bytes: 162400,
        installed_size_bytes: 401.3e6,
      },
    ]);
    expect(estimate.total_download_size_bytes).toBe(97.3e6 + 12.5e6 + 162400);
  });

  it('downloads with --no-deploy, then updates, naming each ref', async () => {
    await flatpakMachine();
    estimateOf(await plugin('flatpak', 'estimate-update'));
    expect((await plugin('flatpak', 'download')).envelope.data).toEqual({ package_count: 3 });
    const updated = updatedOf(await plugin('flatpak', 'update'));
    expect(updated.packages_updated[0]).toEqual({ name: 'org.mozilla.firefox', from: '129.0.2', to: '130.0' });
    expect(updated.package_count).toBe(3);
    expect((await ran()).slice(-2)).toEqual(['flatpak update -y --noninteractive --no-deploy', 'flatpak update -y --noninteractive']);
  });

  it('reports an unreachable remote as a network error', async () => {
    await flatpakMachine([{ when: `remote-ls --updates ${COLUMNS}`, stderr: 'network-error.txt', exit: 1 }]);
    expectFailure(await plugin('flatpak', 'estimate-update'), 75, 'NETWORK_ERROR');
  });
});
