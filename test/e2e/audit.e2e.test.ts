import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { AuditDocument, ToolReport } from '../../src/audit/types.ts';

/**
 * The built CLI against this real machine: real PATH, real dpkg database,
 * real pyenv shims, the real npm registry and Debian archive. Run with
 * UPKEEP_E2E=1 (CI installs ripgrep, jq, tree, shellcheck and friends first).
 */

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin', 'upkeep.js');
let home: string;
let environment: NodeJS.ProcessEnv;

function upkeep(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { env: environment, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function report(document: AuditDocument, id: string): ToolReport | undefined {
  return document.tools.find((tool) => tool.id === id);
}

/** The upstream part of a Debian version: no epoch, no Debian revision. */
function debianUpstream(version: string): string {
  return version.replace(/^\d+:/, '').replace(/-[^-]*$/, '').replace(/\+(dfsg|ds|really).*$/, '');
}

let document: AuditDocument;

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'cli.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  home = mkdtempSync(join(tmpdir(), 'upkeep-e2e-'));
  environment = { ...process.env, UPKEEP_HOME: home, NO_COLOR: '1' };
  const run = upkeep(['audit', '--offline', '--json']);
  expect(run.status, run.stderr).toBe(0);
  document = JSON.parse(run.stdout) as AuditDocument;
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('upkeep audit --offline --json on this machine', () => {
  it('audits the whole catalog', () => {
    expect(document.schemaVersion).toBe(1);
    expect(document.tools.length).toBeGreaterThanOrEqual(120);
    expect(document.tools.filter((tool) => tool.installed).length).toBeGreaterThan(20);
  });

  it('reports for every installed tool a version that its own probe really prints', () => {
    const checked: string[] = [];
    for (const tool of document.tools) {
      for (const installation of tool.installations) {
        if (!installation.version) continue;
        const shown = execFileSync('sh', ['-c', `upkeep_probe() { "$@" 2>&1; }; upkeep_probe "$@" </dev/null || true`, 'sh', installation.shimTarget ?? installation.path, ...probeArgs(tool.id)], {
          encoding: 'utf8',
          env: { ...process.env, LC_ALL: 'C' },
          timeout: 20_000,
        });
        const printed = shown.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
        // Versions may be printed with a `v` or a tool-name prefix, or with `_` for `.` (OpenSSL_1_1_1).
        expect(printed.includes(installation.version) || printed.includes(installation.version.replace(/\./g, '_')), `${tool.id} at ${installation.path}: "${installation.version}" not in ${printed.slice(0, 200)}`).toBe(true);
        checked.push(tool.id);
      }
    }
    expect(checked.length).toBeGreaterThan(20);
  });

  it('agrees with dpkg about the versions of Debian packages', () => {
    const expected: Record<string, string> = { git: 'git', curl: 'curl', jq: 'jq', ripgrep: 'ripgrep', tree: 'tree', shellcheck: 'shellcheck', make: 'make', bash: 'bash', openssh: 'openssh-client', rsync: 'rsync', zstd: 'zstd' };
    let compared = 0;
    for (const [id, debianPackage] of Object.entries(expected)) {
      const tool = report(document, id);
      const query = spawnSync('dpkg-query', ['-W', '-f', '${Version}', debianPackage], { encoding: 'utf8' });
      if (!tool?.installed || query.status !== 0 || tool.installed.method !== 'apt') continue;
      const fromDpkg = debianUpstream(query.stdout.trim());
      expect(fromDpkg.startsWith(tool.installed.version ?? '<none>'), `${id}: dpkg says ${fromDpkg}, upkeep says ${tool.installed.version}`).toBe(true);
      expect(tool.installed.reason).toContain(debianPackage === 'openssh-client' ? 'openssh' : debianPackage);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(5);
  });

  it('finds this Node.js with the version it runs as', () => {
    const node = report(document, 'node');
    const versions = node!.installations.map((installation) => installation.version);
    expect(versions).toContain(process.versions.node);
  });

  it('resolves the pyenv shim to the Python it runs', () => {
    const python = report(document, 'python');
    const shim = python?.installations.find((installation) => installation.path.includes('/.pyenv/shims/'));
    if (!existsSync(join(process.env.HOME ?? '/root', '.pyenv', 'shims', 'python3'))) return;
    expect(shim?.method).toBe('pyenv');
    const real = execFileSync(join(process.env.HOME ?? '/root', '.pyenv', 'shims', 'python3'), ['-c', 'import platform; print(platform.python_version())'], { encoding: 'utf8' }).trim();
    expect(shim?.version).toBe(real);
    expect(shim?.shimTarget).toMatch(/\.pyenv\/versions\/.+\/bin\/python3/);
  });

  it('never reports shadow\'s sg as an outdated ast-grep, and never runs it', () => {
    if (!existsSync('/usr/bin/sg')) return;
    const astGrep = report(document, 'ast-grep')!;
    const sg = astGrep.installations.find((installation) => installation.path.endsWith('/sg'));
    expect(sg?.version).toBeNull();
    expect(sg?.differentTool).toMatch(/package login/);
    if (!astGrep.installed) expect(astGrep.status).toBe('different-tool');
  });

  it('spawns nothing on a second audit of the unchanged machine', () => {
    const run = upkeep(['audit', '--offline', '--json', '--verbose']);
    expect(run.status).toBe(0);
    expect(run.stderr.split('\n').filter((line) => line.startsWith('debug: ran'))).toEqual([]);
    const again = JSON.parse(run.stdout) as AuditDocument;
    expect(again.tools.map((tool) => [tool.id, tool.installed?.version ?? null])).toEqual(document.tools.map((tool) => [tool.id, tool.installed?.version ?? null]));
  });

  it('renders the snapshot written by the audit', () => {
    const run = upkeep(['audit', '--from-snapshot', '--json']);
    expect(run.status).toBe(0);
    expect((JSON.parse(run.stdout) as AuditDocument).tools).toHaveLength(document.tools.length);
  });
});

describe('live upstreams this machine reaches', () => {
  it('reads the latest version of an npm-sourced tool from the real npm registry', () => {
    const expected = execFileSync('npm', ['view', 'eslint', 'version'], { encoding: 'utf8' }).trim();
    const run = upkeep(['audit', 'eslint', '--refresh', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const eslint = report(JSON.parse(run.stdout) as AuditDocument, 'eslint');
    expect(eslint?.latest).toMatchObject({ version: expected, source: 'npm', stale: false });
  });
});

function probeArgs(id: string): string[] {
  const entry = parse(readFileSync(join(root, 'catalog', 'tools', `${id}.yaml`), 'utf8')) as { probe?: { args?: string[] } };
  return entry.probe?.args ?? ['--version'];
}
