#!/usr/bin/env node
// upkeep plugin for apk (Alpine Linux, postmarketOS).
//
// `apk version -l '<'` lists installed packages with a newer version in the
// repositories. apk installs straight from the network (its cache is
// optional), so download is not a separate step.
import { commandFailed, definePlugin, elevated, mayRefresh, PluginError, progress, run, systemEstimate, systemManager } from './lib/plugin.mjs';

const NAME = 'apk';
const STATIC_MUTEXES = { estimate: ['pkgmgr:apk'], download: [], update: ['pkgmgr:apk'] };
// apk 2.12+ (Alpine 3.13+). Interactive mode is opt-in (/etc/apk/interactive)
// and would wait for a "yes" that never comes; --wait gives a running apk two
// minutes to release the database lock.
const UNATTENDED = ['--no-interactive', '--no-progress', '--wait', '120'];
const REBOOT_PACKAGES = /^linux-(lts|virt|edge|stable|rpi\d*)$/;
const RUNTIMES = [
  ['python', /^python3(-|$)/],
  ['node', /^nodejs(-current)?$/],
  ['rust', /^(rust|cargo)$/],
  ['go', /^go$/],
  ['ruby', /^ruby(-|$)/],
];
const LOCKED = /unable to lock database|failed to open apk database: resource temporarily unavailable/i;
const NETWORK = /temporary error \(try again later\)|network error|DNS lookup error/i;

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  const details = text.trim().split('\n').slice(-5).join('\n');
  if (LOCKED.test(text)) return new PluginError('TEMPORARY_FAILURE', `${argv.join(' ')} found the apk database locked`, { details, transient: true });
  if (NETWORK.test(text)) return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the repositories`, { details, transient: true });
  return commandFailed(argv, result);
}

/** `busybox-1.36.1-r15      < 1.36.1-r19`: the installed name-version, then the available version. */
function parseVersionList(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+)\s+<\s+(\S+)$/.exec(line.trim());
    // The installed field is name-version-rRELEASE; names may contain dashes too.
    const installed = match && /^(.+)-([^-]+-r\d+)$/.exec(match[1]);
    if (installed) packages.push({ name: installed[1], current_version: installed[2], new_version: match[2] });
  }
  return packages;
}

async function refreshIndexes() {
  if (!(await mayRefresh(NAME, 'the package indexes as they are', 'apk'))) return;
  const argv = elevated(['apk', 'update', '--quiet']);
  const result = await run(argv);
  if (result.code === 0) return;
  const error = failure(argv, result);
  if (error.code === 'TEMPORARY_FAILURE') throw error;
  process.stderr.write(`apk update failed, estimating from the package indexes as they are: ${error.details ?? error.message}\n`);
}

async function estimate() {
  progress(0, 'refreshing package indexes');
  await refreshIndexes();
  progress(50, "apk version -l '<'");
  const argv = ['apk', 'version', '-l', '<'];
  const result = await run(argv);
  if (result.code !== 0) throw failure(argv, result);
  const packages = parseVersionList(result.stdout);
  progress(100, `${packages.length} packages to update`);
  return systemEstimate(packages, { runtimes: RUNTIMES, reboot: REBOOT_PACKAGES });
}

async function update() {
  progress(0, 'apk upgrade');
  const argv = elevated(['apk', 'upgrade', ...UNATTENDED]);
  const updated = [];
  // `(2/5) Upgrading musl (1.2.4-r2 -> 1.2.4-r3)`; new dependencies show as `Installing name (version)`.
  const onLine = (line) => {
    const match = /^\((\d+)\/(\d+)\) (Upgrading|Installing) (\S+) \((?:(\S+) -> )?(\S+)\)/.exec(line.trim());
    if (!match) return;
    const [, current, total, , name, from, to] = match;
    updated.push({ name, ...(from ? { from } : {}), to });
    progress((100 * Number(current)) / Number(total), `installing ${name}`, { current: Number(current), total: Number(total) });
  };
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0) throw failure(argv, result);
  progress(100, `${updated.length} packages updated`);
  return {
    packages_updated: updated,
    package_count: updated.length,
    requires_reboot: updated.some((entry) => REBOOT_PACKAGES.test(entry.name)),
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('apk', STATIC_MUTEXES),
  estimate,
  canSeparateDownload: false,
  update,
});
