#!/usr/bin/env node
// upkeep plugin for RubyGems.
//
// `gem outdated` prints `rake (13.0.6 < 13.2.1)` for each outdated gem;
// `gem update --no-document <gems>` installs the new versions beside the old
// ones. Gems in a folder the user cannot write (the system Ruby's) are
// updated through sudo.
import { commandFailed, definePlugin, elevated, estimatePackages, folderNeedsRoot, loadState, plannedUpdate, PluginError, programFound, progress, run, setting, which } from './lib/plugin.mjs';

const NAME = 'gem';
// RubyGems reports an unreachable index as a fetch error naming the URL.
const NETWORK = /Unable to download data from|Gem::RemoteFetcher::(UnknownHostError|FetchError)|SocketError|getaddrinfo|Name or service not known|no such name/i;

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  if (NETWORK.test(text)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the gem index`, { details: text.trim().split('\n').slice(-3).join('\n'), transient: true });
  }
  return commandFailed(argv, result);
}

/** `rake (13.0.6 < 13.2.1)` lines. */
function parseOutdated(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) \((\S+) < (\S+)\)$/.exec(line.trim());
    if (match) packages.push({ name: match[1], current_version: match[2], new_version: match[3] });
  }
  return packages;
}

async function outdated() {
  const argv = ['gem', 'outdated'];
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120) });
  // gem may print a fetch error and still exit 0 with an empty list.
  if (result.code !== 0 || NETWORK.test(result.stderr)) throw failure(argv, result);
  return parseOutdated(result.stdout);
}

/** The folder gems install into (GEM_HOME, else Ruby's default) needs root for a system Ruby. */
const requiresSudo = () => folderNeedsRoot(['gem', 'env', 'gemdir']);

/** `Gems updated: rake rubocop` closes a run that changed something (`Nothing to update` otherwise). */
function updatedNames(output) {
  const match = /^Gems updated: (.+)$/m.exec(output);
  return match ? match[1].split(/[\s,]+/).filter(Boolean) : [];
}

async function update() {
  const planned = loadState('estimate')?.packages ?? (await outdated());
  const total = planned.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'every gem is up to date' };
  // Under sudo, PATH is sudo's secure_path: name the gem found here.
  const gem = (await requiresSudo()) ? elevated([which('gem')]) : ['gem'];
  const argv = [...gem, 'update', '--no-document', ...planned.map((entry) => entry.name)];
  let started = 0;
  progress(0, `updating ${total} gems`, { current: 0, total });
  const result = await run(argv, {
    echo: true,
    // `Updating rake` begins each gem (`Updating installed gems` begins the run).
    onLine: (line) => {
      const match = /^Updating (\S+)$/.exec(line.trim());
      if (match && match[1] !== 'installed') progress((100 * started++) / total, `updating ${match[1]}`, { current: started, total });
    },
  });
  if (result.code !== 0) throw failure(argv, result);
  const names = new Set(updatedNames(result.stdout));
  const updated = planned.filter((entry) => names.has(entry.name)).map(plannedUpdate);
  progress(100, `${updated.length} gems updated`, { current: total, total });
  return { packages_updated: updated, package_count: updated.length };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('gem'),
  estimate: () => estimatePackages(outdated, { start: 'gem outdated', found: 'gems to update' }),
  update,
  canSeparateDownload: false,
  requiresSudo,
  sudoProgramsPaths: () => [which('gem')].filter(Boolean),
});
