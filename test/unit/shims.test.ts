import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Executor, type ExecOptions, type ExecResult } from '../../src/core/exec.ts';
import { detectShim, parseMiseTools, resolveShim, type ResolveShimOptions, type ShimManager } from '../../src/audit/shims.ts';

let root: string;
let home: string;
/** A project folder outside the home, so the home's version files are not found by walking up. */
let project: string;
/** A folder on PATH after the shims, standing for /usr/bin. */
let systemBin: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-shims-'));
  home = join(root, 'home');
  project = join(root, 'work', 'proj');
  systemBin = join(root, 'usr-bin');
  await Promise.all([mkdir(home, { recursive: true }), mkdir(project, { recursive: true }), mkdir(systemBin, { recursive: true })]);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(file: string, text: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

async function executable(file: string, text = '#!/bin/sh\nexit 0\n'): Promise<string> {
  await put(file, text);
  await chmod(file, 0o755);
  return file;
}

/** An executor that fails the test if the files should have been enough. */
function forbiddenExecutor() {
  const calls: Array<readonly string[]> = [];
  return {
    calls,
    run: async (argv: readonly string[], _options?: ExecOptions): Promise<ExecResult> => {
      calls.push(argv);
      throw new Error(`unexpected spawn: ${argv.join(' ')}`);
    },
  };
}

function options(manager: ShimManager, name: string, overrides: Partial<ResolveShimOptions> = {}): ResolveShimOptions {
  const shims: Record<ShimManager, string> = {
    pyenv: join(home, '.pyenv', 'shims'),
    rbenv: join(home, '.rbenv', 'shims'),
    nodenv: join(home, '.nodenv', 'shims'),
    goenv: join(home, '.goenv', 'shims'),
    asdf: join(home, '.asdf', 'shims'),
    mise: join(home, '.local', 'share', 'mise', 'shims'),
    volta: join(home, '.volta', 'bin'),
  };
  return {
    path: join(shims[manager], name),
    name,
    manager,
    cwd: project,
    environment: { HOME: home, PATH: `${shims[manager]}:${systemBin}` },
    home,
    pathDirs: [shims[manager], systemBin],
    executor: forbiddenExecutor(),
    ...overrides,
  };
}

describe('detectShim', () => {
  it('recognises the managers by their usual folders', () => {
    expect(detectShim('/home/a/.pyenv/shims/python3', '/home/a/.pyenv/shims/python3')).toEqual({ manager: 'pyenv' });
    expect(detectShim('/home/a/.rbenv/shims/ruby')).toEqual({ manager: 'rbenv' });
    expect(detectShim('/home/a/.asdf/shims/terraform')).toEqual({ manager: 'asdf' });
    expect(detectShim('/home/a/.local/share/mise/shims/node', '/usr/local/bin/mise')).toEqual({ manager: 'mise' });
    expect(detectShim('/home/a/.volta/bin/node', '/home/a/.volta/bin/volta-shim')).toEqual({ manager: 'volta' });
    expect(detectShim('/home/a/.nodenv/shims/node')).toEqual({ manager: 'nodenv' });
  });

  it('does not call real binaries shims', () => {
    expect(detectShim('/usr/bin/python3', '/usr/bin/python3.11')).toBeNull();
    expect(detectShim('/home/a/.volta/bin/volta', '/home/a/.volta/bin/volta')).toBeNull();
    expect(detectShim('/home/a/.pyenv/versions/3.12.1/bin/python3')).toBeNull();
    expect(detectShim('/home/a/.local/bin/mise', '/home/a/.local/bin/mise')).toBeNull();
  });

  it('honours the managers’ root variables when given the environment', () => {
    expect(detectShim('/opt/pyenv/shims/python')).toBeNull();
    expect(detectShim('/opt/pyenv/shims/python', undefined, { home, environment: { PYENV_ROOT: '/opt/pyenv' } })).toEqual({ manager: 'pyenv' });
    expect(detectShim('/srv/volta/bin/tsc', '/srv/volta/bin/tsc', { home, environment: { VOLTA_HOME: '/srv/volta' } })).toEqual({ manager: 'volta' });
  });
});

describe('pyenv', () => {
  const pyenv = () => join(home, '.pyenv');

  it('uses the global version file', async () => {
    await put(join(pyenv(), 'version'), '3.12.1\n');
    const target = await executable(join(pyenv(), 'versions', '3.12.1', 'bin', 'python3'));
    const result = await resolveShim(options('pyenv', 'python3'));
    expect(result).toEqual({ target, version: '3.12.1', reason: '~/.pyenv/version selects pyenv 3.12.1' });
  });

  it('prefers .python-version from the working folder or above to the global file', async () => {
    await put(join(pyenv(), 'version'), '3.12.1\n');
    await executable(join(pyenv(), 'versions', '3.12.1', 'bin', 'python3'));
    const local = await executable(join(pyenv(), 'versions', '3.11.7', 'bin', 'python3'));
    await put(join(project, '.python-version'), '3.11.7\n');
    const nested = join(project, 'src', 'pkg');
    await mkdir(nested, { recursive: true });
    const result = await resolveShim(options('pyenv', 'python3', { cwd: nested }));
    expect(result?.target).toBe(local);
    expect(result?.version).toBe('3.11.7');
    expect(result?.reason).toContain(join(project, '.python-version'));
  });

  it('lets PYENV_VERSION beat the version files', async () => {
    await put(join(project, '.python-version'), '3.11.7\n');
    await executable(join(pyenv(), 'versions', '3.11.7', 'bin', 'python3'));
    const chosen = await executable(join(pyenv(), 'versions', '3.10.13', 'bin', 'python3'));
    const base = options('pyenv', 'python3');
    const result = await resolveShim({ ...base, environment: { ...base.environment, PYENV_VERSION: '3.10.13' } });
    expect(result?.target).toBe(chosen);
    expect(result?.reason).toBe('PYENV_VERSION=3.10.13 selects pyenv 3.10.13');
  });

  it('takes the first listed version that is installed and has the command', async () => {
    await put(join(project, '.python-version'), '3.13.0\n3.12.1\n2.7.18\n');
    const python3 = await executable(join(pyenv(), 'versions', '3.12.1', 'bin', 'python3'));
    const python2 = await executable(join(pyenv(), 'versions', '2.7.18', 'bin', 'python2'));
    expect((await resolveShim(options('pyenv', 'python3')))?.target).toBe(python3);
    expect((await resolveShim(options('pyenv', 'python2')))?.target).toBe(python2);
  });

  it('resolves a version prefix to the newest installed match', async () => {
    await put(join(pyenv(), 'version'), '3.12\n');
    await executable(join(pyenv(), 'versions', '3.12.2', 'bin', 'python3'));
    const newest = await executable(join(pyenv(), 'versions', '3.12.10', 'bin', 'python3'));
    await executable(join(pyenv(), 'versions', '3.13.0', 'bin', 'python3'));
    const result = await resolveShim(options('pyenv', 'python3'));
    expect(result?.target).toBe(newest);
    expect(result?.reason).toContain('3.12 resolves to 3.12.10');
  });

  it('returns null without throwing or spawning when the version is not installed', async () => {
    await put(join(project, '.python-version'), '3.9.18\n');
    await executable(join(pyenv(), 'versions', '3.12.1', 'bin', 'python3'));
    const base = options('pyenv', 'python3');
    await expect(resolveShim(base)).resolves.toBeNull();
    expect((base.executor as ReturnType<typeof forbiddenExecutor>).calls).toEqual([]);
  });

  it('treats system as the next match on PATH after the shims folder', async () => {
    const before = join(root, 'before');
    await executable(join(before, 'python3'));
    const system = await executable(join(systemBin, 'python3'));
    const shims = join(pyenv(), 'shims');
    const result = await resolveShim(options('pyenv', 'python3', { pathDirs: [before, shims, systemBin] }));
    expect(result?.target).toBe(system);
    expect(result?.version).toBeUndefined();
    expect(result?.reason).toMatch(/^no pyenv version is set: .*usr-bin\/python3 is the next python3 on PATH after ~\/\.pyenv\/shims$/);
  });

  it('honours PYENV_ROOT', async () => {
    const pyenvRoot = join(root, 'opt', 'pyenv');
    await put(join(pyenvRoot, 'version'), '3.12.1\n');
    const target = await executable(join(pyenvRoot, 'versions', '3.12.1', 'bin', 'python3'));
    const base = options('pyenv', 'python3');
    const result = await resolveShim({ ...base, environment: { ...base.environment, PYENV_ROOT: pyenvRoot } });
    expect(result?.target).toBe(target);
  });
});

describe('rbenv', () => {
  const rbenv = () => join(home, '.rbenv');

  it('reads .ruby-version (with a ruby- prefix) before ~/.rbenv/version', async () => {
    await put(join(rbenv(), 'version'), '3.2.2\n');
    await executable(join(rbenv(), 'versions', '3.2.2', 'bin', 'ruby'));
    const local = await executable(join(rbenv(), 'versions', '3.3.0', 'bin', 'ruby'));
    await put(join(project, '.ruby-version'), 'ruby-3.3.0\n');
    const result = await resolveShim(options('rbenv', 'ruby'));
    expect(result).toMatchObject({ target: local, version: '3.3.0' });
  });

  it('uses the global file when no local one exists, and RBENV_VERSION over both', async () => {
    await put(join(rbenv(), 'version'), '3.2.2\n');
    const global = await executable(join(rbenv(), 'versions', '3.2.2', 'bin', 'ruby'));
    const fromVariable = await executable(join(rbenv(), 'versions', '3.1.4', 'bin', 'ruby'));
    expect((await resolveShim(options('rbenv', 'ruby')))?.target).toBe(global);
    const base = options('rbenv', 'ruby');
    const result = await resolveShim({ ...base, environment: { ...base.environment, RBENV_VERSION: '3.1.4' } });
    expect(result?.target).toBe(fromVariable);
  });
});

describe('nodenv', () => {
  it('reads .node-version like rbenv reads .ruby-version', async () => {
    await put(join(project, '.node-version'), 'v20.11.0\n');
    const target = await executable(join(home, '.nodenv', 'versions', '20.11.0', 'bin', 'node'));
    expect(await resolveShim(options('nodenv', 'node'))).toMatchObject({ target, version: '20.11.0' });
  });
});

describe('asdf', () => {
  const installs = () => join(home, '.asdf', 'installs');

  beforeEach(async () => {
    await executable(join(installs(), 'nodejs', '20.11.0', 'bin', 'node'));
    await executable(join(installs(), 'nodejs', '18.19.0', 'bin', 'node'));
    await executable(join(installs(), 'terraform', '1.7.3', 'bin', 'terraform'));
    await put(join(home, '.tool-versions'), 'nodejs 18.19.0\nterraform 1.7.3\n');
  });

  it('finds the plugin by its installs and the version in ~/.tool-versions', async () => {
    const result = await resolveShim(options('asdf', 'terraform'));
    expect(result).toEqual({
      target: join(installs(), 'terraform', '1.7.3', 'bin', 'terraform'),
      version: '1.7.3',
      reason: '~/.tool-versions selects asdf terraform 1.7.3',
    });
  });

  it('lets the project .tool-versions beat the global one', async () => {
    await put(join(project, '.tool-versions'), '# pinned\nnodejs 20.11.0\n');
    const result = await resolveShim(options('asdf', 'node'));
    expect(result?.target).toBe(join(installs(), 'nodejs', '20.11.0', 'bin', 'node'));
    expect(result?.reason).toContain(join(project, '.tool-versions'));
  });

  it('lets ASDF_<PLUGIN>_VERSION beat every file', async () => {
    await put(join(project, '.tool-versions'), 'nodejs 20.11.0\n');
    const base = options('asdf', 'node');
    const result = await resolveShim({ ...base, environment: { ...base.environment, ASDF_NODEJS_VERSION: '18.19.0' } });
    expect(result?.target).toBe(join(installs(), 'nodejs', '18.19.0', 'bin', 'node'));
  });

  it('returns null when the selected version is not installed', async () => {
    await put(join(project, '.tool-versions'), 'nodejs 16.20.2\n');
    await expect(resolveShim(options('asdf', 'node'))).resolves.toBeNull();
  });
});

describe('mise', () => {
  const installs = () => join(home, '.local', 'share', 'mise', 'installs');

  beforeEach(async () => {
    await executable(join(installs(), 'node', '22.11.0', 'bin', 'node'));
    await symlink('22.11.0', join(installs(), 'node', '22'));
    await executable(join(installs(), 'node', '20.10.0', 'bin', 'node'));
    await put(join(home, '.config', 'mise', 'config.toml'), '[settings]\nexperimental = true\n\n[tools]\nnode = "20"\n');
  });

  it('uses the global config with a version prefix', async () => {
    const result = await resolveShim(options('mise', 'node'));
    expect(result).toEqual({
      target: join(installs(), 'node', '20.10.0', 'bin', 'node'),
      version: '20.10.0',
      reason: '~/.config/mise/config.toml selects mise node 20.10.0 (20 resolves to 20.10.0)',
    });
  });

  it('lets a project mise.toml beat the global config, following the version link', async () => {
    await put(join(project, 'mise.toml'), "[env]\nFOO = 'bar'\n[tools]\n# the LTS\nnode = '22' # pinned\npython = \"3.12\"\n");
    const result = await resolveShim(options('mise', 'node'));
    expect(result?.target).toBe(join(installs(), 'node', '22.11.0', 'bin', 'node'));
    expect(result?.version).toBe('22.11.0');
    expect(result?.reason).toContain(join(project, 'mise.toml'));
  });

  it('reads .tool-versions and MISE_<TOOL>_VERSION', async () => {
    await put(join(project, '.tool-versions'), 'nodejs 22.11.0\n');
    expect((await resolveShim(options('mise', 'node')))?.version).toBe('22.11.0');
    const base = options('mise', 'node');
    const result = await resolveShim({ ...base, environment: { ...base.environment, MISE_NODE_VERSION: '20.10.0' } });
    expect(result?.version).toBe('20.10.0');
  });

  it('returns null when the configured version is not installed', async () => {
    await put(join(project, '.mise.toml'), '[tools]\nnode = "18"\n');
    await expect(resolveShim(options('mise', 'node'))).resolves.toBeNull();
  });

  it('asks `mise which` when the files do not tell, using a stub mise on PATH', async () => {
    const stubBin = join(root, 'stub-bin');
    const argsFile = join(root, 'mise-args');
    const printed = await executable(join(root, 'elsewhere', 'node'));
    await executable(join(stubBin, 'mise'), `#!/bin/sh\necho "$@" > '${argsFile}'\npwd >> '${argsFile}'\necho '${printed}'\n`);
    await put(join(project, 'mise.toml'), '[tools]\nnode = "lts"\n');
    const shims = join(home, '.local', 'share', 'mise', 'shims');
    const result = await resolveShim(
      options('mise', 'node', {
        executor: new Executor({ env: {} }),
        pathDirs: [shims, stubBin, systemBin],
        environment: { HOME: home, PATH: `${shims}:${stubBin}:${systemBin}` },
      }),
    );
    expect(result).toEqual({ target: printed, reason: `\`mise which node\` printed ${printed}` });
    const [args, cwd] = (await readFile(argsFile, 'utf8')).trim().split('\n');
    expect(args).toBe('which node');
    expect(cwd).toBe(project);
  });

  it('returns null when the fallback has no mise to run', async () => {
    await put(join(project, 'mise.toml'), '[tools]\nnode = "lts"\n');
    await expect(resolveShim(options('mise', 'node'))).resolves.toBeNull();
  });
});

describe('parseMiseTools', () => {
  it('reads the simple forms of [tools] and marks the rest as unread', () => {
    const tools = parseMiseTools(
      [
        'min_version = "2024.1.0"',
        '[tools]',
        'node = "22"',
        '"npm:prettier" = "3"',
        "python = ['3.12', '3.11']",
        'go = { version = "1.22", os = ["linux"] }',
        'erlang = { ref = "master" }',
        '[tasks.build]',
        'run = "make"',
      ].join('\n'),
    );
    expect(tools.get('npm-prettier')).toEqual(['3']);
    expect(tools.get('python')).toEqual(['3.12', '3.11']);
    expect(tools.get('go')).toEqual(['1.22']);
    expect(tools.get('erlang')).toBeNull();
    expect(tools.get('node')).toEqual(['22']);
    expect(tools.has('run')).toBe(false);
    // `nodejs` is mise's other name for node, installed as `node`.
    expect(parseMiseTools('[tools]\nnodejs = "20"\n').get('node')).toEqual(['20']);
  });
});

describe('volta', () => {
  const volta = () => join(home, '.volta');
  const image = () => join(volta(), 'tools', 'image');

  beforeEach(async () => {
    await put(join(volta(), 'tools', 'user', 'platform.json'), JSON.stringify({ node: { runtime: '20.11.0', npm: null }, pnpm: null, yarn: '1.22.19' }));
    for (const name of ['node', 'npm', 'npx']) await executable(join(image(), 'node', '20.11.0', 'bin', name));
    await executable(join(image(), 'node', '18.19.0', 'bin', 'node'));
    await executable(join(image(), 'yarn', '1.22.19', 'bin', 'yarn'));
  });

  it('runs the default platform node, its bundled npm and the pinned yarn', async () => {
    const node = await resolveShim(options('volta', 'node'));
    expect(node).toEqual({
      target: join(image(), 'node', '20.11.0', 'bin', 'node'),
      version: '20.11.0',
      reason: '~/.volta/tools/user/platform.json selects Volta node 20.11.0',
    });
    const npm = await resolveShim(options('volta', 'npm'));
    expect(npm?.target).toBe(join(image(), 'node', '20.11.0', 'bin', 'npm'));
    expect(npm?.reason).toContain('bundled with node');
    expect((await resolveShim(options('volta', 'yarn')))?.target).toBe(join(image(), 'yarn', '1.22.19', 'bin', 'yarn'));
  });

  it('lets the project package.json pin beat the default platform', async () => {
    await put(join(project, 'package.json'), JSON.stringify({ name: 'app', volta: { node: '18.19.0' } }));
    const nested = join(project, 'src');
    await mkdir(nested, { recursive: true });
    const result = await resolveShim(options('volta', 'node', { cwd: nested }));
    expect(result?.target).toBe(join(image(), 'node', '18.19.0', 'bin', 'node'));
    expect(result?.reason).toContain(join(project, 'package.json'));
  });

  it('resolves package binaries from tools/user/bins/<name>.json', async () => {
    await put(
      join(volta(), 'tools', 'user', 'bins', 'tsc.json'),
      JSON.stringify({ name: 'tsc', package: 'typescript', version: '5.3.3', platform: { node: '20.11.0', npm: null, yarn: null }, manager: 'Npm' }),
    );
    const target = await executable(join(image(), 'packages', 'typescript', 'bin', 'tsc'));
    expect(await resolveShim(options('volta', 'tsc'))).toEqual({
      target,
      version: '5.3.3',
      reason: '~/.volta/tools/user/bins/tsc.json: Volta package typescript 5.3.3',
    });
  });

  it('returns null when the pinned node is not in the image folder', async () => {
    await put(join(project, 'package.json'), JSON.stringify({ volta: { node: '16.20.2' } }));
    await expect(resolveShim(options('volta', 'node'))).resolves.toBeNull();
  });
});
