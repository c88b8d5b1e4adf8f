import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runUpkeep, writeStub } from '../helpers/sandbox.ts';
import { createUpdateSandbox, intervals, readPluginLog, type UpdateSandbox } from '../helpers/update.ts';

let sandbox: UpdateSandbox | undefined;
afterEach(async () => {
  await sandbox?.cleanup();
  sandbox = undefined;
});

interface CheckJson {
  plugins: Array<{ name: string; applicable: boolean; reason: string | null; updates: Array<{ name: string; newVersion: string }>; estimate: Record<string, { seconds: number }> }>;
  estimate: { seconds: number; low: number; high: number };
}

interface Report {
  status: string;
  plugins: Array<{ name: string; phases: Record<string, { status: string; attempts: number; error?: { code: string; message: string } }> }>;
  summary: { succeeded: string[]; failed: string[]; notRun: string[]; packagesUpdated: number };
}

/** The NDJSON lines of `update run --json`; the last one is the summary. */
function events(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function summaryOf(stdout: string): Report {
  const last = events(stdout).at(-1)!;
  expect(last.type).toBe('summary');
  return last.report as Report;
}

async function appliedPlugins(): Promise<string[]> {
  return (await readPluginLog(sandbox!.log)).filter((entry) => entry.event === 'applied').map((entry) => entry.plugin).sort();
}

describe('upkeep update check', () => {
  it('lists every plugin: pending updates of those that apply, why the others do not, and the estimated time', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'alpha', settings: { updates: 2, security: true } },
      { name: 'beta', settings: { updates: 0 } },
      { name: 'gamma', settings: { applicable: false } },
    ]);
    const result = await runUpkeep(['update', 'check', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    const data = result.json<CheckJson>();
    const byName = new Map(data.plugins.map((plugin) => [plugin.name, plugin]));
    expect(byName.get('alpha')).toMatchObject({ applicable: true, reason: null, updates: [{ name: 'alpha-package-1', newVersion: '1.1.0' }, { name: 'alpha-package-2' }] });
    expect(byName.get('alpha')!.estimate.update!.seconds).toBeGreaterThan(0);
    expect(byName.get('beta')).toMatchObject({ applicable: true, updates: [] });
    expect(byName.get('gamma')).toMatchObject({ applicable: false, reason: 'gamma is switched off', updates: [] });
    expect(data.estimate.seconds).toBeGreaterThan(0);
    // A check changes nothing and leaves no run behind.
    expect(await appliedPlugins()).toEqual([]);
    expect(existsSync(join(sandbox.upkeepHome, 'state', 'update', 'run.json'))).toBe(false);
  });

  it('asks a dozen plugins at once without a warning about too many abort listeners', async () => {
    sandbox = await createUpdateSandbox(Array.from({ length: 12 }, (_, index) => ({ name: `plugin${index + 1}` })));
    const warnings: string[] = [];
    const listener = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', listener);
    try {
      const result = await runUpkeep(['update', 'check', '--json'], sandbox.environment);
      expect(result.exitCode).toBe(0);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', listener);
    }
    expect(warnings.filter((warning) => warning.includes('MaxListeners'))).toEqual([]);
  });

  it('reports a plugin that prints garbage as failed with a protocol error, and the others normally', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }, { name: 'broken', settings: { garbage: 'estimate' } }]);
    const result = await runUpkeep(['update', 'check', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(3);
    const broken = result.json<CheckJson & { plugins: Array<{ error?: { code: string } }> }>().plugins.find((plugin) => plugin.name === 'broken')!;
    expect(broken).toMatchObject({ applicable: true, error: { code: 'PROTOCOL' } });
    expect(broken.reason).toMatch(/json/i);
  });

  it('refuses an unknown plugin name with E_PLUGIN_UNKNOWN and lists the known ones', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }]);
    const result = await runUpkeep(['update', 'check', '--plugins', 'alpha,nope'], sandbox.environment);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('error[E_PLUGIN_UNKNOWN]');
    expect(result.stderr).toContain('known plugins: alpha');
  });
});

describe('upkeep update run', () => {
  it('runs every update once, after what it runs after, never two holders of a mutex at once', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'system', mutexes: { update: ['pkgmgr:apt', 'runtime:python'] }, settings: { seconds: 0.6 } },
      { name: 'other', mutexes: { update: ['pkgmgr:apt'] }, settings: { seconds: 0.3 } },
      { name: 'language', dependencies: { update: ['runtime:python'] }, runsAfter: ['system'], settings: { seconds: 0.2 } },
      { name: 'free', settings: { seconds: 0.4 } },
    ]);
    const result = await runUpkeep(['update', 'run', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    expect(summaryOf(result.stdout).summary).toMatchObject({ failed: [], notRun: [], packagesUpdated: 4 });
    expect(await appliedPlugins()).toEqual(['free', 'language', 'other', 'system']);
    const updates = intervals(await readPluginLog(sandbox.log), 'update');
    const system = updates.get('system')!;
    const other = updates.get('other')!;
    const language = updates.get('language')!;
    // The two holders of pkgmgr:apt never overlap; language starts after system ended.
    expect(system.end <= other.start || other.end <= system.start).toBe(true);
    expect(language.start).toBeGreaterThanOrEqual(system.end);
    // `free` shares nothing, so the scheduler starts it beside `system` (by its events, not the clock).
    const stream = events(result.stdout);
    const index = (plugin: string, status: string) =>
      stream.findIndex((event) => event.type === 'phase' && event.plugin === plugin && event.phase === 'update' && event.status === status);
    expect(index('free', 'running')).toBeLessThan(index('system', 'completed'));
    expect(index('system', 'running')).toBeLessThan(index('free', 'completed'));
  });

  it('streams NDJSON events: run states, phase transitions with progress between, a summary last', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }]);
    const result = await runUpkeep(['update', 'run', '--json'], sandbox.environment);
    const stream = events(result.stdout);
    const runStates = stream.filter((event) => event.type === 'run').map((event) => event.status);
    expect(runStates).toEqual(['estimating', 'downloading', 'updating', 'completed']);
    const update = stream.filter((event) => event.plugin === 'alpha' && event.phase === 'update');
    expect(update[0]).toMatchObject({ type: 'phase', status: 'running', attempt: 1 });
    expect(update.at(-1)).toMatchObject({ type: 'phase', status: 'completed' });
    expect(update.filter((event) => event.type === 'progress').map((event) => event.percent)).toEqual([25, 50, 75, 100]);
    expect(stream.at(-1)!.type).toBe('summary');
  });

  it('prints the plan of a dry run and changes nothing', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }, { name: 'beta', runsAfter: ['alpha'] }]);
    const result = await runUpkeep(['update', 'run', '--dry-run'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('Plan (dry run, nothing was changed)');
    expect(result.stdout.indexOf('alpha')).toBeLessThan(result.stdout.indexOf('beta'));
    expect(await appliedPlugins()).toEqual([]);
  });

  it('downloads first for plugins that can separate the download, within the download slots', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'alpha', canSeparateDownload: true },
      { name: 'beta', canSeparateDownload: true },
      { name: 'gamma', canSeparateDownload: true },
    ]);
    const result = await runUpkeep(['update', 'run', '--json'], { ...sandbox.environment, UPKEEP_UPDATE_MAX_DOWNLOADS: '1' });
    expect(result.exitCode).toBe(0);
    const log = await readPluginLog(sandbox.log);
    const downloads = [...intervals(log, 'download').values()].sort((a, b) => a.start - b.start);
    expect(downloads).toHaveLength(3);
    for (let index = 1; index < downloads.length; index += 1) expect(downloads[index]!.start).toBeGreaterThanOrEqual(downloads[index - 1]!.end);
    const firstUpdate = Math.min(...[...intervals(log, 'update').values()].map((interval) => interval.start));
    expect(firstUpdate).toBeGreaterThanOrEqual(downloads.at(-1)!.end);
  });

  it('stops starting plugins after a failure, then `retry` runs only the failed and the unstarted ones', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'first', settings: { fail: 'update' }, timeouts: {} },
      { name: 'second', runsAfter: ['first'] },
    ]);
    const failed = await runUpkeep(['update', 'run', '--json'], sandbox.environment);
    expect(failed.exitCode).toBe(1);
    const report = summaryOf(failed.stdout);
    expect(report.summary.failed).toEqual(['first']);
    expect(report.summary.notRun).toEqual(['second']);
    expect(report.plugins.find((plugin) => plugin.name === 'first')!.phases.update).toMatchObject({ status: 'failed', error: { code: 'BROKEN' } });
    expect(await appliedPlugins()).toEqual([]);

    await writeSetting('first', 'fail', '');
    const retried = await runUpkeep(['update', 'retry', '--json'], sandbox.environment);
    expect(retried.exitCode).toBe(0);
    expect(summaryOf(retried.stdout).summary.succeeded.sort()).toEqual(['first', 'second']);
    expect(await appliedPlugins()).toEqual(['first', 'second']);
    const again = await runUpkeep(['update', 'retry'], sandbox.environment);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('error[E_NO_RUN]');
  });

  it('goes on with the others with --continue-on-error and exits 3 (partial)', async () => {
    sandbox = await createUpdateSandbox([{ name: 'first', settings: { fail: 'update' } }, { name: 'second', runsAfter: ['first'] }, { name: 'third' }]);
    const result = await runUpkeep(['update', 'run', '--continue-on-error', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(3);
    expect(summaryOf(result.stdout).summary).toMatchObject({ failed: ['first'], notRun: [] });
    expect(await appliedPlugins()).toEqual(['second', 'third']);
  });

  it('retries a transient failure with backoff and records the attempts', async () => {
    sandbox = await createUpdateSandbox([{ name: 'flaky', settings: { transient_failures: 2 } }]);
    const result = await runUpkeep(['update', 'run', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    const stream = events(result.stdout);
    expect(stream.filter((event) => event.type === 'retry')).toHaveLength(2);
    expect(summaryOf(result.stdout).plugins[0]!.phases.update).toMatchObject({ status: 'completed', attempts: 3 });
    const history = await runUpkeep(['update', 'history', '--plugin', 'flaky', '--json'], sandbox.environment);
    expect(history.json<{ records: Array<{ phase: string; attempts: number; success: boolean }> }>().records).toEqual(
      expect.arrayContaining([expect.objectContaining({ phase: 'update', attempts: 3, success: true })]),
    );
  });

  it('gives up on a transient failure after update.retries', async () => {
    sandbox = await createUpdateSandbox([{ name: 'flaky', settings: { transient_failures: 5 } }]);
    const result = await runUpkeep(['update', 'run', '--json'], { ...sandbox.environment, UPKEEP_UPDATE_RETRIES: '1' });
    expect(result.exitCode).toBe(1);
    expect(summaryOf(result.stdout).plugins[0]!.phases.update).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'NETWORK_ERROR' } });
  });

  it('kills a hung plugin at its timeout, process group and all, and the rest finish', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'hung', settings: { hang: 'update' }, timeouts: { update: 1 } },
      { name: 'fine', settings: { seconds: 0.2 } },
    ]);
    const result = await runUpkeep(['update', 'run', '--continue-on-error', '--json'], { ...sandbox.environment, UPKEEP_UPDATE_RETRIES: '0' });
    expect(result.exitCode).toBe(3);
    const report = summaryOf(result.stdout);
    expect(report.plugins.find((plugin) => plugin.name === 'hung')!.phases.update).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    expect(report.summary.succeeded).toEqual(['fine']);
  });

  it('runs a plugin that needs root for a user whom sudo lets run exactly its programs (sudo-setup rules), and skips one it does not', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'granted', requiresSudo: true, settings: { sudo_programs: JSON.stringify(['/usr/sbin/granted-tool']) } },
      { name: 'refused', requiresSudo: true, settings: { sudo_programs: JSON.stringify(['/usr/sbin/granted-tool', '/usr/sbin/other-tool']) } },
    ]);
    // sudo as `upkeep sudo-setup` leaves it: a password for anything but granted-tool.
    await writeStub(sandbox.bin, 'sudo', {
      script: [
        'if [ "$1 $2 $3" = "-n -l /usr/sbin/granted-tool" ]; then echo "$3"; exit 0; fi',
        'echo "sudo: a password is required" >&2',
        'exit 1',
      ].join('\n'),
    });
    const result = await runUpkeep(['update', 'run', '--continue-on-error', '--json'], sandbox.environment, sandbox.home, { uid: 1000 });
    const report = summaryOf(result.stdout);
    expect(report.summary.succeeded).toEqual(['granted']);
    expect(report.plugins.find((plugin) => plugin.name === 'refused')!.phases.update).toMatchObject({ status: 'skipped' });
    expect(await appliedPlugins()).toEqual(['granted']);
    const asked = (await readFile(sandbox.spawnLog, 'utf8')).split('\n').filter((line) => line.startsWith('sudo -n -l'));
    expect(asked.sort()).toEqual(['sudo -n -l /usr/sbin/granted-tool', 'sudo -n -l /usr/sbin/granted-tool', 'sudo -n -l /usr/sbin/other-tool']);
  });

  it('records every phase for history and stats, and uses the history for the next estimate', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha', settings: { seconds: 0.2 } }]);
    await runUpkeep(['update', 'run'], sandbox.environment);
    const stats = await runUpkeep(['update', 'stats', '--json'], sandbox.environment);
    const phases = stats.json<{ phases: Array<{ plugin: string; phase: string; count: number; nextEstimate: { basis: string } }> }>().phases;
    expect(phases.find((entry) => entry.phase === 'update')).toMatchObject({ plugin: 'alpha', count: 1, nextEstimate: { basis: 'history' } });
    expect(phases.find((entry) => entry.phase === 'estimate')).toMatchObject({ plugin: 'alpha', count: 1 });
    const history = await runUpkeep(['update', 'history'], sandbox.environment);
    expect(history.stdout).toContain('alpha');
    expect(history.stdout).toContain('update');
  });

  it('writes the run to a JSON-lines log file', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }]);
    await runUpkeep(['update', 'run'], sandbox.environment);
    const lines = (await readFile(join(sandbox.upkeepHome, 'state', 'logs', 'update.log'), 'utf8')).trim().split('\n');
    const entries = lines.map((line) => JSON.parse(line) as { type: string; line?: string });
    expect(entries.some((entry) => entry.type === 'output' && entry.line === 'plain output from alpha')).toBe(true);
    expect(entries.at(-1)).toMatchObject({ type: 'run', status: 'completed' });
  });

  it('posts the summary to the configured webhook when a run fails, and a dead webhook only warns', async () => {
    const { createServer } = await import('node:http');
    const bodies: string[] = [];
    const server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        bodies.push(body);
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      sandbox = await createUpdateSandbox([{ name: 'alpha', settings: { fail: 'update' } }]);
      const result = await runUpkeep(['update', 'run'], { ...sandbox.environment, UPKEEP_NOTIFY_WEBHOOK: `http://127.0.0.1:${port}/hook` });
      expect(result.exitCode).toBe(1);
      expect(bodies).toHaveLength(1);
      expect(JSON.parse(bodies[0]!)).toMatchObject({ status: 'failed', failed: ['alpha'] });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const dead = await runUpkeep(['update', 'run'], { ...sandbox.environment, UPKEEP_NOTIFY_WEBHOOK: `http://127.0.0.1:${port}/hook` });
    expect(dead.exitCode).toBe(1);
    expect(dead.stderr).toMatch(/warning: .*webhook/i);
  });

  async function writeSetting(plugin: string, key: string, value: string): Promise<void> {
    const path = join(sandbox!.plugins, `${plugin}.yaml`);
    const text = await readFile(path, 'utf8');
    const { parse, stringify } = await import('yaml');
    const manifest = parse(text) as { plugin: { settings: Record<string, unknown> } };
    manifest.plugin.settings[key] = value;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path, stringify(manifest));
  }
});

describe('interruption', () => {
  const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

  /** upkeep as its own process (so that it can be killed), through tsx. */
  function startUpkeep(argv: string[], environment: Record<string, string>) {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...argv], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return { child, exited, output: () => ({ stdout, stderr }) };
  }

  async function waitFor(condition: () => Promise<boolean>): Promise<void> {
    for (let attempt = 0; attempt < 400; attempt += 1) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('condition not met');
  }

  it('resumes after kill -9: what completed is not run again, and every update applies exactly once', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'quick', settings: { seconds: 0.1 } },
      { name: 'slow', mutexes: { update: ['pkgmgr:apt'] }, settings: { seconds: 3 } },
      { name: 'later', mutexes: { update: ['pkgmgr:apt'] }, runsAfter: ['slow'], settings: { seconds: 0.1 } },
    ]);
    const environment = { ...sandbox.environment, UPKEEP_UPDATE_PARALLEL: '2' };
    const first = startUpkeep(['update', 'run', '--json'], environment);
    // Kill upkeep once `quick` is done, while `slow` is in its update.
    await waitFor(async () => {
      const log = await readPluginLog(sandbox!.log);
      return log.some((entry) => entry.plugin === 'slow' && entry.command === 'update' && entry.event === 'start') && log.some((entry) => entry.plugin === 'quick' && entry.event === 'applied');
    });
    // The state records quick's completion right after its process ends.
    await waitFor(async () => (await readFile(join(sandbox!.upkeepHome, 'state', 'update', 'run.json'), 'utf8')).includes('1 package updated'));
    first.child.kill('SIGKILL');
    await first.exited;
    const state = JSON.parse(await readFile(join(sandbox.upkeepHome, 'state', 'update', 'run.json'), 'utf8')) as { status: string; plugins: Record<string, { phases: Record<string, { status: string }> }> };
    expect(state.status).toBe('updating');
    expect(state.plugins.slow!.phases.update!.status).toBe('running');

    const resumed = await runUpkeep(['update', 'resume', '--json'], environment);
    expect(resumed.exitCode).toBe(0);
    const stream = events(resumed.stdout);
    // The orphaned `slow` was waited for, not started beside itself.
    expect(stream.some((event) => event.type === 'warning' && String(event.message).includes('still running'))).toBe(true);
    expect(summaryOf(resumed.stdout).status).toBe('completed');
    const log = await readPluginLog(sandbox.log);
    expect(log.filter((entry) => entry.event === 'applied').map((entry) => entry.plugin).sort()).toEqual(['later', 'quick', 'slow']);
    // Finished before the kill: not run again.
    expect(log.filter((entry) => entry.plugin === 'quick' && entry.command === 'update' && entry.event === 'start')).toHaveLength(1);
    expect(stream.some((event) => event.plugin === 'quick' && event.phase === 'update')).toBe(false);
    const nothingLeft = await runUpkeep(['update', 'resume'], environment);
    expect(nothingLeft.stderr).toContain('error[E_NO_RUN]');
  }, 60_000);

  it('on the first SIGINT lets running plugins finish and starts nothing new; resume does the rest', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'running', settings: { seconds: 1.5 } },
      { name: 'waiting', runsAfter: ['running'], settings: { seconds: 0.1 } },
    ]);
    const first = startUpkeep(['update', 'run', '--json'], sandbox.environment);
    await waitFor(async () => (await readPluginLog(sandbox!.log)).some((entry) => entry.plugin === 'running' && entry.command === 'update' && entry.event === 'start'));
    first.child.kill('SIGINT');
    expect(await first.exited).toBe(1);
    const report = summaryOf(first.output().stdout);
    expect(report.status).toBe('interrupted');
    expect(await appliedPlugins()).toEqual(['running']);
    const resumed = await runUpkeep(['update', 'resume', '--json'], sandbox.environment);
    expect(resumed.exitCode).toBe(0);
    expect(await appliedPlugins()).toEqual(['running', 'waiting']);
  }, 60_000);

  it('on a second SIGINT stops the running plugins too', async () => {
    sandbox = await createUpdateSandbox([{ name: 'long', settings: { seconds: 30 } }]);
    const first = startUpkeep(['update', 'run', '--json'], sandbox.environment);
    await waitFor(async () => (await readPluginLog(sandbox!.log)).some((entry) => entry.plugin === 'long' && entry.command === 'update' && entry.event === 'start'));
    first.child.kill('SIGINT');
    await waitFor(async () => first.output().stdout.includes('waiting for the running plugins'));
    first.child.kill('SIGINT');
    expect(await first.exited).toBe(1);
    const report = summaryOf(first.output().stdout);
    expect(report.status).toBe('interrupted');
    expect(report.plugins[0]!.phases.update!.status).toBe('interrupted');
    expect(await appliedPlugins()).toEqual([]);
    // Nothing of the plugin is left running.
    const leftovers = (await readdir(join(sandbox.upkeepHome, 'state', 'update', 'runs'))).length;
    expect(leftovers).toBe(1);
  }, 60_000);
});
