#!/usr/bin/env node
// upkeep plugin for pipx: Python applications, each in its own venv.
//
// pipx has no "outdated" command. `pipx list --json` names the venvs and the
// version of each one's main package; `pip list --outdated` run inside each
// venv (`pipx runpip`) asks the index for newer ones. Update upgrades the
// venvs the estimate found (`pipx upgrade <venv>`), or all of them
// (`pipx upgrade-all`) when no estimate ran in this run folder.
import { commandFailed, definePlugin, estimatePackages, loadState, plannedUpdate, PluginError, programFound, progress, run, setting, updateEach } from './lib/plugin.mjs';

const NAME = 'pipx';
// pip does not fail when an index cannot be reached: it warns, retries, and
// leaves out what it could not look up. Its warnings are the only sign.
const NETWORK = /NewConnectionError|Failed to establish a new connection|Could not fetch URL|Max retries exceeded|ConnectTimeoutError|ReadTimeoutError/;

function networkError(argv, result) {
  const lines = result.stderr.split('\n').filter((line) => NETWORK.test(line));
  return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the package index`, { details: lines.slice(-3).join('\n'), transient: true });
}

/** PyPI's rule for comparing names: case and runs of -, _ and . do not matter. */
const canonical = (name) => name.toLowerCase().replace(/[-_.]+/g, '-');

/** `pipx list --json`: {pipx_spec_version, venvs: {venv: {metadata: {main_package: {package, package_version}}}}}. */
async function venvs() {
  const argv = ['pipx', 'list', '--json'];
  const result = await run(argv, { timeout: 60 });
  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw commandFailed(argv, result);
  }
  // Exit code 1 flags venvs with problems (a Python that went away); the JSON still lists the rest.
  return Object.entries(report.venvs ?? {})
    .map(([venv, entry]) => ({ venv, main: entry?.metadata?.main_package }))
    .filter(({ main }) => main?.package && main.package_version)
    .map(({ venv, main }) => ({ venv, package: main.package, version: main.package_version }));
}

/** `pip list --outdated --format json` inside one venv: [{name, version, latest_version, latest_filetype}]. */
async function latestOf(venv) {
  const argv = ['pipx', 'runpip', venv.venv, 'list', '--outdated', '--format', 'json', '--disable-pip-version-check', '--retries', '1', '--timeout', '15'];
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120) });
  const unreachable = NETWORK.test(result.stderr);
  let report;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    throw unreachable ? networkError(argv, result) : commandFailed(argv, result);
  }
  if (result.code !== 0) throw unreachable ? networkError(argv, result) : commandFailed(argv, result);
  const main = report.find((entry) => canonical(entry.name) === canonical(venv.package));
  // Absent from the list means up to date, unless an index could not be asked: then nobody knows.
  if (!main && unreachable) throw networkError(argv, result);
  return main?.latest_version ?? null;
}

async function outdated() {
  const installed = await venvs();
  const packages = [];
  for (const [index, venv] of installed.entries()) {
    progress((100 * index) / Math.max(installed.length, 1), `checking ${venv.venv}`, { current: index, total: installed.length });
    const latest = await latestOf(venv);
    if (latest) packages.push({ name: venv.venv, current_version: venv.version, new_version: latest });
  }
  return packages;
}

/** `upgraded package black from 24.1.0 to 24.2.0 (location: ...)`, wrapped to the terminal's width. */
function upgradedIn(output) {
  return [...output.matchAll(/upgraded package (\S+) from (\S+) to\s+(\S+)/g)].map(([, name, from, to]) => ({ name, from, to }));
}

async function update() {
  const planned = loadState('estimate')?.packages;
  if (!planned) {
    progress(0, 'pipx upgrade-all');
    const argv = ['pipx', 'upgrade-all'];
    const result = await run(argv, { echo: true });
    if (result.code !== 0) throw commandFailed(argv, result);
    const updated = upgradedIn(result.stdout);
    progress(100, `${updated.length} applications upgraded`);
    return { packages_updated: updated, package_count: updated.length };
  }
  if (planned.length === 0) return { packages_updated: [], package_count: 0, message: 'every pipx application is up to date' };
  return updateEach(planned, {
    describe: (entry) => `pipx upgrade ${entry.name}`,
    install: async (entry) => {
      const argv = ['pipx', 'upgrade', entry.name];
      const result = await run(argv, { echo: true });
      if (result.code !== 0) return commandFailed(argv, result);
      const [done] = upgradedIn(result.stdout);
      if (done) return { name: entry.name, from: done.from, to: done.to };
      // Pinned or already upgraded meanwhile: nothing changed, and that is no failure.
      if (/is already at latest version/.test(result.stdout)) return null;
      return plannedUpdate(entry);
    },
    finished: 'applications upgraded',
  });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('pipx'),
  estimate: () => estimatePackages(outdated, { start: 'pipx list', found: 'applications to upgrade' }),
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
