#!/usr/bin/env node
// upkeep plugin for uv tools (`uv tool install`).
//
// `uv tool list --outdated` (uv 0.10.10 and later) prints only the outdated
// tools, `ruff v0.6.9 [latest: 0.7.0]`, each followed by its executables
// (`- ruff`). Update upgrades the tools the estimate found
// (`uv tool upgrade <name>`), or all of them (`uv tool upgrade --all`) when no
// estimate ran in this run folder. uv keeps to the version constraints each
// tool was installed with, so a pinned tool may stay where it is.
import { commandFailed, definePlugin, estimatePackages, loadState, PluginError, programFound, progress, run, setting, updateEach } from './lib/plugin.mjs';

const NAME = 'uv';
// uv's network errors end in reqwest's chain of causes.
const NETWORK = /dns error|error sending request|failed to lookup address|Request failed after \d+ retries/i;

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
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120) });
  if (result.code !== 0) {
    if (/unexpected argument '--outdated'/.test(result.stderr)) {
      const version = (await run(['uv', '--version'], { timeout: 10 })).stdout.trim();
      throw new PluginError('UNSUPPORTED_VERSION', `${version || 'this uv'} cannot list outdated tools: \`uv tool list --outdated\` needs uv 0.10.10 or later`, {
        details: 'update uv itself (`uv self update`, or the way it was installed)',
      });
    }
    throw failure(argv, result);
  }
  // "No tools installed" goes to stderr, with exit code 0.
  return parseOutdated(result.stdout);
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
  if (planned.length === 0) return { packages_updated: [], package_count: 0, message: 'every uv tool is up to date' };
  return updateEach(planned, {
    describe: (entry) => `uv tool upgrade ${entry.name}`,
    install: async (entry) => {
      const argv = ['uv', 'tool', 'upgrade', entry.name];
      const result = await run(argv, { echo: true });
      if (result.code !== 0) return failure(argv, result);
      const [done] = upgradedIn(`${result.stderr}\n${result.stdout}`);
      return done ? { name: entry.name, from: done.from, to: done.to } : null;
    },
    finished: 'tools upgraded',
  });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('uv'),
  estimate: () => estimatePackages(outdated, { start: 'uv tool list --outdated', found: 'tools to upgrade' }),
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
