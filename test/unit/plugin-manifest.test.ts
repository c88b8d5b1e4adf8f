import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UpkeepError } from '../../src/core/errors.ts';
import { resolvePaths } from '../../src/core/paths.ts';
import { builtinPluginsDir, discoverPlugins, pluginDirectories } from '../../src/update/plugin/discover.ts';
import { manifestFromExecutable, parseManifest } from '../../src/update/plugin/manifest.ts';

const fixtures = resolve('test/fixtures/plugins');

function failure(text: string, path = '/plugins/apt.yaml'): UpkeepError {
  try {
    parseManifest(text, path, 'user');
  } catch (error) {
    expect(error).toBeInstanceOf(UpkeepError);
    return error as UpkeepError;
  }
  throw new Error('the manifest was accepted');
}

const minimal = (extra = '') => `plugin:\n  name: apt\n  version: "1.0.0"\n  description: APT\n  executable: apt.mjs\n${extra}`;

describe('parseManifest', () => {
  it('reads a manifest, resolving the executable and normalizing mutexes', async () => {
    const path = join(fixtures, 'good.yaml');
    const manifest = parseManifest(await readFile(path, 'utf8'), path, 'builtin');
    expect(manifest).toEqual({
      name: 'good',
      version: '1.2.0',
      description: 'A mock plugin that follows protocol v1',
      executable: join(fixtures, 'good.sh'),
      protocol: 1,
      requiresSudo: false,
      canSeparateDownload: true,
      supportsSelfUpdate: false,
      supportsDynamicMutexes: true,
      mutexes: { estimate: [], download: ['pkgmgr:good'], update: ['pkgmgr:good'] },
      dependencies: { estimate: [], download: [], update: [] },
      runsAfter: ['apt'],
      timeouts: { isApplicable: 10, estimateUpdate: 30, download: 1800, update: 60, other: 10 },
      potentialAffects: [],
      settings: { auto_remove: true, mirror: 'https://example.invalid' },
      source: { layer: 'builtin', path },
    });
  });

  it('fills every default and keeps an absolute executable as it is', () => {
    const manifest = parseManifest(minimal().replace('apt.mjs', '/opt/apt/plugin'), '/plugins/apt.yaml', 'system');
    expect(manifest.executable).toBe('/opt/apt/plugin');
    expect(manifest).toMatchObject({ requiresSudo: false, canSeparateDownload: false, runsAfter: [], settings: {}, potentialAffects: [] });
    expect(manifest.timeouts).toEqual({ isApplicable: 10, estimateUpdate: 120, download: 1800, update: 3600, other: 10 });
  });

  it.each([
    ['YAML that does not parse', 'plugin: [unclosed', '(yaml)', /not valid YAML/],
    ['an empty file', '', '(root)', /expected object/],
    ['a missing plugin key', 'name: apt\n', 'plugin', /expected object/],
    ['a missing name', 'plugin:\n  version: "1"\n  description: x\n  executable: x\n', 'plugin.name', /expected string/],
    ['an upper-case name', minimal().replace('name: apt', 'name: Apt'), 'plugin.name', /lower-case/],
    ['a name longer than 40', minimal().replace('name: apt', `name: ${'a'.repeat(41)}`), 'plugin.name', /1 to 40/],
    ['a version YAML reads as a number', minimal().replace('"1.0.0"', '1.0'), 'plugin.version', /expected string/],
    ['an unknown field', minimal('  requires_sduo: true\n'), 'plugin', /requires_sduo/],
    ['a boolean given as text', minimal('  requires_sudo: "yes"\n'), 'plugin.requires_sudo', /expected boolean/],
    ['a mutex that is not category:resource', minimal('  static_mutexes:\n    update: [pkgmgr:apt, apt-lock]\n'), 'plugin.static_mutexes.update.1', /"apt-lock" is not category:resource/],
    ['a reserved mutex category', minimal('  static_dependencies:\n    download: [internal:state]\n'), 'plugin.static_dependencies.download.0', /reserved/],
    ['an unknown phase', minimal('  static_mutexes:\n    install: []\n'), 'plugin.static_mutexes', /install/],
    ['a runs_after name of the wrong shape', minimal('  runs_after: [Apt Get]\n'), 'plugin.runs_after.0', /lower-case/],
    ['a plugin that runs after itself', minimal('  runs_after: [apt]\n'), 'plugin.runs_after', /itself/],
    ['a negative timeout', minimal('  timeouts: {update: -1}\n'), 'plugin.timeouts.update', /.+/],
    ['a timeout above a day', minimal('  timeouts: {download: 100000}\n'), 'plugin.timeouts.download', /.+/],
    ['a setting key that is not snake_case', minimal('  settings: {Auto-Remove: true}\n'), 'plugin.settings.Auto-Remove', /snake_case/],
    ['a setting that is not a scalar', minimal('  settings: {mirrors: [a, b]}\n'), 'plugin.settings.mirrors', /.+/],
  ])('refuses %s, naming the file and the field', (_, text, field, why) => {
    const error = failure(text);
    expect(error.code).toBe('E_PLUGIN_INVALID');
    expect(error.message.startsWith(`/plugins/apt.yaml: ${field}: `)).toBe(true);
    expect(error.message).toMatch(why);
    expect(error.hint).toBeTruthy();
    expect(error.details).toMatchObject({ path: '/plugins/apt.yaml', field });
  });

  it('refuses another protocol version, saying which', () => {
    const error = failure(minimal('  protocol: 2\n'));
    expect(error.message).toBe('/plugins/apt.yaml: plugin.protocol: speaks protocol 2; this upkeep speaks protocol 1');
    expect(error.hint).toMatch(/upgrade upkeep/);
    expect(parseManifest(minimal('  protocol: 1\n'), '/plugins/apt.yaml', 'user').protocol).toBe(1);
  });
});

describe('manifestFromExecutable', () => {
  it('names the plugin after the file and takes every default', () => {
    const manifest = manifestFromExecutable('test/fixtures/plugins/My_Plugin.sh');
    expect(manifest.name).toBe('my-plugin');
    expect(manifest.executable).toBe(join(fixtures, 'My_Plugin.sh'));
    expect(manifest).toMatchObject({ protocol: 1, requiresSudo: false, canSeparateDownload: false, supportsDynamicMutexes: false, settings: {} });
    expect(manifestFromExecutable('/x/--.sh').name).toBe('plugin');
  });
});

describe('discoverPlugins', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'upkeep-discover-'));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  async function manifest(folder: string, file: string, name: string, extra = '', executable = join(fixtures, 'good.sh')): Promise<string> {
    await mkdir(join(root, folder), { recursive: true });
    const path = join(root, folder, file);
    await writeFile(path, `plugin:\n  name: ${name}\n  version: "1"\n  description: ${folder} ${name}\n  executable: ${executable}\n${extra}`);
    return path;
  }
  const directories = () => [
    { layer: 'builtin' as const, path: join(root, 'builtin') },
    { layer: 'system' as const, path: join(root, 'system') },
    { layer: 'user' as const, path: join(root, 'user') },
  ];

  it('lets a later folder override an earlier one by plugin name, remembering what it replaced', async () => {
    const builtinApt = await manifest('builtin', 'apt.yaml', 'apt');
    await manifest('builtin', 'npm.yml', 'npm');
    const systemApt = await manifest('system', 'apt.yaml', 'apt');
    const userApt = await manifest('user', 'my-apt.yaml', 'apt');
    await manifest('user', 'cargo.yaml', 'cargo');
    await writeFile(join(root, 'user', 'notes.txt'), 'not a manifest');

    const { plugins, warnings } = await discoverPlugins({ directories: directories(), disabled: ['npm'] });
    expect(warnings).toEqual([]);
    expect(plugins.map((plugin) => plugin.manifest.name)).toEqual(['apt', 'cargo', 'npm']);
    const apt = plugins[0]!;
    expect(apt.manifest.source).toEqual({ layer: 'user', path: userApt });
    expect(apt.manifest.description).toBe('user apt');
    expect(apt.overridden).toEqual([builtinApt, systemApt]);
    expect(plugins.map((plugin) => plugin.enabled)).toEqual([true, true, false]);
  });

  it('reads a folder in file-name order and warns when one folder declares a name twice', async () => {
    const second = await manifest('user', 'b.yaml', 'apt', '  potential_affects: [b]\n');
    const first = await manifest('user', 'a.yaml', 'apt');
    const { plugins, warnings } = await discoverPlugins({ directories: directories() });
    expect(plugins).toHaveLength(1);
    expect(plugins[0]!.manifest).toMatchObject({ source: { path: second }, potentialAffects: ['b'] });
    expect(plugins[0]!.overridden).toEqual([first]);
    expect(warnings).toEqual([`plugin apt is declared by both ${first} and ${second}; ${second} is used`]);
  });

  it('skips invalid manifests and unusable executables with a warning, keeping the rest', async () => {
    const builtinApt = await manifest('builtin', 'apt.yaml', 'apt');
    const broken = await manifest('user', 'apt.yaml', 'apt', '  static_mutexes: {update: [apt-lock]}\n');
    const missing = await manifest('user', 'gone.yaml', 'gone', '', join(root, 'nowhere.sh'));
    const locked = await manifest('user', 'locked.yaml', 'locked', '', join(fixtures, 'not-executable.sh'));
    const folderExecutable = await manifest('user', 'folder.yaml', 'folder', '', root);
    const newer = await manifest('user', 'newer.yaml', 'newer', '  protocol: 2\n');

    const { plugins, warnings } = await discoverPlugins({ directories: directories() });
    expect(plugins.map((plugin) => plugin.manifest.source.path)).toEqual([builtinApt]);
    expect(warnings).toEqual([
      `skipped plugin manifest ${broken}: plugin.static_mutexes.update.0: mutex "apt-lock" is not category:resource`,
      `skipped plugin manifest ${folderExecutable}: executable ${root} is not a file`,
      `skipped plugin manifest ${missing}: executable ${join(root, 'nowhere.sh')} does not exist`,
      `skipped plugin manifest ${locked}: executable ${join(fixtures, 'not-executable.sh')} is not executable (chmod +x it)`,
      `skipped plugin manifest ${newer}: plugin.protocol: speaks protocol 2; this upkeep speaks protocol 1`,
    ]);
  });

  it('takes missing folders as empty', async () => {
    expect(await discoverPlugins({ directories: directories() })).toEqual({ plugins: [], warnings: [] });
    const file = join(root, 'a-file');
    await writeFile(file, '');
    expect(await discoverPlugins({ directories: [{ layer: 'user', path: file }] })).toEqual({ plugins: [], warnings: [] });
  });

  it('warns about a folder it cannot read', async () => {
    // A symlink loop cannot be read even by root (ELOOP), unlike a chmod 000 folder.
    const loop = join(root, 'loop');
    await symlink(loop, loop);
    const { warnings } = await discoverPlugins({ directories: [{ layer: 'user', path: loop }] });
    expect(warnings[0]).toMatch(/^cannot read the plugin folder/);
  });
});

describe('pluginDirectories', () => {
  it('searches built-in, system, then user folders, each redirectable', () => {
    const environment = { HOME: '/home/someone', UPKEEP_BUILTIN_PLUGINS_DIR: '/builtin', UPKEEP_SYSTEM_PLUGINS_DIR: '/system' };
    expect(pluginDirectories(resolvePaths(environment), environment)).toEqual([
      { layer: 'builtin', path: '/builtin' },
      { layer: 'system', path: '/system' },
      { layer: 'user', path: '/home/someone/.config/upkeep/plugins.d' },
    ]);
    const plain = { HOME: '/home/someone' };
    expect(pluginDirectories(resolvePaths(plain), plain).map((directory) => directory.path)).toEqual([
      resolve('plugins'),
      '/etc/upkeep/plugins.d',
      '/home/someone/.config/upkeep/plugins.d',
    ]);
  });

  it('finds the package plugins folder upward from the module', () => {
    expect(builtinPluginsDir({})).toBe(resolve('plugins'));
  });
});
