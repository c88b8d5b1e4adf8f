#!/usr/bin/env node
// upkeep plugin for crates installed with `cargo install`.
//
// `cargo install --list` names them (`ripgrep v14.1.0:`, then the binaries
// indented). The latest versions come from cargo-update's
// `cargo install-update -l` when it is installed (one registry pass, and it
// upgrades keeping each crate's features), else from `cargo search <crate>`
// crate by crate. Crates installed from git or a local path have no registry
// version and are left alone.
import { commandFailed, compareVersions, definePlugin, estimatePackages, loadState, plannedUpdate, PluginError, programFound, progress, run, setting, updateEach, which } from './lib/plugin.mjs';

const NAME = 'cargo';
// cargo's own network failures ("spurious network error" is its retry notice).
const NETWORK = /spurious network error|failed to download from|Couldn't resolve host|failed to query replaced source registry/i;

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  const details = text.trim().split('\n').slice(-5).join('\n');
  // cargo waits for its package cache lock ("Blocking waiting for file lock"): no lock failure to tell apart.
  if (NETWORK.test(text)) return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the registry`, { details, transient: true });
  return commandFailed(argv, result);
}

const hasCargoUpdate = () => Boolean(which('cargo-install-update'));
const timeout = () => setting(NAME, 'query_timeout', 120);

/** `cargo install --list`: `name vX.Y.Z:` or `name vX.Y.Z (source):`, then indented binaries. */
async function installed() {
  const argv = ['cargo', 'install', '--list'];
  const result = await run(argv, { timeout: 60 });
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
  const result = await run(argv, { timeout: timeout() });
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
  const result = await run(argv, { timeout: timeout() });
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
  return packages.map(plannedUpdate);
}

async function updateWithCargoInstall(packages) {
  const report = await updateEach(packages, {
    describe: (entry) => `building ${entry.name} ${entry.new_version}`,
    install: async (entry) => {
      // --locked builds with the crate's own Cargo.lock, the dependency versions its authors tested.
      const argv = ['cargo', 'install', '--locked', '--version', entry.new_version, entry.name];
      const result = await run(argv, { echo: true });
      return result.code === 0 ? plannedUpdate(entry) : failure(argv, result);
    },
  });
  return report.packages_updated;
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

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('cargo'),
  estimate: () => estimatePackages(outdated, { start: 'cargo install --list', found: 'crates to upgrade' }),
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
