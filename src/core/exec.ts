import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { UpkeepError } from './errors.ts';
import { silentLogger, type Logger } from './log.ts';

/**
 * The one door to processes (DESIGN rule 2). Every spawn in upkeep goes
 * through `Executor.run`: an argv array (never a shell string), a timeout that
 * kills the whole process group, a cap on captured output, an explicit
 * environment and stdin closed unless input is given (so no tool can sit
 * waiting for a password). In dry-run mode it records the argv instead of
 * running it, except for read-only probes marked `always`.
 */

export interface ExecOptions {
  /** Milliseconds before the process group is killed. */
  timeout?: number;
  /** Bytes kept from each of stdout and stderr; the rest is dropped. */
  maxOutput?: number;
  /** The whole environment of the child; the executor's base env when absent. */
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** `always`: a read-only probe that runs even in dry-run mode. */
  mode?: 'always' | 'change';
  /** Each complete line of output as it arrives (progress reporting); still captured too. */
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Called once the process exists, with its pid (which is also its process group id). */
  onStart?: (pid: number) => void;
  /** Aborting stops the whole process group: SIGTERM, then SIGKILL after `killGrace`. */
  signal?: AbortSignal;
  /** Milliseconds between SIGTERM and SIGKILL when stopping a group (0: SIGKILL at once). */
  killGrace?: number;
  /** Scheduling priority of the process (0 to 19); its children inherit it. */
  nice?: number;
}

export interface ExecResult {
  readonly argv: readonly string[];
  /** null when the process was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** True when either stream passed maxOutput and was cut. */
  readonly truncated: boolean;
  readonly durationMs: number;
  readonly dryRun: boolean;
  /** True when `signal` aborted the run. */
  readonly aborted?: boolean;
}

export interface ExecutorOptions {
  dryRun?: boolean;
  env?: Readonly<Record<string, string | undefined>>;
  logger?: Logger;
}

const DEFAULT_TIMEOUT = 30_000;
const DEFAULT_MAX_OUTPUT = 1024 * 1024;
/** After the leader exits, how long its children may keep the pipes open. */
const DRAIN_GRACE = 500;

export class Executor {
  readonly dryRun: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The argv of every command not run because of dry-run mode. */
  readonly recorded: string[][] = [];
  private readonly logger: Logger;

  constructor(options: ExecutorOptions = {}) {
    this.dryRun = options.dryRun ?? false;
    this.env = options.env ?? process.env;
    this.logger = options.logger ?? silentLogger;
  }

  async run(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0 || !argv[0]) throw new Error('Executor.run needs a program');
    if (this.dryRun && options.mode !== 'always') {
      this.recorded.push([...argv]);
      this.logger.info('dry-run: not running', { argv });
      return { argv, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false, durationMs: 0, dryRun: true };
    }
    const result = await spawnCaptured(argv, options, options.env ?? this.env);
    this.logger.debug('ran', {
      argv,
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      durationMs: Math.round(result.durationMs),
    });
    return result;
  }
}

function spawnCaptured(
  argv: readonly string[],
  options: ExecOptions,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ExecResult> {
  const [program, ...args] = argv as [string, ...string[]];
  const timeout = options.timeout ?? DEFAULT_TIMEOUT;
  const maxOutput = options.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const started = performance.now();

  return new Promise<ExecResult>((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(program, args, {
        cwd: options.cwd,
        env: env as NodeJS.ProcessEnv,
        // Its own process group, so that a timeout kills the grandchildren too.
        detached: true,
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (error) {
      reject(spawnError(program, error));
      return;
    }

    const stdout = new Capture(maxOutput);
    const stderr = new Capture(maxOutput);
    let timedOut = false;
    let settled = false;
    let exitCode: number | null = null;
    let signal: NodeJS.Signals | null = null;
    let drainTimer: NodeJS.Timeout | undefined;

    const killGroup = (): void => {
      if (child.pid !== undefined) signalProcessGroup(child.pid, 'SIGKILL');
    };
    let graceTimer: NodeJS.Timeout | undefined;
    const stopGroup = (): void => {
      const grace = options.killGrace ?? 0;
      if (grace <= 0 || child.pid === undefined) {
        killGroup();
        return;
      }
      signalProcessGroup(child.pid, 'SIGTERM');
      graceTimer ??= setTimeout(killGroup, grace);
    };
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      stopGroup();
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      stdoutLines?.end();
      stderrLines?.end();
      resolve({
        argv,
        exitCode,
        signal,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timedOut,
        truncated: stdout.truncated || stderr.truncated,
        durationMs: performance.now() - started,
        dryRun: false,
        aborted,
      });
    };

    const timer = setTimeout(() => {
      timedOut = true;
      stopGroup();
    }, timeout);

    const onLine = options.onLine;
    const stdoutLines = onLine ? new LineSplitter((line) => onLine('stdout', line)) : undefined;
    const stderrLines = onLine ? new LineSplitter((line) => onLine('stderr', line)) : undefined;
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      stdoutLines?.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      stderrLines?.push(chunk);
    });
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(spawnError(program, error));
    });
    if (child.pid !== undefined) {
      if (options.nice) {
        try {
          setPriority(child.pid, options.nice);
        } catch {
          // Lowering priority is a courtesy; a refusal changes nothing else.
        }
      }
      options.onStart?.(child.pid);
    }
    if (options.signal) {
      if (options.signal.aborted) onAbort();
      else options.signal.addEventListener('abort', onAbort, { once: true });
    }
    child.on('exit', (code, exitSignal) => {
      exitCode = code;
      signal = exitSignal;
      // A daemonised grandchild may hold our pipes open forever; give it a
      // moment to finish writing, then end the group and return.
      drainTimer = setTimeout(() => {
        killGroup();
        finish();
      }, DRAIN_GRACE);
    });
    child.on('close', finish);

    if (options.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

function spawnError(program: string, error: unknown): UpkeepError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new UpkeepError('E_EXEC_NOT_FOUND', `${program} was not found`, {
      hint: 'install it or check PATH',
      cause: error,
    });
  }
  return new UpkeepError('E_EXEC_FAILED', `could not start ${program}: ${(error as Error).message}`, {
    hint: code === 'EACCES' ? `make ${program} executable (chmod +x)` : 'check that the program exists and can run',
    cause: error,
  });
}

/** Sends a signal to a whole process group; false when the group is gone. */
export function signalProcessGroup(groupId: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-groupId, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while the process lives (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it lives, but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface ProcessStat {
  state: string;
  processGroup: number;
  /** Clock ticks since boot (field 22), to tell a reused pid. */
  start: number;
}

/** /proc/<pid>/stat, or null when there is no such process (or no /proc). */
async function processStat(pid: number | string): Promise<ProcessStat | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, processGroup: Number(fields[2]), start: Number(fields[19]) };
  } catch {
    return null;
  }
}

export async function processStartTime(pid: number): Promise<number | null> {
  return (await processStat(pid))?.start ?? null;
}

/**
 * True when the process that recorded (pid, start) still runs. A zombie does
 * not count: in a container nobody may ever reap an orphan.
 */
export async function stillRunning(pid: number, start: number | null | undefined): Promise<boolean> {
  if (!processAlive(pid)) return false;
  const stat = await processStat(pid);
  if (stat === null) return true;
  return stat.state !== 'Z' && (start === null || start === undefined || stat.start === start);
}

/** True while a process of the group runs (zombies aside). */
export async function processGroupRunning(processGroup: number): Promise<boolean> {
  if (!signalProcessGroup(processGroup, 0)) return false;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await processStat(entry);
    if (stat && stat.processGroup === processGroup && stat.state !== 'Z') return true;
  }
  return false;
}

/** Cuts a byte stream into lines; a line longer than `limit` characters is passed on in pieces. */
export class LineSplitter {
  private pending = '';
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly emit: (line: string) => void,
    private readonly limit = 65_536,
  ) {}

  push(chunk: Buffer): void {
    this.pending += this.decoder.decode(chunk, { stream: true });
    let newline = this.pending.indexOf('\n');
    while (newline !== -1) {
      this.emit(this.pending.slice(0, newline).replace(/\r$/, ''));
      this.pending = this.pending.slice(newline + 1);
      newline = this.pending.indexOf('\n');
    }
    if (this.pending.length > this.limit) {
      this.emit(this.pending);
      this.pending = '';
    }
  }

  end(): void {
    this.pending += this.decoder.decode();
    if (this.pending) this.emit(this.pending);
    this.pending = '';
  }
}

/** Keeps the first `limit` bytes of a stream. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept !== chunk) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Turns a failed or timed-out result into an error a user can act on. */
export function ensureSuccess(result: ExecResult): ExecResult {
  const command = result.argv.join(' ');
  if (result.timedOut) {
    throw new UpkeepError('E_EXEC_TIMEOUT', `${command} did not finish in time and was stopped`, {
      hint: 'raise the timeout or check why the command hangs',
    });
  }
  if (result.exitCode !== 0) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join('\n');
    throw new UpkeepError(
      'E_EXEC_FAILED',
      `${command} failed with ${result.exitCode === null ? `signal ${result.signal}` : `exit code ${result.exitCode}`}${tail ? `: ${tail}` : ''}`,
      { hint: 'run the command yourself to see the whole output' },
    );
  }
  return result;
}
