import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, runUpkeep, type Sandbox } from '../helpers/sandbox.ts';

let sandbox: Sandbox;
beforeEach(async () => {
  sandbox = await createSandbox();
});
afterEach(async () => sandbox.cleanup());

describe('upkeep config', () => {
  it('shows each value with where it came from', async () => {
    sandbox.environment.UPKEEP_NETWORK_TIMEOUT = '4';
    const run = await runUpkeep(['config', 'show', '--origin'], sandbox.environment);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/network\.timeout\s+4\s+environment UPKEEP_NETWORK_TIMEOUT/);
    expect(run.stdout).toMatch(new RegExp(`audit\\.extraPaths\\s+\\[\\]\\s+user file ${join(sandbox.upkeepHome, 'config', 'config.yaml').replace(/[/.]/g, '\\$&')}`));
    expect(run.stdout).toMatch(/audit\.probeTimeout\s+10\s+default/);
    const json = await runUpkeep(['config', 'show', '--origin', '--json'], sandbox.environment);
    const origins = json.json<{ origins: Array<{ key: string; origin: string; environmentVariable: string }> }>().origins;
    expect(origins.find((entry) => entry.key === 'network.timeout')).toMatchObject({ origin: 'environment UPKEEP_NETWORK_TIMEOUT' });
  });

  it('validates, naming the file, key and reason of a bad value with exit code 2', async () => {
    expect((await runUpkeep(['config', 'validate'], sandbox.environment)).exitCode).toBe(0);
    const file = join(sandbox.upkeepHome, 'config', 'config.yaml');
    await writeFile(file, 'network:\n  retries: many\n');
    const run = await runUpkeep(['config', 'validate'], sandbox.environment);
    expect(run.exitCode).toBe(2);
    expect(run.stdout).toContain(`${file}: network.retries:`);
    const audit = await runUpkeep(['audit', '--offline'], sandbox.environment);
    expect(audit.exitCode).toBe(2);
    expect(audit.stderr).toMatch(/^error\[E_CONFIG_INVALID\]: .*network\.retries/);
    expect(audit.stderr).toMatch(/\nhint: /);
  });

  it('prints the folders it uses, all under UPKEEP_HOME', async () => {
    const run = await runUpkeep(['config', 'paths', '--json'], sandbox.environment);
    const paths = run.json<Record<string, string>>();
    for (const kind of ['config', 'cache', 'state', 'data']) expect(paths[kind]).toBe(join(sandbox.upkeepHome, kind));
  });
});

describe('the command line', () => {
  it('prints help that lists the commands, and exits 0', async () => {
    const run = await runUpkeep(['--help'], sandbox.environment);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/audit \[options\] \[tool\.\.\.\]\s+show which tools are installed/);
    expect(run.stdout).toMatch(/catalog/);
    const audit = await runUpkeep(['audit', '--help'], sandbox.environment);
    expect(audit.stdout).toMatch(/--fail-on <kind>/);
    expect(audit.stdout).toMatch(/Examples:/);
  });

  it('ends normally when the reader of its output has gone away (`upkeep ... | head`)', async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'catalog', 'list', '--json'], { env: sandbox.environment, stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before upkeep writes anything: every write to stdout fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });

  it('reports an unknown command or option as a usage error with exit code 2', async () => {
    for (const argv of [['audti'], ['audit', '--frobnicate']]) {
      const run = await runUpkeep(argv, sandbox.environment);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toMatch(/^error\[E_USAGE\]: /);
      expect(run.stderr).toMatch(/hint: run `upkeep --help`/);
    }
  });

  it('writes JSON-lines logs with --log-file, without secrets', async () => {
    const log = join(sandbox.root, 'upkeep.log');
    sandbox.environment.GITHUB_TOKEN = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789';
    const run = await runUpkeep(['audit', 'jq', '--offline', '--log-file', log], sandbox.environment);
    expect(run.exitCode).toBe(0);
    const lines = (await readFile(log, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(await readFile(log, 'utf8')).not.toContain('ghp_abcdefghij');
  });

  it('prints debug lines on stderr with --verbose, and data only on stdout', async () => {
    const run = await runUpkeep(['audit', 'jq', '--offline', '--json', '--verbose'], sandbox.environment);
    expect(JSON.parse(run.stdout)).toHaveProperty('tools');
    expect(run.stderr).toMatch(/^debug: /m);
  });
});
