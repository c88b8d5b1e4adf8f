#!/usr/bin/env node
// upkeep plugin for uv tools (`uv tool install`).
//
// `uv tool list --outdated` (uv 0.10.10 and later) prints only the outdated
// tools, `ruff v0.6.9 [latest: 0.7.0]`, each followed by its executables
// (`- ruff`). Update upgrades the tools the estimate found
// (`uv tool upgrade <name>`), or all of them (`uv tool upgrade --all`) when no
// estimate ran in this run folder. uv keeps to the version constraints each
// tool was installed with, so a pinned tool may stay where it is.
import { spawn } from 'node:child_process';
import { commandFailed, definePlugin, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'uv';
// uv's network errors end in reqwest's chain of causes.
const NETWORK = /dns error|error sending request|failed to lookup address|Request failed after \d+ retries/i;

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
  if (NETWORK.test(result.stderr)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the package index`, { details: result.stderr.trim().split('\n').slice(-5).join('\n'), transient: true });
  }
  return commandFailed(argv, result);
}

/** `ruff v0.6.9 [latest: 0.7.0]` lines; executables (`- ruff`) and notes are skipped. */
function parseOutdated(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) v(\S+)(?: \[[^\]]*\])*? \[latest: v?([^\]\s]+)\]/.exec(line.trim());
    if (match) packages.push({ name: match[1], current_version: match[2], new_version: match[3] });
  }
  return packages;
}

async function outdated() {
  const argv = ['uv', 'tool', 'list', '--outdated'];
  const result = await query(argv, setting(NAME, 'query_timeout', 120));
  if (result.code !== 0) {
    if (/unexpected argument '--outdated'/.test(result.stderr)) {
      const version = (await query(['uv', '--version'], 10)).stdout.trim();
      throw new PluginError('UNSUPPORTED_VERSION', `${version || 'this uv'} cannot list outdated tools: \`uv tool list --outdated\` needs uv 0.10.10 or later`, {
        details: 'update uv itself (`uv self update`, or the way it was installed)',
      });
    }
    throw failure(argv, result);
  }
  // "No tools installed" goes to stderr, with exit code 0.
  return parseOutdated(result.stdout);
}

async function estimate() {
  progress(0, 'uv tool list --outdated');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} tools to upgrade`);
  return { packages_to_update: packages };
}

/** `Updated ruff v0.6.9 -> v0.7.0`, one line per upgraded tool (on stderr). */
function upgradedIn(output) {
  return [...output.matchAll(/^Updated (\S+) v(\S+) -> v(\S+)/gm)].map(([, name, from, to]) => ({ name, from, to }));
}

async function update() {
  const planned = loadState('estimate')?.packages;
  if (!planned) {
    progress(0, 'uv tool upgrade --all');
    const argv = ['uv', 'tool', 'upgrade', '--all'];
    const result = await run(argv, { echo: true });
    if (result.code !== 0) throw failure(argv, result);
    const updated = upgradedIn(`${result.stderr}\n${result.stdout}`);
    progress(100, `${updated.length} tools upgraded`);
    return { packages_updated: updated, package_count: updated.length };
  }
  const total = planned.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'every uv tool is up to date' };
  const updated = [];
  const failures = [];
  for (const [index, entry] of planned.entries()) {
    progress((100 * index) / total, `uv tool upgrade ${entry.name}`, { current: index, total });
    const argv = ['uv', 'tool', 'upgrade', entry.name];
    const result = await run(argv, { echo: true });
    if (result.code !== 0) {
      failures.push(failure(argv, result));
      continue;
    }
    const [done] = upgradedIn(`${result.stderr}\n${result.stdout}`);
    if (done) updated.push({ name: entry.name, from: done.from, to: done.to });
  }
  progress(100, `${updated.length} of ${total} tools upgraded`, { current: total, total });
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
  isApplicable: () => (which('uv') ? { applicable: true } : { applicable: false, reason: 'uv not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
