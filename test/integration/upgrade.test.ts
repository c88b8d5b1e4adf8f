import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ToolOutcome } from '../../src/install/install.ts';
import { createInstallSandbox, prepareInstallCatalog, stubLog, writeAptStub, writeNpmStub, type ManagerBehaviour } from '../helpers/package-managers.ts';
import { runUpkeep, type CliRun, type Sandbox } from '../helpers/sandbox.ts';


interface UpgradeDocument {
  outcomes: ToolOutcome[];
}
interface ErrorDocument {
  error: { code: string; message: string; hint?: string };
}
interface Manifest {
  schemaVersion: number;
  tool: string;
  version: string | null;
  method: string;
  package?: string;
  files: Array<{ original: string; stored: string; sha256: string; mode: number }>;
}

let catalog: Awaited<ReturnType<typeof prepareInstallCatalog>>;
let sandbox: Sandbox;
/** The npm stub gives 1.0.0 when asked for it, and 2.0.0 (the fixture baseline's latest) for @latest. */
const npmVersions: ManagerBehaviour = { version: '1.0.0', latest: { 'beta-cli': '2.0.0' }, binaries: { 'beta-cli': 'beta' } };

beforeAll(async () => {
  catalog = await prepareInstallCatalog();
});
afterAll(async () => catalog.cleanup());

beforeEach(async () => {
  sandbox = await createInstallSandbox(catalog.root, { UPKEEP_INSTALL_RETRIES: '1' });
  // beta requires alpha, which comes from apt.
  await writeAptStub(sandbox);
  await writeNpmStub(sandbox, npmVersions);
  const installed = await upkeep(['install', 'beta', '--version', '1.0.0']);
  expect(installed.exitCode, installed.stdout).toBe(0);
});
afterEach(async () => sandbox.cleanup());

function upkeep(argv: string[], environment: Record<string, string> = {}): Promise<CliRun> {
  return runUpkeep([...argv, '--json'], { ...sandbox.environment, ...environment }, sandbox.home, { uid: 0 });
}

function only(run: CliRun): ToolOutcome {
  const { outcomes } = run.json<UpgradeDocument>();
  expect(outcomes).toHaveLength(1);
  return outcomes[0]!;
}

/** What the installed `beta` would print: the stub binaries are one echo line. */
async function betaReports(): Promise<string> {
  const text = await readFile(join(sandbox.bin, 'beta'), 'utf8');
  return /echo "(beta [^"]+)"/.exec(text)?.[1] ?? text;
}

async function npmRuns(): Promise<string[]> {
  return (await stubLog(sandbox)).filter((line) => line.startsWith('npm '));
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

describe('upgrade', () => {
  it('upgrades to the latest version after backing up the binary and its config files', async () => {
    await mkdir(join(sandbox.home, '.config', 'beta'), { recursive: true });
    await writeFile(join(sandbox.home, '.config', 'beta', 'config.toml'), 'colour = "blue"\n');
    const before = await readFile(join(sandbox.bin, 'beta'));

    const run = await upkeep(['upgrade', 'beta', '--offline', '--force']);
    expect(run.exitCode).toBe(0);
    expect(only(run)).toMatchObject({ tool: 'beta', status: 'upgraded', method: 'npm', previousVersion: '1.0.0', version: '2.0.0' });
    expect(await betaReports()).toBe('beta 2.0.0');
    expect(await npmRuns()).toEqual(['npm install -g beta-cli@1.0.0', 'npm install -g beta-cli@latest']);

    const backups = join(sandbox.upkeepHome, 'data', 'backups', 'beta');
    const folders = await readdir(backups);
    expect(folders).toHaveLength(1);
    const manifest = JSON.parse(await readFile(join(backups, folders[0]!, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest).toMatchObject({ schemaVersion: 1, tool: 'beta', version: '1.0.0', method: 'npm', package: 'beta-cli' });
    expect(manifest.files.map((file) => file.original)).toEqual([join(sandbox.bin, 'beta'), join(sandbox.home, '.config', 'beta', 'config.toml')]);
    const binary = manifest.files[0]!;
    expect(binary.sha256).toBe(sha256(before));
    expect(sha256(await readFile(join(backups, folders[0]!, binary.stored)))).toBe(binary.sha256);

    const records = JSON.parse(await readFile(join(sandbox.upkeepHome, 'state', 'installs-v1.json'), 'utf8')) as { tools: Record<string, { version: string }> };
    expect(records.tools.beta!.version).toBe('2.0.0');
  });

  it('says a tool at the latest version is up to date, and runs nothing', async () => {
    expect((await upkeep(['upgrade', 'beta', '--offline', '--force'])).exitCode).toBe(0);
    const run = await upkeep(['upgrade', 'beta', '--offline']);
    expect(run.exitCode).toBe(0);
    expect(only(run)).toMatchObject({ status: 'up-to-date', version: '2.0.0' });
    expect(await npmRuns()).toHaveLength(2);
  });

  it('rolls back when the upgrade breaks the binary, and verifies the old version runs again', async () => {
    await writeNpmStub(sandbox, { ...npmVersions, brokenVersions: ['2.0.0'] });
    const run = await upkeep(['upgrade', 'beta', '--offline', '--force']);
    expect(run.exitCode).toBe(1);
    const result = only(run);
    expect(result).toMatchObject({ status: 'rolled-back', version: '1.0.0', previousVersion: '1.0.0', error: { code: 'E_INSTALL_FAILED' } });
    expect(result.reason).toMatch(/rolled back to 1\.0\.0 \(verified\)/);
    expect(await betaReports()).toBe('beta 1.0.0');
    // The method reinstalls the old version first (a package is more than its binary).
    expect((await npmRuns()).slice(1)).toEqual(['npm install -g beta-cli@latest', 'npm install -g beta-cli@1.0.0']);
  });

  it('restores the backed-up binary when reinstalling the old version breaks too', async () => {
    const original = await readFile(join(sandbox.bin, 'beta'));
    await writeNpmStub(sandbox, { ...npmVersions, brokenVersions: ['2.0.0', '1.0.0'] });
    const run = await upkeep(['upgrade', 'beta', '--offline', '--force']);
    expect(run.exitCode).toBe(1);
    expect(only(run)).toMatchObject({ status: 'rolled-back', version: '1.0.0' });
    expect(await readFile(join(sandbox.bin, 'beta'))).toEqual(original);
  });

  it('`upkeep rollback` restores the last backup after a successful upgrade', async () => {
    expect((await upkeep(['upgrade', 'beta', '--offline', '--force'])).exitCode).toBe(0);
    expect(await betaReports()).toBe('beta 2.0.0');
    const run = await upkeep(['rollback', 'beta']);
    expect(run.exitCode).toBe(0);
    const result = run.json<ToolOutcome & { backup: string }>();
    expect(result).toMatchObject({ tool: 'beta', status: 'rolled-back', version: '1.0.0', path: join(sandbox.bin, 'beta') });
    expect(result.backup.startsWith(join(sandbox.upkeepHome, 'data', 'backups', 'beta'))).toBe(true);
    expect(await betaReports()).toBe('beta 1.0.0');
  });

  it('`upkeep rollback` without a backup says there is none', async () => {
    const run = await upkeep(['rollback', 'beta']);
    expect(run.exitCode).toBe(1);
    expect(run.json<ErrorDocument>().error.code).toBe('E_BACKUP_MISSING');
  });

  it('refuses a major version bump in CI under the warn policy, unless --force', async () => {
    const ci = { CI: 'true', UPKEEP_INSTALL_ENVIRONMENT: 'auto' };
    const refused = await upkeep(['upgrade', 'beta', '--offline'], ci);
    expect(refused.exitCode).toBe(1);
    expect(only(refused)).toMatchObject({ status: 'failed', error: { code: 'E_BREAKING_CHANGE', message: expect.stringMatching(/1\.0\.0 -> 2\.0\.0 is a major version upgrade.*nobody can answer/) } });
    expect(await npmRuns()).toHaveLength(1);
    expect(await betaReports()).toBe('beta 1.0.0');

    const forced = await upkeep(['upgrade', 'beta', '--offline', '--force'], ci);
    expect(forced.exitCode).toBe(0);
    expect(only(forced)).toMatchObject({ status: 'upgraded', version: '2.0.0' });
  });

  it('refuses a major version bump when the config rejects breaking changes, and accepts one when it accepts them', async () => {
    const configFile = join(sandbox.upkeepHome, 'config', 'config.yaml');
    await writeFile(configFile, 'audit:\n  extraPaths: []\ninstall:\n  breakingChanges: reject\n');
    const refused = await upkeep(['upgrade', 'beta', '--offline']);
    expect(refused.exitCode).toBe(1);
    expect(only(refused)).toMatchObject({ status: 'failed', error: { code: 'E_BREAKING_CHANGE', message: expect.stringMatching(/policy rejects it/) } });
    expect(await npmRuns()).toHaveLength(1);

    await writeFile(configFile, 'audit:\n  extraPaths: []\ninstall:\n  breakingChanges: reject\n  tools:\n    beta:\n      breakingChanges: accept\n');
    const accepted = await upkeep(['upgrade', 'beta', '--offline']);
    expect(accepted.exitCode).toBe(0);
    expect(only(accepted)).toMatchObject({ status: 'upgraded', version: '2.0.0' });
  });

  it('reports a tool that is not installed as failed with E_NOT_INSTALLED', async () => {
    const run = await upkeep(['upgrade', 'gamma', '--offline']);
    expect(run.exitCode).toBe(1);
    expect(only(run)).toMatchObject({ tool: 'gamma', status: 'failed', error: { code: 'E_NOT_INSTALLED' } });
  });

  it('upgrades to a chosen version with --to', async () => {
    const run = await upkeep(['upgrade', 'beta', '--offline', '--to', '1.5.0']);
    expect(run.exitCode).toBe(0);
    expect(only(run)).toMatchObject({ status: 'upgraded', previousVersion: '1.0.0', version: '1.5.0' });
    expect((await npmRuns()).at(-1)).toBe('npm install -g beta-cli@1.5.0');
  });
});
