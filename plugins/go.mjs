#!/usr/bin/env node
// upkeep plugin for programs installed with `go install`.
//
// They live in $GOBIN, else the first $GOPATH's bin folder (as `go env`
// reports them). `go version -m <folder>` reads the build information of
// every Go program there: the package path (`path`) and the module and
// version it was built from (`mod`). `go list -m -json <module>@latest` asks
// the module proxy for the newest version; update is
// `go install <path>@<that version>`.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { commandFailed, compareVersions, definePlugin, estimatePackages, loadState, plannedUpdate, PluginError, programFound, progress, run, setting, updateEach } from './lib/plugin.mjs';

const NAME = 'go';
// Go's network errors come from its HTTP client and resolver.
const NETWORK = /no such host|dial tcp|i\/o timeout|TLS handshake timeout|connection reset by peer|server misbehaving/i;

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  if (NETWORK.test(text)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the module proxy`, { details: text.trim().split('\n').slice(-3).join('\n'), transient: true });
  }
  return commandFailed(argv, result);
}

/** Where `go install` puts programs: GOBIN, else <first GOPATH entry>/bin. */
async function binFolder() {
  const argv = ['go', 'env', 'GOBIN', 'GOPATH'];
  const result = await run(argv, { timeout: 30 });
  if (result.code !== 0) throw commandFailed(argv, result);
  const [gobin = '', gopath = ''] = result.stdout.split('\n').map((line) => line.trim());
  if (gobin) return gobin;
  const first = gopath.split(delimiter).find(Boolean);
  return first ? join(first, 'bin') : null;
}

/**
 * `go version -m <folder>` walks the folder and prints, for each Go program:
 *   /root/go/bin/gopls: go1.22.5
 *   <tab>path<tab>golang.org/x/tools/gopls
 *   <tab>mod<tab>golang.org/x/tools/gopls<tab>v0.16.1<tab>h1:...
 * Programs built from a local checkout have the version `(devel)`: nothing to compare.
 */
function parseBuildInfo(text) {
  const programs = [];
  let current = null;
  for (const line of text.split('\n')) {
    const header = /^(\S.*): go\S+$/.exec(line);
    if (header) {
      current = { binary: header[1], path: null, module: null, version: null };
      programs.push(current);
      continue;
    }
    if (!current || line[0] !== '\t') continue;
    const fields = line.split('\t').filter(Boolean);
    if (fields[0] === 'path') current.path = fields[1];
    if (fields[0] === 'mod') {
      current.module = fields[1];
      current.version = fields[2];
    }
  }
  return programs.filter((program) => program.path && program.module && /^v\d/.test(program.version ?? ''));
}

async function installed() {
  const folder = await binFolder();
  if (!folder || !existsSync(folder)) return [];
  const argv = ['go', 'version', '-m', folder];
  const result = await run(argv, { timeout: 60 });
  if (result.code !== 0) throw commandFailed(argv, result);
  return parseBuildInfo(result.stdout);
}

/** `go list -m -json <module>@latest`: {"Path", "Version", "Time", ...}. */
async function latestOf(module) {
  const argv = ['go', 'list', '-m', '-json', `${module}@latest`];
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 120) });
  if (result.code !== 0) throw failure(argv, result);
  try {
    return JSON.parse(result.stdout).Version ?? null;
  } catch {
    throw commandFailed(argv, result);
  }
}

async function outdated() {
  const programs = await installed();
  const modules = [...new Set(programs.map((program) => program.module))];
  const latest = new Map();
  for (const [index, module] of modules.entries()) {
    progress((100 * index) / modules.length, `go list -m ${module}@latest`, { current: index, total: modules.length });
    latest.set(module, await latestOf(module));
  }
  return programs
    .filter((program) => latest.get(program.module) && compareVersions(latest.get(program.module), program.version) > 0)
    .map((program) => ({ name: program.path, current_version: program.version, new_version: latest.get(program.module) }));
}

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  if (packages.length === 0) return { packages_updated: [], package_count: 0, message: 'every program installed with go install is up to date' };
  return updateEach(packages, {
    describe: (entry) => `go install ${entry.name}@${entry.new_version}`,
    install: async (entry) => {
      const argv = ['go', 'install', `${entry.name}@${entry.new_version}`];
      const result = await run(argv, { echo: true });
      return result.code === 0 ? plannedUpdate(entry) : failure(argv, result);
    },
    finished: 'programs rebuilt',
  });
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('go'),
  estimate: () => estimatePackages(outdated, { start: 'go version -m', found: 'programs to rebuild' }),
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
