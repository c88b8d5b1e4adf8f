import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runCli } from '../../src/cli/run.ts';

/**
 * A throw-away machine for one test: a home folder, UPKEEP_HOME for every file
 * upkeep writes, a bin folder that is the whole PATH, and a log of every
 * stub executable run (so a test can assert that nothing was spawned).
 */
export interface Sandbox {
  root: string;
  home: string;
  bin: string;
  upkeepHome: string;
  spawnLog: string;
  environment: Record<string, string>;
  cleanup(): Promise<void>;
}

export async function createSandbox(extra: Record<string, string> = {}): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), 'upkeep-test-'));
  const home = join(root, 'home');
  const bin = join(root, 'bin');
  const upkeepHome = join(root, 'upkeep');
  await Promise.all([mkdir(home, { recursive: true }), mkdir(bin, { recursive: true }), mkdir(join(upkeepHome, 'config'), { recursive: true })]);
  // Only the sandbox's bin folder is searched, never the real machine's.
  await writeFile(join(upkeepHome, 'config', 'config.yaml'), 'audit:\n  extraPaths: []\n');
  const spawnLog = join(root, 'spawned.log');
  const environment: Record<string, string> = {
    HOME: home,
    // Only the stubs: the machine's own tools must not leak into a test.
    PATH: bin,
    UPKEEP_HOME: upkeepHome,
    UPKEEP_SYSTEM_CONFIG: join(root, 'etc-upkeep.yaml'),
    STUB_LOG: spawnLog,
    NO_COLOR: '1',
    ...extra,
  };
  return { root, home, bin, upkeepHome, spawnLog, environment, cleanup: () => rm(root, { recursive: true, force: true }) };
}

export interface StubOptions {
  /** Printed on stdout. */
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Seconds to sleep first (to test timeouts). */
  sleep?: number;
  /** Replaces the body entirely. */
  script?: string;
}

/** A shell-script stand-in for a real tool, recording each run in $STUB_LOG. */
export async function writeStub(folder: string, name: string, options: StubOptions = {}): Promise<string> {
  const path = join(folder, name);
  const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
  const body =
    options.script ??
    [
      options.sleep ? `/bin/sleep ${options.sleep}` : '',
      options.stdout !== undefined ? `printf '%s\\n' ${quote(options.stdout)}` : '',
      options.stderr !== undefined ? `printf '%s\\n' ${quote(options.stderr)} >&2` : '',
      `exit ${options.exitCode ?? 0}`,
    ]
      .filter(Boolean)
      .join('\n');
  await writeFile(path, `#!/bin/sh\n[ -n "$STUB_LOG" ] && echo "${name} $*" >> "$STUB_LOG"\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

/** Runs upkeep in-process with the sandbox's environment. */
export interface RunOptions {
  /** The user id upkeep believes it runs as (default: the real one). */
  uid?: number;
  /** Piped on stdin. */
  stdin?: string;
}

export async function runUpkeep(argv: string[], environment: Record<string, string>, cwd = environment.HOME ?? tmpdir(), options: RunOptions = {}): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const stdin = options.stdin === undefined ? undefined : Readable.from([options.stdin]);
  const exitCode = await runCli(argv, {
    environment,
    cwd,
    stdout,
    stderr,
    stdoutIsTTY: false,
    stderrIsTTY: false,
    ...(stdin ? { stdin, stdinIsTTY: false } : {}),
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    pid: process.pid,
  });
  return {
    exitCode,
    stdout: out,
    stderr: err,
    json: <T>() => JSON.parse(out) as T,
  };
}
