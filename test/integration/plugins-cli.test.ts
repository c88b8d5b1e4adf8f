import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runUpkeep } from '../helpers/sandbox.ts';
import { createUpdateSandbox, MOCK_PLUGIN, type UpdateSandbox } from '../helpers/update.ts';

let sandbox: UpdateSandbox | undefined;
afterEach(async () => {
  await sandbox?.cleanup();
  sandbox = undefined;
});

const fixtures = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));

interface Listed {
  plugins: Array<{ name: string; enabled: boolean; layer: string; overridden: string[] }>;
}

async function userPlugins(): Promise<string> {
  const folder = join(sandbox!.upkeepHome, 'config', 'plugins.d');
  await mkdir(folder, { recursive: true });
  return folder;
}

describe('upkeep plugins', () => {
  it('lists built-in and user plugins, a user manifest overriding a built-in one, and warns about an invalid one', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }, { name: 'beta' }]);
    const folder = await userPlugins();
    await writeFile(join(folder, 'alpha.yaml'), `plugin:\n  name: alpha\n  version: "2.0.0"\n  description: my own alpha\n  executable: ${MOCK_PLUGIN}\n`);
    await writeFile(join(folder, 'broken.yaml'), 'plugin:\n  name: Broken Name\n');
    const result = await runUpkeep(['plugins', 'list', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    const { plugins } = result.json<Listed>();
    expect(plugins.map((plugin) => plugin.name)).toEqual(['alpha', 'beta']);
    expect(plugins[0]).toMatchObject({ layer: 'user', enabled: true, overridden: [join(sandbox.plugins, 'alpha.yaml')] });
    expect(result.stderr).toContain('broken.yaml');
    const human = await runUpkeep(['plugins', 'list'], sandbox.environment);
    expect(human.stdout).toMatch(/alpha\s+2\.0\.0\s+enabled\s+user \(overrides\)/);
  });

  it('shows one plugin: mutexes per phase, runs-after, timeouts and settings', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha', mutexes: { update: ['pkgmgr:apt', 'runtime:python'] }, runsAfter: ['beta'] }, { name: 'beta' }]);
    const result = await runUpkeep(['plugins', 'info', 'alpha'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/update holds\s+pkgmgr:apt, runtime:python/);
    expect(result.stdout).toMatch(/runs after\s+beta/);
    expect(result.stdout).toMatch(/timeouts\s+is-applicable 10 s/);
    const unknown = await runUpkeep(['plugins', 'info', 'gamma'], sandbox.environment);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('error[E_PLUGIN_UNKNOWN]');
  });

  it('disables and enables a plugin in the user config, keeping its comments; a disabled plugin does not run', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }, { name: 'beta' }]);
    const config = join(sandbox.upkeepHome, 'config', 'config.yaml');
    await writeFile(config, '# my settings\naudit:\n  extraPaths: [] # none\n');
    const disabled = await runUpkeep(['plugins', 'disable', 'beta'], sandbox.environment);
    expect(disabled.exitCode).toBe(0);
    const text = await readFile(config, 'utf8');
    expect(text).toContain('# my settings');
    expect(text).toContain('# none');
    expect(text).toMatch(/disabled:\s*\n\s*- beta|disabled: \[ beta \]/);
    const listed = (await runUpkeep(['plugins', 'list', '--json'], sandbox.environment)).json<Listed>();
    expect(listed.plugins.find((plugin) => plugin.name === 'beta')!.enabled).toBe(false);
    const check = (await runUpkeep(['update', 'check', '--json'], sandbox.environment)).json<{ plugins: Array<{ name: string }> }>();
    expect(check.plugins.map((plugin) => plugin.name)).toEqual(['alpha']);
    const again = await runUpkeep(['plugins', 'disable', 'beta'], sandbox.environment);
    expect(again.stdout).toContain('no change');

    const enabled = await runUpkeep(['plugins', 'enable', 'beta'], sandbox.environment);
    expect(enabled.exitCode).toBe(0);
    const after = (await runUpkeep(['plugins', 'list', '--json'], sandbox.environment)).json<Listed>();
    expect(after.plugins.every((plugin) => plugin.enabled)).toBe(true);
    expect(await readFile(config, 'utf8')).toContain('# my settings');
  });

  it('says so when a plugin stays disabled by another layer', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha' }]);
    const result = await runUpkeep(['plugins', 'enable', 'alpha'], { ...sandbox.environment, UPKEEP_UPDATE_DISABLED: 'alpha' });
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('still disabled by another layer');
  });

  it('validates a plugin through the CLI: 0 for one that follows the protocol, 1 naming the problems otherwise', async () => {
    sandbox = await createUpdateSandbox([]);
    const good = await runUpkeep(['plugins', 'validate', join(fixtures, 'good.yaml')], sandbox.environment);
    expect(good.exitCode).toBe(0);
    expect(good.stdout).toContain('follows the plugin protocol');
    const garbage = await runUpkeep(['plugins', 'validate', join(fixtures, 'garbage.sh'), '--json'], sandbox.environment);
    expect(garbage.exitCode).toBe(1);
    const report = garbage.json<{ ok: boolean; problems: string[] }>();
    expect(report.ok).toBe(false);
    expect(report.problems.length).toBeGreaterThan(0);
  });
});

describe('upkeep update: scheduling errors and the download command', () => {
  it('refuses plugins whose runs-after form a cycle, printing the cycle', async () => {
    sandbox = await createUpdateSandbox([
      { name: 'alpha', runsAfter: ['beta'] },
      { name: 'beta', runsAfter: ['alpha'] },
    ]);
    const result = await runUpkeep(['update', 'run'], sandbox.environment);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('error[E_DEPENDENCY_CYCLE]');
    expect(result.stderr).toMatch(/alpha -> beta -> alpha|beta -> alpha -> beta/);
  });

  it('downloads only with `update download`, and records a completed download run', async () => {
    sandbox = await createUpdateSandbox([{ name: 'alpha', canSeparateDownload: true }, { name: 'beta' }]);
    const result = await runUpkeep(['update', 'download', '--json'], sandbox.environment);
    expect(result.exitCode).toBe(0);
    const log = await readFile(sandbox.log, 'utf8');
    expect(log).toMatch(/^alpha download start/m);
    expect(log).not.toMatch(/ update /);
    const state = JSON.parse(await readFile(join(sandbox.upkeepHome, 'state', 'update', 'run.json'), 'utf8')) as { kind: string; status: string };
    expect(state).toMatchObject({ kind: 'download', status: 'completed' });
  });
});
