#!/usr/bin/env node
// upkeep plugin for programs installed with `go install`.
//
// They live in $GOBIN, else the first $GOPATH's bin folder (as `go env`
// reports them). `go version -m <folder>` reads the build information of
// every Go program there: the package path (`path`) and the module and
// version it was built from (`mod`). `go list -m -json <module>@latest` asks
// the module proxy for the newest version; update is
// `go install <path>@<that version>`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { commandFailed, definePlugin, loadState, PluginError, progress, run, saveState, setting, which } from './lib/plugin.mjs';

const NAME = 'go';
// Go's network errors come from its HTTP client and resolver.
const NETWORK = /no such host|dial tcp|i\/o timeout|TLS handshake timeout|connection reset by peer|server misbehaving/i;

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
  if (NETWORK.test(text)) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the module proxy`, { details: text.trim().split('\n').slice(-3).join('\n'), transient: true });
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

/** Where `go install` puts programs: GOBIN, else <first GOPATH entry>/bin. */
async function binFolder() {
  const argv = ['go', 'env', 'GOBIN', 'GOPATH'];
  const result = await query(argv, 30);
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
  const result = await query(argv, 60);
  if (result.code !== 0) throw commandFailed(argv, result);
  return parseBuildInfo(result.stdout);
}

/** `go list -m -json <module>@latest`: {"Path", "Version", "Time", ...}. */
async function latestOf(module) {
  const argv = ['go', 'list', '-m', '-json', `${module}@latest`];
  const result = await query(argv, setting(NAME, 'query_timeout', 120));
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

async function estimate() {
  progress(0, 'go version -m');
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} programs to rebuild`);
  return { packages_to_update: packages };
}

async function update() {
  const packages = loadState('estimate')?.packages ?? (await outdated());
  const total = packages.length;
  if (total === 0) return { packages_updated: [], package_count: 0, message: 'every program installed with go install is up to date' };
  const updated = [];
  const failures = [];
  for (const [index, entry] of packages.entries()) {
    progress((100 * index) / total, `go install ${entry.name}@${entry.new_version}`, { current: index, total });
    const argv = ['go', 'install', `${entry.name}@${entry.new_version}`];
    const result = await run(argv, { echo: true });
    if (result.code === 0) updated.push({ name: entry.name, from: entry.current_version, to: entry.new_version });
    else failures.push(failure(argv, result));
  }
  progress(100, `${updated.length} of ${total} programs rebuilt`, { current: total, total });
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
  isApplicable: () => (which('go') ? { applicable: true } : { applicable: false, reason: 'go not found' }),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
