import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ToolOutcome } from '../../src/install/install.ts';
import type { ToolPlan } from '../../src/install/plan.ts';
import type { ReconcileResult } from '../../src/install/reconcile.ts';
import { createInstallSandbox, prepareInstallCatalog, stubLog, writeAptStub, writePipxStub, type ManagerBehaviour } from '../helpers/package-managers.ts';
import { runUpkeep, writeStub, type CliRun, type Sandbox } from '../helpers/sandbox.ts';


interface ErrorDocument {
  error: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}
interface ReconcileDocument {
  mode: string;
  applied: boolean;
  tools: ReconcileResult[];
}

let catalog: Awaited<ReturnType<typeof prepareInstallCatalog>>;
let sandbox: Sandbox;

beforeAll(async () => {
  catalog = await prepareInstallCatalog();
});
afterAll(async () => catalog.cleanup());

beforeEach(async () => {
  sandbox = await createInstallSandbox(catalog.root, { UPKEEP_INSTALL_RETRIES: '0' });
});
afterEach(async () => sandbox.cleanup());

function upkeep(argv: string[]): Promise<CliRun> {
  return runUpkeep([...argv, '--json'], sandbox.environment, sandbox.home, { uid: 0 });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function records(): Promise<Record<string, { method: string }>> {
  const text = await readFile(join(sandbox.upkeepHome, 'state', 'installs-v1.json'), 'utf8');
  return (JSON.parse(text) as { tools: Record<string, { method: string }> }).tools;
}

/** What the package managers were asked to do, without the probes of installed binaries. */
async function managerRuns(): Promise<string[]> {
  return (await stubLog(sandbox)).filter((line) => /^(apt-get|pipx) /.test(line));
}

describe('uninstall', () => {
  it('removes a package when apt would remove nothing else with it', async () => {
    await writeAptStub(sandbox);
    expect((await upkeep(['install', 'alpha'])).exitCode).toBe(0);
    const run = await upkeep(['uninstall', 'alpha']);
    expect(run.exitCode).toBe(0);
    const { outcomes } = run.json<{ outcomes: ToolOutcome[] }>();
    expect(outcomes).toEqual([expect.objectContaining({ tool: 'alpha', status: 'uninstalled', method: 'apt', path: join(sandbox.bin, 'alpha') })]);
    expect(outcomes[0]!.reason).toBeUndefined();
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(false);
    expect(await managerRuns()).toEqual(['apt-get install -y alpha', 'apt-get -s remove alpha', 'apt-get remove -y alpha']);
    expect(await records()).toEqual({});
  });

  it('refuses when apt would take other packages with it, unless --force', async () => {
    await writeAptStub(sandbox, { alsoRemoves: ['alpha-plugins', 'alpha-doc'] });
    expect((await upkeep(['install', 'alpha'])).exitCode).toBe(0);

    const refused = await upkeep(['uninstall', 'alpha']);
    expect(refused.exitCode).toBe(1);
    const { error } = refused.json<ErrorDocument>();
    expect(error.code).toBe('E_UNINSTALL_REFUSED');
    expect(error.message).toMatch(/would also remove alpha-plugins, alpha-doc/);
    expect(error.hint).toMatch(/--force/);
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(true);
    expect(await managerRuns()).not.toContain('apt-get remove -y alpha');

    const forced = await upkeep(['uninstall', 'alpha', '--force']);
    expect(forced.exitCode).toBe(0);
    expect(forced.json<{ outcomes: ToolOutcome[] }>().outcomes[0]).toMatchObject({ status: 'uninstalled', reason: 'also removed: alpha-plugins, alpha-doc' });
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(false);
  });

  it('--dry-run shows the plan and what apt would also remove, and removes nothing', async () => {
    await writeAptStub(sandbox, { alsoRemoves: ['alpha-plugins'] });
    expect((await upkeep(['install', 'alpha'])).exitCode).toBe(0);
    const run = await upkeep(['uninstall', 'alpha', '--dry-run']);
    expect(run.exitCode).toBe(0);
    const document = run.json<{ plans: ToolPlan[]; alsoRemoved: Record<string, string[]> }>();
    expect(document.plans[0]!.steps.map((step) => step.kind === 'command' && step.argv)).toEqual([['apt-get', 'remove', '-y', 'alpha']]);
    expect(document.alsoRemoved).toEqual({ alpha: ['alpha-plugins'] });
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(true);
    expect(await managerRuns()).not.toContain('apt-get remove -y alpha');
  });

  it('says a tool that is not installed is not installed', async () => {
    await writeAptStub(sandbox);
    const run = await upkeep(['uninstall', 'alpha']);
    expect(run.exitCode).toBe(1);
    expect(run.json<ErrorDocument>().error.code).toBe('E_NOT_INSTALLED');
    expect(await managerRuns()).toEqual([]);
  });
});

describe('reconcile', () => {
  const localBin = (): string => join(sandbox.home, '.local', 'bin');

  beforeEach(async () => {
    // The audit looks in ~/.local/bin after PATH, as it does by default (the sandbox turns the defaults off).
    await writeFile(join(sandbox.upkeepHome, 'config', 'config.yaml'), "audit:\n  extraPaths: ['~/.local/bin']\n");
  });
  /** pipx as it really is: the program in a venv, a symlink in ~/.local/bin (install.binDir, not on PATH here). */
  const pipx = (): ManagerBehaviour => ({
    binDir: localBin(),
    venvRoot: join(sandbox.home, '.local', 'share', 'pipx', 'venvs'),
    binaries: { 'alpha-py': 'alpha' },
    version: '0.9.0',
  });

  /** alpha twice: with pipx in ~/.local/bin, then with apt (the preferred method on a server) in the PATH folder. */
  async function installTwice(): Promise<void> {
    await writeAptStub(sandbox);
    await writePipxStub(sandbox, pipx());
    expect((await upkeep(['install', 'alpha', '--method', 'pipx'])).exitCode).toBe(0);
    expect((await upkeep(['install', 'alpha', '--reinstall'])).exitCode).toBe(0);
    expect(await exists(join(localBin(), 'alpha'))).toBe(true);
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(true);
  }

  it('lists both installations of a tool installed twice, and keeps both in parallel mode', async () => {
    await installTwice();
    const run = await upkeep(['reconcile']);
    expect(run.exitCode).toBe(0);
    const document = run.json<ReconcileDocument>();
    expect(document).toMatchObject({ mode: 'parallel', applied: false });
    expect(document.tools.map((entry) => entry.tool)).toEqual(['alpha']);
    expect(document.tools[0]!.installations).toEqual([
      expect.objectContaining({ path: join(sandbox.bin, 'alpha'), version: '1.0.0', active: true, action: 'keep' }),
      expect.objectContaining({ path: join(localBin(), 'alpha'), version: '0.9.0', method: 'pipx', active: false, action: 'keep' }),
    ]);
  });

  it('in aggressive mode without --apply, says what it would remove and changes nothing', async () => {
    await installTwice();
    const before = await managerRuns();
    const run = await upkeep(['reconcile', 'alpha', '--mode', 'aggressive']);
    expect(run.exitCode).toBe(0);
    const [result] = run.json<ReconcileDocument>().tools;
    expect(result!.preferred).toBe(join(sandbox.bin, 'alpha'));
    expect(result!.reason).toMatch(/installed with apt, the preferred method here/);
    expect(result!.installations).toEqual([
      expect.objectContaining({ path: join(sandbox.bin, 'alpha'), action: 'keep' }),
      expect.objectContaining({ path: join(localBin(), 'alpha'), action: 'remove', reason: expect.stringMatching(/would be removed with pipx \(pass --apply\)/) }),
    ]);
    expect(await managerRuns()).toEqual(before);
    expect(await exists(join(localBin(), 'alpha'))).toBe(true);
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(true);
  });

  it('in aggressive mode with --apply, removes the other installation and keeps the preferred one and its record', async () => {
    await installTwice();
    const run = await upkeep(['reconcile', 'alpha', '--mode', 'aggressive', '--apply']);
    expect(run.exitCode).toBe(0);
    const [result] = run.json<ReconcileDocument>().tools;
    expect(result!.installations.map((entry) => [entry.path, entry.action])).toEqual([
      [join(sandbox.bin, 'alpha'), 'keep'],
      [join(localBin(), 'alpha'), 'removed'],
    ]);
    expect((await managerRuns()).at(-1)).toBe('pipx uninstall alpha-py');
    expect(await exists(join(localBin(), 'alpha'))).toBe(false);
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(true);
    expect((await records()).alpha).toMatchObject({ method: 'apt' });
  });

  it('never removes a protected system tool', async () => {
    await writeAptStub(sandbox);
    expect((await upkeep(['install', 'git'])).exitCode).toBe(0);
    await mkdir(localBin(), { recursive: true });
    await writeStub(localBin(), 'git', { stdout: 'git version 2.39.5' });
    const run = await upkeep(['reconcile', 'git', '--mode', 'aggressive', '--apply']);
    expect(run.exitCode).toBe(0);
    const [result] = run.json<ReconcileDocument>().tools;
    expect(result!.installations).toEqual([
      expect.objectContaining({ path: join(sandbox.bin, 'git'), action: 'keep' }),
      expect.objectContaining({ path: join(localBin(), 'git'), action: 'kept-safelisted' }),
    ]);
    expect(await exists(join(localBin(), 'git'))).toBe(true);
    expect(await managerRuns()).toEqual(['apt-get install -y git']);
  });
});
