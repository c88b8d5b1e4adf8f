import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The built CLI and the real built-in plugins on this Debian machine: the apt
 * plugin's estimate from the real package lists, and the npm plugin updating
 * a globally installed older version of a small CLI to the latest release
 * from the npm registry. npm's global prefix is redirected (a user .npmrc in
 * a temporary HOME), so the machine's own npm and corepack are never touched.
 * Run with UPKEEP_E2E=1.
 */

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin', 'upkeep.js');
let home: string;
let prefix: string;
let environment: NodeJS.ProcessEnv;

interface CheckJson {
  plugins: Array<{ name: string; applicable: boolean; reason: string | null; updates: Array<{ name: string; currentVersion: string | null; newVersion: string }>; estimate: { update?: { seconds: number } } }>;
  estimate: { seconds: number };
}

function upkeep(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { env: environment, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 900_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function npm(args: string[]): string {
  return execFileSync('npm', args, { env: environment, encoding: 'utf8', timeout: 300_000 });
}

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'upkeep-e2e-update-'));
  prefix = join(home, 'npm-global');
  writeFileSync(join(home, '.npmrc'), `prefix=${prefix}\n`);
  // The machine's proxy and certificate settings, as a user's shell would have them.
  const network = Object.fromEntries(Object.entries(process.env).filter(([name]) => /proxy|^NODE_EXTRA_CA_CERTS$|^SSL_CERT_/i.test(name)));
  environment = {
    ...network,
    PATH: `${join(prefix, 'bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: home,
    UPKEEP_HOME: join(home, 'upkeep'),
    NO_COLOR: '1',
  };
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('the apt plugin on this machine', () => {
  it('applies, refreshes the lists and reports the real pending upgrades with sizes', () => {
    const result = upkeep(['update', 'check', '--plugins', 'apt', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const apt = (JSON.parse(result.stdout) as CheckJson).plugins.find((plugin) => plugin.name === 'apt')!;
    expect(apt).toMatchObject({ applicable: true, reason: null });
    // What apt itself would upgrade (a simulation), compared with the plugin's list.
    const simulated = execFileSync('apt-get', ['-s', '-o', 'Debug::NoLocking=1', 'upgrade'], { encoding: 'utf8', env: { ...process.env, LANG: 'C' } })
      .split('\n')
      .filter((line) => line.startsWith('Inst '))
      .map((line) => line.split(' ')[1]!)
      .sort();
    expect(apt.updates.map((entry) => entry.name).sort()).toEqual(simulated);
    const upgradable = execFileSync('apt', ['list', '--upgradable'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const entry of apt.updates) expect(upgradable).toContain(`${entry.name}/`);
    for (const entry of apt.updates) expect(entry.newVersion).toMatch(/\d/);
    if (apt.updates.length > 0) expect(apt.estimate.update!.seconds).toBeGreaterThan(0);
  });
});

describe('the npm plugin', () => {
  it('updates a globally installed older version of a small CLI to the latest', () => {
    npm(['install', '--global', '--no-audit', '--no-fund', 'semver@7.5.0']);
    const latest = npm(['view', 'semver', 'version']).trim();
    expect(latest).not.toBe('7.5.0');

    const check = upkeep(['update', 'check', '--plugins', 'npm', '--json']);
    expect(check.status, check.stderr).toBe(0);
    const pending = (JSON.parse(check.stdout) as CheckJson).plugins.find((plugin) => plugin.name === 'npm')!;
    expect(pending.updates).toEqual([expect.objectContaining({ name: 'semver', currentVersion: '7.5.0', newVersion: latest })]);

    const run = upkeep(['update', 'run', '--plugins', 'npm', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { type: string; report: { status: string; summary: { succeeded: string[] } } };
    expect(summary).toMatchObject({ type: 'summary', report: { status: 'completed', summary: { succeeded: ['npm'] } } });
    const installed = JSON.parse(npm(['ls', '--global', '--json', 'semver'])) as { dependencies: { semver: { version: string } } };
    expect(installed.dependencies.semver.version).toBe(latest);
    expect(execFileSync(join(prefix, 'bin', 'semver'), ['--help'], { encoding: 'utf8' })).toContain(latest);

    // Recorded: the next estimate rests on this run.
    const history = upkeep(['update', 'history', '--plugin', 'npm', '--json']);
    expect((JSON.parse(history.stdout) as { records: Array<{ phase: string; success: boolean }> }).records).toEqual(
      expect.arrayContaining([expect.objectContaining({ phase: 'update', success: true })]),
    );
  });
});
