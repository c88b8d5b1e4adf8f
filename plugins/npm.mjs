#!/usr/bin/env node
// upkeep plugin for npm's global packages.
//
// `npm outdated -g --json` finds them; each is then installed at exactly the
// latest version the estimate saw, `npm install -g <name>@<version>` (not
// `npm update -g`, which keeps to semver ranges that global packages do not
// have). npm itself goes last, so a broken npm upgrade cannot stop the others.
import { commandFailed, compareVersions, definePlugin, elevated, estimatePackages, folderNeedsRoot, loadState, plannedUpdate, PluginError, programFound, run, setting, updateEach, which } from './lib/plugin.mjs';

const NAME = 'npm';
const NETWORK = /ENETUNREACH|EHOSTUNREACH|network request .* failed|This is a problem related to network connectivity/i;

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

const VERSION = /^\d+\.\d+\.\d+/;

/**
 * `npm outdated -g --json`: {name: {current, wanted, latest, dependent, location}}.
 * It exits 1 whenever something is outdated, so the JSON decides; a failure
 * prints {"error": {code, summary, detail}} on stdout instead.
 */
async function outdated() {
  const argv = ['npm', 'outdated', '-g', '--json'];
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120) });
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

/** The global node_modules folder needs root when it belongs to root (npm from apt). */
const requiresSudo = () => folderNeedsRoot(['npm', 'root', '-g']);

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  if (packages.length === 0) return { packages_updated: [], package_count: 0, message: 'no global npm package is outdated' };
  // Under sudo, PATH is sudo's secure_path: name the npm found here.
  const npm = (await requiresSudo()) ? elevated([which('npm')]) : ['npm'];
  return updateEach(packages, {
    describe: (entry) => `npm install -g ${entry.name}@${entry.new_version}`,
    install: async (entry) => {
      const argv = [...npm, 'install', '-g', `${entry.name}@${entry.new_version}`];
      const result = await run(argv, { echo: true });
      return result.code === 0 ? plannedUpdate(entry) : failure(argv, result);
    },
    finished: 'global packages updated',
  });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('npm'),
  estimate: () => estimatePackages(outdated, { start: 'npm outdated -g', found: 'global packages to update' }),
  update,
  canSeparateDownload: false,
  requiresSudo,
  sudoProgramsPaths: () => [which('npm')].filter(Boolean),
});
