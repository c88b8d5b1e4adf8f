#!/usr/bin/env node
// upkeep plugin for snapd: `snap refresh --list` asks the store what would
// refresh, `snap list` gives the installed versions. snapd downloads and
// installs in one change, so download is not a separate step.
import { commandFailed, definePlugin, elevated, loadState, PluginError, progress, run, systemEstimate, systemManager, totalSize, which } from './lib/plugin.mjs';

const NAME = 'snap';
const STATIC_MUTEXES = { estimate: [], download: [], update: ['pkgmgr:snap'] };
// Snaps that provide a language toolchain (classic confinement) hold its runtime.
const RUNTIMES = [
  ['python', /^python\d*$/],
  ['node', /^node$/],
  ['rust', /^rustup$/],
  ['go', /^go$/],
  ['ruby', /^ruby$/],
];
const REBOOT_SNAPS = /(^|-)kernel$/;
// snapd refuses while another change touches the same snap (an auto-refresh, say).
const BUSY = /has "[^"]+" change in progress|change in progress/i;

/** snapd prints sizes as whole SI units: `285MB`, `12kB`, `906B`. */
function parseSize(text) {
  const match = /^(\d+)(B|kB|MB|GB|TB)$/.exec(text ?? '');
  return match ? Number(match[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[match[2]] : undefined;
}

/** A table snap prints: a header row, then rows whose columns line up with it. Cells never contain spaces. */
function parseTable(text) {
  const [header, ...rows] = text.split('\n').filter((line) => line.trim());
  if (!header) return [];
  const columns = header.trim().split(/\s+/);
  return rows.map((row) => Object.fromEntries(row.trim().split(/\s+/).map((cell, index) => [columns[index], cell])));
}

/** The snap command alone is not enough: snapd must answer (it does not run in most containers). */
async function isApplicable() {
  if (!which('snap')) return { applicable: false, reason: 'snap not found' };
  const version = await run(['snap', 'version']);
  if (/^snapd\s+unavailable/m.test(version.stdout)) return { applicable: false, reason: 'snapd is not running' };
  return { applicable: true };
}

async function estimate() {
  progress(0, 'snap refresh --list');
  const argv = ['snap', 'refresh', '--list'];
  const [refreshes, installed] = await Promise.all([run(argv), run(['snap', 'list'])]);
  if (refreshes.code !== 0) throw commandFailed(argv, refreshes);
  // With nothing to refresh, snap says "All snaps up to date." on stderr and prints no table.
  const current = new Map(parseTable(installed.stdout).map((row) => [row.Name, row.Version]));
  const packages = parseTable(refreshes.stdout).map((row) => {
    const size = parseSize(row.Size);
    return {
      name: row.Name,
      current_version: current.get(row.Name) ?? null,
      new_version: row.Version,
      ...(size === undefined ? {} : { download_size_bytes: size }),
    };
  });
  progress(100, `${packages.length} snaps to refresh`);
  return systemEstimate(packages, { runtimes: RUNTIMES, reboot: REBOOT_SNAPS }, { total_download_size_bytes: totalSize(packages, 'download_size_bytes') });
}

async function update() {
  const known = new Map((loadState('estimate')?.packages_to_update ?? []).map((entry) => [entry.name, entry]));
  progress(0, 'snap refresh');
  const argv = elevated(['snap', 'refresh']);
  const updated = [];
  // `firefox 124.0-2 from Mozilla✓ refreshed`, or `node (18/stable) 18.19.0 from OpenJS Foundation (openjs✓) refreshed`.
  const onLine = (line) => {
    const match = /^(\S+)(?: \([^)]*\))? (\S+) (?:from .* )?refreshed$/.exec(line.trim());
    if (!match) return;
    const [, name, to] = match;
    const from = known.get(name)?.current_version;
    updated.push({ name, ...(from ? { from } : {}), to });
    progress((100 * updated.length) / Math.max(known.size, updated.length), `refreshed ${name}`);
  };
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0) {
    if (BUSY.test(result.stderr)) {
      throw new PluginError('TEMPORARY_FAILURE', 'snapd is busy with another change to these snaps', { details: result.stderr.trim(), transient: true });
    }
    throw commandFailed(argv, result);
  }
  progress(100, `${updated.length} snaps refreshed`);
  return {
    packages_updated: updated,
    package_count: updated.length,
    requires_reboot: updated.some((entry) => REBOOT_SNAPS.test(entry.name)),
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('snap', STATIC_MUTEXES),
  // Instead of systemManager's: snapd must answer too.
  isApplicable,
  estimate,
  canSeparateDownload: false,
  update,
});
