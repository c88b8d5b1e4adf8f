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
 * Runs a program and returns {code, stdout, stderr}. With `echo`, the
 * program's output goes on to our stderr as it comes (stdout is reserved for
 * the envelope), so upkeep can show and log it. `onLine` sees every line.
 */
export function run(argv, { env, echo = false, onLine, input, allowFailure = true } = {}) {
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
    child.on('error', (error) => reject(new PluginError('COMMAND_NOT_FOUND', `cannot run ${argv[0]}: ${error.message}`)));
    child.on('close', (code, signal) => {
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
