#!/usr/bin/env node
// upkeep plugin for pacman (Arch Linux and derivatives).
//
// The estimate never runs `pacman -Sy`: syncing the real database without
// upgrading is how Arch systems end up partially upgraded. `checkupdates`
// (pacman-contrib) syncs a private copy instead; without it, `pacman -Qu`
// answers from the sync database as it is. Updates are always the full
// `pacman -Syu`.
import { join } from 'node:path';
import { commandFailed, definePlugin, elevated, loadState, plannedUpdate, PluginError, progress, run, stateDir, systemEstimate, systemManager, totalSize, which } from './lib/plugin.mjs';

const NAME = 'pacman';
const STATIC_MUTEXES = { estimate: [], download: ['pkgmgr:pacman'], update: ['pkgmgr:pacman'] };
const UNATTENDED = ['--noconfirm', '--noprogressbar'];
const REBOOT_PACKAGES = /^(linux(-lts|-zen|-hardened|-rt)?|linux-firmware.*|systemd|glibc)$/;
const RUNTIMES = [
  ['python', /^python$/],
  ['node', /^nodejs(-lts-.+)?$/],
  ['rust', /^(rust|cargo)$/],
  ['go', /^go$/],
  ['ruby', /^ruby$/],
];
const LOCKED = /unable to lock database|could not lock database/i;

function failure(argv, result) {
  if (LOCKED.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('TEMPORARY_FAILURE', `${argv.join(' ')} found the pacman database locked`, { transient: true });
  }
  return commandFailed(argv, result);
}

/** `linux 6.6.8.arch1-1 -> 6.6.9.arch1-1`, as both checkupdates and `pacman -Qu` print it; IgnorePkg entries end in [ignored]. */
function parseUpgrades(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) (\S+) -> (\S+)$/.exec(line.trim());
    if (match) packages.push({ name: match[1], current_version: match[2], new_version: match[3] });
  }
  return packages;
}

/** What is pending, and the database it was read from (for the sizes). */
async function pending() {
  if (which('checkupdates')) {
    const database = join(stateDir(), 'checkup-db');
    const argv = ['checkupdates'];
    const result = await run(argv, { env: { CHECKUPDATES_DB: database } });
    // checkupdates: 0 updates listed, 2 nothing to update, 1 failure.
    if (result.code === 2) return { packages: [], database };
    if (result.code !== 0) {
      if (/cannot fetch updates/i.test(result.stderr)) {
        throw new PluginError('NETWORK_ERROR', 'checkupdates could not fetch the package databases', { details: result.stderr.trim(), transient: true });
      }
      throw failure(argv, result);
    }
    return { packages: parseUpgrades(result.stdout), database };
  }
  process.stderr.write('checkupdates (pacman-contrib) not found: listing updates from the sync database as it is\n');
  const result = await run(['pacman', '-Qu']);
  // pacman -Qu exits 1 when nothing is upgradable.
  if (result.code !== 0 && result.stdout.trim()) throw failure(['pacman', '-Qu'], result);
  return { packages: parseUpgrades(result.stdout), database: null };
}

/** Download sizes from `pacman -Sup --print-format '%n %s'` (a print, so nothing changes). */
async function addSizes(packages, database) {
  if (packages.length === 0) return;
  const argv = ['pacman', '-Sup', '--print-format', '%n %s', ...(database ? ['--dbpath', database, '--logfile', '/dev/null'] : [])];
  const result = await run(argv);
  if (result.code !== 0) {
    process.stderr.write('pacman -Sup failed: no download sizes\n');
    return;
  }
  const sizes = new Map();
  for (const line of result.stdout.split('\n')) {
    const match = /^(\S+) (\d+)$/.exec(line.trim());
    if (match) sizes.set(match[1], Number(match[2]));
  }
  for (const entry of packages) {
    if (sizes.has(entry.name)) entry.download_size_bytes = sizes.get(entry.name);
  }
}

async function estimate() {
  progress(0, 'checking for updates');
  const { packages, database } = await pending();
  progress(60, 'reading download sizes');
  await addSizes(packages, database);
  progress(100, `${packages.length} packages to update`);
  return systemEstimate(packages, { runtimes: RUNTIMES, reboot: REBOOT_PACKAGES }, { total_download_size_bytes: totalSize(packages, 'download_size_bytes') });
}

/**
 * With --noprogressbar pacman prints `upgrading linux...` as each package
 * starts, after announcing the count as `Packages (2) linux-6.8.2.arch1-1 ...`.
 */
function tracker(expected) {
  const updated = [];
  let total = expected;
  const onLine = (line) => {
    const text = line.trim();
    const count = /^Packages \((\d+)\)/.exec(text);
    if (count) total = Number(count[1]);
    const match = /^(upgrading|installing|reinstalling|downgrading) (\S+)\.\.\.$/.exec(text);
    if (!match) return;
    updated.push(match[2]);
    const of = Math.max(total, updated.length);
    progress((100 * (updated.length - 1)) / of, `${match[1]} ${match[2]}`, { current: updated.length - 1, total: of });
  };
  return { updated, onLine };
}

async function download() {
  progress(0, 'pacman -Syuw');
  const argv = elevated(['pacman', '-Syuw', ...UNATTENDED]);
  const result = await run(argv, { echo: true });
  if (result.code !== 0) throw failure(argv, result);
  progress(100, 'downloaded');
  return { package_count: (loadState('estimate')?.packages_to_update ?? []).length };
}

async function update() {
  const known = new Map((loadState('estimate')?.packages_to_update ?? []).map((entry) => [entry.name, entry]));
  progress(0, 'pacman -Syu');
  const argv = elevated(['pacman', '-Syu', ...UNATTENDED]);
  const { updated, onLine } = tracker(known.size);
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0) throw failure(argv, result);
  progress(100, `${updated.length} packages updated`);
  return {
    packages_updated: updated.map((name) => {
      const entry = known.get(name);
      return entry ? plannedUpdate(entry) : { name };
    }),
    package_count: updated.length,
    requires_reboot: updated.some((name) => REBOOT_PACKAGES.test(name)),
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('pacman', STATIC_MUTEXES),
  estimate,
  canSeparateDownload: true,
  download,
  update,
});
