import { setMaxListeners } from 'node:events';
import pLimit from 'p-limit';
import { describeError, isUpkeepError, UpkeepError } from '../../core/errors.ts';
import type { Environment } from '../../core/paths.ts';
import type { UpdateEvent, UpdateReport } from '../run/orchestrator.ts';
import { describeAddress, quoteProgram, shellQuote, SshConnection, type ExecResult, type KnownHostsPolicy } from './connection.ts';
import type { RemoteHost } from './hosts.ts';

/**
 * `upkeep remote` (seed 002 §8, docs/remote.md): on every host, at most
 * `parallel` at once, connect over SSH and run the host's own upkeep
 * (`update run --json`, or `update check --json`), passing on its NDJSON
 * events as they come. One host failing never stops the others.
 *
 * A dropped connection is retried with backoff, then `update resume --json`
 * runs on the host: the host's upkeep persists its run, so that resumes it
 * where it stopped (the host rebooted, upkeep was killed) instead of
 * starting again; while the run still goes on there (the wrapper keeps it
 * alive without the connection, E_RUN_IN_PROGRESS) it waits; when nothing is
 * left to resume (E_NO_RUN) the run ended meanwhile and its outcome is read
 * from the host's `update stats`. When the host's upkeep dies in the middle
 * of its run while the connection lives on (killed, out of memory), the run
 * is resumed the same way, up to `retries` times.
 */

export type RemoteMode = 'run' | 'check';

/** What `update check --json` prints. */
export interface CheckData {
  plugins: Array<{ name: string; applicable: boolean; reason: string | null; updates: unknown[]; downloadBytes?: number; securityUpdates?: boolean; estimate?: unknown }>;
  estimate: { seconds: number; low: number; high: number };
}

/** A run of the host's upkeep that ended while upkeep remote was disconnected, from its `update stats`. */
export interface UnseenRun {
  runId: string;
  plugins: string[];
  failures: string[];
  wallSeconds: number | null;
}

export type HostStatus = 'succeeded' | 'partial' | 'failed' | 'interrupted';

export interface HostResult {
  host: string;
  address: string;
  status: HostStatus;
  mode: RemoteMode;
  dryRun: boolean;
  seconds: number;
  /** Connections made again after one dropped. */
  reconnects: number;
  /** The host's run was continued with `update resume` after a reconnect. */
  resumed: boolean;
  runId: string | null;
  remoteExitCode: number | null;
  report: UpdateReport | null;
  check: CheckData | null;
  unseen: UnseenRun | null;
  error: { code: string; message: string; hint?: string } | null;
  warnings: string[];
}

/** Events that upkeep remote adds to those of the hosts' upkeep. */
export type LocalEvent =
  | { type: 'connection'; status: 'connecting' | 'connected' | 'lost' | 'retrying'; attempt: number; address: string; message?: string; delaySeconds?: number; time: string }
  | { type: 'host-key-added'; file: string; name: string; keyType: string; fingerprint: string; time: string }
  | { type: 'command'; command: 'run' | 'check' | 'resume' | 'stats'; argv: string[]; time: string }
  | { type: 'waiting'; message: string; delaySeconds: number; time: string }
  | { type: 'log'; stream: 'stdout' | 'stderr'; line: string; time: string }
  | { type: 'result'; result: HostResult; time: string };

/** What the host's upkeep prints with --json: its run events and, at the end, its summary. */
export type HostUpdateEvent = UpdateEvent | { type: 'summary'; report: UpdateReport };

export type RemoteEvent = LocalEvent | HostUpdateEvent;

export interface RemoteRunOptions {
  hosts: readonly RemoteHost[];
  mode: RemoteMode;
  dryRun: boolean;
  /** Hosts at once. */
  parallel: number;
  /** Consecutive failed connection attempts (or drops) tolerated per host. */
  retries: number;
  /** The first wait before reconnecting; each next one doubles (up to 30 s). */
  retryDelayMs: number;
  connectTimeoutMs: number;
  keepaliveIntervalMs?: number;
  knownHosts: KnownHostsPolicy;
  home: string;
  /** For SSH_AUTH_SOCK and the hosts' sudo_password_env variables. */
  environment: Environment;
  onEvent: (host: string, event: RemoteEvent) => void;
  now: () => Date;
}

const MAX_BACKOFF_MS = 30_000;
/** How often to look again while the host's previous upkeep still holds its run. */
const IN_PROGRESS_POLL_MS = [1000, 2000, 5000];

/**
 * What the host's shell runs around upkeep (POSIX sh, so the host needs
 * nothing but upkeep). Its jobs:
 *
 * - The sudo password, when there is one, arrives as the first line of
 *   stdin only: `read` takes it and hands it to `sudo -S -v` (which caches
 *   the credential) through a pipe between shell builtins, then forgets it.
 *   It is never in an argv, on the host or here, nor in any event or log.
 * - upkeep's stdout and stderr pass through relays (`cat || cat >/dev/null`)
 *   that outlive the connection: when it drops, the first cat dies on the
 *   broken pipe and the second drains into /dev/null, so upkeep never writes
 *   into a dead pipe. The run, and the plugin running then, go on to the end
 *   on the host instead of dying halfway (apt or dpkg stopped in the middle
 *   would leave the host to repair). A hangup is ignored for the same reason.
 * - Every further line on stdin asks upkeep to stop as Ctrl-C would
 *   (SIGTERM, which upkeep treats like Ctrl-C): OpenSSH refuses the SSH
 *   "signal" request for root sessions, so stdin is the way that always
 *   works. upkeep runs in the background for that; its exit status comes back
 *   through a temporary file.
 */
export const REMOTE_WRAPPER = [
  "trap '' HUP;",
  'if [ "$1" = password ]; then',
  '  IFS= read -r upkeep_password;',
  "  printf '%s\\n' \"$upkeep_password\" | sudo -S -p '' -v 2>/dev/null || echo 'upkeep remote: sudo did not accept the password from sudo_password_env' >&2;",
  '  unset upkeep_password;',
  'fi;',
  'shift;',
  'status=$(mktemp "${TMPDIR:-/tmp}/upkeep-remote.XXXXXX") || exit 70;',
  '{',
  '  { "$@" </dev/null 2>&1 1>&3 3>&- & echo $! > "$status.pid"; wait $!; echo $? > "$status"; } | { cat >&2 || cat >/dev/null; };',
  '} 3>&1 | { cat || cat >/dev/null; } &',
  'relays=$!;',
  'stop=\'kill -TERM "$(cat "$status.pid" 2>/dev/null)" 2>/dev/null\';',
  'trap "$stop" INT TERM;',
  'exec 4<&0;',
  'while IFS= read -r request <&4; do eval "$stop"; done >/dev/null 2>&1 &',
  'watcher=$!;',
  'while kill -0 "$relays" 2>/dev/null; do wait "$relays"; done;',
  'kill "$watcher" 2>/dev/null;',
  'code=$(cat "$status" 2>/dev/null);',
  'rm -f "$status" "$status.pid";',
  'exit "${code:-1}"',
  // One line: csh-family login shells refuse a newline inside quotes.
].map((line) => line.trim()).join(' ');

/** The command line the host's login shell runs: the wrapper, then upkeep's argv. */
export function remoteCommandLine(upkeepPath: string, args: readonly string[], withPassword: boolean): string {
  return ['sh', '-c', shellQuote(REMOTE_WRAPPER), 'upkeep-remote', withPassword ? 'password' : 'no-password', quoteProgram(upkeepPath), ...args.map(shellQuote)].join(' ');
}

export function startArguments(mode: RemoteMode, dryRun: boolean): string[] {
  if (mode === 'check') return ['update', 'check', '--json'];
  return ['update', 'run', '--json', ...(dryRun ? ['--dry-run'] : [])];
}

interface HostState {
  runId: string | null;
  report: UpdateReport | null;
  reconnects: number;
  resumed: boolean;
  /** Times the host's upkeep died in the middle of the run and the run was resumed. */
  restarts: number;
  warnings: string[];
}

type Outcome =
  | { kind: 'done'; status: HostStatus; exitCode: number | null; check?: CheckData; unseen?: UnseenRun; error?: UpkeepError }
  /** progressed: events came through before the drop (a link that keeps dropping but moves on is followed to the end). */
  | { kind: 'dropped'; progressed: boolean };

export class RemoteRun {
  private interrupts = 0;
  private readonly stop = new AbortController();
  private readonly connections = new Set<SshConnection>();

  constructor(private readonly options: RemoteRunOptions) {
    // Every host's connection and backoff listens for the stop: a fleet is more than ten.
    setMaxListeners(0, this.stop.signal);
  }

  async run(): Promise<HostResult[]> {
    const limit = pLimit(Math.max(1, this.options.parallel));
    return Promise.all(this.options.hosts.map((host) => limit(() => this.updateHost(host))));
  }

  /**
   * First Ctrl-C: start no new host and pass the interrupt on (the hosts'
   * upkeep lets running plugins finish, then stops; `update resume` there
   * continues). Second: pass it on again (they stop their plugins). Third:
   * drop the connections.
   */
  interrupt(): void {
    this.interrupts += 1;
    this.stop.abort();
    for (const connection of this.connections) {
      if (this.interrupts >= 3) connection.close();
      // A line on stdin: the wrapper turns it into SIGTERM for the host's upkeep.
      else connection.sendInput('interrupt\n');
    }
  }

  private emit(host: RemoteHost, event: RemoteEvent): void {
    this.options.onEvent(host.name, event);
  }

  private time(): string {
    return this.options.now().toISOString();
  }

  private async updateHost(host: RemoteHost): Promise<HostResult> {
    const started = this.options.now().getTime();
    const state: HostState = { runId: null, report: null, reconnects: 0, resumed: false, restarts: 0, warnings: [] };
    const finish = (outcome: Extract<Outcome, { kind: 'done' }>): HostResult => {
      const result: HostResult = {
        host: host.name,
        address: describeAddress(host),
        status: outcome.status,
        mode: this.options.mode,
        dryRun: this.options.dryRun,
        seconds: (this.options.now().getTime() - started) / 1000,
        reconnects: state.reconnects,
        resumed: state.resumed,
        runId: state.runId ?? state.report?.runId ?? null,
        remoteExitCode: outcome.exitCode,
        report: state.report,
        check: outcome.check ?? null,
        unseen: outcome.unseen ?? null,
        error: outcome.error ? { code: outcome.error.code, message: outcome.error.message, ...(outcome.error.hint ? { hint: outcome.error.hint } : {}) } : null,
        warnings: state.warnings,
      };
      this.emit(host, { type: 'result', result, time: this.time() });
      return result;
    };
    const failed = (error: unknown): HostResult => {
      const known = isUpkeepError(error)
        ? error
        : new UpkeepError('E_REMOTE_FAILED', `${host.name}: ${describeError(error)}`, { hint: 'run again with --verbose; if it persists, report it', cause: error });
      return finish({ kind: 'done', status: this.interrupts > 0 && known.code === 'E_INTERRUPTED' ? 'interrupted' : 'failed', exitCode: null, error: known });
    };

    if (this.stop.signal.aborted) return failed(notStarted(host));
    if (host.proxy) state.warnings.push(`${host.name}: ${host.proxy} (from ~/.ssh/config) is not followed; connecting to ${describeAddress(host)} directly`);
    let password: string | undefined;
    if (host.sudoPasswordEnv) {
      password = this.options.environment[host.sudoPasswordEnv];
      if (password === undefined || password === '') {
        password = undefined;
        state.warnings.push(`${host.name}: ${host.sudoPasswordEnv} (its sudo_password_env) is not set; plugins that need root run only if sudo asks no password there`);
      }
    }

    let next: 'start' | 'resume' = 'start';
    let failures = 0;
    for (let attempt = 1; ; attempt += 1) {
      if (this.stop.signal.aborted) return failed(interruptedError(host));
      let connection: SshConnection;
      try {
        this.emit(host, { type: 'connection', status: 'connecting', attempt, address: describeAddress(host), time: this.time() });
        connection = await SshConnection.open({
          host,
          home: this.options.home,
          knownHosts: this.options.knownHosts,
          agentSocket: this.options.environment.SSH_AUTH_SOCK || undefined,
          connectTimeoutMs: this.options.connectTimeoutMs,
          ...(this.options.keepaliveIntervalMs ? { keepaliveIntervalMs: this.options.keepaliveIntervalMs } : {}),
        });
      } catch (error) {
        if (retryable(error) && failures < this.options.retries && !this.stop.signal.aborted) {
          failures += 1;
          if (!(await this.backoff(host, failures, attempt, describeError(error)))) return failed(interruptedError(host));
          continue;
        }
        return failed(error);
      }
      this.connections.add(connection);
      this.emit(host, { type: 'connection', status: 'connected', attempt, address: describeAddress(host), time: this.time() });
      if (connection.added) this.emit(host, { type: 'host-key-added', ...connection.added, time: this.time() });
      let outcome: Outcome;
      try {
        outcome = await this.session(host, connection, next, state, password);
        if (outcome.kind === 'done') return finish(outcome);
      } catch (error) {
        return failed(error);
      } finally {
        this.connections.delete(connection);
        connection.close();
      }
      // Dropped: continue where the host's upkeep left off.
      if (this.interrupts >= 3) return failed(interruptedError(host));
      if (outcome.progressed) failures = 0;
      if (failures >= this.options.retries) {
        return failed(
          new UpkeepError('E_SSH_CONNECT', `${host.name} (${describeAddress(host)}): the connection dropped and ${this.options.retries} reconnection${this.options.retries === 1 ? '' : 's'} did not bring it back`, {
            hint: this.options.mode === 'run' && !this.options.dryRun ? `the run goes on, or waits, on the host: there \`${host.upkeepPath} update resume\` continues it if it stopped` : 'run it again once the host is reachable',
            details: { host: host.name, retryable: true },
          }),
        );
      }
      failures += 1;
      state.reconnects += 1;
      this.emit(host, { type: 'connection', status: 'lost', attempt, address: describeAddress(host), time: this.time() });
      if (this.options.mode === 'run' && !this.options.dryRun) next = 'resume';
      if (!(await this.backoff(host, failures, attempt, 'the connection dropped'))) return failed(interruptedError(host));
    }
  }

  /** Waits before the next attempt; false when interrupted meanwhile. */
  private async backoff(host: RemoteHost, failures: number, attempt: number, reason: string): Promise<boolean> {
    const base = Math.min(MAX_BACKOFF_MS, this.options.retryDelayMs * 2 ** (failures - 1));
    // Jitter, so that hosts that dropped together do not all come back at the same instant.
    const delay = base * (0.8 + Math.random() * 0.4);
    this.emit(host, {
      type: 'connection',
      status: 'retrying',
      attempt,
      address: describeAddress(host),
      message: `${reason}; attempt ${failures} of ${this.options.retries}`,
      delaySeconds: Math.round(delay / 100) / 10,
      time: this.time(),
    });
    return sleep(delay, this.stop.signal);
  }

  /** The commands of one connection, until the host's run is over or the connection drops. */
  private async session(host: RemoteHost, connection: SshConnection, start: 'start' | 'resume', state: HostState, password: string | undefined): Promise<Outcome> {
    let next = start;
    let waits = 0;
    let progressed = false;
    for (;;) {
      const args = next === 'resume' ? ['update', 'resume', '--json'] : startArguments(this.options.mode, this.options.dryRun);
      this.emit(host, { type: 'command', command: next === 'resume' ? 'resume' : this.options.mode, argv: [host.upkeepPath, ...args], time: this.time() });
      const parsed = await this.execute(host, connection, args, state, password);
      progressed ||= parsed.events > 0;
      if (parsed.result.dropped) return { kind: 'dropped', progressed };
      const { result, error, document } = parsed;
      if (error?.code === 'E_RUN_IN_PROGRESS' && (next === 'resume' || state.reconnects > 0)) {
        // The run of the dropped session goes on on the host (the wrapper keeps it alive): wait for it to end.
        const delay = IN_PROGRESS_POLL_MS[Math.min(waits, IN_PROGRESS_POLL_MS.length - 1)]!;
        waits += 1;
        next = 'resume';
        this.emit(host, { type: 'waiting', message: 'the run goes on on the host without this connection; waiting for it to finish', delaySeconds: delay / 1000, time: this.time() });
        if (!(await sleep(delay, this.stop.signal))) return { kind: 'done', status: 'interrupted', exitCode: result.exitCode, error: interruptedError(host) };
        continue;
      }
      if (next === 'resume' && error?.code === 'E_NO_RUN') {
        if (state.runId === null) {
          // The run had not begun (no run id came through) before the drop: start it now.
          next = 'start';
          continue;
        }
        return this.unseenOutcome(host, connection, state, error);
      }
      if (next === 'resume') state.resumed = true;
      if (this.diedMidRun(result, error, state)) {
        // Its run is on disk, and the plugins it had started go on: resume it, as after a drop.
        state.restarts += 1;
        next = 'resume';
        this.emit(host, { type: 'log', stream: 'stderr', line: `upkeep on the host ${endedHow(result)} in the middle of run ${state.runId}; resuming it`, time: this.time() });
        continue;
      }
      return this.outcome(host, result, error, document, state);
    }
  }

  /** The host's upkeep was killed (or crashed) after its run began, before its summary. */
  private diedMidRun(result: ExecResult, error: RemoteError | null, state: HostState): boolean {
    if (this.options.mode !== 'run' || this.options.dryRun || error || state.report || state.runId === null) return false;
    const killed = (result.exitCode === null && result.signal !== null) || (result.exitCode !== null && result.exitCode > 128);
    return killed && state.restarts < this.options.retries;
  }

  private async execute(
    host: RemoteHost,
    connection: SshConnection,
    args: string[],
    state: HostState,
    password: string | undefined,
  ): Promise<{ result: ExecResult; error: RemoteError | null; document: unknown; events: number }> {
    const leftover: string[] = [];
    let events = 0;
    const result = await connection.exec(remoteCommandLine(host.upkeepPath, args, password !== undefined), {
      // stdin stays open: later lines carry interrupts to the wrapper.
      input: password !== undefined ? `${password}\n` : '',
      keepInputOpen: true,
      onLine: (stream, line) => {
        if (stream === 'stderr') {
          if (line.trim() !== '') this.emit(host, { type: 'log', stream, line, time: this.time() });
          return;
        }
        const event = parseEventLine(line);
        if (!event) {
          leftover.push(line);
          return;
        }
        events += 1;
        if (event.type === 'run' && typeof event.runId === 'string') state.runId = event.runId;
        if (event.type === 'summary' && event.report) {
          state.report = event.report;
          state.runId ??= event.report.runId;
        }
        this.emit(host, event);
      },
    });
    // What is not an event is one JSON document (a check's result, or an error) printed at the end.
    const text = leftover.join('\n').trim();
    let document: unknown = null;
    if (text !== '') {
      try {
        document = JSON.parse(text);
      } catch {
        for (const line of leftover) if (line.trim() !== '') this.emit(host, { type: 'log', stream: 'stdout', line, time: this.time() });
      }
    }
    return { result, error: remoteErrorOf(document), document, events };
  }

  private outcome(host: RemoteHost, result: ExecResult, error: RemoteError | null, document: unknown, state: HostState): Outcome {
    const exitCode = result.exitCode;
    if (error) return { kind: 'done', status: 'failed', exitCode, error: hostError(host, error) };
    if (exitCode === 127 || exitCode === 126) {
      return {
        kind: 'done',
        status: 'failed',
        exitCode,
        error: new UpkeepError('E_REMOTE_FAILED', `${host.name}: ${host.upkeepPath} ${exitCode === 127 ? 'was not found' : 'cannot run'} on the host${result.stderr ? `: ${lastLine(result.stderr)}` : ''}`, {
          hint: 'install upkeep there (docs/remote.md: `npm install -g` a tarball of it) or set upkeep_path to its absolute path in hosts.yaml; a non-interactive ssh session has a short PATH',
        }),
      };
    }
    if (this.options.mode === 'check') {
      const check = checkDataOf(document);
      if (check && (exitCode === 0 || exitCode === 3)) return { kind: 'done', status: exitCode === 0 ? 'succeeded' : 'partial', exitCode, check };
      return { kind: 'done', status: 'failed', exitCode, error: unexpectedEnd(host, result) };
    }
    const report = state.report;
    if (!report) return { kind: 'done', status: 'failed', exitCode, error: unexpectedEnd(host, result) };
    if (report.status === 'interrupted') return { kind: 'done', status: 'interrupted', exitCode, error: new UpkeepError('E_INTERRUPTED', `${host.name}: the run was interrupted`, { hint: `\`upkeep remote ${host.name}\` later, or \`${host.upkeepPath} update resume\` on the host, continues it` }) };
    if (report.summary.failed.length === 0 && exitCode === 0) return { kind: 'done', status: 'succeeded', exitCode };
    return { kind: 'done', status: report.summary.succeeded.length > 0 || exitCode === 3 ? 'partial' : 'failed', exitCode };
  }

  /** The run ended while we were disconnected: its outcome from the host's `update stats`. */
  private async unseenOutcome(host: RemoteHost, connection: SshConnection, state: HostState, noRun: RemoteError): Promise<Outcome> {
    const args = ['update', 'stats', '--json'];
    this.emit(host, { type: 'command', command: 'stats', argv: [host.upkeepPath, ...args], time: this.time() });
    // Reading stats needs no sudo, so no password is sent.
    const result = await connection.exec(remoteCommandLine(host.upkeepPath, args, false));
    if (result.dropped) return { kind: 'dropped', progressed: false };
    state.resumed = true;
    let runs: Array<{ runId?: unknown; plugins?: unknown; failures?: unknown; wallSeconds?: unknown }> = [];
    try {
      runs = ((JSON.parse(result.stdout) as { runs?: typeof runs }).runs ?? []).filter((entry) => entry && typeof entry === 'object');
    } catch {
      runs = [];
    }
    const found = runs.find((entry) => entry.runId === state.runId);
    if (found) {
      const unseen: UnseenRun = {
        runId: state.runId!,
        plugins: Array.isArray(found.plugins) ? found.plugins.map(String) : [],
        failures: Array.isArray(found.failures) ? found.failures.map(String) : [],
        wallSeconds: typeof found.wallSeconds === 'number' ? found.wallSeconds : null,
      };
      state.warnings.push(`${host.name}: the run ${state.runId} finished while disconnected; its outcome comes from the host's \`update stats\``);
      const status: HostStatus = unseen.failures.length === 0 ? 'succeeded' : unseen.failures.length < unseen.plugins.length ? 'partial' : 'failed';
      return { kind: 'done', status, exitCode: status === 'succeeded' ? 0 : status === 'partial' ? 3 : 1, unseen };
    }
    // No phases recorded (stats unavailable there): the E_NO_RUN message still says how it ended.
    const ended = /\(([^)]+)\) (completed|failed)/.exec(noRun.message);
    if (ended && ended[1] === state.runId) {
      state.warnings.push(`${host.name}: the run ${state.runId} ${ended[2]} while disconnected`);
      const status: HostStatus = ended[2] === 'completed' ? 'succeeded' : 'failed';
      return { kind: 'done', status, exitCode: status === 'succeeded' ? 0 : 1, unseen: { runId: state.runId, plugins: [], failures: [], wallSeconds: null } };
    }
    return {
      kind: 'done',
      status: 'failed',
      exitCode: null,
      error: new UpkeepError('E_REMOTE_FAILED', `${host.name}: the run ${state.runId} ended while disconnected and its outcome is not recorded there`, {
        hint: `see \`${host.upkeepPath} update history\` on the host`,
      }),
    };
  }
}

interface RemoteError {
  code: string;
  message: string;
  hint?: string;
}

function remoteErrorOf(document: unknown): RemoteError | null {
  if (!document || typeof document !== 'object' || !('error' in document)) return null;
  const error = (document as { error: unknown }).error;
  if (!error || typeof error !== 'object') return null;
  const { code, message, hint } = error as Record<string, unknown>;
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  return { code, message, ...(typeof hint === 'string' ? { hint } : {}) };
}

function checkDataOf(document: unknown): CheckData | null {
  if (!document || typeof document !== 'object') return null;
  const { plugins, estimate } = document as Record<string, unknown>;
  if (!Array.isArray(plugins) || !estimate || typeof estimate !== 'object') return null;
  return document as CheckData;
}

/** A line of the host's stdout that is one event (an object with a type), or null. */
export function parseEventLine(line: string): HostUpdateEvent | null {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) return null;
  try {
    const value = JSON.parse(trimmed) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value) && typeof (value as { type?: unknown }).type === 'string') return value as HostUpdateEvent;
  } catch {
    return null;
  }
  return null;
}

/** The host's own error, kept with its code and named after the host. */
function hostError(host: RemoteHost, error: RemoteError): UpkeepError {
  return new UpkeepError('E_REMOTE_FAILED', `${host.name}: ${error.code}: ${error.message}`, {
    hint: error.hint ? `on ${host.name}: ${error.hint}` : `run \`${host.upkeepPath} update run\` on ${host.name} to see more`,
    details: { host: host.name, remoteCode: error.code },
  });
}

/** "exited with 137", "was stopped by SIGKILL". */
function endedHow(result: ExecResult): string {
  return result.exitCode === null ? `was stopped${result.signal ? ` by SIG${result.signal}` : ''}` : `exited with ${result.exitCode}`;
}

function unexpectedEnd(host: RemoteHost, result: ExecResult): UpkeepError {
  return new UpkeepError('E_REMOTE_FAILED', `${host.name}: upkeep on the host ${endedHow(result)} without a result${result.stderr ? `: ${lastLine(result.stderr)}` : ''}`, {
    hint: `check that ${host.upkeepPath} on the host is upkeep (\`${host.upkeepPath} --version\`) and recent enough for \`update run --json\``,
    details: { host: host.name, exitCode: result.exitCode },
  });
}

function notStarted(host: RemoteHost): UpkeepError {
  return new UpkeepError('E_INTERRUPTED', `${host.name}: not started (interrupted)`, { hint: `run \`upkeep remote ${host.name}\` again` });
}

function interruptedError(host: RemoteHost): UpkeepError {
  return new UpkeepError('E_INTERRUPTED', `${host.name}: interrupted`, { hint: `\`upkeep remote ${host.name}\` again continues` });
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)!.slice(0, 300);
}

function retryable(error: unknown): boolean {
  return isUpkeepError(error) && error.code === 'E_SSH_CONNECT';
}

/** Resolves true after `milliseconds`, false at once when `signal` aborts. */
function sleep(milliseconds: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, milliseconds);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

