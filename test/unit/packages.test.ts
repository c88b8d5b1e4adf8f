import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExecOptions, ExecResult } from '../../src/core/exec.ts';
import { createPackageDatabase, homebrewKegOf, pacmanPackageName } from '../../src/audit/packages.ts';

/** An executor that must never be used: file databases are read without spawning. */
function recordingExecutor(answer: (argv: readonly string[]) => Partial<ExecResult> = () => ({})) {
  const calls: Array<{ argv: readonly string[]; options: ExecOptions | undefined }> = [];
  return {
    calls,
    run: async (argv: readonly string[], options?: ExecOptions): Promise<ExecResult> => {
      calls.push({ argv, options });
      return {
        argv,
        exitCode: 0,
        signal: null,
        stdout: '',
        stderr: '',
        timedOut: false,
        truncated: false,
        durationMs: 1,
        dryRun: false,
        ...answer(argv),
      };
    },
  };
}

async function put(root: string, file: string, text: string): Promise<void> {
  await mkdir(dirname(join(root, file)), { recursive: true });
  await writeFile(join(root, file), text);
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-packages-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A usr-merged Debian: /bin, /sbin, /lib are links into /usr. */
async function mergedDebian(): Promise<void> {
  for (const folder of ['usr/bin', 'usr/sbin', 'usr/lib']) await mkdir(join(root, folder), { recursive: true });
  await symlink('usr/bin', join(root, 'bin'));
  await symlink('usr/sbin', join(root, 'sbin'));
  await symlink('usr/lib', join(root, 'lib'));
  const info = 'var/lib/dpkg/info';
  await put(root, `${info}/coreutils.list`, '/.\n/bin\n/bin/ls\n/usr\n/usr/bin\n/usr/bin/env\n');
  await put(root, `${info}/ripgrep.list`, '/.\n/usr\n/usr/bin\n/usr/bin/rg\n/usr/share/doc/ripgrep\n');
  await put(root, `${info}/iproute2.list`, '/.\n/sbin\n/sbin/ip\n');
  await put(root, `${info}/libc6:amd64.list`, '/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n');
  await put(root, `${info}/tool.list`, '/usr/bin/tool\n');
  await put(root, `${info}/tool-wrapper.list`, '/usr/bin/tool\n');
  await put(root, `${info}/ripgrep.md5sums`, 'abc  usr/bin/not-a-list-entry\n');
  // tool-wrapper replaces tool's /usr/bin/tool, which moved to /usr/bin/tool.real
  await put(root, 'var/lib/dpkg/diversions', '/usr/bin/tool\n/usr/bin/tool.real\ntool-wrapper\n');
}

describe('dpkg', () => {
  it('finds owners from the list files, across usr-merge and multiarch names', async () => {
    await mergedDebian();
    const executor = recordingExecutor();
    const database = createPackageDatabase({ root, executor });
    const owners = await database.ownersOf([
      '/usr/bin/rg',
      '/usr/bin/ls', // listed as /bin/ls
      '/bin/env', // listed as /usr/bin/env
      '/usr/sbin/ip', // listed as /sbin/ip
      '/usr/lib/x86_64-linux-gnu/libc.so.6', // listed under /lib, in libc6:amd64.list
      '/usr/bin/unknown',
      '/usr/bin/not-a-list-entry',
    ]);
    expect(owners.get('/usr/bin/rg')).toEqual({ manager: 'dpkg', package: 'ripgrep' });
    expect(owners.get('/usr/bin/ls')).toEqual({ manager: 'dpkg', package: 'coreutils' });
    expect(owners.get('/bin/env')).toEqual({ manager: 'dpkg', package: 'coreutils' });
    expect(owners.get('/usr/sbin/ip')).toEqual({ manager: 'dpkg', package: 'iproute2' });
    expect(owners.get('/usr/lib/x86_64-linux-gnu/libc.so.6')).toEqual({ manager: 'dpkg', package: 'libc6', architecture: 'amd64' });
    expect(owners.has('/usr/bin/unknown')).toBe(false);
    expect(owners.has('/usr/bin/not-a-list-entry')).toBe(false);
    expect(owners.size).toBe(5);
    expect(await database.managers()).toEqual(['dpkg']);
    expect(executor.calls).toEqual([]);
  });

  it('does not alias /bin and /usr/bin when they are separate folders', async () => {
    await put(root, 'var/lib/dpkg/info/coreutils.list', '/bin/ls\n');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'usr', 'bin'), { recursive: true });
    const owners = await createPackageDatabase({ root, executor: recordingExecutor() }).ownersOf(['/bin/ls', '/usr/bin/ls']);
    expect(owners.get('/bin/ls')?.package).toBe('coreutils');
    expect(owners.has('/usr/bin/ls')).toBe(false);
  });

  it('follows diversions: the diverter owns the original name, the package the new one', async () => {
    await mergedDebian();
    const owners = await createPackageDatabase({ root, executor: recordingExecutor() }).ownersOf(['/usr/bin/tool', '/usr/bin/tool.real']);
    expect(owners.get('/usr/bin/tool')?.package).toBe('tool-wrapper');
    expect(owners.get('/usr/bin/tool.real')?.package).toBe('tool');
  });

  it('remembers answers and scans only for new paths', async () => {
    await mergedDebian();
    const database = createPackageDatabase({ root, executor: recordingExecutor() });
    expect((await database.ownersOf(['/usr/bin/rg'])).get('/usr/bin/rg')?.package).toBe('ripgrep');
    await unlink(join(root, 'var/lib/dpkg/info/ripgrep.list'));
    await put(root, 'var/lib/dpkg/info/coreutils.list', '/usr/bin/rg-new\n');
    const second = await database.ownersOf(['/usr/bin/rg', '/usr/bin/rg-new']);
    expect(second.get('/usr/bin/rg')?.package).toBe('ripgrep');
    expect(second.get('/usr/bin/rg-new')?.package).toBe('coreutils');
  });

  it('answers concurrent calls consistently', async () => {
    await mergedDebian();
    const database = createPackageDatabase({ root, executor: recordingExecutor() });
    const [first, second] = await Promise.all([database.ownersOf(['/usr/bin/rg']), database.ownersOf(['/usr/bin/rg', '/bin/ls'])]);
    expect(first.get('/usr/bin/rg')?.package).toBe('ripgrep');
    expect(second.get('/bin/ls')?.package).toBe('coreutils');
  });

  it('returns an empty map when there is no database at all', async () => {
    const database = createPackageDatabase({ root, executor: recordingExecutor() });
    expect((await database.ownersOf(['/usr/bin/rg'])).size).toBe(0);
    expect(await database.managers()).toEqual([]);
  });
});

describe('pacman', () => {
  it('reads local/<name>-<version>-<rel>/files', async () => {
    await mkdir(join(root, 'usr', 'bin'), { recursive: true });
    await symlink('usr/bin', join(root, 'bin'));
    const local = 'var/lib/pacman/local';
    await put(root, `${local}/ALPM_DB_VERSION`, '9\n');
    await put(root, `${local}/ripgrep-14.1.0-1/files`, '%FILES%\nusr/\nusr/bin/\nusr/bin/rg\n\n%BACKUP%\n');
    await put(root, `${local}/ripgrep-14.1.0-1/desc`, '%NAME%\nripgrep\n');
    await put(root, `${local}/python-pip-24.0-1/files`, '%FILES%\nusr/bin/pip\nusr/bin/pip3\n');
    await put(root, `${local}/bash-5.2.026-2/files`, '%FILES%\nusr/bin/bash\n');
    const owners = await createPackageDatabase({ root, executor: recordingExecutor() }).ownersOf([
      '/usr/bin/rg',
      '/usr/bin/pip3',
      '/bin/bash',
      '/usr/bin/nothing',
    ]);
    expect(owners.get('/usr/bin/rg')).toEqual({ manager: 'pacman', package: 'ripgrep' });
    expect(owners.get('/usr/bin/pip3')).toEqual({ manager: 'pacman', package: 'python-pip' });
    expect(owners.get('/bin/bash')).toEqual({ manager: 'pacman', package: 'bash' });
    expect(owners.has('/usr/bin/nothing')).toBe(false);
  });

  it('derives package names from folder names', () => {
    expect(pacmanPackageName('ripgrep-14.1.0-1')).toBe('ripgrep');
    expect(pacmanPackageName('python-pip-24.0-1')).toBe('python-pip');
    expect(pacmanPackageName('go-2:1.22.0-1')).toBe('go');
  });
});

describe('apk', () => {
  it('reads P:, F: and R: lines of /lib/apk/db/installed', async () => {
    await put(
      root,
      'lib/apk/db/installed',
      [
        'C:Q1abc=',
        'P:busybox',
        'V:1.36.1-r15',
        'F:bin',
        'R:busybox',
        'R:sh',
        'F:etc',
        'R:securetty',
        '',
        'P:ripgrep',
        'V:14.1.0-r0',
        'F:usr',
        'F:usr/bin',
        'R:rg',
        'a:0:0:755',
        'Z:Q1xyz=',
        '',
      ].join('\n'),
    );
    const owners = await createPackageDatabase({ root, executor: recordingExecutor() }).ownersOf([
      '/bin/sh',
      '/usr/bin/rg',
      '/etc/securetty',
      '/usr/bin/sh',
      '/usr/bin/busybox',
    ]);
    expect(owners.get('/bin/sh')).toEqual({ manager: 'apk', package: 'busybox' });
    expect(owners.get('/usr/bin/rg')).toEqual({ manager: 'apk', package: 'ripgrep' });
    expect(owners.get('/etc/securetty')).toEqual({ manager: 'apk', package: 'busybox' });
    // /bin is a real folder here, so /usr/bin/sh is another file.
    expect(owners.has('/usr/bin/sh')).toBe(false);
    expect(owners.has('/usr/bin/busybox')).toBe(false);
  });
});

describe('rpm', () => {
  it('asks rpm through the executor only when an rpm database exists', async () => {
    await mkdir(join(root, 'var', 'lib', 'rpm'), { recursive: true });
    const executor = recordingExecutor(() => ({
      stdout: 'bash\nfile /usr/bin/nope is not owned by any package\ncoreutils\n',
      exitCode: 1,
    }));
    const owners = await createPackageDatabase({ root, executor }).ownersOf(['/usr/bin/bash', '/usr/bin/nope', '/usr/bin/ls']);
    expect(owners.get('/usr/bin/bash')).toEqual({ manager: 'rpm', package: 'bash' });
    expect(owners.get('/usr/bin/ls')).toEqual({ manager: 'rpm', package: 'coreutils' });
    expect(owners.has('/usr/bin/nope')).toBe(false);
    expect(executor.calls).toHaveLength(1);
    expect(executor.calls[0]!.argv).toEqual(['rpm', '--root', root, '-qf', '--qf', '%{NAME}\\n', '/usr/bin/bash', '/usr/bin/nope', '/usr/bin/ls']);
    expect(executor.calls[0]!.options?.mode).toBe('always');
  });

  it('asks path by path when the batch output does not line up', async () => {
    await mkdir(join(root, 'var', 'lib', 'rpm'), { recursive: true });
    const executor = recordingExecutor((argv) => {
      const paths = argv.slice(6);
      if (paths.length > 1) return { stdout: 'glibc\nglibc\nbash\n' }; // two owners for one file
      return paths[0] === '/usr/bin/bash' ? { stdout: 'bash\n' } : { stdout: 'glibc\nglibc\n' };
    });
    const owners = await createPackageDatabase({ root, executor }).ownersOf(['/usr/lib64/libc.so.6', '/usr/bin/bash']);
    expect(owners.get('/usr/bin/bash')?.package).toBe('bash');
    expect(owners.get('/usr/lib64/libc.so.6')?.package).toBe('glibc');
    expect(executor.calls).toHaveLength(3);
  });

  it('is not run without an rpm database', async () => {
    await mergedDebian();
    const executor = recordingExecutor();
    await createPackageDatabase({ root, executor }).ownersOf(['/usr/bin/nothing']);
    expect(executor.calls).toEqual([]);
  });
});

describe('homebrewKegOf', () => {
  it('reads formula and version from a Cellar path', () => {
    expect(homebrewKegOf('/opt/homebrew/Cellar/jq/1.7.1/bin/jq')).toEqual({ prefix: '/opt/homebrew', kind: 'formula', name: 'jq', version: '1.7.1' });
    expect(homebrewKegOf('/usr/local/Caskroom/firefox/124.0/Firefox.app')).toMatchObject({ kind: 'cask', name: 'firefox' });
    expect(homebrewKegOf('/usr/local/bin/jq')).toBeNull();
  });
});

describe.skipIf(!existsSync('/var/lib/dpkg/info/login.list'))('this machine (read-only)', () => {
  it('knows /usr/bin/sg is login and /usr/bin/dpkg is dpkg', async () => {
    const executor = recordingExecutor();
    const owners = await createPackageDatabase({ executor }).ownersOf(['/usr/bin/sg', '/usr/bin/dpkg', '/usr/bin/no-such-upkeep-binary']);
    expect(owners.get('/usr/bin/sg')?.package).toBe('login');
    expect(owners.get('/usr/bin/dpkg')).toEqual({ manager: 'dpkg', package: 'dpkg' });
    expect(owners.has('/usr/bin/no-such-upkeep-binary')).toBe(false);
    expect(executor.calls).toEqual([]);
  });
});
