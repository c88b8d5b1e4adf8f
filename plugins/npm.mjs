#!/usr/bin/env node
// upkeep plugin for npm's global packages.
//
// `npm outdated -g --json` finds them; each is then installed at exactly the
// latest version the estimate saw, `npm install -g <name>@<version>` (not
// `npm update -g`, which keeps to semver ranges that global packages do not
// have). npm itself goes last, so a broken npm upgrade cannot stop the others.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { commandFailed, definePlugin, elevated, isRoot, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'npm';
const NETWORK = /ENETUNREACH|EHOSTUNREACH|network request .* failed|This is a problem related to network connectivity/i;

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
  // npm's first error lines (code, syscall, path, message) say more than its closing advice.
  const summary = result.stderr.split('\n').filter((line) => line.startsWith('npm error')).slice(0, 5).join('\n');
  if (NETWORK.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the registry`, { details: summary, transient: true });
  }
  const error = commandFailed(argv, result);
  if (summary && !error.transient) error.details = summary;
  return error;
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

const VERSION = /^\d+\.\d+\.\d+/;

/**
 * `npm outdated -g --json`: {name: {current, wanted, latest, dependent, location}}.
 * It exits 1 whenever something is outdated, so the JSON decides; a failure
 * prints {"error": {code, summary, detail}} on stdout instead.
 */
async function outdated() {
  const argv = ['npm', 'outdated', '-g', '--json'];
  const result = await query(argv, setting(NAME, 'query_timeout', 120));
  let report;
  try {
    report = result.stdout.trim() === '' ? {} : JSON.parse(result.stdout);
  } catch {
    throw failure(argv, result);
  }
  if (report.error || (result.code !== 0 && result.code !== 1)) throw failure(argv, result);
  return Object.entries(report)
    // Linked and git packages report no registry version ("linked", "git"): nothing to install.
    .filter(([, entry]) => VERSION.test(entry.latest ?? '') && (!entry.current || compareVersions(entry.latest, entry.current) > 0))
    .map(([name, entry]) => ({ name, current_version: entry.current ?? null, new_version: entry.latest }))
    .sort((a, b) => (a.name === 'npm') - (b.name === 'npm') || a.name.localeCompare(b.name));
}

async function estimate() {
  progress(0, 'npm outdated -g');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} global packages to update`);
  return { packages_to_update: packages };
}

/** The global node_modules folder; installing there needs root when it belongs to root (npm from apt). */
async function globalRootWritable() {
  const result = await query(['npm', 'root', '-g'], 30);
  const folder = result.stdout.trim();
  if (result.code !== 0 || !folder) return true;
  try {
    accessSync(folder, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function requiresSudo() {
  return !isRoot() && !(await globalRootWritable());
}

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  const total = packages.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'no global npm package is outdated' };
  // Under sudo, PATH is sudo's secure_path: name the npm found here.
  const npm = (await requiresSudo()) ? elevated([which('npm')]) : ['npm'];
  const updated = [];
  const failures = [];
  for (const [index, entry] of packages.entries()) {
    progress((100 * index) / total, `npm install -g ${entry.name}@${entry.new_version}`, { current: index, total });
    const argv = [...npm, 'install', '-g', `${entry.name}@${entry.new_version}`];
    const result = await run(argv, { echo: true });
    if (result.code === 0) updated.push({ name: entry.name, ...(entry.current_version ? { from: entry.current_version } : {}), to: entry.new_version });
    else failures.push(failure(argv, result));
  }
  progress(100, `${updated.length} of ${total} global packages updated`, { current: total, total });
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
  isApplicable: () => (which('npm') ? { applicable: true } : { applicable: false, reason: 'npm not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo,
  sudoProgramsPaths: () => [which('npm')].filter(Boolean),
});
