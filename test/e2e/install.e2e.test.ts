import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The built CLI changing this real Debian machine as root: a real apt
 * install, verify and uninstall; a real npm-global install, upgrade with
 * backup and a failed upgrade rolled back; a real apt failure matched by
 * its handler; a release download with a tampered checksum from a local
 * server. Run with UPKEEP_E2E=1 (CI has run `apt-get update`).
 */

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin', 'upkeep.js');
let home: string;
let environment: NodeJS.ProcessEnv;

interface Outcome {
  tool: string;
  status: string;
  version?: string | null;
  previousVersion?: string | null;
  method?: string;
  path?: string;
  error?: { code: string; message: string };
  failure?: { matches: Array<{ id: string; layer: string; category: string }> };
}

function upkeep(args: string[], extra: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string; json: <T>() => T } {
  const result = spawnSync(process.execPath, [cli, ...args], { env: { ...environment, ...extra }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    json: <T>() => {
      try {
        return JSON.parse(result.stdout) as T;
      } catch {
        throw new Error(`not JSON (exit ${result.status}): ${result.stdout}\n${result.stderr}`);
      }
    },
  };
}

/** Like upkeep(), but without blocking this process: the test's own HTTP server must keep answering. */
function upkeepAsync(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [cli, ...args], { env: { ...environment, ...extra }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      done({ status: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A catalog of one tool, with the real failure handlers and package groups. */
function catalogWith(id: string, description: string, recipe: string[]): string {
  const catalog = join(home, `catalog-${id}`);
  mkdirSync(join(catalog, 'tools'), { recursive: true });
  cpSync(join(root, 'catalog', 'handlers'), join(catalog, 'handlers'), { recursive: true });
  cpSync(join(root, 'catalog', 'groups.yaml'), join(catalog, 'groups.yaml'));
  const header = [`id: ${id}`, `name: ${id}`, `description: ${description}`, 'homepage: https://example.org/', 'category: system', 'upstream: {source: none}'];
  writeFileSync(join(catalog, 'tools', `${id}.yaml`), `${[...header, ...recipe].join('\n')}\n`);
  return catalog;
}

function which(command: string): string | null {
  const result = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'cli.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  home = mkdtempSync(join(tmpdir(), 'upkeep-e2e-install-'));
  environment = { ...process.env, UPKEEP_HOME: home, NO_COLOR: '1', UPKEEP_INSTALL_RETRY_DELAY: '0' };
});

afterAll(() => {
  rmSync(home, { recursive: true, force: true });
});

describe('apt, for real', () => {
  it('installs entr, verifies it, and removes it again', () => {
    if (which('entr')) execFileSync('apt-get', ['remove', '-y', 'entr'], { stdio: 'ignore' });
    const installed = upkeep(['install', 'entr', '--method', 'apt', '--yes', '--json']);
    expect(installed.status, installed.stderr).toBe(0);
    const outcome = installed.json<{ outcomes: Outcome[] }>().outcomes[0]!;
    expect(outcome).toMatchObject({ tool: 'entr', status: 'installed', method: 'apt' });
    expect(outcome.version).toMatch(/^\d/);
    expect(which('entr')).toBe(outcome.path);

    const removed = upkeep(['uninstall', 'entr', '--yes', '--json']);
    expect(removed.status, removed.stderr).toBe(0);
    expect(removed.json<{ outcomes: Outcome[] }>().outcomes[0]).toMatchObject({ tool: 'entr', status: 'uninstalled', method: 'apt' });
    expect(which('entr')).toBeNull();
  });

  it('matches a real apt failure with the apt handler that explains it', () => {
    const catalog = catalogWith('ghost', 'A package no archive has', ['install:', '  apt: upkeep-no-such-package-e2e']);
    const run = upkeep(['install', 'ghost', '--yes', '--json'], { UPKEEP_CATALOG_DIR: catalog });
    expect(run.status).toBe(1);
    const outcome = run.json<{ outcomes: Outcome[] }>().outcomes[0]!;
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('E_INSTALL_FAILED');
    const categories = outcome.failure!.matches.map((match) => `${match.layer}:${match.category}`);
    expect(categories).toContain('method:not-found');
  });
});

describe('npm, for real', () => {
  const oldVersion = '3.0.0';

  afterAll(() => {
    spawnSync('npm', ['uninstall', '-g', 'prettier'], { stdio: 'ignore' });
  });

  it('installs an older prettier, rolls back a failed upgrade, then upgrades to the latest with a backup', () => {
    const installed = upkeep(['install', 'prettier', '--method', 'npm', '--version', oldVersion, '--reinstall', '--yes', '--json']);
    expect(installed.status, installed.stderr + installed.stdout).toBe(0);
    expect(installed.json<{ outcomes: Outcome[] }>().outcomes[0]).toMatchObject({ status: 'installed', method: 'npm', version: oldVersion });

    // A version the registry does not have: npm fails, the backup is restored and verified.
    const failed = upkeep(['upgrade', 'prettier', '--to', '3.999.0', '--yes', '--json']);
    expect(failed.status).toBe(1);
    const rolledBack = failed.json<{ outcomes: Outcome[] }>().outcomes[0]!;
    expect(rolledBack).toMatchObject({ tool: 'prettier', status: 'rolled-back', version: oldVersion });
    expect(execFileSync('prettier', ['--version'], { encoding: 'utf8' }).trim()).toBe(oldVersion);

    const upgraded = upkeep(['upgrade', 'prettier', '--yes', '--json']);
    expect(upgraded.status, upgraded.stderr + upgraded.stdout).toBe(0);
    const outcome = upgraded.json<{ outcomes: Outcome[] }>().outcomes[0]!;
    expect(outcome).toMatchObject({ tool: 'prettier', status: 'upgraded', previousVersion: oldVersion });
    expect(outcome.version).not.toBe(oldVersion);
    expect(execFileSync('prettier', ['--version'], { encoding: 'utf8' }).trim()).toBe(outcome.version);

    const backups = readdirSync(join(home, 'data', 'backups', 'prettier'));
    expect(backups.length).toBeGreaterThanOrEqual(2);

    // By hand: the newest backup is the one made before the upgrade, of the old version.
    const rolled = upkeep(['rollback', 'prettier', '--json']);
    expect(rolled.status, rolled.stderr).toBe(0);
    expect(rolled.json<Outcome>()).toMatchObject({ status: 'rolled-back', version: oldVersion });
    expect(execFileSync('prettier', ['--version'], { encoding: 'utf8' }).trim()).toBe(oldVersion);
  });
});

describe('a release download with a tampered checksum', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const folder = mkdtempSync(join(tmpdir(), 'upkeep-e2e-asset-'));
    mkdirSync(join(folder, 'fakebin-1.0.0'));
    writeFileSync(join(folder, 'fakebin-1.0.0', 'fakebin'), '#!/bin/sh\necho fakebin 1.0.0\n', { mode: 0o755 });
    execFileSync('tar', ['-czf', join(folder, 'asset.tar.gz'), '-C', folder, 'fakebin-1.0.0']);
    const asset = execFileSync('cat', [join(folder, 'asset.tar.gz')]);
    server = createServer((request, response) => {
      if (request.url === '/releases/fakebin-1.0.0-linux-x86_64.tar.gz') {
        response.writeHead(200, { 'content-type': 'application/gzip' });
        response.end(asset);
      } else if (request.url === '/releases/checksums.txt') {
        // The digest of something else: the download must be refused.
        response.end(`${'0'.repeat(64)}  fakebin-1.0.0-linux-x86_64.tar.gz\n`);
      } else {
        response.writeHead(404);
        response.end('not found');
      }
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    rmSync(folder, { recursive: true, force: true });
  });

  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it('installs nothing and removes the download', async () => {
    const catalog = catalogWith('fakebin', 'A release archive from a local server', [
      'install:',
      '  binary:',
      `    url: ${base}/releases/fakebin-{version}-{os}-{arch}.tar.gz`,
      '    checksum:',
      `      url: ${base}/releases/checksums.txt`,
    ]);
    const binDir = join(home, 'bin');
    const run = await upkeepAsync(['install', 'fakebin', '--version', '1.0.0', '--yes', '--json'], { UPKEEP_CATALOG_DIR: catalog, UPKEEP_INSTALL_BIN_DIR: binDir });
    expect(run.status, run.stderr).toBe(1);
    const outcome = (JSON.parse(run.stdout) as { outcomes: Outcome[] }).outcomes[0]!;
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('E_CHECKSUM_MISMATCH');
    expect(existsSync(join(binDir, 'fakebin'))).toBe(false);
    const staging = join(home, 'cache', 'staging');
    expect(existsSync(staging) ? readdirSync(staging) : []).toEqual([]);
  });
});
