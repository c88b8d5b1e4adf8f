import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { platformHandler, renderPlatform } from '../../src/cli/commands/platform.ts';
import type { Context } from '../../src/cli/context.ts';
import { Executor } from '../../src/core/exec.ts';
import { silentLogger } from '../../src/core/log.ts';
import { resolvePaths } from '../../src/core/paths.ts';
import { detectPlatform, type DetectPlatformOptions } from '../../src/install/platform.ts';
import type { Platform } from '../../src/install/types.ts';
import { createSandbox, writeStub, type Sandbox } from '../helpers/sandbox.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'os-release');

let sandbox: Sandbox;
beforeEach(async () => {
  sandbox = await createSandbox();
});
afterEach(async () => sandbox.cleanup());

function detect(overrides: Partial<DetectPlatformOptions> = {}): Promise<Platform> {
  return detectPlatform({
    environment: sandbox.environment,
    config: { environment: 'auto' },
    executor: new Executor({ env: sandbox.environment }),
    osRelease: join(fixtures, 'ubuntu-24.04'),
    os: 'linux',
    arch: 'x86_64',
    uid: 1000,
    fileExists: () => false,
    ...overrides,
  });
}

async function spawned(): Promise<string[]> {
  try {
    return (await readFile(sandbox.spawnLog, 'utf8')).trim().split('\n');
  } catch {
    return [];
  }
}

describe('detectPlatform', () => {
  it('reports the distribution, family and architecture of the machine it is given', async () => {
    const platform = await detect({ osRelease: join(fixtures, 'rocky-9'), arch: 'arm64' });
    expect(platform).toMatchObject({
      os: 'linux',
      rawOs: 'linux',
      arch: 'aarch64',
      rawArch: 'arm64',
      distribution: { id: 'rocky', name: 'Rocky Linux 9.4 (Blue Onyx)', version: '9.4', idLike: ['rhel', 'centos', 'fedora'] },
      family: 'rhel',
    });
  });

  it('keeps an unknown architecture and OS raw, and has no distribution off Linux and macOS', async () => {
    const platform = await detect({ os: 'freebsd', arch: 'riscv64' });
    expect(platform).toMatchObject({ os: null, rawOs: 'freebsd', arch: null, rawArch: 'riscv64', distribution: null, family: null });
  });

  it('has no distribution when the os-release file is missing', async () => {
    const platform = await detect({ osRelease: join(sandbox.root, 'no-such-os-release') });
    expect(platform.distribution).toBeNull();
    expect(platform.family).toBeNull();
  });

  it('finds the package managers on the PATH it is given, and binary always', async () => {
    const aptGet = await writeStub(sandbox.bin, 'apt-get');
    const pipx = await writeStub(sandbox.bin, 'pipx');
    const pip3 = await writeStub(sandbox.bin, 'pip3');
    await writeStub(sandbox.bin, 'pip');
    const sh = await writeStub(sandbox.bin, 'sh');
    const platform = await detect();
    expect(platform.methods).toEqual(['apt', 'binary', 'pipx', 'pip', 'script']);
    expect(platform.managerPaths).toEqual({ apt: aptGet, pipx, pip: pip3, script: sh });
    expect(await spawned()).toEqual([]);
  });

  it('searches PATH folders in order, takes pip when pip3 is missing, and ignores what cannot run', async () => {
    const later = join(sandbox.root, 'later-bin');
    await mkdir(later);
    const first = await writeStub(sandbox.bin, 'cargo');
    await writeStub(later, 'cargo');
    const pip = await writeStub(later, 'pip');
    // Not executable, a folder, and a stub only in a relative PATH entry: none counts.
    await writeFile(join(sandbox.bin, 'dnf'), '#!/bin/sh\n');
    await chmod(join(sandbox.bin, 'dnf'), 0o644);
    await mkdir(join(sandbox.bin, 'npm'));
    await mkdir(join(sandbox.root, 'relative'));
    await writeStub(join(sandbox.root, 'relative'), 'brew');
    const environment = { ...sandbox.environment, PATH: ['', 'relative', sandbox.bin, later].join(':') };
    const platform = await detect({ environment });
    expect(platform.managerPaths).toEqual({ cargo: first, pip });
    expect(platform.methods).toEqual(['binary', 'pip', 'cargo']);
  });

  it('is root at uid 0 without asking sudo', async () => {
    await writeStub(sandbox.bin, 'sudo', { exitCode: 1 });
    const platform = await detect({ uid: 0 });
    expect(platform.privilege).toBe('root');
    expect(await spawned()).toEqual([]);
  });

  it('asks `sudo -n true` whether sudo needs a password', async () => {
    await writeStub(sandbox.bin, 'sudo', { exitCode: 1, stderr: 'sudo: a password is required' });
    expect((await detect()).privilege).toBe('sudo-password');
    expect(await spawned()).toEqual(['sudo -n true']);

    await writeStub(sandbox.bin, 'sudo', { exitCode: 0 });
    expect((await detect()).privilege).toBe('sudo-passwordless');
  });

  it('has no privilege without root or sudo', async () => {
    expect((await detect({ uid: 1000 })).privilege).toBe('none');
  });

  it('still asks sudo in dry-run mode, since the probe changes nothing', async () => {
    await writeStub(sandbox.bin, 'sudo', { exitCode: 0 });
    const platform = await detect({ executor: new Executor({ env: sandbox.environment, dryRun: true }) });
    expect(platform.privilege).toBe('sudo-passwordless');
  });

  it('reads the macOS version from sw_vers and calls macOS a workstation', async () => {
    await writeStub(sandbox.bin, 'sw_vers', { stdout: '14.5' });
    const platform = await detect({ os: 'darwin', arch: 'arm64' });
    expect(platform).toMatchObject({
      os: 'darwin',
      arch: 'aarch64',
      distribution: { id: 'macos', name: 'macOS 14.5', version: '14.5', idLike: [] },
      family: 'macos',
      environment: { mode: 'workstation', indicators: ['macOS'] },
    });
    expect(await spawned()).toEqual(['sw_vers -productVersion']);
  });

  it('still knows macOS when sw_vers is missing', async () => {
    const platform = await detect({ os: 'darwin' });
    expect(platform.distribution).toEqual({ id: 'macos', name: 'macOS', version: null, idLike: [] });
    expect(platform.family).toBe('macos');
  });

  it('detects the environment mode from the environment record, files and config', async () => {
    const modeOf = async (environment: Record<string, string>, overrides: Partial<DetectPlatformOptions> = {}) =>
      (await detect({ environment: { ...sandbox.environment, ...environment }, ...overrides })).environment;

    expect(await modeOf({ GITHUB_ACTIONS: 'true' })).toEqual({ mode: 'ci', confidence: 0.99, indicators: ['GITHUB_ACTIONS=true'], overridden: false });
    expect(await modeOf({ CI: 'true' })).toMatchObject({ mode: 'ci', confidence: 0.95, indicators: ['CI=true'] });
    expect(await modeOf({ DISPLAY: ':0' })).toMatchObject({ mode: 'workstation', confidence: 0.9, indicators: ['DISPLAY=:0'] });
    expect(await modeOf({ SSH_CONNECTION: '192.0.2.1 50000 192.0.2.2 22' }, { fileExists: (path) => path === '/.dockerenv' })).toMatchObject({
      mode: 'server',
      confidence: 0.8,
      indicators: ['SSH_CONNECTION set', '/.dockerenv exists', 'no DISPLAY or WAYLAND_DISPLAY'],
    });
    expect(await modeOf({ CI: 'true' }, { config: { environment: 'workstation' } })).toEqual({
      mode: 'workstation',
      confidence: 1,
      indicators: ['config install.environment=workstation'],
      overridden: true,
    });
  });
});

describe('upkeep platform', () => {
  function contextFor(environment: Record<string, string>): Context {
    return {
      environment,
      cwd: sandbox.home,
      home: sandbox.home,
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      stderrIsTTY: false,
      color: false,
      json: false,
      quiet: false,
      verbose: false,
      paths: resolvePaths(environment),
      logger: silentLogger,
      now: () => new Date(),
      pid: 0,
      selfCommand: null,
      onInterrupt: () => () => undefined,
      uid: undefined,
      confirm: null,
      readStdin: async () => '',
    };
  }

  it('returns the detected platform as data, with the config override applied', async () => {
    const aptGet = await writeStub(sandbox.bin, 'apt-get');
    const environment = { ...sandbox.environment, UPKEEP_INSTALL_ENVIRONMENT: 'server', GITHUB_ACTIONS: 'true' };
    const result = await platformHandler({}, contextFor(environment), []);
    expect(result.exitCode).toBe(0);
    const platform = result.data as Platform;
    expect(platform.methods).toEqual(['apt', 'binary']);
    expect(platform.managerPaths).toEqual({ apt: aptGet });
    expect(platform.environment).toEqual({ mode: 'server', confidence: 1, indicators: ['config install.environment=server'], overridden: true });
    // The real machine's user: no sudo on the sandbox PATH, so root or nothing.
    expect(platform.privilege).toBe(userInfo().uid === 0 ? 'root' : 'none');
    expect(JSON.parse(JSON.stringify(platform))).toEqual(platform);
  });

  it('prints OS, distribution, family, architecture, privilege, environment and methods with their paths', async () => {
    const aptGet = await writeStub(sandbox.bin, 'apt-get');
    await writeStub(sandbox.bin, 'sudo', { exitCode: 1 });
    const platform = await detect({ environment: { ...sandbox.environment, SSH_CONNECTION: '192.0.2.1 50000 192.0.2.2 22' } });
    const text = renderPlatform(platform, false);
    expect(text).toMatch(/^os\s+linux$/m);
    expect(text).toMatch(/^distribution\s+Ubuntu 24\.04 LTS \(ubuntu 24\.04\)$/m);
    expect(text).toMatch(/^family\s+debian$/m);
    expect(text).toMatch(/^architecture\s+x86_64$/m);
    expect(text).toMatch(/^privilege\s+sudo, asks for a password$/m);
    expect(text).toMatch(/^environment\s+server \(confidence 0\.70: SSH_CONNECTION set, no DISPLAY or WAYLAND_DISPLAY\)$/m);
    expect(text).toContain(`\nmethods\n`);
    expect(text).toMatch(new RegExp(`^  apt\\s+${aptGet.replace(/[/.]/g, '\\$&')}$`, 'm'));
    expect(text).toMatch(/^ {2}binary\s+\(downloads, always available\)$/m);
    expect(text).not.toContain('\u001b[');
  });

  it('marks unsupported systems and unknown families in the output', async () => {
    const unknown = renderPlatform(await detect({ os: 'linux', arch: 'riscv64', osRelease: join(fixtures, 'void') }), false);
    expect(unknown).toMatch(/^architecture\s+riscv64 \(unsupported\)$/m);
    expect(unknown).toMatch(/^family\s+unknown$/m);
    expect(unknown).toMatch(/^distribution\s+Void Linux \(void\)$/m);
    const overridden = renderPlatform(await detect({ config: { environment: 'ci' } }), false);
    expect(overridden).toMatch(/^environment\s+ci \(set in config: config install\.environment=ci\)$/m);
  });
});
