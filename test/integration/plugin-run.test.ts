import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Executor, processGroupRunning, stillRunning } from '../../src/core/exec.ts';
import { manifestFromExecutable, parseManifest } from '../../src/update/plugin/manifest.ts';
import type { PluginManifest } from '../../src/update/plugin/manifest.ts';
import type { Progress } from '../../src/update/plugin/protocol.ts';
import { invokePlugin, pluginEnvironment, settingVariable } from '../../src/update/plugin/run.ts';

const fixtures = resolve('test/fixtures/plugins');
const executor = new Executor({ env: {} });

let root: string;
let runDir: string;
let environment: Record<string, string>;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-plugin-run-'));
  runDir = join(root, 'run', 'good');
  environment = {
    PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
    HOME: join(root, 'home'),
    USER: 'someone',
    LANG: 'de_DE.UTF-8',
    TERM: 'xterm-256color',
    https_proxy: 'http://proxy.example:3128',
    XDG_CACHE_HOME: join(root, 'cache'),
    UPKEEP_HOME: join(root, 'upkeep'),
    // None of these may reach a plugin.
    GITHUB_TOKEN: 'secret',
    AWS_SECRET_ACCESS_KEY: 'secret',
    NODE_OPTIONS: '--require /tmp/evil.js',
    LD_PRELOAD: '/tmp/evil.so',
    UPKEEP_DRY_RUN: '1',
    UPKEEP_SYSTEM_PLUGINS_DIR: '/etc/elsewhere',
    XDG_RUNTIME_DIR: '/run/user/1000',
  };
});
afterEach(async () => rm(root, { recursive: true, force: true }));

async function fixtureManifest(name: string): Promise<PluginManifest> {
  const path = join(fixtures, `${name}.yaml`);
  return parseManifest(await readFile(path, 'utf8'), path, 'builtin');
}
const bare = (file: string) => manifestFromExecutable(join(fixtures, file));

describe('pluginEnvironment', () => {
  it('passes only the listed variables, plus the plugin variables and its settings', async () => {
    const manifest = { ...(await fixtureManifest('good')), name: 'upkeep-tools' };
    const { answer, result } = await invokePlugin(bare('environment.mjs'), 'version', { executor, environment, runDir });
    expect(result.exitCode).toBe(0);
    if (answer.kind !== 'success') throw new Error(`the plugin answered ${answer.kind}`);
    // The plugin adds its environment to the version data; unknown keys pass through.
    const seen = answer.data as unknown as { environment: Record<string, string>; cwd: string };
    expect(seen.cwd).toBe(runDir);
    expect(seen.environment).toEqual({
      PATH: environment.PATH,
      HOME: environment.HOME,
      USER: 'someone',
      https_proxy: 'http://proxy.example:3128',
      XDG_CACHE_HOME: join(root, 'cache'),
      UPKEEP_HOME: join(root, 'upkeep'),
      TERM: 'dumb',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TMPDIR: join(runDir, 'tmp'),
      UPKEEP_PLUGIN_TMPDIR: join(runDir, 'tmp'),
      UPKEEP_PLUGIN_STATE: runDir,
      UPKEEP_PROTOCOL_VERSION: '1',
      UPKEEP_PLUGIN_NAME: 'environment',
    });
    await access(join(runDir, 'tmp'));

    const withSettings = pluginEnvironment(manifest, {
      environment,
      runDir,
      settings: { mirror: 'https://mirror.example', parallel: 4 },
      dryRun: true,
      extra: { UPKEEP_COMMAND: '["node","/opt/upkeep/bin/upkeep.js"]' },
    });
    expect(withSettings).toMatchObject({
      UPKEEP_UPKEEP_TOOLS_AUTO_REMOVE: 'true',
      UPKEEP_UPKEEP_TOOLS_MIRROR: 'https://mirror.example',
      UPKEEP_UPKEEP_TOOLS_PARALLEL: '4',
      UPKEEP_DRY_RUN: '1',
      UPKEEP_COMMAND: '["node","/opt/upkeep/bin/upkeep.js"]',
      UPKEEP_PLUGIN_NAME: 'upkeep-tools',
    });
  });

  it('never lets a setting replace one of upkeep’s own variables', () => {
    const manifest = { ...bare('good.sh'), name: 'dry', settings: { run: true } };
    expect(settingVariable('dry', 'run')).toBe('UPKEEP_DRY_RUN');
    expect(pluginEnvironment(manifest, { environment, runDir }).UPKEEP_DRY_RUN).toBeUndefined();
    const plugin = { ...bare('good.sh'), name: 'plugin', settings: { name: 'other', state: '/elsewhere' } };
    expect(pluginEnvironment(plugin, { environment, runDir })).toMatchObject({ UPKEEP_PLUGIN_NAME: 'plugin', UPKEEP_PLUGIN_STATE: runDir });
  });

  it('spells settings as UPKEEP_<PLUGIN>_<KEY>', () => {
    expect(settingVariable('upkeep-tools', 'auto_remove')).toBe('UPKEEP_UPKEEP_TOOLS_AUTO_REMOVE');
    expect(settingVariable('go', 'x.y')).toBe('UPKEEP_GO_X_Y');
  });
});

describe('invokePlugin', () => {
  it('runs a command in the run folder and reads its answer, keeping state between phases', async () => {
    const manifest = await fixtureManifest('good');
    const estimate = await invokePlugin(manifest, 'estimate-update', { executor, environment, runDir });
    expect(estimate.answer).toMatchObject({ kind: 'success', data: { applicable: true, packages_to_update: [{ name: 'python3' }, { name: 'fresh', current_version: null }] } });
    expect(estimate.result.argv).toEqual([join(fixtures, 'good.sh'), 'estimate-update']);

    const progress: Progress[] = [];
    const output: string[] = [];
    let pid = 0;
    const update = await invokePlugin(manifest, 'update', {
      executor,
      environment,
      runDir,
      onProgress: (line) => progress.push(line),
      onOutput: (line) => output.push(line),
      onStart: (started) => (pid = started),
    });
    expect(update.answer).toMatchObject({ kind: 'success', data: { package_count: 1 } });
    expect(pid).toBeGreaterThan(0);
    expect(output).toEqual(['reusing the estimate', 'Setting up python3']);
    expect(progress).toEqual([{ percent: 10, message: 'unpacking', current: 1, total: 2 }, { percent: 100 }]);

    const mutexes = await invokePlugin(manifest, 'update-mutexes', { executor, environment, runDir });
    expect(mutexes.answer).toEqual({ kind: 'success', data: { mutexes: ['runtime:python'] } });
    expect((await invokePlugin(manifest, 'self-update', { executor, environment, runDir })).answer).toEqual({ kind: 'not-supported' });
    expect((await invokePlugin(manifest, 'does-require-sudo', { executor, environment, runDir })).answer).toEqual({ kind: 'no', data: { requires_sudo: false } });
  });

  it('tells progress lines from log lines, and near-misses are log lines', async () => {
    const progress: Progress[] = [];
    const output: string[] = [];
    const { answer } = await invokePlugin(bare('progress.sh'), 'update', {
      executor,
      environment,
      runDir,
      onProgress: (line) => progress.push(line),
      onOutput: (line) => output.push(line),
    });
    expect(answer.kind).toBe('success');
    expect(progress).toEqual([
      { percent: 0, message: 'starting' },
      { percent: 50, message: 'half', bytes_done: 500, bytes_total: 1000 },
      { percent: 100, message: 'done' },
    ]);
    expect(output).toEqual(['Get:1 http://deb.example stable/main pkg 1.0', '{"type":"progress","percent":150}', '{"type":"status","percent":60}']);
  });

  it('kills a hung plugin at its phase timeout together with its children', async () => {
    const manifest = { ...bare('hang.sh'), timeouts: { ...bare('hang.sh').timeouts, update: 1 } };
    let group = 0;
    const { answer, result } = await invokePlugin(manifest, 'update', { executor, environment, runDir, onStart: (pid) => (group = pid) });
    expect(result.timedOut).toBe(true);
    expect(answer).toMatchObject({ kind: 'failed', transient: true, timedOut: true, error: { code: 'TIMEOUT', details: 'waiting for a lock' } });
    // A killed process may linger as a zombie until this container's init reaps it: it does not count.
    expect(await processGroupRunning(group)).toBe(false);
    const grandchild = Number(await readFile(join(runDir, 'grandchild.pid'), 'utf8'));
    expect(await stillRunning(grandchild, null)).toBe(false);
  });

  it('takes an explicit timeout over the manifest’s', async () => {
    const { answer } = await invokePlugin(bare('hang.sh'), 'version', { executor, environment, runDir, timeoutSeconds: 0.5 });
    expect(answer).toMatchObject({ kind: 'failed', timedOut: true });
  });

  it('stops the plugin when the run is interrupted', async () => {
    const controller = new AbortController();
    const { answer } = await invokePlugin(bare('hang.sh'), 'update', {
      executor,
      environment,
      runDir,
      signal: controller.signal,
      onStart: () => setImmediate(() => controller.abort()),
    });
    expect(answer).toMatchObject({ kind: 'failed', transient: false, timedOut: false, error: { code: 'INTERRUPTED' } });
  });

  it('reports transient failures so the caller can retry, and the retry succeeds', async () => {
    const manifest = bare('transient.sh');
    const first = await invokePlugin(manifest, 'update', { executor, environment, runDir });
    expect(first.answer).toEqual({
      kind: 'failed',
      error: { code: 'TEMPORARY_FAILURE', message: 'the package database is locked', details: 'E: Could not get lock /var/lib/dpkg/lock-frontend' },
      transient: true,
      timedOut: false,
    });
    expect(first.result.exitCode).toBe(75);
    const second = await invokePlugin(manifest, 'update', { executor, environment, runDir });
    expect(second.answer).toEqual({ kind: 'success', data: { package_count: 3 } });
    const download = await invokePlugin(manifest, 'download', { executor, environment, runDir });
    expect(download.answer).toMatchObject({ kind: 'failed', transient: true, error: { code: 'NETWORK_ERROR', details: 'Temporary failure in name resolution' } });
  });

  it('reports garbage and disagreeing exit codes as protocol failures', async () => {
    expect((await invokePlugin(bare('garbage.sh'), 'version', { executor, environment, runDir })).answer).toMatchObject({
      kind: 'failed',
      transient: false,
      error: { code: 'PROTOCOL', message: 'version: stdout is not one JSON envelope: "Reading package lists... Done\\nBuilding dependency tree... Done"' },
    });
    expect((await invokePlugin(bare('disagree.sh'), 'version', { executor, environment, runDir })).answer).toMatchObject({
      kind: 'failed',
      error: { code: 'PROTOCOL', message: 'version: exit code 2 does not agree with status "success"' },
    });
    expect((await invokePlugin(bare('minimal.sh'), 'download', { executor, environment, runDir })).answer).toEqual({ kind: 'not-implemented' });
  });

  it('turns an executable that cannot start into a failure, not an exception', async () => {
    const missing = await invokePlugin(bare('nowhere.sh'), 'version', { executor, environment, runDir });
    expect(missing.answer).toMatchObject({ kind: 'failed', transient: false, timedOut: false, error: { code: 'EXEC' } });
    expect(missing.result.exitCode).toBeNull();
    const locked = await invokePlugin(bare('not-executable.sh'), 'version', { executor, environment, runDir });
    expect(locked.answer).toMatchObject({ kind: 'failed', transient: false, error: { code: 'EXEC', details: expect.stringMatching(/chmod/) } });
  });

  it('runs queries under a dry-run executor but only records actions', async () => {
    const dry = new Executor({ env: {}, dryRun: true });
    const manifest = bare('recorder.sh');
    const home = environment.HOME!;
    await mkdir(home, { recursive: true });
    expect((await invokePlugin(manifest, 'is-applicable', { executor: dry, environment, runDir, dryRun: true })).answer.kind).toBe('success');
    expect((await invokePlugin(manifest, 'update', { executor: dry, environment, runDir, dryRun: true })).answer).toEqual({ kind: 'success', data: {} });
    expect(dry.recorded).toEqual([[join(fixtures, 'recorder.sh'), 'update']]);
    expect(await readFile(join(home, 'commands.log'), 'utf8')).toBe('is-applicable\n');
  });
});
