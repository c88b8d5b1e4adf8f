#!/usr/bin/env node
// upkeep plugin for Flatpak applications and runtimes (system and user
// installations alike). `flatpak remote-ls --updates` asks the remotes what
// changed; `flatpak update --no-deploy` downloads without deploying, and the
// update that follows deploys what is already in the local repository.
import { commandFailed, definePlugin, loadState, plannedUpdate, programFound, progress, run, saveState, totalSize } from './lib/plugin.mjs';

const NAME = 'flatpak';
const STATIC_MUTEXES = { estimate: [], download: ['pkgmgr:flatpak'], update: ['pkgmgr:flatpak'] };
const UNATTENDED = ['-y', '--noninteractive'];
const UPDATE_COLUMNS = ['application', 'branch', 'version', 'commit', 'download-size', 'installed-size'];
const INSTALLED_COLUMNS = ['application', 'branch', 'version', 'active'];

/** g_format_size: `1.2 MB`, `512 bytes`, SI units, sometimes with a no-break space. */
function parseSize(text) {
  const match = /^([\d.]+)[\s\u00a0]*(bytes?|kB|MB|GB|TB)$/.exec((text ?? '').trim());
  if (!match) return undefined;
  const factor = { byte: 1, bytes: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[match[2]];
  return Math.round(Number(match[1]) * factor);
}

/**
 * When its output is not a terminal, flatpak prints tab-separated cells and
 * no header, in the order asked for with --columns.
 */
function parseColumns(text, columns) {
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => Object.fromEntries(line.split('\t').map((cell, index) => [columns[index], cell.trim()])));
}

async function estimate() {
  progress(0, 'flatpak remote-ls --updates');
  const argv = ['flatpak', 'remote-ls', '--updates', `--columns=${UPDATE_COLUMNS.join(',')}`];
  const [updates, installed] = await Promise.all([run(argv), run(['flatpak', 'list', `--columns=${INSTALLED_COLUMNS.join(',')}`])]);
  if (updates.code !== 0) throw commandFailed(argv, updates);
  // Runtimes usually carry no version: their commit is what changes.
  const current = new Map(parseColumns(installed.stdout, INSTALLED_COLUMNS).map((row) => [`${row.application}/${row.branch}`, row.version || row.active]));
  const packages = parseColumns(updates.stdout, UPDATE_COLUMNS).map((row) => {
    const download = parseSize(row['download-size']);
    const installedSize = parseSize(row['installed-size']);
    return {
      name: row.application,
      current_version: current.get(`${row.application}/${row.branch}`) || null,
      new_version: row.version || row.commit,
      ...(download === undefined ? {} : { download_size_bytes: download }),
      ...(installedSize === undefined ? {} : { installed_size_bytes: installedSize }),
    };
  });
  progress(100, `${packages.length} applications and runtimes to update`);
  const result = {
    packages_to_update: packages,
    total_download_size_bytes: totalSize(packages, 'download_size_bytes'),
    total_installed_size_bytes: totalSize(packages, 'installed_size_bytes'),
    requires_reboot: false,
  };
  saveState('estimate', result);
  return result;
}

/** flatpak's non-interactive output: one `Updating app/org.mozilla.firefox/x86_64/stable` per ref. */
function tracker(total) {
  const refs = [];
  const onLine = (line) => {
    const match = /^Updating (?:app|runtime)\/([^/\s]+)\//.exec(line.trim());
    if (!match) return;
    refs.push(match[1]);
    progress((100 * refs.length) / Math.max(total, refs.length), `updating ${match[1]}`);
  };
  return { refs, onLine };
}

async function download() {
  const total = (loadState('estimate')?.packages_to_update ?? []).length;
  progress(0, 'flatpak update --no-deploy');
  const argv = ['flatpak', 'update', ...UNATTENDED, '--no-deploy'];
  const { refs, onLine } = tracker(total);
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0) throw commandFailed(argv, result);
  progress(100, 'downloaded');
  return { package_count: refs.length };
}

async function update() {
  const known = new Map((loadState('estimate')?.packages_to_update ?? []).map((entry) => [entry.name, entry]));
  progress(0, 'flatpak update');
  const argv = ['flatpak', 'update', ...UNATTENDED];
  const { refs, onLine } = tracker(known.size);
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0) throw commandFailed(argv, result);
  progress(100, `${refs.length} applications and runtimes updated`);
  return {
    packages_updated: refs.map((name) => {
      const entry = known.get(name);
      return entry ? plannedUpdate(entry) : { name };
    }),
    package_count: refs.length,
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('flatpak'),
  estimate,
  canSeparateDownload: true,
  download,
  update,
  requiresSudo: false,
  mutexes: STATIC_MUTEXES,
});
