import { access, constants, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { parse } from 'yaml';
import { Executor } from '../../src/core/exec.ts';
import { createSandbox, writeStub, type Sandbox } from './sandbox.ts';

/**
 * The built-in plugins (plugins/*.mjs) run as the executables they are, the
 * way upkeep runs them, against stand-ins of the package managers on a
 * sandbox PATH. The stand-ins print what the real tools print
 * (test/fixtures/plugins/<manager>) and log every argv they get.
 */

export const PLUGINS = resolve(import.meta.dirname, '../../plugins');
const FIXTURES = resolve(import.meta.dirname, '../fixtures/plugins');

export interface Envelope {
  protocol: number;
  status: 'success' | 'error' | 'not_applicable' | 'not_supported';
  data: Record<string, unknown> | null;
  error: { code: string; message: string; details?: string } | null;
}
export interface Package {
  name: string;
  current_version: string | null;
  new_version: string;
  download_size_bytes?: number;
  installed_size_bytes?: number;
  security?: boolean;
}
export interface Estimate {
  applicable: true;
  packages_to_update: Package[];
  total_download_size_bytes?: number;
  total_installed_size_bytes?: number;
  affects_runtimes?: string[];
  requires_reboot?: boolean;
  security_updates?: boolean;
}
export interface Updated {
  packages_updated: Array<{ name: string; from?: string; to?: string }>;
  package_count: number;
  downloaded_bytes?: number;
  requires_reboot?: boolean;
  message?: string;
}
export interface PluginRun {
  exitCode: number | null;
  envelope: Envelope;
  stderr: string;
  progress: Array<{ percent: number; message?: string }>;
}

/** plugins/<name>.yaml's `plugin` section. */
export interface Manifest {
  name: string;
  version: string;
  description: string;
  executable: string;
  protocol: number;
  requires_sudo: boolean;
  can_separate_download: boolean;
  supports_self_update: boolean;
  supports_dynamic_mutexes: boolean;
  static_mutexes: Record<string, string[]>;
  static_dependencies: Record<string, string[]>;
  runs_after: string[];
  timeouts: Record<string, number>;
  settings?: Record<string, string | number | boolean>;
}

/** One answer of a stand-in, when its arguments (joined by spaces) are `when`; a `*` in `when` matches anything. */
export interface Reply {
  when: string;
  /** A file under test/fixtures/plugins/<manager>/, printed on stdout. */
  stdout?: string;
  /** The same, printed on stderr. */
  stderr?: string;
  /** Literal text for stdout (for one-liners that need no fixture file). */
  text?: string;
  exit?: number;
  /** Shell lines to run first (to record the environment, say). */
  also?: string;
}

export interface BuiltinPluginHarness {
  /** The sandbox of the running test (a fresh one for each test). */
  readonly box: Sandbox;
  /** A stand-in for `program` answering each reply's pattern; anything else fails loudly with exit 99. */
  stub(manager: string, program: string, replies: Reply[]): Promise<void>;
  /** Runs `<plugin>.mjs <command>` the way upkeep does: its own state folder, a plain environment. */
  plugin(name: string, command: string, environment?: Record<string, string>, timeout?: number): Promise<PluginRun>;
  /** The argv every stand-in was run with, in order. */
  ran(): Promise<string[]>;
  /** Every plugin answers absence the same way: exit 1, not_applicable, and why. */
  expectNotApplicable(name: string, reason: string, environment?: Record<string, string>): Promise<void>;
  expectApplicable(name: string, environment?: Record<string, string>): Promise<void>;
}

const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/** Gives each test of the calling file a fresh sandbox, and the means to run the built-in plugins in it. */
export function useBuiltinPlugins(): BuiltinPluginHarness {
  let current: Sandbox | undefined;
  let fileCount = 0;
  const executor = new Executor();

  beforeEach(async () => {
    current = await createSandbox();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });

  const sandbox = (): Sandbox => {
    if (!current) throw new Error('the sandbox exists only while a test runs');
    return current;
  };

  async function stub(manager: string, program: string, replies: Reply[]): Promise<void> {
    const box = sandbox();
    const branches: string[] = [];
    for (const reply of replies) {
      const lines = reply.also ? [reply.also] : [];
      if (reply.stdout) lines.push(`/bin/cat ${quote(join(FIXTURES, manager, reply.stdout))}`);
      if (reply.text !== undefined) {
        const path = join(box.root, `text-${++fileCount}.txt`);
        await writeFile(path, `${reply.text}\n`);
        lines.push(`/bin/cat ${quote(path)}`);
      }
      if (reply.stderr) lines.push(`/bin/cat ${quote(join(FIXTURES, manager, reply.stderr))} >&2`);
      lines.push(`exit ${reply.exit ?? 0}`);
      const pattern = reply.when.split('*').map(quote).join('*');
      branches.push(`  ${pattern})\n    ${lines.join('\n    ')}\n    ;;`);
    }
    const script = `case "$*" in\n${branches.join('\n')}\nesac\necho "unexpected: ${program} $*" >&2\nexit 99`;
    await writeStub(box.bin, program, { script });
  }

  async function plugin(name: string, command: string, environment: Record<string, string> = {}, timeout = 20_000): Promise<PluginRun> {
    const box = sandbox();
    const result = await executor.run([process.execPath, join(PLUGINS, `${name}.mjs`), command], {
      env: {
        ...box.environment,
        LANG: 'C.UTF-8',
        LC_ALL: 'C.UTF-8',
        TERM: 'dumb',
        TMPDIR: box.root,
        UPKEEP_PLUGIN_STATE: join(box.root, 'run'),
        UPKEEP_PLUGIN_NAME: name,
        UPKEEP_PROTOCOL_VERSION: '1',
        ...environment,
      },
      cwd: box.root,
      timeout,
    });
    const lines = result.stdout.trim().split('\n');
    expect(lines, `stdout of ${name} ${command} must be one envelope:\n${result.stdout}\n${result.stderr}`).toHaveLength(1);
    const envelope = JSON.parse(lines[0]!) as Envelope;
    const progress = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{"type":"progress"'))
      .map((line) => JSON.parse(line) as { percent: number; message?: string });
    return { exitCode: result.exitCode, envelope, stderr: result.stderr, progress };
  }

  async function ran(): Promise<string[]> {
    try {
      return (await readFile(sandbox().spawnLog, 'utf8'))
        .split('\n')
        .map((line) => line.trim())
        .filter(Boolean);
    } catch {
      return [];
    }
  }

  async function expectNotApplicable(name: string, reason: string, environment: Record<string, string> = {}): Promise<void> {
    for (const command of ['is-applicable', 'estimate-update']) {
      const run = await plugin(name, command, environment);
      expect(run.exitCode).toBe(1);
      expect(run.envelope).toMatchObject({ status: 'not_applicable', data: { applicable: false, reason }, error: null });
    }
  }

  async function expectApplicable(name: string, environment: Record<string, string> = {}): Promise<void> {
    const run = await plugin(name, 'is-applicable', environment);
    expect(run.exitCode).toBe(0);
    expect(run.envelope).toMatchObject({ status: 'success', data: { applicable: true } });
  }

  return {
    get box() {
      return sandbox();
    },
    stub,
    plugin,
    ran,
    expectNotApplicable,
    expectApplicable,
  };
}

export function estimateOf(run: PluginRun): Estimate {
  expect(run.exitCode, run.stderr).toBe(0);
  expect(run.envelope.status).toBe('success');
  return run.envelope.data as unknown as Estimate;
}

export function updatedOf(run: PluginRun): Updated {
  expect(run.exitCode, run.stderr).toBe(0);
  expect(run.envelope.status).toBe('success');
  return run.envelope.data as unknown as Updated;
}

export function expectFailure(run: PluginRun, exitCode: number, code: string): void {
  expect(run.exitCode, run.stderr).toBe(exitCode);
  expect(run.envelope.status).toBe('error');
  expect(run.envelope.data).toBeNull();
  expect(run.envelope.error?.code).toBe(code);
}

export function expectProgressToEnd(run: PluginRun): void {
  expect(run.progress.length).toBeGreaterThan(1);
  expect(run.progress.at(-1)?.percent).toBe(100);
  for (const line of run.progress) expect(line.percent).toBeGreaterThanOrEqual(0);
}

/** The `plugin` section of plugins/<name>.yaml, which must be the manifest's only key. */
export async function manifestOf(name: string): Promise<Manifest> {
  const document = parse(await readFile(join(PLUGINS, `${name}.yaml`), 'utf8')) as { plugin: Manifest };
  expect(Object.keys(document)).toEqual(['plugin']);
  return document.plugin;
}

/** plugins/<name>.mjs is an executable (mode 755) that runs with node. */
export async function expectExecutable(name: string): Promise<void> {
  const executable = join(PLUGINS, `${name}.mjs`);
  await access(executable, constants.X_OK);
  expect((await stat(executable)).mode & 0o777).toBe(0o755);
  expect((await readFile(executable, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
}
