#!/usr/bin/env node
// upkeep plugin for DNF (Fedora, RHEL and their rebuilds; dnf4 and dnf5).
//
// `dnf check-update` lists what is pending (exit 100 when something is),
// rpm tells the installed versions, and `dnf updateinfo list --security`
// names the packages that security advisories cover.
import { commandFailed, definePlugin, elevated, loadState, plannedUpdate, PluginError, progress, run, setting, systemEstimate, systemManager, which } from './lib/plugin.mjs';

const NAME = 'dnf';
const STATIC_MUTEXES = { estimate: ['pkgmgr:dnf'], download: ['pkgmgr:dnf'], update: ['pkgmgr:dnf', 'pkgmgr:rpm'] };
const ARCHES = 'noarch|x86_64|i[3-6]86|aarch64|armv7hl|armv7hnl|ppc64le|ppc64|s390x|riscv64|loongarch64';
const NAME_ARCH = new RegExp(`^(.+)\\.(${ARCHES})$`);
const REBOOT_PACKAGES = /^(kernel(-core|-modules(-core)?)?|glibc|systemd|linux-firmware|dbus(-broker)?)$/;
const RUNTIMES = [
  ['python', /^python3/],
  ['node', /^nodejs/],
  ['rust', /^(rust|cargo)(-|$)/],
  ['go', /^golang/],
  ['ruby', /^ruby/],
];
// dnf5 fails at once when another transaction holds the rpm lock (dnf4 waits).
const LOCKED = /Failed to obtain rpm transaction lock|another transaction is in progress/i;

function failure(argv, result) {
  if (LOCKED.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('TEMPORARY_FAILURE', `${argv.join(' ')} found the rpm database locked`, { transient: true });
  }
  return commandFailed(argv, result);
}

/**
 * `dnf check-update`, dnf4 and dnf5 alike: `name.arch  version  repository`
 * (a long name.arch sits alone on its line, the rest follows on the next).
 * Everything after "Obsoleting Packages" repeats packages already listed.
 */
function parseCheckUpdate(text) {
  const packages = [];
  let held = null;
  for (const line of text.split('\n')) {
    if (/^Obsoleting packages/i.test(line.trim())) break;
    const tokens = [...(held ? [held] : []), ...line.trim().split(/\s+/).filter(Boolean)];
    held = null;
    if (tokens.length === 1 && NAME_ARCH.test(tokens[0])) {
      held = tokens[0];
      continue;
    }
    const match = tokens.length === 3 ? NAME_ARCH.exec(tokens[0]) : null;
    if (!match) continue;
    packages.push({ name: match[1], arch: match[2], new_version: tokens[1] });
  }
  return packages;
}

/** `name-[epoch:]version-release.arch` anywhere in a line of `dnf updateinfo list`. */
const NEVRA = new RegExp(`^(.+)-(?:\\d+:)?[^-]+-[^-]+\\.(${ARCHES})$`);

function securityPackages(text) {
  const covered = new Set();
  for (const token of text.split(/\s+/)) {
    const match = NEVRA.exec(token);
    if (match) covered.add(`${match[1]}.${match[2]}`);
  }
  return covered;
}

async function pending() {
  const argv = ['dnf', 'check-update', ...(setting(NAME, 'refresh', false) ? ['--refresh'] : [])];
  const result = await run(argv);
  // 100: updates are available; 0: nothing to do; anything else is a failure.
  if (result.code !== 0 && result.code !== 100) throw failure(argv, result);
  return parseCheckUpdate(result.stdout);
}

async function installedVersions(packages) {
  const versions = new Map();
  if (packages.length === 0 || !which('rpm')) return versions;
  const format = '%{NAME}.%{ARCH} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n';
  const result = await run(['rpm', '-q', '--queryformat', format, ...new Set(packages.map((entry) => entry.name))]);
  // Install-only packages (kernel) have several versions installed: the last one listed is the newest.
  for (const line of result.stdout.split('\n')) {
    const [key, version] = line.trim().split(' ');
    if (key && version) versions.set(key, version);
  }
  return versions;
}

async function estimate() {
  progress(0, 'dnf check-update');
  const found = await pending();
  progress(50, 'reading installed versions and security advisories');
  const [versions, advisories] = await Promise.all([
    installedVersions(found),
    found.length > 0 ? run(['dnf', 'updateinfo', 'list', '--security']) : null,
  ]);
  if (advisories && advisories.code !== 0) process.stderr.write('dnf updateinfo failed: security updates are not marked\n');
  const security = advisories?.code === 0 ? securityPackages(advisories.stdout) : new Set();
  const packages = found.map((entry) => ({
    name: entry.name,
    current_version: versions.get(`${entry.name}.${entry.arch}`) ?? null,
    new_version: entry.new_version,
    security: security.has(`${entry.name}.${entry.arch}`),
  }));
  progress(100, `${packages.length} packages to update`);
  return systemEstimate(packages, { runtimes: RUNTIMES, reboot: REBOOT_PACKAGES }, { security_updates: packages.some((entry) => entry.security) });
}

/** dnf4 `  Upgrading : curl-8.2.1-3.fc39.x86_64   3/8` and dnf5 `[3/8] Upgrading curl-0:8.11.1-5.fc42.x86_64 ...`. */
function trackTransaction(line) {
  const dnf4 = /^\s+(?:Upgrading|Installing)\s*:\s*(\S+)\s+(\d+)\/(\d+)\s*$/.exec(line);
  const dnf5 = /^\[\s*(\d+)\/(\d+)\]\s+(?:Upgrading|Installing)\s+(\S+)/.exec(line);
  const [nevra, current, total] = dnf4 ? [dnf4[1], dnf4[2], dnf4[3]] : dnf5 ? [dnf5[3], dnf5[1], dnf5[2]] : [];
  if (!nevra) return;
  progress((100 * Number(current)) / Number(total), `installing ${nevra}`, { current: Number(current), total: Number(total) });
}

async function download() {
  progress(0, 'dnf upgrade --downloadonly');
  const argv = elevated(['dnf', '-y', 'upgrade', '--downloadonly']);
  const result = await run(argv, { echo: true });
  if (result.code !== 0) throw failure(argv, result);
  progress(100, 'downloaded');
  return { package_count: (loadState('estimate')?.packages_to_update ?? []).length };
}

async function update() {
  const packages = loadState('estimate')?.packages_to_update ?? (await estimate()).packages_to_update;
  progress(0, 'dnf upgrade');
  const argv = elevated(['dnf', '-y', 'upgrade']);
  const result = await run(argv, { echo: true, onLine: trackTransaction });
  if (result.code !== 0) throw failure(argv, result);
  // needs-restarting (dnf-plugins-core) knows best; without it, the package names tell.
  const restart = await run(['dnf', 'needs-restarting', '-r']);
  const requiresReboot = /Reboot is required/i.test(restart.stdout) || packages.some((entry) => REBOOT_PACKAGES.test(entry.name));
  progress(100, `${packages.length} packages updated`);
  return {
    packages_updated: packages.map(plannedUpdate),
    package_count: packages.length,
    requires_reboot: requiresReboot,
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('dnf', STATIC_MUTEXES),
  estimate,
  canSeparateDownload: true,
  download,
  update,
});
