import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

/**
 * What `upkeep sudo-setup` is for, end to end with the real sudo: a user
 * without root runs the update plugins' root work without a password prompt,
 * and gets nothing else as root. sudo reads only /etc/sudoers.d, so the rules
 * go there for real, for a system user this test makes; the rules, the user
 * and the test programs are removed afterwards (a file of the same name that
 * was there before is put back). Run as root, with UPKEEP_E2E=1 (CI does).
 */

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'bin', 'upkeep.js');
const USER = 'upkeep-e2e-sudo';
const SUDOERS = '/etc/sudoers.d';
const FILES = ['upkeep-apt', 'upkeep-e2e-marker'];
const PATH = `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

let createdUser = false;
let uid: number;
let gid: number;
/** Root-owned and closed to writes by others: a program here is safe to grant. */
let programs: string;
let home: string;
const saved = new Map<string, { text: string; mode: number }>();

/** The machine's proxy and certificate settings, as a user's shell would have them. */
const network = Object.fromEntries(Object.entries(process.env).filter(([name]) => /proxy|^NODE_EXTRA_CA_CERTS$|^SSL_CERT_/i.test(name))) as Record<string, string>;

function run(argv: string[], options: SpawnSyncOptions = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 600_000, cwd: root, ...options });
  return { status: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

const asUser = (argv: string[], env: Record<string, string> = { PATH }) => run(argv, { uid, gid, env });

/** upkeep run by the test user, with a home of its own and the e2e plugin folder. */
const upkeepAsUser = (argv: string[]) =>
  asUser([process.execPath, cli, ...argv], {
    ...network,
    PATH,
    HOME: home,
    UPKEEP_HOME: join(home, 'upkeep'),
    UPKEEP_SYSTEM_PLUGINS_DIR: join(programs, 'plugins'),
    NO_COLOR: '1',
  });

/** upkeep run by root, as `sudo upkeep sudo-setup` would be. */
const upkeepAsRoot = (argv: string[]) =>
  run([process.execPath, cli, ...argv], {
    env: { ...network, PATH, HOME: join(programs, 'root-home'), UPKEEP_HOME: join(programs, 'root-upkeep'), UPKEEP_SYSTEM_PLUGINS_DIR: join(programs, 'plugins'), NO_COLOR: '1' },
  });

const runLog = () => join(home, 'upkeep', 'state', 'logs', 'update.log');

/** What the plugins said on stderr, from the run log (which a test empties first). */
async function pluginOutput(): Promise<string[]> {
  const text = await readFile(runLog(), 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { type: string; line?: string })
    .filter((entry) => entry.type === 'output')
    .map((entry) => entry.line!);
}

beforeAll(async () => {
  expect(process.getuid?.(), 'this suite writes into /etc/sudoers.d and makes a user: run it as root (CI does)').toBe(0);
  expect(existsSync('/usr/bin/sudo'), 'sudo is missing: install Debian package sudo').toBe(true);
  if (run(['id', '-u', USER]).status !== 0) {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
    createdUser = true;
  }
  uid = Number(run(['id', '-u', USER]).stdout.trim());
  gid = Number(run(['id', '-g', USER]).stdout.trim());
  for (const name of FILES) {
    const path = join(SUDOERS, name);
    if (existsSync(path)) saved.set(name, { text: await readFile(path, 'utf8'), mode: (await stat(path)).mode & 0o7777 });
  }

  // Not under /tmp (anyone may write there): sudo-setup would refuse to grant a program below it.
  programs = await mkdtemp(join('/var/lib', 'upkeep-sudo-e2e-'));
  await chmod(programs, 0o755);
  // Proves it ran as root by writing who it ran as where only root may write.
  const marker = join(programs, 'mark-as-root');
  await writeFile(marker, `#!/bin/sh\nid -u > ${join(programs, 'marked')}\n`);
  await chmod(marker, 0o755);
  // A plugin that needs root for exactly that program, and runs it through `sudo -n` in its update.
  await mkdir(join(programs, 'plugins'));
  const plugin = join(programs, 'plugins', 'e2e-marker.sh');
  await writeFile(
    plugin,
    [
      '#!/bin/sh',
      'reply() { printf \'{"protocol":1,"status":"%s","data":%s,"error":null}\\n\' "$2" "$3"; exit "$1"; }',
      'case "$1" in',
      '  is-applicable) reply 0 success \'{"applicable":true}\' ;;',
      '  estimate-update) reply 0 success \'{"applicable":true,"packages_to_update":[{"name":"marker","current_version":"1","new_version":"2"}]}\' ;;',
      '  can-separate-download) reply 1 success \'{"can_separate_download":false}\' ;;',
      '  does-require-sudo) reply 0 success \'{"requires_sudo":true}\' ;;',
      `  sudo-programs-paths) reply 0 success '{"paths":["${marker}"]}' ;;`,
      `  update) sudo -n ${marker} >&2 && reply 0 success '{}'; reply 1 error null ;;`,
      '  version) reply 0 success \'{"version":"1.0.0","protocol":1}\' ;;',
      '  *) printf \'{"protocol":1,"status":"error","data":null,"error":{"code":"UNKNOWN_COMMAND","message":"no"}}\\n\'; exit 64 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  await chmod(plugin, 0o755);
  const manifest = { plugin: { name: 'e2e-marker', version: '1.0.0', description: 'runs one program as root', executable: plugin, requires_sudo: true } };
  await writeFile(join(programs, 'plugins', 'e2e-marker.yaml'), stringify(manifest));

  home = await mkdtemp(join(tmpdir(), 'upkeep-e2e-sudo-home-'));
  await chown(home, uid, gid);
});

afterAll(async () => {
  for (const name of FILES) await rm(join(SUDOERS, name), { force: true });
  for (const [name, { text, mode }] of saved) await writeFile(join(SUDOERS, name), text, { mode });
  if (createdUser) execFileSync('userdel', [USER]);
  if (programs) await rm(programs, { recursive: true, force: true });
  if (home) await rm(home, { recursive: true, force: true });
});

describe('a user without root, after upkeep sudo-setup', () => {
  it('cannot run the plugins\' programs as root before, so upkeep skips what needs root and the apt estimate keeps the lists as they are', async () => {
    for (const name of FILES) await rm(join(SUDOERS, name), { force: true });
    expect(asUser(['sudo', '-n', '-l', '/usr/bin/apt-get']).status).toBe(1);

    await rm(runLog(), { force: true });
    const check = upkeepAsUser(['update', 'check', '--plugins', 'apt', '--json']);
    expect(check.status, check.stderr).toBe(0);
    expect(await pluginOutput()).toContain('not root and sudo cannot run apt-get without a password: estimating from the package lists as they are');

    const updated = upkeepAsUser(['update', 'run', '--plugins', 'e2e-marker', '--json']);
    const summary = JSON.parse(updated.stdout.trim().split('\n').at(-1)!) as { report: { plugins: Array<{ phases: { update: { status: string; note?: string } } }> } };
    expect(summary.report.plugins[0]!.phases.update).toMatchObject({ status: 'skipped', note: expect.stringContaining('upkeep sudo-setup') });
    expect(existsSync(join(programs, 'marked'))).toBe(false);
  }, 300_000);

  it('runs exactly those programs as root without a password: the apt plugin refreshes the lists and a plugin\'s update runs its program as root', async () => {
    for (const plugin of ['apt', 'e2e-marker']) {
      const setup = upkeepAsRoot(['sudo-setup', '--plugin', plugin, '--user', USER, '--json']);
      expect(setup.status, setup.stderr).toBe(0);
      expect((JSON.parse(setup.stdout) as { plugins: Array<{ status: string }> }).plugins).toMatchObject([{ status: 'installed' }]);
    }
    // Exactly the plugins' programs: apt-get, yes; anything else, no.
    expect(asUser(['sudo', '-n', '-l', '/usr/bin/apt-get']).status).toBe(0);
    const other = asUser(['sudo', '-n', '/usr/bin/id', '-u']);
    expect(other.status).toBe(1);
    expect(other.stdout).toBe('');

    await rm(runLog(), { force: true });
    const check = upkeepAsUser(['update', 'check', '--plugins', 'apt', '--json']);
    expect(check.status, check.stderr).toBe(0);
    expect((await pluginOutput()).filter((line) => line.includes('sudo cannot run'))).toEqual([]);

    const updated = upkeepAsUser(['update', 'run', '--plugins', 'e2e-marker', '--json']);
    expect(updated.status, updated.stdout + updated.stderr).toBe(0);
    expect(await readFile(join(programs, 'marked'), 'utf8')).toBe('0\n');

    for (const plugin of ['apt', 'e2e-marker']) {
      const removed = upkeepAsRoot(['sudo-setup', '--remove', '--plugin', plugin, '--json']);
      expect(removed.status, removed.stderr).toBe(0);
    }
    expect(FILES.filter((name) => existsSync(join(SUDOERS, name)))).toEqual([]);
    expect(asUser(['sudo', '-n', '-l', '/usr/bin/apt-get']).status).toBe(1);
  }, 300_000);
});
