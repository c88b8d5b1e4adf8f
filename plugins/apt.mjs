#!/usr/bin/env node
// upkeep plugin for APT (Debian, Ubuntu and derivatives).
//
// The estimate is apt-get's own simulation of the command update will run
// (`apt-get -s upgrade` or `dist-upgrade`), so held-back and phased packages
// are left out exactly as apt-get leaves them out. `apt list --upgradable`
// is only the fallback when apt-get cannot plan the upgrade at all (broken
// dependencies, an interrupted dpkg): the user still sees what is pending.
import { existsSync } from 'node:fs';
import {
  commandFailed,
  definePlugin,
  elevated,
  loadState,
  mayRefresh,
  progress,
  run,
  runtimesOf,
  saveState,
  setting,
  systemManager,
  totalSize,
} from './lib/plugin.mjs';

const NAME = 'apt';
const STATIC_MUTEXES = { estimate: ['pkgmgr:apt'], download: ['pkgmgr:apt'], update: ['pkgmgr:apt', 'pkgmgr:dpkg'] };

// Read-only apt-get runs must not wait for (or fail on) the locks a running
// apt holds: they only read the package lists.
const NO_LOCKING = ['-o', 'Debug::NoLocking=1'];
// Runs that change the system wait a while for the dpkg lock (for instance
// held by unattended-upgrades) instead of failing at once, and never ask
// about changed configuration files: keep the local one unless it was untouched.
const UNATTENDED = [
  '-y',
  '-o',
  'DPkg::Lock::Timeout=120',
  '-o',
  'Dpkg::Options::=--force-confdef',
  '-o',
  'Dpkg::Options::=--force-confold',
];
// sudo drops these unless sudoers keeps them (env_keep); with stdin closed,
// debconf falls back to its defaults anyway.
const NONINTERACTIVE_ENV = { DEBIAN_FRONTEND: 'noninteractive', APT_LISTCHANGES_FRONTEND: 'none' };

const REBOOT_PACKAGES = /^(linux-(image|modules|firmware)|libc6$|systemd$|dbus$)/;
const RUNTIMES = [
  ['python', /^(lib)?python3/],
  ['node', /^(nodejs$|libnode)/],
  ['rust', /^(rustc|cargo|libstd-rust)/],
  ['go', /^golang/],
  ['ruby', /^(lib)?ruby/],
];

const mode = () => (setting(NAME, 'dist_upgrade', false) ? 'dist-upgrade' : 'upgrade');
const baseName = (name) => name.replace(/:[a-z0-9]+$/, '');

/** apt prints sizes in SI units ("1807 kB", "168 MB"). */
function parseAptSize(number, unit) {
  const factor = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[unit] ?? 1;
  return Math.round(Number(number.replace(/,/g, '')) * factor);
}

/** apt's own error lines (`E: ...`), the clearest account of what went wrong. */
function aptErrors(argv, result) {
  const errors = `${result.stderr}\n${result.stdout}`.split('\n').filter((line) => line.startsWith('E: '));
  return errors.length > 0 ? errors.join('; ') : (commandFailed(argv, result).details ?? `exit code ${result.code}`);
}

/** `apt-get update`, when allowed and possible; otherwise the lists stay as they are. */
async function refreshLists() {
  if (!(await mayRefresh(NAME, 'the package lists as they are', 'apt-get'))) return;
  const argv = elevated(['apt-get', 'update', '-qq']);
  const result = await run(argv, { env: NONINTERACTIVE_ENV });
  if (result.code === 0) return;
  const failure = commandFailed(argv, result);
  // Someone else is updating the lists: worth a retry. Anything else (a
  // mirror down, no network) still leaves usable lists behind.
  if (failure.code === 'TEMPORARY_FAILURE') throw failure;
  process.stderr.write(`apt-get update failed, estimating from the package lists as they are: ${aptErrors(argv, result)}\n`);
}

/**
 * The Inst lines of `apt-get -s`:
 *   Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])
 *   Inst liblzma5 [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []
 *   Inst linux-image-6.1.0-28-amd64 (6.1.119-1 Debian-Security:12/bookworm-security [amd64])
 * The origins are `label:version/suite`; a suite ending in -security is a security update.
 */
function parseSimulation(text) {
  const packages = [];
  const removed = [];
  const keptBack = [];
  let inKeptBack = false;
  for (const line of text.split('\n')) {
    // Ubuntu also defers phased updates until the machine's turn comes.
    if (/^The following (packages have been kept back|upgrades have been deferred due to phasing):/.test(line)) {
      inKeptBack = true;
      continue;
    }
    if (inKeptBack && line.startsWith('  ')) {
      keptBack.push(...line.trim().split(/\s+/));
      continue;
    }
    inKeptBack = false;
    const install = /^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?) ?\[([^\]]+)\]\)/.exec(line);
    if (install) {
      const [, name, current, version, origins, arch] = install;
      const suites = origins.split(', ').map((origin) => origin.slice(origin.lastIndexOf('/') + 1));
      packages.push({
        name,
        arch,
        current_version: current || null,
        new_version: version,
        security: suites.some((suite) => suite.endsWith('-security')),
      });
      continue;
    }
    const removal = /^Remv (\S+)/.exec(line);
    if (removal) removed.push(removal[1]);
  }
  return { packages, removed, keptBack };
}

/** `apt list --upgradable`: `curl/stable-security 7.88.1-10+deb12u8 amd64 [upgradable from: 7.88.1-10+deb12u7]`. */
function parseUpgradable(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+?)\/(\S+) (\S+) (\S+) \[upgradable from: ([^\]]+)\]/.exec(line);
    if (!match) continue;
    const [, name, suites, version, arch, current] = match;
    packages.push({
      name,
      arch,
      current_version: current,
      new_version: version,
      security: suites.split(',').some((suite) => suite.endsWith('-security')),
    });
  }
  return packages;
}

/**
 * `apt-get --print-uris`: one line per archive still to fetch (the ones
 * already in /var/cache/apt/archives are left out):
 *   'http://deb.debian.org/.../bash_5.2.15-2%2bb13_amd64.deb' bash_5.2.15-2+b13_amd64.deb 1490652 MD5Sum:f973...
 * Keyed by `name:arch` (the file name is name_version_arch.deb).
 */
function parsePrintUris(text) {
  const sizes = new Map();
  for (const line of text.split('\n')) {
    const match = /^'[^']+' (\S+?)_\S+?_([a-z0-9]+)\.deb (\d+)/.exec(line);
    if (match) sizes.set(`${match[1]}:${match[2]}`, Number(match[3]));
  }
  return sizes;
}

/** `apt-cache show name=version...`: Installed-Size (KiB) and Size (bytes) per `name:arch=version`. */
function parseShow(text) {
  const sizes = new Map();
  for (const paragraph of text.split(/\n\s*\n/)) {
    const field = (key) => new RegExp(`^${key}: (.*)$`, 'm').exec(paragraph)?.[1]?.trim();
    const name = field('Package');
    if (!name) continue;
    sizes.set(`${name}:${field('Architecture')}=${field('Version')}`, {
      installed: Number(field('Installed-Size') ?? 0) * 1024,
      download: Number(field('Size') ?? 0),
    });
  }
  return sizes;
}

async function planUpgrade(command) {
  const simulation = await run(['apt-get', '-s', ...NO_LOCKING, command]);
  if (simulation.code === 0) return { ...parseSimulation(simulation.stdout), planned: true };
  const reason = aptErrors(['apt-get', '-s', command], simulation);
  process.stderr.write(`apt-get cannot plan the ${command} (${reason}); listing the upgradable packages instead\n`);
  const listing = await run(['apt', 'list', '--upgradable']);
  if (listing.code !== 0) throw commandFailed(['apt', 'list', '--upgradable'], listing);
  return { packages: parseUpgradable(listing.stdout), removed: [], keptBack: [], planned: false };
}

async function addSizes(packages, command, planned) {
  if (packages.length === 0) return;
  const [uris, show] = await Promise.all([
    planned ? run(['apt-get', '--print-uris', '-qq', '-y', ...NO_LOCKING, command]) : null,
    run(['apt-cache', 'show', ...packages.map((entry) => `${baseName(entry.name)}=${entry.new_version}`)]),
  ]);
  const toFetch = uris?.code === 0 ? parsePrintUris(uris.stdout) : null;
  const details = parseShow(show.stdout);
  for (const entry of packages) {
    const key = `${baseName(entry.name)}:${entry.arch}`;
    const detail = details.get(`${key}=${entry.new_version}`);
    if (detail) entry.installed_size_bytes = detail.installed;
    // An archive print-uris leaves out is already downloaded: nothing to fetch.
    if (toFetch) entry.download_size_bytes = toFetch.get(key) ?? 0;
    else if (detail) entry.download_size_bytes = detail.download;
  }
}

async function estimate() {
  const command = mode();
  progress(0, 'refreshing package lists');
  await refreshLists();
  progress(40, `planning apt-get ${command}`);
  const plan = await planUpgrade(command);
  progress(70, 'reading package sizes');
  await addSizes(plan.packages, command, plan.planned);
  if (plan.keptBack.length > 0) {
    const hint = command === 'upgrade' ? ' (dist_upgrade: true includes those that need new packages)' : '';
    process.stderr.write(`held back by apt-get ${command}${hint}: ${plan.keptBack.join(' ')}\n`);
  }
  if (plan.removed.length > 0) process.stderr.write(`apt-get ${command} would remove: ${plan.removed.join(' ')}\n`);
  progress(100, `${plan.packages.length} packages to update`);

  const packages = plan.packages.map(({ arch: _arch, ...entry }) => entry);
  const names = packages.map((entry) => entry.name);
  const result = {
    packages_to_update: packages,
    total_download_size_bytes: totalSize(packages, 'download_size_bytes'),
    total_installed_size_bytes: totalSize(packages, 'installed_size_bytes'),
    affects_runtimes: runtimesOf(RUNTIMES, names.map(baseName)),
    requires_reboot: names.some((name) => REBOOT_PACKAGES.test(baseName(name))),
    security_updates: packages.some((entry) => entry.security),
  };
  saveState('estimate', { command, ...result });
  return result;
}

/** Follows apt-get's output: Get lines while downloading, then dpkg's Unpacking and Setting up. */
function tracker() {
  const state = { total: 0, fetched: 0, unpacked: 0, configured: 0, bytes: 0, updated: [] };
  const report = (message) => {
    if (state.total === 0) return;
    const part = (count) => Math.min(1, count / state.total);
    progress(30 * part(state.fetched) + 40 * part(state.unpacked) + 30 * part(state.configured), message, {
      current: state.configured,
      total: state.total,
    });
  };
  const onLine = (line) => {
    let match;
    if ((match = /^(\d+) upgraded, (\d+) newly installed/.exec(line))) {
      state.total = Number(match[1]) + Number(match[2]);
    } else if ((match = /^Get:\d+ .* (\S+) \S+ \S+ \[[^\]]+\]$/.exec(line))) {
      state.fetched += 1;
      report(`downloading ${match[1]}`);
    } else if ((match = /^Fetched ([\d.,]+) ([kMGT]?B) in/.exec(line))) {
      state.bytes = parseAptSize(match[1], match[2]);
    } else if ((match = /^Unpacking (\S+) \(([^)]+)\)(?: over \(([^)]+)\))?/.exec(line))) {
      const [, name, to, from] = match;
      state.unpacked += 1;
      state.updated.push({ name: baseName(name), ...(from ? { from } : {}), to });
      report(`unpacking ${baseName(name)}`);
    } else if ((match = /^Setting up (\S+) \(/.exec(line))) {
      state.configured += 1;
      report(`setting up ${baseName(match[1])}`);
    }
  };
  return { state, onLine };
}

async function download() {
  const command = loadState('estimate')?.command ?? mode();
  progress(0, `downloading for apt-get ${command}`);
  const argv = elevated(['apt-get', '--download-only', ...UNATTENDED, command]);
  const { state, onLine } = tracker();
  const result = await run(argv, { env: NONINTERACTIVE_ENV, echo: true, onLine });
  if (result.code !== 0) throw commandFailed(argv, result);
  progress(100, 'downloaded');
  return { downloaded_bytes: state.bytes, package_count: state.fetched };
}

async function update() {
  const estimated = loadState('estimate');
  // Without an estimate in this run, bring the lists up to date first so
  // "everything pending" means what the mirrors have now.
  if (!estimated) await refreshLists();
  const command = estimated?.command ?? mode();
  progress(0, `apt-get ${command}`);
  const argv = elevated(['apt-get', ...UNATTENDED, command]);
  const { state, onLine } = tracker();
  const result = await run(argv, { env: NONINTERACTIVE_ENV, echo: true, onLine });
  if (result.code !== 0) throw commandFailed(argv, result);

  if (setting(NAME, 'auto_remove', false)) {
    progress(95, 'removing packages nothing needs any more');
    const remove = elevated(['apt-get', ...UNATTENDED, 'autoremove']);
    const removal = await run(remove, { env: NONINTERACTIVE_ENV, echo: true });
    if (removal.code !== 0) throw commandFailed(remove, removal);
  }
  progress(100, `${state.updated.length} packages updated`);
  return {
    packages_updated: state.updated,
    package_count: state.updated.length,
    downloaded_bytes: state.bytes,
    requires_reboot: existsSync('/var/run/reboot-required') || state.updated.some((entry) => REBOOT_PACKAGES.test(entry.name)),
  };
}

/** dpkg left half-configured packages, or apt sees broken dependencies: updates would fail. */
async function validate() {
  const problems = [];
  const audit = await run(['dpkg', '--audit']);
  if (audit.stdout.trim()) problems.push(`dpkg --audit: ${audit.stdout.trim().split('\n')[0]}`);
  const check = await run(['apt-get', 'check', ...NO_LOCKING]);
  if (check.code !== 0) problems.push(`apt-get check: ${aptErrors(['apt-get', 'check'], check)}`);
  return { healthy: problems.length === 0, problems };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('apt-get', STATIC_MUTEXES),
  estimate,
  canSeparateDownload: true,
  download,
  update,
  validate,
});
