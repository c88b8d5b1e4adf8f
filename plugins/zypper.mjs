#!/usr/bin/env node
// upkeep plugin for zypper (openSUSE, SUSE Linux Enterprise).
//
// `zypper --xmlout list-updates` gives each pending package with its
// installed edition; security patches come from `list-patches --category
// security`. zypper's informational exit codes (102: reboot needed, 103:
// restart zypper, 106: some repositories skipped, 107: an rpm scriptlet
// failed) still mean the packages were installed.
import { commandFailed, definePlugin, elevated, loadState, mayRefresh, PluginError, progress, run, setting, systemEstimate, systemManager } from './lib/plugin.mjs';

const NAME = 'zypper';
const STATIC_MUTEXES = { estimate: ['pkgmgr:zypper'], download: ['pkgmgr:zypper'], update: ['pkgmgr:zypper', 'pkgmgr:rpm'] };
const BASE = ['zypper', '--non-interactive'];
const EXIT_LOCKED = 7;
const EXIT_REBOOT_NEEDED = 102;
const EXIT_DONE_WITH_NOTICE = new Set([EXIT_REBOOT_NEEDED, 103, 106, 107]);
const REBOOT_PACKAGES = /^(kernel-(default|preempt|rt|longterm|firmware.*)|glibc|systemd)$/;
const RUNTIMES = [
  ['python', /^python3/],
  ['node', /^nodejs/],
  ['rust', /^(rust|cargo)/],
  ['go', /^go(\d|$)/],
  ['ruby', /^ruby/],
];

const action = () => (setting(NAME, 'dist_upgrade', false) ? 'dist-upgrade' : 'update');

function failure(argv, result) {
  if (result.code === EXIT_LOCKED) {
    return new PluginError('TEMPORARY_FAILURE', 'zypper: system management is locked by another process', {
      details: result.stderr.trim() || result.stdout.trim(),
      transient: true,
    });
  }
  return commandFailed(argv, result);
}

const unescape = (text) =>
  text.replace(/&(lt|gt|quot|apos|amp);/g, (_, entity) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[entity]);

/** The attributes of each `<update ...>` element of zypper's XML output. */
function updateElements(xml) {
  return [...xml.matchAll(/<update\s([^>]*)>/g)].map(([, text]) =>
    Object.fromEntries([...text.matchAll(/([\w-]+)="([^"]*)"/g)].map(([, key, value]) => [key, unescape(value)])),
  );
}

async function refreshRepositories() {
  if (!(await mayRefresh(NAME, 'the repository data as it is', 'zypper'))) return;
  const argv = elevated([...BASE, '--quiet', 'refresh']);
  const result = await run(argv);
  if (result.code === 0) return;
  if (result.code === EXIT_LOCKED) throw failure(argv, result);
  process.stderr.write(`zypper refresh failed, estimating from the repository data as it is: ${result.stderr.trim()}\n`);
}

async function estimate() {
  progress(0, 'refreshing repositories');
  await refreshRepositories();
  progress(40, 'zypper list-updates');
  const listArgv = [...BASE, '--xmlout', 'list-updates'];
  const [listing, patches] = await Promise.all([run(listArgv), run([...BASE, '--xmlout', 'list-patches', '--category', 'security'])]);
  if (listing.code !== 0) throw failure(listArgv, listing);
  const packages = updateElements(listing.stdout)
    .filter((element) => element.kind === 'package')
    .map((element) => ({ name: element.name, current_version: element['edition-old'] ?? null, new_version: element.edition }));
  // Older zypper lists only needed patches and has no status attribute.
  const neededSecurityPatches =
    patches.code === 0 ? updateElements(patches.stdout).filter((element) => element.kind === 'patch' && (element.status ?? 'needed') === 'needed') : [];
  progress(100, `${packages.length} packages to update`);
  return systemEstimate(packages, { runtimes: RUNTIMES, reboot: REBOOT_PACKAGES }, { security_updates: neededSecurityPatches.length > 0 });
}

/** `(3/12) Installing: curl-8.0.1-150400.5.32.1.x86_64 ...[done]`. */
function tracker() {
  const installed = [];
  const onLine = (line) => {
    // The dots of the progress bar may follow the name directly.
    const match = /^\((\d+)\/(\d+)\) Installing: (\S+?)\.*(?:\s|\[|$)/.exec(line.trim());
    if (!match) return;
    const [, current, total, nevra] = match;
    installed.push(nevra);
    progress((100 * Number(current)) / Number(total), `installing ${nevra}`, { current: Number(current), total: Number(total) });
  };
  return { installed, onLine };
}

async function download() {
  progress(0, `zypper ${action()} --download-only`);
  const argv = elevated([...BASE, action(), '--auto-agree-with-licenses', '--download-only']);
  const result = await run(argv, { echo: true });
  if (result.code !== 0 && !EXIT_DONE_WITH_NOTICE.has(result.code)) throw failure(argv, result);
  progress(100, 'downloaded');
  return { package_count: (loadState('estimate')?.packages_to_update ?? []).length };
}

async function update() {
  const estimated = loadState('estimate');
  progress(0, `zypper ${action()}`);
  const argv = elevated([...BASE, action(), '--auto-agree-with-licenses']);
  const { installed, onLine } = tracker();
  const result = await run(argv, { echo: true, onLine });
  if (result.code !== 0 && !EXIT_DONE_WITH_NOTICE.has(result.code)) throw failure(argv, result);
  if (EXIT_DONE_WITH_NOTICE.has(result.code) && result.code !== EXIT_REBOOT_NEEDED) {
    process.stderr.write(`zypper finished with notice code ${result.code}: read its output above\n`);
  }
  const known = new Map((estimated?.packages_to_update ?? []).map((entry) => [entry.name, entry.current_version]));
  const updated = installed.map((nevra) => {
    // name-version-release.arch
    const match = /^(.+)-([^-]+-[^-]+)\.[^.]+$/.exec(nevra);
    const name = match?.[1] ?? nevra;
    const from = known.get(name);
    return { name, ...(from ? { from } : {}), ...(match ? { to: match[2] } : {}) };
  });
  progress(100, `${updated.length} packages updated`);
  return {
    packages_updated: updated,
    package_count: updated.length,
    requires_reboot: result.code === EXIT_REBOOT_NEEDED || updated.some((entry) => REBOOT_PACKAGES.test(entry.name)),
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  ...systemManager('zypper', STATIC_MUTEXES),
  estimate,
  canSeparateDownload: true,
  download,
  update,
});
