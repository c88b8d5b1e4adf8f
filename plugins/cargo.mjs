#!/usr/bin/env node
// upkeep plugin for crates installed with `cargo install`.
//
// `cargo install --list` names them (`ripgrep v14.1.0:`, then the binaries
// indented). The latest versions come from cargo-update's
// `cargo install-update -l` when it is installed (one registry pass, and it
// upgrades keeping each crate's features), else from `cargo search <crate>`
// crate by crate. Crates installed from git or a local path have no registry
// version and are left alone.
import { spawn } from 'node:child_process';
import { commandFailed, definePlugin, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'cargo';
// cargo's own network failures ("spurious network error" is its retry notice).
const NETWORK = /spurious network error|failed to download from|Couldn't resolve host|failed to query replaced source registry/i;

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

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  const details = text.trim().split('\n').slice(-5).join('\n');
  // cargo waits for its package cache lock ("Blocking waiting for file lock"): no lock failure to tell apart.
  if (NETWORK.test(text)) return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the registry`, { details, transient: true });
  return commandFailed(argv, result);
}

/** -1, 0 or 1 for two versions such as 1.2.3 and 1.10.0-beta.1 (a release is newer than its pre-releases). */
function compareVersions(left, right) {
  const split = (version) => {
    const [release, ...rest] = version.replace(/^v/, '').split('-');
    return { numbers: release.split('.').map((part) => Number.parseInt(part, 10) || 0), pre: rest.join('-') };
  };
  const a = split(left);
  const b = split(right);
  for (let index = 0; index < Math.max(a.numbers.length, b.numbers.length); index++) {
    const difference = (a.numbers[index] ?? 0) - (b.numbers[index] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  if (a.pre === b.pre) return 0;
  if (!a.pre || !b.pre) return a.pre ? -1 : 1;
  return a.pre < b.pre ? -1 : 1;
}

const hasCargoUpdate = () => Boolean(which('cargo-install-update'));
const timeout = () => setting(NAME, 'query_timeout', 120);

/** `cargo install --list`: `name vX.Y.Z:` or `name vX.Y.Z (source):`, then indented binaries. */
async function installed() {
  const argv = ['cargo', 'install', '--list'];
  const result = await query(argv, 60);
  if (result.code !== 0) throw failure(argv, result);
  const crates = [];
  for (const line of result.stdout.split('\n')) {
    const match = /^(\S+) v(\S+?)( \(.*\))?:$/.exec(line);
    // A source in parentheses is a git repository or a local path: no registry knows it.
    if (match && !match[3]) crates.push({ name: match[1], version: match[2] });
  }
  return crates;
}

/** `cargo install-update -l`: a table `Package  Installed  Latest  Needs update` with rows `ripgrep  v14.1.0  v14.1.1  Yes`. */
async function latestFromCargoUpdate() {
  const argv = ['cargo', 'install-update', '-l'];
  const result = await query(argv, timeout());
  if (result.code !== 0) throw failure(argv, result);
  const latest = new Map();
  for (const line of result.stdout.split('\n')) {
    const match = /^(\S+)\s+v(\S+)\s+v(\S+)\s+(Yes|No)\s*$/.exec(line.trim());
    if (match) latest.set(match[1], match[3]);
  }
  return latest;
}

/** `cargo search <crate> --limit 1`: `ripgrep = "14.1.1"    # description`; the best match may be another crate. */
async function latestFromSearch(crate) {
  const argv = ['cargo', 'search', crate, '--limit', '1'];
  const result = await query(argv, timeout());
  if (result.code !== 0) throw failure(argv, result);
  const match = /^(\S+) = "([^"]+)"/m.exec(result.stdout);
  if (!match || match[1] !== crate) {
    process.stderr.write(`cargo search does not find ${crate} on the registry: left as it is\n`);
    return null;
  }
  return match[2];
}

async function outdated() {
  const crates = await installed();
  if (crates.length === 0) return [];
  const cargoUpdate = hasCargoUpdate() ? await latestFromCargoUpdate() : null;
  const packages = [];
  for (const [index, crate] of crates.entries()) {
    if (!cargoUpdate) progress((100 * index) / crates.length, `cargo search ${crate.name}`, { current: index, total: crates.length });
    const latest = cargoUpdate ? cargoUpdate.get(crate.name) : await latestFromSearch(crate.name);
    if (latest && compareVersions(latest, crate.version) > 0) packages.push({ name: crate.name, current_version: crate.version, new_version: latest });
  }
  return packages;
}

async function estimate() {
  progress(0, 'cargo install --list');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} crates to upgrade`);
  return { packages_to_update: packages };
}

/** cargo-update builds the crates it was given, keeping the features each was installed with. */
async function updateWithCargoUpdate(packages) {
  const names = packages.map((entry) => entry.name);
  const argv = ['cargo', 'install-update', ...names];
  let started = 0;
  const result = await run(argv, {
    echo: true,
    // cargo install prints `  Installing ripgrep v14.1.1` as each build begins.
    onLine: (line) => {
      const match = /^\s*Installing (\S+) v/.exec(line);
      if (match && names.includes(match[1])) progress((100 * started++) / names.length, `building ${match[1]}`, { current: started, total: names.length });
    },
  });
  if (result.code !== 0) throw failure(argv, result);
  return packages.map((entry) => ({ name: entry.name, from: entry.current_version, to: entry.new_version }));
}

async function updateWithCargoInstall(packages) {
  const total = packages.length;
  const updated = [];
  const failures = [];
  for (const [index, entry] of packages.entries()) {
    progress((100 * index) / total, `building ${entry.name} ${entry.new_version}`, { current: index, total });
    // --locked builds with the crate's own Cargo.lock, the dependency versions its authors tested.
    const argv = ['cargo', 'install', '--locked', '--version', entry.new_version, entry.name];
    const result = await run(argv, { echo: true });
    if (result.code === 0) updated.push({ name: entry.name, from: entry.current_version, to: entry.new_version });
    else failures.push(failure(argv, result));
  }
  if (failures.length > 0) throw summarize(failures, updated);
  return updated;
}

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  const total = packages.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'every installed crate is up to date' };
  progress(0, `upgrading ${total} crates`, { current: 0, total });
  const updated = hasCargoUpdate() ? await updateWithCargoUpdate(packages) : await updateWithCargoInstall(packages);
  progress(100, `${updated.length} crates upgraded`, { current: total, total });
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
  isApplicable: () => (which('cargo') ? { applicable: true } : { applicable: false, reason: 'cargo not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
