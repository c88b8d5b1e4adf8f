#!/usr/bin/env node
// upkeep plugin for pnpm's global packages.
//
// `pnpm outdated -g --format json` finds them; each is then added again at
// exactly the latest version the estimate saw, `pnpm add -g <name>@<version>`
// (`pnpm update -g` would keep to the ranges in the global package.json).
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { commandFailed, compareVersions, definePlugin, estimatePackages, loadState, plannedUpdate, PluginError, programFound, run, setting, updateEach } from './lib/plugin.mjs';

const NAME = 'pnpm';
const NETWORK = /ERR_PNPM_META_FETCH_FAIL|ENETUNREACH|EHOSTUNREACH/;
const VERSION = /^\d+\.\d+\.\d+/;

function failure(argv, result) {
  if (NETWORK.test(`${result.stderr}\n${result.stdout}`)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the registry`, { details: `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-5).join('\n'), transient: true });
  }
  return commandFailed(argv, result);
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
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120), env: pnpmEnvironment() });
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

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  if (packages.length === 0) return { packages_updated: [], package_count: 0, message: 'no global pnpm package is outdated' };
  return updateEach(packages, {
    describe: (entry) => `pnpm add -g ${entry.name}@${entry.new_version}`,
    install: async (entry) => {
      const argv = ['pnpm', 'add', '-g', `${entry.name}@${entry.new_version}`];
      const result = await run(argv, { echo: true, env: pnpmEnvironment() });
      return result.code === 0 ? plannedUpdate(entry) : failure(argv, result);
    },
    finished: 'global packages updated',
  });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('pnpm'),
  estimate: () => estimatePackages(outdated, { start: 'pnpm outdated -g', found: 'global packages to update' }),
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
