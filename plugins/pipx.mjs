#!/usr/bin/env node
// upkeep plugin for pipx: Python applications, each in its own venv.
//
// pipx has no "outdated" command. `pipx list --json` names the venvs and the
// version of each one's main package; `pip list --outdated` run inside each
// venv (`pipx runpip`) asks the index for newer ones. Update upgrades the
// venvs the estimate found (`pipx upgrade <venv>`), or all of them
// (`pipx upgrade-all`) when no estimate ran in this run folder.
import { spawn } from 'node:child_process';
import { commandFailed, definePlugin, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'pipx';
// pip does not fail when an index cannot be reached: it warns, retries, and
// leaves out what it could not look up. Its warnings are the only sign.
const NETWORK = /NewConnectionError|Failed to establish a new connection|Could not fetch URL|Max retries exceeded|ConnectTimeoutError|ReadTimeoutError/;

/**
 * Runs a read-only query with a deadline. plugin.mjs's run() has none, and a
 * registry that never answers must fail the estimate as a transient error
 * (upkeep retries it) instead of holding it until upkeep kills the plugin.
 */
function query(argv, seconds, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let timedOut = false;
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // A grandchild may hold the pipes open; upkeep ends the plugin's whole process group when it exits.
      child.stdout.destroy();
      child.stderr.destroy();
    }, seconds * 1000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new PluginError('COMMAND_NOT_FOUND', `cannot run ${argv[0]}: ${error.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new PluginError('TIMEOUT', `${argv.join(' ')} gave no answer within ${seconds} seconds`, { transient: true }));
      else resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

function networkError(argv, result) {
  const lines = result.stderr.split('\n').filter((line) => NETWORK.test(line));
  return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the package index`, { details: lines.slice(-3).join('\n'), transient: true });
}

/** PyPI's rule for comparing names: case and runs of -, _ and . do not matter. */
const canonical = (name) => name.toLowerCase().replace(/[-_.]+/g, '-');

/** `pipx list --json`: {pipx_spec_version, venvs: {venv: {metadata: {main_package: {package, package_version}}}}}. */
async function venvs() {
  const argv = ['pipx', 'list', '--json'];
  const result = await query(argv, 60);
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
  const result = await query(argv, setting(NAME, 'query_timeout', 120));
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

async function estimate() {
  progress(0, 'pipx list');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} applications to upgrade`);
  return { packages_to_update: packages };
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
  const total = planned.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'every pipx application is up to date' };
  const updated = [];
  const failures = [];
  for (const [index, entry] of planned.entries()) {
    progress((100 * index) / total, `pipx upgrade ${entry.name}`, { current: index, total });
    const argv = ['pipx', 'upgrade', entry.name];
    const result = await run(argv, { echo: true });
    if (result.code !== 0) {
      failures.push(commandFailed(argv, result));
      continue;
    }
    const [done] = upgradedIn(result.stdout);
    if (done) updated.push({ name: entry.name, from: done.from, to: done.to });
    // Pinned or already upgraded meanwhile: nothing changed, and that is no failure.
    else if (!/is already at latest version/.test(result.stdout)) updated.push({ name: entry.name, from: entry.current_version, to: entry.new_version });
  }
  progress(100, `${updated.length} of ${total} applications upgraded`, { current: total, total });
  if (failures.length > 0) throw summarize(failures, updated);
  return { packages_updated: updated, package_count: updated.length };
}

/** One error for several failed installs: transient only when every one of them was. */
function summarize(failures, updated) {
  const transient = failures.every((error) => error.transient);
  const details = [
    ...failures.map((error) => `${error.message}${error.details ? `: ${error.details}` : ''}`),
    ...(updated.length > 0 ? [`updated anyway: ${updated.map((entry) => entry.name).join(', ')}`] : []),
  ].join('\n');
  const code = transient ? failures[0].code : 'COMMAND_FAILED';
  return new PluginError(code, `${failures.length} of ${failures.length + updated.length} global packages failed to update`, { details, transient });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => (which('pipx') ? { applicable: true } : { applicable: false, reason: 'pipx not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
