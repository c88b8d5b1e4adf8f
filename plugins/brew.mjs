#!/usr/bin/env node
// upkeep plugin for Homebrew (macOS and Linux): outdated formulae and casks.
//
// `brew outdated --json=v2` after `brew update`; pinned formulae are left
// out because `brew upgrade` leaves them alone. Download is `brew fetch`,
// whose bottles and cask archives `brew upgrade` then finds in its cache.
import { commandFailed, definePlugin, loadState, mutexesWithRuntimes, plannedUpdate, PluginError, programFound, progress, run, runtimesOf, saveState, setting } from './lib/plugin.mjs';

const NAME = 'brew';
const STATIC_MUTEXES = { estimate: ['pkgmgr:brew'], download: ['pkgmgr:brew'], update: ['pkgmgr:brew'] };
// upkeep already refreshed (or was told not to): no second `brew update`
// inside fetch and upgrade, and no hints meant for people at a terminal.
const QUIET_ENV = { HOMEBREW_NO_AUTO_UPDATE: '1', HOMEBREW_NO_ENV_HINTS: '1', HOMEBREW_NO_COLOR: '1' };
const RUNTIMES = [
  ['python', /^python(@3[.\d]*)?$/],
  ['node', /^node(@\d+)?$/],
  ['rust', /^rust$/],
  ['go', /^go(@[.\d]+)?$/],
  ['ruby', /^ruby(@[.\d]+)?$/],
];
const LOCKED = /already running|has already locked|another active homebrew .*process/i;

function failure(argv, result) {
  if (LOCKED.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('TEMPORARY_FAILURE', `${argv.join(' ')}: another brew process holds the lock`, { transient: true });
  }
  return commandFailed(argv, result);
}

async function refresh() {
  if (!setting(NAME, 'refresh', true)) return;
  const argv = ['brew', 'update', '--quiet'];
  const result = await run(argv, { env: QUIET_ENV });
  if (result.code === 0) return;
  const error = failure(argv, result);
  if (error.code === 'TEMPORARY_FAILURE') throw error;
  process.stderr.write(`brew update failed, estimating from the formulae as they are: ${error.details ?? error.message}\n`);
}

/** `brew outdated --json=v2`: {formulae: [{name, installed_versions, current_version, pinned}], casks: [...]}. */
async function outdated() {
  const argv = ['brew', 'outdated', '--json=v2'];
  const result = await run(argv, { env: QUIET_ENV });
  // The exit code says little (brew outdated fails when named formulae are outdated): the JSON is the answer.
  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw failure(argv, result);
  }
  const entry = (kind) => (item) => ({
    kind,
    name: item.name,
    current_version: item.installed_versions?.at(-1) ?? null,
    new_version: item.current_version,
  });
  return [
    ...(report.formulae ?? []).filter((item) => !item.pinned).map(entry('formula')),
    ...(report.casks ?? []).map(entry('cask')),
  ];
}

async function estimate() {
  progress(0, 'brew update');
  await refresh();
  progress(60, 'brew outdated');
  const found = await outdated();
  progress(100, `${found.length} formulae and casks to upgrade`);
  const result = {
    packages_to_update: found.map(({ kind: _kind, ...entry }) => entry),
    affects_runtimes: runtimesOf(RUNTIMES, found.filter((entry) => entry.kind === 'formula').map((entry) => entry.name)),
    requires_reboot: false,
  };
  saveState('estimate', { ...result, outdated: found });
  return result;
}

/** What estimate found in this run, or what is outdated now. */
async function targets() {
  const found = loadState('estimate')?.outdated ?? (await outdated());
  return {
    all: found,
    formulae: found.filter((entry) => entry.kind === 'formula').map((entry) => entry.name),
    casks: found.filter((entry) => entry.kind === 'cask').map((entry) => entry.name),
  };
}

async function brew(words, onLine) {
  const argv = ['brew', ...words];
  const result = await run(argv, { env: QUIET_ENV, echo: true, onLine });
  if (result.code !== 0) throw failure(argv, result);
}

async function download() {
  const { all, formulae, casks } = await targets();
  progress(0, `fetching ${all.length} formulae and casks`);
  let fetched = 0;
  // `==> Fetching git`, for each formula, cask and dependency.
  const onLine = (line) => {
    if (/^==> Fetching /.test(line)) progress((100 * ++fetched) / Math.max(all.length, fetched), line.slice(4));
  };
  if (formulae.length > 0) await brew(['fetch', '--deps', '--formula', ...formulae], onLine);
  if (casks.length > 0) await brew(['fetch', '--cask', ...casks], onLine);
  progress(100, 'fetched');
  return { package_count: all.length };
}

async function update() {
  const { all, formulae, casks } = await targets();
  progress(0, `upgrading ${all.length} formulae and casks`);
  let started = 0;
  // `==> Upgrading git` starts each one (not `==> Upgrading 3 outdated packages:`).
  const onLine = (line) => {
    const match = /^==> Upgrading (\S+)$/.exec(line.trim());
    if (match) progress((100 * started++) / Math.max(all.length, started), `upgrading ${match[1]}`);
  };
  if (formulae.length > 0) await brew(['upgrade', '--formula', ...formulae], onLine);
  if (casks.length > 0) await brew(['upgrade', '--cask', ...casks], onLine);
  progress(100, `${all.length} formulae and casks upgraded`);
  return {
    packages_updated: all.map(plannedUpdate),
    package_count: all.length,
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('brew'),
  estimate,
  canSeparateDownload: true,
  download,
  update,
  requiresSudo: false,
  mutexes: { ...STATIC_MUTEXES, update: () => mutexesWithRuntimes(STATIC_MUTEXES.update) },
});
