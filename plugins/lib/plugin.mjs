// The small library every built-in plugin is written with. A plugin is an
// executable that speaks upkeep's plugin protocol (docs/plugin-protocol.md):
// `plugin COMMAND`, one JSON envelope on stdout, progress lines on stderr,
// exit codes that carry the answer. This file turns a table of handlers into
// that protocol so each plugin holds only what is particular to its manager.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const PROTOCOL_VERSION = 1;

/** Exit codes of protocol v1. */
export const EXIT = { yes: 0, no: 1, error: 2, unknownCommand: 64, transient: 75 };

/** A failure the plugin explains; `transient` asks upkeep to retry with backoff. */
export class PluginError extends Error {
  constructor(code, message, { details, transient = false } = {}) {
    super(message);
    this.code = code;
    this.details = details;
    this.transient = transient;
  }
}

const TRANSIENT_CODES = new Set(['NETWORK_ERROR', 'TIMEOUT', 'TEMPORARY_FAILURE']);

function print(envelope, exitCode) {
  process.stdout.write(`${JSON.stringify({ protocol: PROTOCOL_VERSION, ...envelope })}\n`);
  process.exitCode = exitCode;
}

const success = (data, exitCode = EXIT.yes) => print({ status: 'success', data, error: null }, exitCode);

/** Reports progress on stderr, as `{"type":"progress",...}` lines. */
export function progress(percent, message, extra = {}) {
  const line = { type: 'progress', percent: Math.max(0, Math.min(100, Math.round(percent))), ...extra };
  if (message) line.message = message;
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/** The value of a setting, from UPKEEP_<PLUGIN>_<KEY>. Booleans and numbers are parsed. */
export function setting(plugin, key, fallback) {
  const name = `UPKEEP_${plugin}_${key}`.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (typeof fallback === 'boolean') return /^(1|true|yes|on)$/i.test(raw);
  if (typeof fallback === 'number') return Number.isFinite(Number(raw)) ? Number(raw) : fallback;
  return raw;
}

/** The full path of a program on PATH, or null. */
export function which(program) {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (!folder) continue;
    const candidate = join(folder, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export const isRoot = () => process.getuid?.() === 0;

/** argv run as root: unchanged when already root, else through `sudo -n` (never a password prompt). */
export function elevated(argv) {
  return isRoot() ? argv : ['sudo', '-n', ...argv];
}

/**
 * Runs a program and returns {code, signal, stdout, stderr}. With `echo`, the
 * program's output goes on to our stderr as it comes (stdout is reserved for
 * the envelope), so upkeep can show and log it. `onLine` sees every line.
 *
 * `timeout` (seconds) is a deadline for queries of a registry or an index:
 * one that never answers must fail the estimate as a transient error (upkeep
 * retries it) instead of holding it until upkeep kills the plugin. At the
 * deadline the program is killed and run rejects with TIMEOUT.
 */
export function run(argv, { env, echo = false, onLine, input, allowFailure = true, timeout } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out = [];
    const err = [];
    let pending = '';
    const lines = (chunk) => {
      if (!onLine) return;
      pending += chunk.toString('utf8');
      let index;
      while ((index = pending.indexOf('\n')) !== -1) {
        onLine(pending.slice(0, index));
        pending = pending.slice(index + 1);
      }
    };
    child.stdout.on('data', (chunk) => {
      out.push(chunk);
      if (echo) process.stderr.write(chunk);
      lines(chunk);
    });
    child.stderr.on('data', (chunk) => {
      err.push(chunk);
      if (echo) process.stderr.write(chunk);
      lines(chunk);
    });
    let timedOut = false;
    const timer =
      timeout === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
            // A grandchild may hold the pipes open; upkeep ends the plugin's whole process group when it exits.
            child.stdout.destroy();
            child.stderr.destroy();
          }, timeout * 1000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new PluginError('COMMAND_NOT_FOUND', `cannot run ${argv[0]}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new PluginError('TIMEOUT', `${argv.join(' ')} gave no answer within ${timeout} seconds`, { transient: true }));
        return;
      }
      if (pending && onLine) onLine(pending);
      const result = { code: code ?? 128, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (!allowFailure && result.code !== 0) {
        reject(commandFailed(argv, result));
        return;
      }
      resolve(result);
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

const NETWORK_PATTERNS = [
  /temporary failure (in name resolution|resolving)/i,
  /could not resolve host/i,
  /network is unreachable/i,
  /connection (timed out|refused|reset)/i,
  /failed to fetch/i,
  /ETIMEDOUT|ECONNRESET|ECONNREFUSED|EAI_AGAIN|ENOTFOUND/,
];
const LOCK_PATTERNS = [/could not get lock/i, /unable to acquire the dpkg frontend lock/i, /database is locked/i, /is locked by another process/i];

/** A PluginError for a failed command; network and lock failures are marked transient. */
export function commandFailed(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  const tail = text.trim().split('\n').slice(-5).join('\n');
  if (NETWORK_PATTERNS.some((pattern) => pattern.test(text))) {
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the network`, { details: tail, transient: true });
  }
  if (LOCK_PATTERNS.some((pattern) => pattern.test(text))) {
    return new PluginError('TEMPORARY_FAILURE', `${argv.join(' ')} found the package database locked`, { details: tail, transient: true });
  }
  return new PluginError('COMMAND_FAILED', `${argv.join(' ')} failed with exit code ${result.code}`, { details: tail });
}

/**
 * Whether `program` can run as root now: we are root, or sudo runs it without
 * asking for a password. `sudo -n -l PATH` asks exactly that; `sudo -n true`
 * would not do, since the rules of `upkeep sudo-setup` allow only the
 * plugin's own programs.
 */
async function canElevate(program) {
  if (isRoot()) return true;
  const path = which(program);
  if (!path || !which('sudo')) return false;
  return (await run(['sudo', '-n', '-l', path])).code === 0;
}

/**
 * Whether a system manager's estimate refreshes its metadata (package lists,
 * repository data) with `program` first: the setting `refresh` allows it, and
 * root privileges for `program` are at hand without a password. When they are
 * not, the estimate reads `metadata` (what it reads, "as it is") and says so
 * on stderr.
 */
export async function mayRefresh(plugin, metadata, program) {
  if (!setting(plugin, 'refresh', true)) return false;
  if (await canElevate(program)) return true;
  process.stderr.write(`not root and sudo cannot run ${program} without a password: estimating from ${metadata}\n`);
  return false;
}

/**
 * Whether installing into the folder that `argv` prints (`npm root -g`, `gem
 * env gemdir`) needs root: it does when we are not root and cannot write
 * there, as with a manager from the system's packages. When the command fails
 * or prints nothing, no: the install itself will tell what is wrong.
 */
export async function folderNeedsRoot(argv) {
  if (isRoot()) return false;
  const result = await run(argv, { timeout: 30 });
  const folder = result.stdout.trim();
  if (result.code !== 0 || !folder) return false;
  try {
    accessSync(folder, constants.W_OK);
    return false;
  } catch {
    return true;
  }
}

/** is-applicable's answer for a plugin that needs only its program on PATH. */
export function programFound(program) {
  return which(program) ? { applicable: true } : { applicable: false, reason: `${program} not found` };
}

/** -1, 0 or 1 for two versions such as 1.2.3 and 1.10.0-beta.1 (a release is newer than its pre-releases). */
export function compareVersions(left, right) {
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
 * The estimate of a plugin that updates a list of packages: `outdated()`
 * finds them, and they are kept in the run folder (`packages` of the state
 * `estimate`) so that update installs exactly what the estimate showed.
 * `start` is the first progress message, `found` the words after the count
 * in the last one.
 */
export async function estimatePackages(outdated, { start, found }) {
  progress(0, start);
  const packages = await outdated();
  saveState('estimate', { packages });
  progress(100, `${packages.length} ${found}`);
  return { packages_to_update: packages };
}

/** What updating a package to the version the estimate found changed, for update's packages_updated. */
export function plannedUpdate(entry) {
  return { name: entry.name, ...(entry.current_version ? { from: entry.current_version } : {}), to: entry.new_version };
}

/**
 * One error for several failed installs, naming what was updated anyway.
 * Transient only when every one of them was: retrying cannot mend the others.
 */
export function mergeFailures(failures, updated) {
  const transient = failures.every((error) => error.transient);
  const details = [
    ...failures.map((error) => `${error.message}${error.details ? `: ${error.details}` : ''}`),
    ...(updated.length > 0 ? [`updated anyway: ${updated.map((entry) => entry.name).join(', ')}`] : []),
  ].join('\n');
  const code = transient ? failures[0].code : 'COMMAND_FAILED';
  return new PluginError(code, `${failures.length} of ${failures.length + updated.length} packages failed to update`, { details, transient });
}

/**
 * Updates entries one at a time and goes on past a failed one, so that one
 * package that does not install cannot hold back the others; the failures
 * then become one error (mergeFailures). `install(entry)` returns what changed
 * ({name, from?, to?}), null when nothing did, or the PluginError of its
 * failure. `describe(entry)` is the progress message as the entry starts;
 * `finished`, the words after "<updated> of <total>" in the last progress
 * line.
 */
export async function updateEach(entries, { describe, install, finished }) {
  const total = entries.length;
  const updated = [];
  const failures = [];
  for (const [index, entry] of entries.entries()) {
    progress((100 * index) / total, describe(entry), { current: index, total });
    const outcome = await install(entry);
    if (outcome instanceof PluginError) failures.push(outcome);
    else if (outcome) updated.push(outcome);
  }
  if (finished) progress(100, `${updated.length} of ${total} ${finished}`, { current: total, total });
  if (failures.length > 0) throw mergeFailures(failures, updated);
  return { packages_updated: updated, package_count: updated.length };
}

/** The sum of a size field (`download_size_bytes`...) over packages; a package without it counts 0. */
export function totalSize(packages, key) {
  return packages.reduce((total, entry) => total + (entry[key] ?? 0), 0);
}

/**
 * A system manager's estimate of the packages it would update, kept in the
 * run folder for download and update: with the runtimes they replace
 * (`runtimes`, a runtimesOf table; update then holds them, see
 * mutexesWithRuntimes) and whether a reboot follows (`reboot`, a pattern of
 * package names). `more` adds the fields only some managers know.
 */
export function systemEstimate(packages, { runtimes, reboot }, more = {}) {
  const names = packages.map((entry) => entry.name);
  const estimate = {
    packages_to_update: packages,
    affects_runtimes: runtimesOf(runtimes, names),
    requires_reboot: names.some((name) => reboot.test(name)),
    ...more,
  };
  saveState('estimate', estimate);
  return estimate;
}

/** The runtimes (python, node...) of a table [[runtime, pattern]] whose pattern some package name matches. */
export function runtimesOf(table, names) {
  return table.filter(([, pattern]) => names.some((name) => pattern.test(name))).map(([runtime]) => runtime);
}

/**
 * The answers every system package manager gives alike. It applies where its
 * program is on PATH. It needs root whoever runs upkeep: sudo-setup asks
 * does-require-sudo as root to write the sudoers rules for that program. Its
 * update holds, besides its static mutexes, the runtimes its updates replace
 * (mutexesWithRuntimes).
 */
export function systemManager(program, mutexes) {
  return {
    isApplicable: () => programFound(program),
    requiresSudo: true,
    sudoProgramsPaths: () => [which(program)].filter(Boolean),
    mutexes: { ...mutexes, update: () => mutexesWithRuntimes(mutexes.update) },
  };
}

/**
 * A system manager's update mutexes: its own, and runtime:X for each runtime
 * the estimate of this run found among the updates, so that no language
 * plugin works with that runtime while it is being replaced.
 */
export function mutexesWithRuntimes(mutexes) {
  return [...mutexes, ...(loadState('estimate')?.affects_runtimes ?? []).map((runtime) => `runtime:${runtime}`)];
}

/** A folder kept for the whole run (estimate results read again by update). */
export function stateDir() {
  const folder = process.env.UPKEEP_PLUGIN_STATE || join(process.env.TMPDIR || '/tmp', 'upkeep-plugin-state');
  mkdirSync(folder, { recursive: true });
  return folder;
}

export function saveState(name, value) {
  writeFileSync(join(stateDir(), `${name}.json`), JSON.stringify(value));
}

export function loadState(name) {
  try {
    return JSON.parse(readFileSync(join(stateDir(), `${name}.json`), 'utf8'));
  } catch {
    return null;
  }
}

const BOOLEAN_QUERIES = {
  'can-separate-download': 'can_separate_download',
  'does-require-sudo': 'requires_sudo',
};
const MUTEX_QUERIES = {
  'estimate-update-mutexes': ['mutexes', 'estimate'],
  'download-mutexes': ['mutexes', 'download'],
  'update-mutexes': ['mutexes', 'update'],
  'estimate-update-dependency': ['dependencies', 'estimate'],
  'download-dependency': ['dependencies', 'download'],
  'update-dependency': ['dependencies', 'update'],
};

/**
 * Runs the command named by argv[2] against a plugin definition:
 * { name, version, isApplicable, estimate, update, download?, canSeparateDownload?,
 *   requiresSudo?, sudoProgramsPaths?, mutexes?: {estimate, download, update},
 *   dependencies?: {...}, runsAfter?, validate?, selfUpdate?, selfUpgrade? }.
 * Each handler may be a value or an (async) function returning one.
 */
export async function definePlugin(plugin) {
  const command = process.argv[2];
  const value = async (handler, fallback) => (typeof handler === 'function' ? await handler() : (handler ?? fallback));
  try {
    switch (command) {
      case 'is-applicable': {
        const answer = await plugin.isApplicable();
        if (answer.applicable) success({ applicable: true, ...(answer.reason ? { reason: answer.reason } : {}) });
        else print({ status: 'not_applicable', data: { applicable: false, reason: answer.reason }, error: null }, EXIT.no);
        return;
      }
      case 'estimate-update': {
        const applicability = await plugin.isApplicable();
        if (!applicability.applicable) {
          print({ status: 'not_applicable', data: { applicable: false, reason: applicability.reason }, error: null }, EXIT.no);
          return;
        }
        const estimate = await plugin.estimate();
        success({ applicable: true, ...estimate });
        return;
      }
      case 'can-separate-download':
      case 'does-require-sudo': {
        const key = BOOLEAN_QUERIES[command];
        const handler = command === 'can-separate-download' ? plugin.canSeparateDownload : plugin.requiresSudo;
        const answer = Boolean(await value(handler, false));
        success({ [key]: answer }, answer ? EXIT.yes : EXIT.no);
        return;
      }
      case 'download':
        if (!plugin.download) {
          print({ status: 'not_supported', data: null, error: null }, EXIT.no);
          return;
        }
        success((await plugin.download()) ?? {});
        return;
      case 'update':
        success((await plugin.update()) ?? {});
        return;
      case 'self-update':
      case 'self-upgrade': {
        const handler = command === 'self-update' ? plugin.selfUpdate : plugin.selfUpgrade;
        if (!handler) {
          print({ status: 'not_supported', data: null, error: null }, EXIT.no);
          return;
        }
        success((await handler()) ?? {});
        return;
      }
      case 'sudo-programs-paths':
        success({ paths: await value(plugin.sudoProgramsPaths, []) });
        return;
      case 'version':
        success({ version: plugin.version, protocol: PROTOCOL_VERSION });
        return;
      case 'validate': {
        const report = plugin.validate ? await plugin.validate() : { healthy: true, problems: [] };
        success(report, report.healthy ? EXIT.yes : EXIT.no);
        return;
      }
      case 'runs-after':
        success({ plugins: await value(plugin.runsAfter, []) });
        return;
      default:
        if (command in MUTEX_QUERIES) {
          const [kind, phase] = MUTEX_QUERIES[command];
          success({ mutexes: await value(plugin[kind]?.[phase], []) });
          return;
        }
        print(
          { status: 'error', data: null, error: { code: 'UNKNOWN_COMMAND', message: `${plugin.name} does not know the command "${command ?? ''}"` } },
          EXIT.unknownCommand,
        );
    }
  } catch (error) {
    const failure =
      error instanceof PluginError ? error : new PluginError('PLUGIN_ERROR', error instanceof Error ? error.message : String(error));
    const transient = failure.transient || TRANSIENT_CODES.has(failure.code);
    const isAction = ['download', 'update', 'self-update', 'self-upgrade'].includes(command);
    print(
      {
        status: 'error',
        data: null,
        error: { code: failure.code, message: failure.message, ...(failure.details ? { details: String(failure.details) } : {}) },
      },
      transient ? EXIT.transient : isAction ? EXIT.no : EXIT.error,
    );
  }
}
