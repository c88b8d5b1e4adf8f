#!/usr/bin/env node
// upkeep plugin for pnpm's global packages.
//
// `pnpm outdated -g --format json` finds them; each is then added again at
// exactly the latest version the estimate saw, `pnpm add -g <name>@<version>`
// (`pnpm update -g` would keep to the ranges in the global package.json).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { commandFailed, definePlugin, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'pnpm';
const NETWORK = /ERR_PNPM_META_FETCH_FAIL|ENETUNREACH|EHOSTUNREACH/;
const VERSION = /^\d+\.\d+\.\d+/;

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
  if (NETWORK.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the registry`, { details: `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-5).join('\n'), transient: true });
  }
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

/**
 * pnpm finds its global folder through PNPM_HOME, which `pnpm setup` puts in
 * the shell's profile and upkeep does not pass on to plugins: without it,
 * `pnpm add -g` stops with ERR_PNPM_NO_GLOBAL_BIN_DIR. Fall back to the
 * folder `pnpm setup` uses, when it exists.
 */
function pnpmEnvironment() {
  if (process.env.PNPM_HOME) return {};
  const home = process.platform === 'darwin' ? join(homedir(), 'Library', 'pnpm') : join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'pnpm');
  return existsSync(home) ? { PNPM_HOME: home } : {};
}

/**
 * `pnpm outdated -g --format json`: {name: {current, latest, wanted,
 * isDeprecated, dependencyType}}; exit code 1 when something is outdated.
 */
async function outdated() {
  const argv = ['pnpm', 'outdated', '-g', '--format', 'json'];
  const result = await query(argv, setting(NAME, 'query_timeout', 120), pnpmEnvironment());
  let report;
  try {
    report = result.stdout.trim() === '' ? {} : JSON.parse(result.stdout);
  } catch {
    throw failure(argv, result);
  }
  if (result.code !== 0 && result.code !== 1) throw failure(argv, result);
  return Object.entries(report)
    .filter(([, entry]) => VERSION.test(entry.latest ?? '') && (!entry.current || compareVersions(entry.latest, entry.current) > 0))
    .map(([name, entry]) => ({ name, current_version: entry.current ?? null, new_version: entry.latest }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function estimate() {
  progress(0, 'pnpm outdated -g');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} global packages to update`);
  return { packages_to_update: packages };
}

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  const total = packages.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'no global pnpm package is outdated' };
  const updated = [];
  const failures = [];
  for (const [index, entry] of packages.entries()) {
    progress((100 * index) / total, `pnpm add -g ${entry.name}@${entry.new_version}`, { current: index, total });
    const argv = ['pnpm', 'add', '-g', `${entry.name}@${entry.new_version}`];
    const result = await run(argv, { echo: true, env: pnpmEnvironment() });
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
  isApplicable: () => (which('pnpm') ? { applicable: true } : { applicable: false, reason: 'pnpm not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
