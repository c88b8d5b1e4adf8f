import { readFile, readdir, writeFile, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditDocument, ToolReport } from '../../src/audit/types.ts';
import { createSandbox, runUpkeep, writeStub, type Sandbox } from '../helpers/sandbox.ts';

const catalogDir = resolve(import.meta.dirname, '../fixtures/catalogs/basic');

let sandbox: Sandbox;
let environment: Record<string, string>;

beforeEach(async () => {
  sandbox = await createSandbox({ UPKEEP_CATALOG_DIR: catalogDir });
  environment = sandbox.environment;
});
afterEach(async () => sandbox.cleanup());

async function spawned(): Promise<string[]> {
  try {
    return (await readFile(sandbox.spawnLog, 'utf8')).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function tool(document: AuditDocument, id: string): ToolReport {
  const found = document.tools.find((report) => report.id === id);
  if (!found) throw new Error(`no report for ${id}`);
  return found;
}

describe('upkeep audit --offline', () => {
  it('reports versions, statuses and installations of stub tools', async () => {
    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 14.1.0\n\nfeatures:+pcre2' });
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    await writeStub(sandbox.bin, 'terraform', {
      stdout: 'Terraform v1.14.2\non linux_amd64\n\nYour version of Terraform is out of date! The latest version\nis 1.15.0.',
    });
    await writeStub(sandbox.bin, 'java', { stderr: 'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)' });

    const run = await runUpkeep(['audit', '--offline', '--json'], environment);
    expect(run.exitCode).toBe(0);
    const document = run.json<AuditDocument>();
    expect(document.schemaVersion).toBe(1);
    expect(document.meta.offline).toBe(true);

    const rg = tool(document, 'ripgrep');
    expect(rg.status).toBe('outdated');
    expect(rg.delta).toBe('patch');
    expect(rg.installed).toMatchObject({ version: '14.1.0', path: join(sandbox.bin, 'rg') });
    expect(rg.latest).toMatchObject({ version: '14.1.1', source: 'github' });

    expect(tool(document, 'jq').status).toBe('up-to-date');
    expect(tool(document, 'terraform')).toMatchObject({ status: 'ahead', installed: { version: '1.14.2' } });
    expect(tool(document, 'java')).toMatchObject({ status: 'unknown', installed: { version: '17.0.15' } });
    expect(tool(document, 'java').reason).toMatch(/no upstream/);
    expect(tool(document, 'eslint')).toMatchObject({ status: 'not-installed', installed: null, installations: [] });
  });

  it('tells another program with the same name apart, without calling it outdated', async () => {
    await writeStub(sandbox.bin, 'sg', { stderr: 'Usage: sg group [[-c] command]', exitCode: 2 });
    await writeStub(sandbox.bin, 'yq', { stdout: 'yq 3.1.0' });
    const document = (await runUpkeep(['audit', '--offline', '--json'], environment)).json<AuditDocument>();
    expect(tool(document, 'ast-grep')).toMatchObject({ status: 'different-tool', installed: null });
    expect(tool(document, 'ast-grep').reason).toContain(join(sandbox.bin, 'sg'));
    expect(tool(document, 'yq')).toMatchObject({ status: 'different-tool', installed: null });
    expect(tool(document, 'yq').installations[0]!.differentTool).toMatch(/yq 3\.1\.0/);
  });

  it('prefers our installation when another program shares the name earlier on PATH', async () => {
    const later = join(sandbox.root, 'later-bin');
    await writeStub(sandbox.bin, 'sg', { stderr: 'Usage: sg group', exitCode: 2 });
    await (await import('node:fs/promises')).mkdir(later);
    await writeStub(later, 'ast-grep', { stdout: 'ast-grep 0.39.0' });
    const document = (
      await runUpkeep(['audit', 'ast-grep', '--offline', '--json'], { ...environment, PATH: `${sandbox.bin}:${later}` })
    ).json<AuditDocument>();
    const report = tool(document, 'ast-grep');
    expect(report.status).toBe('up-to-date');
    expect(report.installed?.path).toBe(join(later, 'ast-grep'));
    expect(report.installations).toHaveLength(2);
  });

  it('takes no version from a probe that crashed, even if its output is full of numbers', async () => {
    await writeStub(sandbox.bin, 'jq', {
      stderr: 'Traceback (most recent call last):\n  File "/usr/lib/python3.11/site-packages/jq/__init__.py", line 3\nModuleNotFoundError: No module named jq',
      exitCode: 1,
    });
    await writeStub(sandbox.bin, 'rg', { stderr: 'rg: error while loading shared libraries: libpcre2-8.so.0.11.2: cannot open shared object file', exitCode: 127 });
    const document = (await runUpkeep(['audit', '--offline', '--json'], environment)).json<AuditDocument>();
    expect(tool(document, 'jq')).toMatchObject({ status: 'unknown', installed: { version: null } });
    expect(tool(document, 'jq').reason).toMatch(/could not run .*Traceback/);
    expect(tool(document, 'ripgrep')).toMatchObject({ status: 'unknown', installed: { version: null } });
    expect(tool(document, 'ripgrep').reason).toMatch(/exit code 127/);
  });

  it('kills a hanging probe at its timeout and goes on with the other tools', async () => {
    await writeStub(sandbox.bin, 'slowtool', { sleep: 30, stdout: 'slowtool 1.0.0' });
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    const run = await runUpkeep(['audit', '--offline', '--json'], { ...environment, UPKEEP_AUDIT_PROBE_TIMEOUT: '1' });
    const document = run.json<AuditDocument>();
    expect(tool(document, 'slowtool').status).toBe('unknown');
    expect(tool(document, 'slowtool').reason).toMatch(/did not finish within 1 s/);
    expect(tool(document, 'jq').status).toBe('up-to-date');
  });

  it('spawns nothing when re-auditing unchanged binaries, and probes again when one changes', async () => {
    const rg = await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 14.1.0' });
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    await runUpkeep(['audit', '--offline', '--json'], environment);
    const first = await spawned();
    expect(first.sort()).toEqual(['jq --version', 'rg --version']);

    const again = await runUpkeep(['audit', '--offline', '--json'], environment);
    expect(await spawned()).toHaveLength(2);
    expect(tool(again.json<AuditDocument>(), 'ripgrep').installed?.version).toBe('14.1.0');

    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 14.1.1' });
    const later = new Date(Date.now() + 5000);
    await utimes(rg, later, later);
    const third = await runUpkeep(['audit', '--offline', '--json'], environment);
    expect((await spawned()).slice(2)).toEqual(['rg --version']);
    expect(tool(third.json<AuditDocument>(), 'ripgrep').status).toBe('up-to-date');
  });

  it('sets a corrupt probe cache aside, says so once, and rebuilds it', async () => {
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    await runUpkeep(['audit', '--offline'], environment);
    const cacheFolder = join(sandbox.upkeepHome, 'cache');
    await writeFile(join(cacheFolder, 'probes-v1.json'), '{"schemaVersion": 1, "entries": ');
    const run = await runUpkeep(['audit', '--offline', '--json'], environment);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toMatch(/warning: the probe cache .* was unreadable/);
    expect(tool(run.json<AuditDocument>(), 'jq').status).toBe('up-to-date');
    const files = await readdir(cacheFolder);
    expect(files.some((name) => name.startsWith('probes-v1.json.corrupt-'))).toBe(true);
    const rebuilt = JSON.parse(await readFile(join(cacheFolder, 'probes-v1.json'), 'utf8')) as { entries: object };
    expect(Object.keys(rebuilt.entries)).toHaveLength(1);
    const quiet = await runUpkeep(['audit', '--offline'], environment);
    expect(quiet.stderr).not.toMatch(/unreadable/);
  });

  it('keeps both caches valid when two audits run at once', async () => {
    for (const name of ['rg', 'jq', 'terraform', 'java']) await writeStub(sandbox.bin, name, { stdout: `${name} 1.2.3` });
    const runs = await Promise.all([
      runUpkeep(['audit', 'rg', 'jq', '--offline', '--json'], environment),
      runUpkeep(['audit', 'terraform', 'java', '--offline', '--json'], environment),
      runUpkeep(['audit', '--offline', '--json'], environment),
    ]);
    for (const run of runs) expect(run.exitCode).toBe(0);
    const cache = JSON.parse(await readFile(join(sandbox.upkeepHome, 'cache', 'probes-v1.json'), 'utf8')) as { entries: object };
    expect(Object.keys(cache.entries)).toHaveLength(4);
  });
});

describe('audit selection and exit codes', () => {
  it('rejects an unknown tool with the closest names and exit code 2', async () => {
    const run = await runUpkeep(['audit', 'ripgrap', '--offline'], environment);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('error[E_UNKNOWN_TOOL]: unknown tool: ripgrap');
    expect(run.stderr).toMatch(/hint: did you mean ripgrep/);
  });

  it('prints the error as JSON with --json', async () => {
    const run = await runUpkeep(['audit', 'nosuchtool', '--offline', '--json'], environment);
    expect(run.exitCode).toBe(2);
    expect(run.json<{ error: { code: string } }>().error.code).toBe('E_UNKNOWN_TOOL');
  });

  it('selects by binary name, --only and --preset', async () => {
    const byBinary = (await runUpkeep(['audit', 'rg', '--offline', '--json'], environment)).json<AuditDocument>();
    expect(byBinary.tools.map((report) => report.id)).toEqual(['ripgrep']);
    const only = (await runUpkeep(['audit', '--only', 'jq,yq', '--offline', '--json'], environment)).json<AuditDocument>();
    expect(only.tools.map((report) => report.id).sort()).toEqual(['jq', 'yq']);
    const preset = (await runUpkeep(['audit', '--preset', 'search', '--offline', '--json'], environment)).json<AuditDocument>();
    expect(preset.tools.map((report) => report.id).sort()).toEqual(['ast-grep', 'ripgrep']);
    const unknownPreset = await runUpkeep(['audit', '--preset', 'serch', '--offline'], environment);
    expect(unknownPreset.exitCode).toBe(2);
    expect(unknownPreset.stderr).toContain('E_UNKNOWN_PRESET');
  });

  it('exits 1 with --fail-on outdated only when a tool is outdated', async () => {
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    expect((await runUpkeep(['audit', 'jq', '--offline', '--fail-on', 'outdated'], environment)).exitCode).toBe(0);
    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 13.0.0' });
    const run = await runUpkeep(['audit', 'rg', 'jq', '--offline', '--fail-on', 'outdated'], environment);
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/outdated \(major\)/);
    expect((await runUpkeep(['audit', 'eslint', '--offline', '--fail-on', 'missing'], environment)).exitCode).toBe(1);
  });

  it('rejects a bad --sort value as a usage error', async () => {
    const run = await runUpkeep(['audit', '--sort', 'size'], environment);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('error[E_USAGE]');
  });
});

describe('snapshots', () => {
  it('renders --from-snapshot without spawning anything, identical to what was collected', async () => {
    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 14.1.0' });
    const collect = await runUpkeep(['audit', '--offline', '--collect-only', '--json'], environment);
    expect(collect.exitCode).toBe(0);
    const { snapshot } = collect.json<{ snapshot: string }>();
    const before = (await spawned()).length;
    const rendered = await runUpkeep(['audit', '--from-snapshot', '--json'], { ...environment, PATH: '/nonexistent' });
    expect(rendered.exitCode).toBe(0);
    expect(await spawned()).toHaveLength(before);
    const written = JSON.parse(await readFile(snapshot, 'utf8')) as AuditDocument;
    expect(rendered.json<AuditDocument>().tools.map((report) => report.id).sort()).toEqual(written.tools.map((report) => report.id).sort());
    expect(tool(rendered.json<AuditDocument>(), 'ripgrep').installed?.version).toBe('14.1.0');
    const table = await runUpkeep(['audit', '--from-snapshot', 'rg'], environment);
    expect(table.stdout).toMatch(/ripgrep\s+14\.1\.0\s+14\.1\.1\*?\s+outdated \(patch\)/);
  });

  it('reports a missing snapshot and sets a corrupt one aside', async () => {
    const missing = await runUpkeep(['audit', '--from-snapshot'], environment);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('E_SNAPSHOT_MISSING');
    const path = join(sandbox.root, 'snap.json');
    await writeFile(path, '{"schemaVersion": 1, "tools": "no"}');
    const corrupt = await runUpkeep(['audit', '--from-snapshot', '--snapshot', path], environment);
    expect(corrupt.exitCode).toBe(1);
    expect(corrupt.stderr).toContain('E_SNAPSHOT_INVALID');
    expect((await readdir(sandbox.root)).some((name) => name.startsWith('snap.json.corrupt-'))).toBe(true);
  });
});

describe('the human table', () => {
  it('groups by category, summarises, and shows what an upgrade would run', async () => {
    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 13.0.0' });
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    const run = await runUpkeep(['audit', '--offline'], environment);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).not.toMatch(/\u001b\[/);
    const lines = run.stdout.split('\n');
    expect(lines.indexOf('search')).toBeGreaterThanOrEqual(0);
    expect(lines.indexOf('search')).toBeLessThan(lines.indexOf('text'));
    expect(run.stdout).toMatch(/Upgrades/);
    expect(run.stdout).toMatch(/ripgrep\s+13\.0\.0 → 14\.1\.1/);
    expect(run.stdout).toMatch(/8 tools: 2 installed, 1 up to date, 1 outdated \(1 major\), 6 not installed/);
    expect(run.stdout).toMatch(/not installed \(6\): /);
  });
});
