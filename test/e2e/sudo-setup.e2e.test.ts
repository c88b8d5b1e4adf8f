import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runUpkeep } from '../helpers/sandbox.ts';
import { createUpdateSandbox, type UpdateSandbox } from '../helpers/update.ts';

/**
 * `upkeep sudo-setup` against the real visudo (Debian's sudo package; CI
 * installs it) and plugins that answer sudo-programs-paths with the paths a
 * test gives them. Files go to a temp UPKEEP_SUDOERS_DIR, never /etc/sudoers.d.
 * Root is needed, as for the command itself: files must be owned by root,
 * and programs a test makes must be too to count as safe.
 */

const PLUGIN = fileURLToPath(new URL('../fixtures/sudo/sudo-plugin.sh', import.meta.url));
const VISUDO = ['/usr/sbin/visudo', '/sbin/visudo'].find((path) => existsSync(path));
const CVTSUDOERS = ['/usr/bin/cvtsudoers', '/usr/sbin/cvtsudoers'].find((path) => existsSync(path));
/** A user every Debian machine has. */
const USER = 'nobody';
const ROOT = { uid: 0 };
const NOT_ROOT = { uid: 1000 };

interface TestPlugin {
  name: string;
  /** The manifest's requires_sudo (default true). */
  requiresSudo?: boolean;
  /** What does-require-sudo answers (default no). */
  answersSudo?: boolean;
  paths?: string[];
  fail?: boolean;
  mutexes?: string[];
}

interface Row {
  plugin: string;
  status: string;
  paths: string[];
  file: string;
  entry?: string;
  reason?: string;
}

interface SetupData {
  action: string;
  user: string;
  directory: string;
  plugins: Row[];
}

interface ErrorData {
  error: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}

let sandbox: UpdateSandbox;
let sudoers: string;
let queries: string;
/** Root-owned, 0700, below folders only root can write: programs made here are safe to grant. */
let safe: string;

/** The first candidate whose folders are all root's and closed to others (not /tmp: anyone may write there). */
async function makeSafeFolder(): Promise<string> {
  for (const base of ['/run', '/var/lib', '/var/cache']) {
    try {
      return await mkdtemp(join(base, 'upkeep-sudo-test-'));
    } catch {
      continue;
    }
  }
  throw new Error('no folder outside /tmp to make root-owned test programs in (tried /run, /var/lib, /var/cache)');
}

async function program(folder: string, name: string, mode = 0o755): Promise<string> {
  const path = join(folder, name);
  await writeFile(path, '#!/bin/sh\nexit 0\n');
  await chmod(path, mode);
  return path;
}

async function addPlugin(plugin: TestPlugin): Promise<void> {
  const manifest = {
    plugin: {
      name: plugin.name,
      version: '1.0.0',
      description: `sudo test plugin ${plugin.name}`,
      executable: PLUGIN,
      requires_sudo: plugin.requiresSudo ?? true,
      static_mutexes: { estimate: [], download: [], update: plugin.mutexes ?? [] },
      settings: {
        requires_sudo: plugin.answersSudo ? 'yes' : 'no',
        paths_json: JSON.stringify(plugin.paths ?? []),
        fail: plugin.fail ? 'yes' : 'no',
        log: queries,
      },
    },
  };
  await writeFile(join(sandbox.plugins, `${plugin.name}.yaml`), stringify(manifest));
}

const setup = (argv: string[], options = ROOT) => runUpkeep(['sudo-setup', ...argv], sandbox.environment, sandbox.home, options);
const installed = async (): Promise<string[]> => (await readdir(sudoers)).sort();
const asked = async (): Promise<string[]> => (await readFile(queries, 'utf8')).split('\n').filter(Boolean);

beforeAll(async () => {
  expect(process.getuid?.(), 'sudo-setup installs root-owned files: run this suite as root (CI does)').toBe(0);
  safe = await makeSafeFolder();
});

afterAll(async () => {
  await rm(safe, { recursive: true, force: true });
});

beforeEach(async () => {
  sandbox = await createUpdateSandbox([], { SUDO_USER: USER });
  sudoers = join(sandbox.root, 'sudoers.d');
  queries = join(sandbox.root, 'queries.log');
  await mkdir(sudoers, { mode: 0o755 });
  await writeFile(queries, '');
  sandbox.environment.UPKEEP_SUDOERS_DIR = sudoers;
});

afterEach(async () => {
  await sandbox.cleanup();
});

describe('upkeep sudo-setup', () => {
  it('has the real visudo to check with', () => {
    expect(VISUDO, 'visudo is missing: install Debian package sudo').toBeDefined();
    expect(CVTSUDOERS, 'cvtsudoers is missing: install Debian package sudo').toBeDefined();
  });

  it('installs one visudo-checked file per plugin that needs root, root:root 0440, then --remove deletes them', async () => {
    const tool = await program(safe, 'my tool,v2=x:y#z');
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get', '/usr/bin/dpkg'] });
    await addPlugin({ name: 'asks', requiresSudo: false, answersSudo: true, paths: [tool, tool] });
    await addPlugin({ name: 'no-root', requiresSudo: false, answersSudo: false, paths: ['/usr/bin/env'] });
    await addPlugin({ name: 'switched-off', paths: ['/usr/bin/env'] });
    await appendFile(join(sandbox.upkeepHome, 'config', 'config.yaml'), 'update:\n  disabled: [switched-off]\n');

    const first = await setup(['--json']);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    const data = first.json<SetupData>();
    expect(data).toMatchObject({ action: 'install', user: USER, directory: sudoers });
    expect(data.plugins.map(({ plugin, status, paths }) => ({ plugin, status, paths }))).toEqual([
      { plugin: 'asks', status: 'installed', paths: [tool] },
      { plugin: 'fake-apt', status: 'installed', paths: ['/usr/bin/apt-get', '/usr/bin/dpkg'] },
      { plugin: 'no-root', status: 'not-needed', paths: [] },
    ]);
    // The disabled plugin is never asked; the one that needs no root is asked only that.
    expect(await asked()).not.toContainEqual(expect.stringMatching(/^switched-off /));
    expect(await asked()).toContain('no-root does-require-sudo');
    expect(await asked()).not.toContain('no-root sudo-programs-paths');

    expect(await installed()).toEqual(['upkeep-asks', 'upkeep-fake-apt']);
    for (const name of await installed()) {
      const file = join(sudoers, name);
      const stats = await stat(file);
      expect(stats.mode & 0o7777).toBe(0o440);
      expect([stats.uid, stats.gid]).toEqual([0, 0]);
      expect(execFileSync(VISUDO!, ['-c', '-s', '-f', file], { encoding: 'utf8' })).toContain('parsed OK');
    }
    const apt = await readFile(join(sudoers, 'upkeep-fake-apt'), 'utf8');
    expect(apt.split('\n')[0]).toBe('# Written by upkeep sudo-setup for the update plugin fake-apt.');
    expect(apt).toContain('sudo upkeep sudo-setup --remove --plugin fake-apt');
    expect(apt).toContain(`\n${USER} ALL=(root) NOPASSWD: /usr/bin/apt-get, /usr/bin/dpkg\n`);
    expect(apt).toContain('\nDefaults!/usr/bin/apt-get, /usr/bin/dpkg env_keep += "DEBIAN_FRONTEND APT_LISTCHANGES_FRONTEND"\n');
    expect(data.plugins[1]!.entry).toBe(apt);

    // sudo's own parser reads the escaped name back as the one program, not as four.
    const asks = await readFile(join(sudoers, 'upkeep-asks'), 'utf8');
    expect(asks).not.toContain('Defaults');
    const parsed = JSON.parse(execFileSync(CVTSUDOERS!, ['-f', 'json', join(sudoers, 'upkeep-asks')], { encoding: 'utf8' })) as {
      User_Specs: { User_List: { username: string }[]; Cmnd_Specs: { runasusers: { username: string }[]; Commands: { command: string }[] }[] }[];
    };
    expect(parsed.User_Specs).toHaveLength(1);
    expect(parsed.User_Specs[0]!.User_List).toEqual([{ username: USER }]);
    expect(parsed.User_Specs[0]!.Cmnd_Specs[0]!.runasusers).toEqual([{ username: 'root' }]);
    expect(parsed.User_Specs[0]!.Cmnd_Specs[0]!.Commands).toEqual([{ command: tool }]);

    const again = await setup(['--json']);
    expect(again.exitCode).toBe(0);
    expect(again.json<SetupData>().plugins.map((row) => row.status)).toEqual(['unchanged', 'unchanged', 'not-needed']);
    expect(await installed()).toEqual(['upkeep-asks', 'upkeep-fake-apt']);

    // Only files with upkeep's header go.
    await writeFile(join(sudoers, 'upkeep-by-hand'), 'nobody ALL=(root) NOPASSWD: /usr/bin/true\n', { mode: 0o440 });
    await writeFile(join(sudoers, 'other'), 'nobody ALL=(root) NOPASSWD: /usr/bin/true\n', { mode: 0o440 });
    const removed = await setup(['--remove', '--json']);
    expect(removed.exitCode).toBe(0);
    expect(removed.json()).toEqual({
      action: 'remove',
      directory: sudoers,
      removed: [join(sudoers, 'upkeep-asks'), join(sudoers, 'upkeep-fake-apt')],
      kept: [join(sudoers, 'upkeep-by-hand')],
    });
    expect(removed.stderr).toContain(`left ${join(sudoers, 'upkeep-by-hand')} alone`);
    expect(await installed()).toEqual(['other', 'upkeep-by-hand']);
  });

  it('--remove --plugin deletes only that plugin\'s file', async () => {
    await addPlugin({ name: 'first', paths: ['/usr/bin/env'] });
    await addPlugin({ name: 'second', paths: ['/usr/bin/true'] });
    expect((await setup([])).exitCode).toBe(0);
    const removed = await setup(['--remove', '--plugin', 'first']);
    expect(removed.exitCode).toBe(0);
    expect(removed.stdout).toContain(`removed  ${join(sudoers, 'upkeep-first')}`);
    expect(await installed()).toEqual(['upkeep-second']);
  });

  it('--print shows the entries, checked by visudo, without root, and installs nothing', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    await addPlugin({ name: 'locker', paths: ['/usr/bin/env'], mutexes: ['pkgmgr:dpkg'] });
    const printed = await setup(['--print'], NOT_ROOT);
    expect(printed.exitCode).toBe(0);
    expect(printed.stdout).toContain(`# ---- ${join(sudoers, 'upkeep-fake-apt')}\n# Written by upkeep sudo-setup for the update plugin fake-apt.`);
    expect(printed.stdout).toContain(`${USER} ALL=(root) NOPASSWD: /usr/bin/apt-get\n`);
    // Holding dpkg's lock makes a plugin one of apt's family, whatever its program is called.
    expect(printed.stdout).toContain('Defaults!/usr/bin/env env_keep += "DEBIAN_FRONTEND APT_LISTCHANGES_FRONTEND"');
    expect(await installed()).toEqual([]);

    const json = await setup(['--print', '--json'], NOT_ROOT);
    expect(json.json<SetupData>().plugins.map((row) => [row.plugin, row.status])).toEqual([
      ['fake-apt', 'printed'],
      ['locker', 'printed'],
    ]);
    expect(await installed()).toEqual([]);
  });

  it('refuses to install or remove without root, pointing at sudo', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    for (const argv of [['--plugin', 'fake-apt'], ['--remove']]) {
      const result = await setup([...argv, '--json'], NOT_ROOT);
      expect(result.exitCode).toBe(1);
      const { error } = result.json<ErrorData>();
      expect(error.code).toBe('E_NEEDS_ROOT');
      expect(error.hint).toContain(`sudo upkeep sudo-setup ${argv.join(' ')}`);
    }
    expect(await asked()).toEqual([]);
    expect(await installed()).toEqual([]);
  });

  describe('refuses a program path that would give away root (E_SUDO_PATH_UNSAFE), installing nothing', () => {
    const cases: [string, () => Promise<string>, string][] = [
      ['a relative path', async () => 'apt-get', 'is not an absolute path'],
      ['a missing program', async () => '/usr/bin/upkeep-no-such-program', 'does not exist'],
      [
        'a file anyone may write',
        async () => {
          const folder = await mkdtemp(join(sandbox.root, 'writable-'));
          return program(folder, 'tool', 0o777);
        },
        'writable by its group or by others',
      ],
      [
        'a root-owned file in a folder anyone may write',
        async () => {
          const folder = join(safe, `open-${Date.now()}`);
          await mkdir(folder);
          await chmod(folder, 0o777);
          return program(folder, 'tool');
        },
        'is writable by its group or by others (mode 0777)',
      ],
      [
        'a root-owned file in a folder its group may write',
        async () => {
          const folder = join(safe, `group-${Date.now()}`);
          await mkdir(folder);
          await chmod(folder, 0o775);
          return program(folder, 'tool');
        },
        'is writable by its group or by others (mode 0775)',
      ],
      [
        'a file owned by the user',
        async () => {
          const path = await program(safe, `users-${Date.now()}`);
          await chown(path, 65534, 65534);
          return path;
        },
        'is owned by uid 65534, not root',
      ],
      ['a folder', async () => '/usr/bin', 'is not a regular file'],
      ['a wildcard', async () => '/usr/bin/apt-*', 'contains a wildcard character'],
      ['a path with ".."', async () => '/usr/bin/../bin/apt-get', 'is not in plain form'],
      ['a file that is not executable', async () => program(safe, `plain-${Date.now()}`, 0o644), 'is not executable'],
      [
        'a safe link to a program in /tmp',
        async () => {
          const target = await program(await mkdtemp(join(tmpdir(), 'upkeep-sudo-target-')), 'tool');
          const link = join(safe, `link-${Date.now()}`);
          await symlink(target, link);
          return link;
        },
        'is writable by its group or by others (mode 1777)',
      ],
    ];
    it.each(cases)('%s', async (_title, makePath, problem) => {
      const path = await makePath();
      await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
      await addPlugin({ name: 'risky', paths: ['/usr/bin/env', path] });
      const result = await setup(['--json']);
      expect(result.exitCode).toBe(1);
      const { error } = result.json<ErrorData>();
      expect(error.code).toBe('E_SUDO_PATH_UNSAFE');
      expect(error.message).toContain(`plugin risky: ${JSON.stringify(path)} `);
      expect(error.message).toContain(problem);
      expect(error.message).not.toContain('/usr/bin/env');
      expect(error.hint).toContain('chmod go-w');
      expect(error.details).toEqual({ paths: [{ plugin: 'risky', path, problem: expect.stringContaining(problem) }] });
      expect(await installed()).toEqual([]);
      // --print refuses the same: it shows only what could be installed.
      expect((await setup(['--print'], NOT_ROOT)).exitCode).toBe(1);
    });
  });

  it('E_SUDOERS_INVALID when visudo rejects an entry: a backslash has no escape in a sudoers command; nothing is installed', async () => {
    const odd = await program(safe, 'back\\slash');
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    await addPlugin({ name: 'odd', paths: [odd] });
    const result = await setup(['--json']);
    expect(result.exitCode).toBe(1);
    const { error } = result.json<ErrorData>();
    expect(error.code).toBe('E_SUDOERS_INVALID');
    expect(error.message).toContain('visudo rejected the sudoers entry for plugin odd; nothing was installed');
    // visudo's own words, pointing at the line it could not read.
    expect(error.message).toMatch(/\.upkeep-odd\.[0-9a-f]+\.tmp:\d+:\d+: /);
    expect(error.hint).toContain('upkeep sudo-setup --print');
    // Neither file, nor a temp file, is left behind.
    expect(await installed()).toEqual([]);

    const printed = await setup(['--print', '--json'], NOT_ROOT);
    expect(printed.exitCode).toBe(1);
    expect(printed.json<ErrorData>().error.code).toBe('E_SUDOERS_INVALID');
  });

  it('sets up the others when one plugin cannot answer (exit 3), and fails when none can', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    await addPlugin({ name: 'broken', fail: true });
    const result = await setup(['--json']);
    expect(result.exitCode).toBe(3);
    const rows = result.json<SetupData>().plugins;
    expect(rows.map((row) => [row.plugin, row.status])).toEqual([
      ['broken', 'failed'],
      ['fake-apt', 'installed'],
    ]);
    expect(rows[0]!.reason).toContain('which broke');
    expect(result.stderr).toContain('plugin broken failed to answer sudo-programs-paths: which broke');
    expect(await installed()).toEqual(['upkeep-fake-apt']);

    const alone = await setup(['--plugin', 'broken']);
    expect(alone.exitCode).toBe(1);
  });

  it('leaves alone a file of the same name that upkeep did not write', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    const mine = 'nobody ALL=(root) NOPASSWD: /usr/bin/apt-get update\n';
    await writeFile(join(sudoers, 'upkeep-fake-apt'), mine, { mode: 0o440 });
    const result = await setup(['--json']);
    expect(result.exitCode).toBe(1);
    expect(result.json<SetupData>().plugins[0]).toMatchObject({ plugin: 'fake-apt', status: 'foreign' });
    expect(result.stderr).toContain("it exists without upkeep's header");
    expect(await readFile(join(sudoers, 'upkeep-fake-apt'), 'utf8')).toBe(mine);
    expect(await installed()).toEqual(['upkeep-fake-apt']);
  });

  it('--plugin sets up only the plugin named, even one that answers that it needs no root', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    await addPlugin({ name: 'fake-npm', requiresSudo: false, answersSudo: false, paths: ['/usr/bin/env'] });
    const result = await setup(['--plugin', 'fake-npm', '--json']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('fake-npm answers that it needs no root when root asks; set up because --plugin names it');
    expect(await installed()).toEqual(['upkeep-fake-npm']);

    const unknown = await setup(['--plugin', 'nothing-like-it', '--json']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.json<ErrorData>().error.code).toBe('E_PLUGIN_UNKNOWN');
  });

  it('writes the rules for --user, else SUDO_USER, and refuses root, odd names and unknown users', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    const explicit = await setup(['--print', '--user', 'daemon']);
    expect(explicit.stdout).toContain('daemon ALL=(root) NOPASSWD: /usr/bin/apt-get');

    const codes = async (argv: string[], environment: Record<string, string> = {}): Promise<[number, string]> => {
      const result = await runUpkeep(['sudo-setup', ...argv, '--json'], { ...sandbox.environment, ...environment }, sandbox.home, ROOT);
      return [result.exitCode, result.json<ErrorData>().error.code];
    };
    expect(await codes([], { SUDO_USER: '', USER: 'root' })).toEqual([2, 'E_USAGE']);
    expect(await codes(['--user', 'root'])).toEqual([2, 'E_USAGE']);
    expect(await codes(['--user', 'no-such-user-upkeep'])).toEqual([2, 'E_USAGE']);
    expect(await codes(['--user', 'ALL ALL=(ALL) ALL'])).toEqual([2, 'E_INVALID_NAME']);
    expect(await codes(['--user', '%sudo'])).toEqual([2, 'E_INVALID_NAME']);
    expect(await installed()).toEqual([]);
  });

  it('says so when no enabled plugin needs root', async () => {
    await addPlugin({ name: 'no-root', requiresSudo: false, answersSudo: false });
    const result = await setup([]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('no enabled update plugin needs root');
    expect(await installed()).toEqual([]);
  });

  it('E_FS_WRITE when the sudoers folder does not exist', async () => {
    await addPlugin({ name: 'fake-apt', paths: ['/usr/bin/apt-get'] });
    sandbox.environment.UPKEEP_SUDOERS_DIR = join(sandbox.root, 'no-such-folder');
    const result = await setup(['--json']);
    expect(result.exitCode).toBe(1);
    expect(result.json<ErrorData>().error).toMatchObject({ code: 'E_FS_WRITE', hint: expect.stringContaining('UPKEEP_SUDOERS_DIR') });
  });
});
