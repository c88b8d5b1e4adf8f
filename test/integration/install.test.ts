import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ToolOutcome } from '../../src/install/install.ts';
import type { ToolPlan } from '../../src/install/plan.ts';
import type { Platform } from '../../src/install/types.ts';
import {
  OS_RELEASE_FIXTURES,
  createInstallSandbox,
  prepareInstallCatalog,
  stubLog,
  writeAptStub,
  writeManagerStub,
  writeNpmStub,
  writePipxStub,
  writeSudoStub,
  type ManagerName,
} from '../helpers/package-managers.ts';
import { runUpkeep, type CliRun, type Sandbox } from '../helpers/sandbox.ts';


interface PlanDocument {
  dryRun: boolean;
  platform: Platform;
  plans: ToolPlan[];
  skipped: ToolOutcome[];
}
interface RunDocument {
  plans: ToolPlan[];
  outcomes: ToolOutcome[];
  rollbackScript: string | null;
}
interface ErrorDocument {
  error: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}

let catalog: Awaited<ReturnType<typeof prepareInstallCatalog>>;
let sandbox: Sandbox;

beforeAll(async () => {
  catalog = await prepareInstallCatalog();
});
afterAll(async () => catalog.cleanup());

beforeEach(async () => {
  sandbox = await createInstallSandbox(catalog.root, { UPKEEP_INSTALL_RETRIES: '2' });
});
afterEach(async () => sandbox.cleanup());

function upkeep(argv: string[], options: { uid?: number; environment?: Record<string, string> } = {}): Promise<CliRun> {
  return runUpkeep([...argv, '--json'], { ...sandbox.environment, ...options.environment }, sandbox.home, { uid: options.uid ?? 0 });
}

function outcome(document: RunDocument, tool: string): ToolOutcome {
  const found = document.outcomes.find((entry) => entry.tool === tool);
  if (!found) throw new Error(`no outcome for ${tool} in ${JSON.stringify(document.outcomes)}`);
  return found;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** What the stubs ran, without the privilege probe platform detection makes. */
async function managerRuns(): Promise<string[]> {
  return (await stubLog(sandbox)).filter((line) => !line.startsWith('sudo -n true') && !/^(start|end) /.test(line));
}

describe('install --dry-run: the plan', () => {
  it('shows the method, why, the exact argv and what needs root, and runs nothing', async () => {
    await writeAptStub(sandbox);
    const run = await upkeep(['install', 'alpha', '--dry-run']);
    expect(run.exitCode).toBe(0);
    const document = run.json<PlanDocument>();
    expect(document.dryRun).toBe(true);
    expect(document.plans).toHaveLength(1);
    const [plan] = document.plans;
    expect(plan).toMatchObject({ tool: 'alpha', method: 'apt', packages: ['alpha'] });
    expect(plan!.reason).toMatch(/debian system package manager/);
    expect(plan!.steps).toEqual([
      expect.objectContaining({ kind: 'command', argv: ['apt-get', 'install', '-y', 'alpha'], root: 'apt-get changes system folders', lock: 'dpkg' }),
    ]);
    expect(await stubLog(sandbox)).toEqual([]);
  });

  it('puts `sudo -n` first when upkeep is not root and sudo needs no password', async () => {
    await writeAptStub(sandbox);
    await writeSudoStub(sandbox, { passwordless: true });
    const run = await upkeep(['install', 'alpha', '--dry-run'], { uid: 1000 });
    expect(run.exitCode).toBe(0);
    const document = run.json<PlanDocument>();
    expect(document.platform.privilege).toBe('sudo-passwordless');
    const step = document.plans[0]!.steps[0]!;
    expect(step.kind === 'command' && step.argv.slice(0, 2)).toEqual(['sudo', '-n']);
    expect(step.kind === 'command' && step.argv.slice(-4)).toEqual(['apt-get', 'install', '-y', 'alpha']);
    // The privilege probe ran (it is read-only); the package manager did not.
    expect(await managerRuns()).toEqual([]);
    expect(await stubLog(sandbox)).toContain('sudo -n true');
  });

  it('without root or sudo, leaves apt out with a reason and picks a user-level method', async () => {
    await writeAptStub(sandbox);
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', '--dry-run'], { uid: 1000 });
    expect(run.exitCode).toBe(0);
    const [plan] = run.json<PlanDocument>().plans;
    expect(plan!.method).toBe('pipx');
    expect(plan!.steps[0]).toMatchObject({ argv: ['pipx', 'install', 'alpha-py'], root: null });
    expect(plan!.rejected).toContainEqual({ method: 'apt', reason: expect.stringMatching(/apt needs root.*no sudo/) });
    expect(await stubLog(sandbox)).toEqual([]);
  });

  it('refuses --method apt without root or sudo, naming what needs root', async () => {
    await writeAptStub(sandbox);
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', '--method', 'apt', '--dry-run'], { uid: 1000 });
    expect(run.exitCode).toBe(1);
    const { error } = run.json<ErrorDocument>();
    expect(error.code).toBe('E_NEEDS_ROOT');
    expect(error.message).toMatch(/alpha with apt needs root/);
    expect(error.hint).toMatch(/pipx/);
    expect(await stubLog(sandbox)).toEqual([]);
  });

  const families: Array<[fixture: string, manager: ManagerName, argv: string[]]> = [
    ['debian-12', 'apt', ['apt-get', 'install', '-y', 'alpha']],
    ['ubuntu-24.04', 'apt', ['apt-get', 'install', '-y', 'alpha']],
    ['fedora-40', 'dnf', ['dnf', 'install', '-y', 'alpha']],
    ['rocky-9', 'dnf', ['dnf', 'install', '-y', 'alpha']],
    ['arch', 'pacman', ['pacman', '-S', '--noconfirm', '--needed', 'alpha']],
    ['alpine-3.20', 'apk', ['apk', 'add', 'alpha']],
    ['opensuse-tumbleweed', 'zypper', ['zypper', '--non-interactive', 'install', 'alpha']],
  ];
  it.each(families)('on %s plans %s', async (fixture, manager, argv) => {
    await writeManagerStub(sandbox, manager);
    const run = await upkeep(['install', 'alpha', '--dry-run'], { environment: { UPKEEP_OS_RELEASE: join(OS_RELEASE_FIXTURES, fixture) } });
    expect(run.exitCode).toBe(0);
    const [plan] = run.json<PlanDocument>().plans;
    expect(plan!.method).toBe(manager);
    expect(plan!.steps.map((step) => step.kind === 'command' && step.argv)).toEqual([argv]);
    expect(await stubLog(sandbox)).toEqual([]);
  });

  it('on a distribution of no known family, says why each system package manager cannot be used', async () => {
    await writeAptStub(sandbox);
    const run = await upkeep(['install', 'sysonly', '--dry-run'], { environment: { UPKEEP_OS_RELEASE: join(OS_RELEASE_FIXTURES, 'gentoo') } });
    expect(run.exitCode).toBe(1);
    const { error } = run.json<ErrorDocument>();
    expect(error.code).toBe('E_NO_METHOD');
    expect(error.message).toMatch(/sysonly/);
    for (const method of ['apt', 'dnf', 'pacman', 'apk', 'zypper']) {
      expect(error.hint).toMatch(new RegExp(`(^|; )${method}: ${method} is the package manager of the \\w+ family; this system is of no known family`));
    }
  });
});

describe('install: running the plan', () => {
  it('waits out a held dpkg lock, verifies the binary and records the install', async () => {
    await writeAptStub(sandbox, { lockHeld: 2, version: '1.4.2' });
    const run = await upkeep(['install', 'alpha']);
    expect(run.exitCode).toBe(0);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result).toMatchObject({ status: 'installed', method: 'apt', version: '1.4.2', path: join(sandbox.bin, 'alpha') });
    expect(result.steps).toEqual([expect.objectContaining({ argv: ['apt-get', 'install', '-y', 'alpha'], exitCode: 0, attempts: 3 })]);
    expect(await managerRuns()).toEqual(Array(3).fill('apt-get install -y alpha'));

    const records = JSON.parse(await readFile(join(sandbox.upkeepHome, 'state', 'installs-v1.json'), 'utf8')) as {
      schemaVersion: number;
      tools: Record<string, { method: string; version: string; packages?: string[] }>;
    };
    expect(records.schemaVersion).toBe(1);
    expect(records.tools.alpha).toMatchObject({ method: 'apt', version: '1.4.2', packages: ['alpha'] });
  });

  it('gives up on a lasting network error after the retries and explains it', async () => {
    await writeAptStub(sandbox, { networkError: true });
    const run = await upkeep(['install', 'alpha']);
    expect(run.exitCode).toBe(1);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('E_INSTALL_FAILED');
    // One try and two retries (UPKEEP_INSTALL_RETRIES=2).
    expect(await managerRuns()).toEqual(Array(3).fill('apt-get install -y alpha'));
    const categories = result.failure!.matches.map((match) => match.category);
    expect(categories.some((category) => category === 'network' || category === 'dns')).toBe(true);
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(false);
  });

  it('reports a process killed with exit 137 as out of memory, without retrying', async () => {
    await writeAptStub(sandbox, { killed: true });
    const run = await upkeep(['install', 'alpha']);
    expect(run.exitCode).toBe(1);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result.status).toBe('failed');
    expect(result.error?.message).toMatch(/exited with code 137/);
    expect(result.failure!.matches.map((match) => match.category)).toContain('out-of-memory');
    expect(await managerRuns()).toEqual(['apt-get install -y alpha']);
  });

  it('without --auto-remediate, offers `apt-get update` for "Unable to locate package" and runs nothing else', async () => {
    await writeAptStub(sandbox, { missingUntilUpdate: true });
    const run = await upkeep(['install', 'alpha']);
    expect(run.exitCode).toBe(1);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result.status).toBe('failed');
    const options = result.failure!.matches.flatMap((match) => match.options);
    expect(options).toContainEqual(expect.objectContaining({ strategy: 'cleanup-retry', steps: [['apt-get', 'update']], status: 'ready' }));
    expect(result.failure!.applied).toBeUndefined();
    expect(await managerRuns()).toEqual(['apt-get install -y alpha']);
  });

  it('with --auto-remediate, runs the recommended `apt-get update` once and installs', async () => {
    await writeAptStub(sandbox, { missingUntilUpdate: true });
    const run = await upkeep(['install', 'alpha', '--auto-remediate']);
    expect(run.exitCode).toBe(0);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result).toMatchObject({ status: 'installed', version: '1.0.0' });
    // catalog/handlers/apt.yaml: apt-unable-to-locate recommends refreshing the package lists.
    expect(result.failure?.applied).toEqual({ handler: 'apt-unable-to-locate', option: 'refresh-package-lists', strategy: 'cleanup-retry', steps: [['apt-get', 'update']] });
    expect(await managerRuns()).toEqual(['apt-get install -y alpha', 'apt-get update', 'apt-get install -y alpha']);
  });

  it('runs the package manager through sudo when upkeep is not root', async () => {
    await writeAptStub(sandbox);
    await writeSudoStub(sandbox, { passwordless: true });
    const run = await upkeep(['install', 'alpha'], { uid: 1000 });
    expect(run.exitCode).toBe(0);
    expect(outcome(run.json<RunDocument>(), 'alpha')).toMatchObject({ status: 'installed', version: '1.0.0' });
    expect(await managerRuns()).toEqual(['sudo -n env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get install -y alpha', 'apt-get install -y alpha']);
  });

  it('stops before running anything when sudo wants a password upkeep cannot type', async () => {
    await writeAptStub(sandbox);
    await writeSudoStub(sandbox, { passwordless: false });
    const run = await upkeep(['install', 'alpha'], { uid: 1000 });
    expect(run.exitCode).toBe(1);
    const result = outcome(run.json<RunDocument>(), 'alpha');
    expect(result).toMatchObject({ status: 'failed', error: { code: 'E_NEEDS_ROOT', hint: expect.stringMatching(/sudo -v/) } });
    expect(result.error?.message).toMatch(/install alpha with apt \(apt-get changes system folders\)/);
    expect(await managerRuns()).toEqual([]);
  });
});

describe('install: what people see', () => {
  it('prints the plan with the steps that need root and how root is had', async () => {
    await writeAptStub(sandbox);
    await writeSudoStub(sandbox);
    const run = await runUpkeep(['install', 'alpha', '--dry-run'], sandbox.environment, sandbox.home, { uid: 1000 });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^Plan: install 1 tool on Debian GNU\/Linux 12 \(bookworm\) \(debian, \w+, server, sudo-passwordless\)$/m);
    expect(run.stdout).toMatch(/alpha with apt — the debian system package manager, preferred on servers/);
    expect(run.stdout).toContain('$ sudo -n env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get install -y alpha  [root: apt-get changes system folders, via sudo]');
    expect(run.stdout).toContain('1 step needs root and runs with sudo');
  });

  it('prints a failure with the handlers that explain it', async () => {
    await writeAptStub(sandbox, { missingUntilUpdate: true });
    const run = await runUpkeep(['install', 'alpha'], sandbox.environment, sandbox.home, { uid: 0 });
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/^FAILED alpha \(apt\)/m);
    expect(run.stdout).toMatch(/error\[E_INSTALL_FAILED\]: install of alpha failed: `apt-get install -y alpha` exited with code 100: E: Unable to locate package alpha/);
    expect(run.stdout).toMatch(/\[apt-unable-to-locate, method, not-found\]/);
    expect(run.stdout).toMatch(/\(recommended\) — ready\n\s+\$ apt-get update/);
  });
});

describe('install: several tools', () => {
  it('finishes a required tool before starting the one that requires it', async () => {
    await writeAptStub(sandbox, { sleep: 0.2 });
    await writeNpmStub(sandbox, { sleep: 0.1, binaries: { 'beta-cli': 'beta' } });
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', 'beta', 'gamma']);
    expect(run.exitCode).toBe(0);
    const document = run.json<RunDocument>();
    expect(document.outcomes.map((entry) => [entry.tool, entry.status])).toEqual([
      ['alpha', 'installed'],
      ['beta', 'installed'],
      ['gamma', 'installed'],
    ]);
    expect(document.plans.find((plan) => plan.tool === 'beta')!.requires).toEqual(['alpha']);
    const log = await stubLog(sandbox);
    expect(log.indexOf('end alpha')).toBeGreaterThan(-1);
    expect(log.indexOf('end alpha')).toBeLessThan(log.indexOf('start beta-cli'));
  });

  it('pulls in a missing requirement and says so', async () => {
    await writeAptStub(sandbox);
    await writeNpmStub(sandbox, { binaries: { 'beta-cli': 'beta' } });
    const run = await upkeep(['install', 'beta']);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toMatch(/also installing what they require: alpha/);
    expect(await managerRuns()).toEqual(['apt-get install -y alpha', 'npm install -g beta-cli']);
  });

  it('never runs two installs of one package manager at once, while different managers overlap', async () => {
    const meeting = { pipx: join(sandbox.root, 'pipx-started'), apt: join(sandbox.root, 'apt-started') };
    await writeAptStub(sandbox, { sleep: 0.15, rendezvous: { arrive: meeting.apt, await: meeting.pipx, seconds: 20 } });
    // gamma's install waits for an apt install to be under way: it can only succeed if the two overlap.
    await writePipxStub(sandbox, { rendezvous: { arrive: meeting.pipx, await: meeting.apt, seconds: 20 } });
    const run = await upkeep(['install', 'alpha', 'delta', 'gamma']);
    expect(run.exitCode).toBe(0);
    expect(run.json<RunDocument>().outcomes.every((entry) => entry.status === 'installed')).toBe(true);
    const aptMarks = (await stubLog(sandbox)).filter((line) => /^(start|end) (alpha|delta)$/.test(line));
    expect(aptMarks).toHaveLength(4);
    const [first, second] = [aptMarks[0]!.split(' ')[1], aptMarks[2]!.split(' ')[1]];
    expect(new Set([first, second])).toEqual(new Set(['alpha', 'delta']));
    expect(aptMarks).toEqual([`start ${first}`, `end ${first}`, `start ${second}`, `end ${second}`]);
  });

  it('refuses requirements that form a cycle, naming both tools, before running anything', async () => {
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'loop-one', 'loop-two']);
    expect(run.exitCode).toBe(1);
    const { error } = run.json<ErrorDocument>();
    expect(error.code).toBe('E_DEPENDENCY_CYCLE');
    expect(error.message).toMatch(/loop-one/);
    expect(error.message).toMatch(/loop-two/);
    expect(await stubLog(sandbox)).toEqual([]);
  });

  it('with --fail-fast, starts nothing after a failure', async () => {
    await writeAptStub(sandbox, { failPackages: ['alpha'] });
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', 'delta', 'gamma', '--fail-fast'], { environment: { UPKEEP_INSTALL_CONCURRENCY: '1' } });
    expect(run.exitCode).toBe(1);
    const document = run.json<RunDocument>();
    expect(outcome(document, 'alpha').status).toBe('failed');
    for (const tool of ['delta', 'gamma']) expect(outcome(document, tool)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/--fail-fast/) });
    expect(await managerRuns()).toEqual(['apt-get install -y alpha']);
  });

  it('without --fail-fast, goes on after a failure and exits 3 (partial)', async () => {
    await writeAptStub(sandbox, { failPackages: ['alpha'] });
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', 'delta', 'gamma'], { environment: { UPKEEP_INSTALL_CONCURRENCY: '1' } });
    expect(run.exitCode).toBe(3);
    const document = run.json<RunDocument>();
    expect(document.outcomes.map((entry) => [entry.tool, entry.status])).toEqual([
      ['alpha', 'failed'],
      ['delta', 'installed'],
      ['gamma', 'installed'],
    ]);
  });

  it('with --atomic, removes what it installed when a later tool fails', async () => {
    await writeAptStub(sandbox);
    await writePipxStub(sandbox, { failPackages: ['gamma'] });
    const run = await upkeep(['install', 'alpha', 'gamma', '--atomic'], { environment: { UPKEEP_INSTALL_CONCURRENCY: '1' } });
    expect(run.exitCode).toBe(1);
    const document = run.json<RunDocument>();
    expect(outcome(document, 'alpha')).toMatchObject({ status: 'rolled-back', reason: expect.stringMatching(/--atomic/) });
    expect(outcome(document, 'gamma').status).toBe('failed');
    expect(await exists(join(sandbox.bin, 'alpha'))).toBe(false);
    expect(await managerRuns()).toEqual(['apt-get install -y alpha', 'pipx install gamma', 'apt-get remove -y alpha']);
    const records = JSON.parse(await readFile(join(sandbox.upkeepHome, 'state', 'installs-v1.json'), 'utf8')) as { tools: Record<string, unknown> };
    expect(records.tools).toEqual({});
  });

  it('writes a rollback script holding the uninstall commands, newest first', async () => {
    await writeAptStub(sandbox);
    await writePipxStub(sandbox);
    const run = await upkeep(['install', 'alpha', 'gamma'], { environment: { UPKEEP_INSTALL_CONCURRENCY: '1' } });
    expect(run.exitCode).toBe(0);
    const { rollbackScript } = run.json<RunDocument>();
    expect(rollbackScript).toMatch(new RegExp(`^${join(sandbox.upkeepHome, 'state', 'rollback')}/install-.*\\.sh$`));
    const script = await readFile(rollbackScript!, 'utf8');
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
    const commands = script.split('\n').filter((line) => line && !line.startsWith('#') && line !== 'set -u');
    expect(commands).toEqual(['pipx uninstall gamma', 'apt-get remove -y alpha']);
  });

  it('skips a tool that is already installed', async () => {
    await writeAptStub(sandbox);
    expect((await upkeep(['install', 'alpha'])).exitCode).toBe(0);
    const run = await upkeep(['install', 'alpha']);
    expect(run.exitCode).toBe(0);
    expect(run.json<PlanDocument>().skipped).toEqual([expect.objectContaining({ tool: 'alpha', status: 'already-installed', path: join(sandbox.bin, 'alpha') })]);
    expect(await managerRuns()).toEqual(['apt-get install -y alpha']);
  });
});

describe('install: bad input is refused before anything runs', () => {
  const cases: Array<[name: string, argv: string[], code: string]> = [
    ['an unknown tool', ['install', 'alpah'], 'E_UNKNOWN_TOOL'],
    ['a name with a space', ['install', 'rip grep'], 'E_INVALID_NAME'],
    ['a name that looks like an option', ['install', '--', '--evil'], 'E_INVALID_NAME'],
    ['a version with shell in it', ['install', 'alpha', '--version', '1.0; rm -rf /'], 'E_VERSION_INVALID'],
  ];
  it.each(cases)('%s', async (_name, argv, code) => {
    await writeAptStub(sandbox);
    await writeSudoStub(sandbox);
    const run = await upkeep(argv, { uid: 1000 });
    expect(run.exitCode).toBe(2);
    const { error } = run.json<ErrorDocument>();
    expect(error.code).toBe(code);
    expect(await stubLog(sandbox)).toEqual([]);
  });

  it('suggests the closest tool for a typo', async () => {
    const run = await upkeep(['install', 'alpah']);
    expect(run.json<ErrorDocument>().error.hint).toMatch(/did you mean alpha\b/);
  });
});
