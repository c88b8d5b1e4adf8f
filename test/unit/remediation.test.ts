import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadGroups, loadHandlers, resolvePackages } from '../../src/catalog/handlers.ts';
import type { Groups, RemedyOption } from '../../src/catalog/schema.ts';
import { matchFailure } from '../../src/install/remediation/match.ts';
import { assessOption, recommendedOption, type AssessmentContext } from '../../src/install/remediation/options.ts';
import type { Platform } from '../../src/install/types.ts';
import { debianPlatform } from '../helpers/platform.ts';

const GROUPS_YAML = `build-tools:
  description: compilers
  debian: [build-essential]
  rhel: [gcc, make]
  arch: [base-devel]
  alpine: [build-base]
  suse: [gcc, make]
  macos: [gcc]
epel:
  description: EPEL
  rhel: [epel-release]
`;

const groups: Groups = {
  'build-tools': { description: 'compilers', debian: ['build-essential'], rhel: ['gcc', 'make'], arch: ['base-devel'], alpine: ['build-base'], suse: ['gcc', 'make'], macos: ['gcc'] },
  epel: { description: 'EPEL', rhel: ['epel-release'] },
};

const platform = debianPlatform;

function context(overrides: Partial<Platform> = {}, method: AssessmentContext['method'] = 'apt'): AssessmentContext {
  return { platform: platform(overrides), groups, catalogHas: (id) => id === 'pipx' || id === 'rustup', method };
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-handlers-'));
  await mkdir(join(root, 'handlers'), { recursive: true });
  await mkdir(join(root, 'tools'), { recursive: true });
  await writeFile(join(root, 'groups.yaml'), GROUPS_YAML);
  await writeFile(join(root, 'tools', 'docker.yaml'), 'id: docker\n');
  await writeFile(join(root, 'tools', 'rustup.yaml'), 'id: rustup\n');
});
afterEach(async () => rm(root, { recursive: true, force: true }));

/** One handler in YAML; `extra` lines go after the pattern. */
function handler(id: string, pattern: string, example: string, options: string, extra = ''): string {
  return `  - id: ${id}\n    category: other\n    label: ${id}\n    pattern: '${pattern}'\n${extra}    example: |\n      ${example}\n    options:\n${options}`;
}
const retryOption = '      - id: retry\n        label: try again\n        strategy: retry\n';

describe('matchFailure', () => {
  beforeEach(async () => {
    await writeFile(join(root, 'handlers', 'infrastructure.yaml'), `layer: infrastructure\nhandlers:\n${handler('infra-boom', 'boom', 'boom', retryOption)}\n${handler('infra-killed', '^', 'anything', retryOption, '    exitCode: 137\n    exampleExitCode: 137\n')}\n`);
    await writeFile(join(root, 'handlers', 'apt.yaml'), `layer: method\nmethods: [apt]\nhandlers:\n${handler('apt-boom', 'BOOM', 'BOOM', retryOption)}\n`);
    await writeFile(join(root, 'handlers', 'dnf.yaml'), `layer: method\nmethods: [dnf, yum]\nhandlers:\n${handler('dnf-boom', 'boom', 'boom', retryOption)}\n`);
    await writeFile(join(root, 'handlers', 'tool-docker.yaml'), `layer: tool\ntool: docker\nhandlers:\n${handler('docker-boom', 'boom', 'boom', retryOption)}\n`);
  });

  it('orders the tool layer first, then the method family, then infrastructure, and skips other tools and methods', async () => {
    const { handlers, problems } = await loadHandlers(root);
    expect(problems).toEqual([]);
    const ids = (failure: Parameters<typeof matchFailure>[1]) => matchFailure(handlers, failure).map((match) => match.id);
    expect(ids({ method: 'apt', tool: 'docker', exitCode: 1, output: 'it went Boom' })).toEqual(['docker-boom', 'apt-boom', 'infra-boom']);
    expect(ids({ method: 'yum', tool: 'podman', exitCode: 1, output: 'boom' })).toEqual(['dnf-boom', 'infra-boom']);
    expect(ids({ method: 'pacman', exitCode: 1, output: 'all quiet' })).toEqual([]);
    const [match] = matchFailure(handlers, { method: 'apt', tool: 'docker', exitCode: 1, output: 'boom' });
    expect(match).toMatchObject({ id: 'docker-boom', layer: 'tool', category: 'other', label: 'docker-boom' });
  });

  it('lets a handler with an exit code match only that exit code', async () => {
    const { handlers } = await loadHandlers(root);
    const ids = (exitCode: number | null) => matchFailure(handlers, { method: 'pacman', exitCode, output: '' }).map((match) => match.id);
    expect(ids(137)).toEqual(['infra-killed']);
    expect(ids(1)).toEqual([]);
    expect(ids(null)).toEqual([]);
  });

  it('assesses the options for the platform it is given, and applies nothing without one', async () => {
    const { handlers } = await loadHandlers(root);
    const [withPlatform] = matchFailure(handlers, { method: 'apt', exitCode: 1, output: 'BOOM' }, context());
    expect(withPlatform?.options).toEqual([{ id: 'retry', label: 'try again', strategy: 'retry', recommended: false, status: 'ready' }]);
    const [blind] = matchFailure(handlers, { method: 'apt', exitCode: 1, output: 'BOOM' });
    expect(blind?.options[0]).toMatchObject({ status: 'needs', needs: ['platform'] });
  });
});

describe('loadHandlers on bad files', () => {
  const recommendedRetry = '      - id: retry\n        label: try again\n        strategy: retry\n        recommended: true\n';

  it('reports each mistake with its file and field, and keeps the good handlers', async () => {
    const infrastructure = [
      'layer: infrastructure',
      'handlers:',
      handler('good', 'fine', 'fine', retryOption),
      handler('misses-example', 'No space left', 'disk full, sorry', retryOption),
      handler('unknown-group', 'gcc', 'gcc: not found', '      - id: packages\n        label: install\n        strategy: install-packages\n        packages: compilers\n'),
      handler('two-recommended', 'twice', 'twice', recommendedRetry + recommendedRetry.replace('id: retry', 'id: again')),
      handler('no-method', 'switch', 'switch', '      - id: switch\n        label: switch\n        strategy: switch-method\n'),
      handler('unknown-dependency', 'rust', 'rust', '      - id: dependency\n        label: dependency\n        strategy: install-dependency\n        dependency: rustc\n'),
      handler('stray-field', 'stray', 'stray', '      - id: retry\n        label: retry\n        strategy: retry\n        method: binary\n'),
      handler('manual-recommended', 'manual', 'manual', '      - id: by-hand\n        label: by hand\n        strategy: manual\n        instructions: do it\n        recommended: true\n'),
      handler('exit-code-without-example', 'killed', 'killed', retryOption, '    exitCode: 137\n'),
      handler('too-broad', '.*', 'anything', retryOption),
      handler('bad-category', 'x', 'x', retryOption).replace('category: other', 'category: weather'),
      '',
    ].join('\n');
    await writeFile(join(root, 'handlers', 'infrastructure.yaml'), infrastructure);
    // Files load in name order, so the later file's copy is the duplicate.
    await writeFile(join(root, 'handlers', 'zypper.yaml'), `layer: method\nmethods: [zypper]\nhandlers:\n${handler('good', 'fine', 'fine', retryOption)}\n`);
    await writeFile(join(root, 'handlers', 'tool-ghost.yaml'), `layer: tool\ntool: ghost\nhandlers:\n${handler('ghost', 'boo', 'boo', retryOption)}\n`);
    await writeFile(join(root, 'handlers', 'weird.yaml'), `layer: planetary\nhandlers: []\n`);
    await writeFile(join(root, 'handlers', 'broken.yaml'), 'layer: [unclosed\n');

    const { handlers, problems } = await loadHandlers(root);
    const find = (file: string, field: string) => problems.find((problem) => problem.file === file && problem.field === field)?.message;
    const infra = 'handlers/infrastructure.yaml';
    expect(find(infra, 'handlers.1.pattern')).toMatch(/does not match the handler's own example/);
    expect(find(infra, 'handlers.2.options.0.packages')).toMatch(/unknown group "compilers"/);
    expect(find(infra, 'handlers.3.options')).toMatch(/recommends 2 options/);
    expect(find(infra, 'handlers.4.options.0')).toMatch(/switch-method needs "method"/);
    expect(find(infra, 'handlers.5.options.0.dependency')).toMatch(/unknown tool "rustc"/);
    expect(find(infra, 'handlers.6.options.0.method')).toMatch(/only read by strategy switch-method/);
    expect(find(infra, 'handlers.7.options.0.recommended')).toMatch(/cannot be recommended/);
    expect(find(infra, 'handlers.8.exampleExitCode')).toMatch(/must be 137/);
    expect(find(infra, 'handlers.9.pattern')).toMatch(/matches an empty output/);
    expect(find(infra, 'handlers.10.category')).toBeTruthy();
    expect(find('handlers/zypper.yaml', 'handlers.0.id')).toMatch(/"good" is also defined in handlers\/infrastructure\.yaml/);
    expect(find('handlers/tool-ghost.yaml', 'tool')).toMatch(/unknown tool "ghost"/);
    expect(find('handlers/weird.yaml', 'layer')).toMatch(/must be one of/);
    expect(find('handlers/broken.yaml', '')).toMatch(/not valid YAML/);

    // A bad handler costs only itself: the file's other handlers still load, compiled.
    const loaded = handlers.filter((entry) => entry.file === infra).map((entry) => entry.id);
    expect(loaded).toContain('good');
    expect(loaded).toContain('misses-example');
    expect(loaded).not.toContain('bad-category');
    expect(handlers.find((entry) => entry.id === 'good')?.regex.flags).toBe('im');
  });

  it('leaves a groups.yaml that does not validate to loadGroups, without calling every group unknown', async () => {
    await writeFile(join(root, 'groups.yaml'), 'Build Tools:\n  debian: [build-essential]\n');
    const { groups: loaded, problems } = await loadGroups(root);
    expect(loaded).toEqual({});
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]?.file).toBe('groups.yaml');
    const packages = '      - id: packages\n        label: install\n        strategy: install-packages\n        packages: build-tools\n';
    await writeFile(join(root, 'handlers', 'infrastructure.yaml'), `layer: infrastructure\nhandlers:\n${handler('compiler', 'gcc', 'gcc: not found', packages)}\n`);
    expect((await loadHandlers(root)).problems).toEqual([]);
  });

  it('reads no handlers, without a problem, from a catalog that has none', async () => {
    await rm(join(root, 'handlers'), { recursive: true });
    expect(await loadHandlers(root)).toEqual({ handlers: [], problems: [] });
  });
});

describe('resolvePackages', () => {
  it('looks up groups and family maps, and says null when the family has none', () => {
    expect(resolvePackages('build-tools', 'arch', groups)).toEqual(['base-devel']);
    expect(resolvePackages('epel', 'debian', groups)).toBeNull();
    expect(resolvePackages('no-such-group', 'debian', groups)).toBeNull();
    expect(resolvePackages({ debian: ['protobuf-compiler'], macos: ['protobuf'] }, 'macos', groups)).toEqual(['protobuf']);
    expect(resolvePackages({ debian: [] }, 'debian', groups)).toBeNull();
  });
});

describe('assessOption', () => {
  const install: RemedyOption = { id: 'compiler', label: 'install a compiler', strategy: 'install-packages', packages: 'build-tools', recommended: true };

  it('installs packages with the family\'s manager, through sudo when not root', () => {
    expect(assessOption(install, context())).toEqual({
      id: 'compiler',
      label: 'install a compiler',
      strategy: 'install-packages',
      recommended: true,
      status: 'ready',
      packages: ['build-essential'],
      steps: [['apt-get', 'install', '-y', 'build-essential']],
    });
    expect(assessOption(install, context({ privilege: 'sudo-passwordless' })).steps).toEqual([['sudo', 'apt-get', 'install', '-y', 'build-essential']]);
    expect(assessOption(install, context({ privilege: 'sudo-password' })).steps).toEqual([['sudo', 'apt-get', 'install', '-y', 'build-essential']]);
    expect(assessOption(install, context({ privilege: 'none' }))).toMatchObject({ status: 'needs', needs: ['sudo'], steps: [['sudo', 'apt-get', 'install', '-y', 'build-essential']] });
  });

  it('uses each family\'s own install command', () => {
    const steps = (overrides: Partial<Platform>) => assessOption(install, context(overrides)).steps?.[0];
    expect(steps({ family: 'rhel', methods: ['dnf'] })).toEqual(['dnf', 'install', '-y', 'gcc', 'make']);
    expect(steps({ family: 'rhel', methods: ['yum'] })).toEqual(['yum', 'install', '-y', 'gcc', 'make']);
    expect(steps({ family: 'arch', methods: ['pacman'] })).toEqual(['pacman', '-S', '--noconfirm', '--needed', 'base-devel']);
    expect(steps({ family: 'alpine', methods: ['apk'] })).toEqual(['apk', 'add', 'build-base']);
    expect(steps({ family: 'suse', methods: ['zypper'] })).toEqual(['zypper', '--non-interactive', 'install', 'gcc', 'make']);
    // Homebrew refuses root, so it never gets sudo.
    expect(steps({ family: 'macos', os: 'darwin', methods: ['brew'], privilege: 'sudo-password' })).toEqual(['brew', 'install', 'gcc']);
    expect(assessOption(install, context({ family: 'macos', os: 'darwin', methods: [], privilege: 'none' }))).toMatchObject({ status: 'needs', needs: ['brew'] });
    expect(assessOption(install, context({ family: 'macos', os: 'darwin', methods: ['brew'], privilege: 'root' }))).toMatchObject({ status: 'impossible', reason: 'Homebrew refuses to run as root' });
    expect(assessOption(install, context({ family: 'arch', methods: ['binary'], privilege: 'none' }))).toMatchObject({ status: 'needs', needs: ['pacman', 'sudo'] });
  });

  it('is impossible where the family has no such packages, or no family is known', () => {
    const epel: RemedyOption = { ...install, packages: 'epel' };
    expect(assessOption(epel, context())).toMatchObject({ status: 'impossible', reason: 'the group "epel" has no packages for the debian family' });
    const inline: RemedyOption = { ...install, packages: { rhel: ['protobuf-compiler'] } };
    expect(assessOption(inline, context({ family: 'alpine', methods: ['apk'] }))).toMatchObject({ status: 'impossible', reason: expect.stringContaining('alpine') });
    expect(assessOption(install, context({ family: null, distribution: { id: 'void', name: 'Void Linux', version: null, idLike: [] } }))).toMatchObject({
      status: 'impossible',
      reason: expect.stringContaining('Void Linux'),
    });
  });

  it('switches method only to one this platform has, and never to the one that failed', () => {
    const pipx: RemedyOption = { id: 'pipx', label: 'use pipx', strategy: 'switch-method', method: 'pipx' };
    expect(assessOption(pipx, context({ methods: ['apt', 'pipx'] }, 'pip'))).toMatchObject({ status: 'ready', method: 'pipx' });
    expect(assessOption(pipx, context({}, 'pip'))).toMatchObject({ status: 'needs', needs: ['pipx'] });
    expect(assessOption(pipx, context({ methods: ['pipx'] }, 'pipx'))).toMatchObject({ status: 'impossible', reason: 'pipx is the method that failed' });
  });

  it('installs a dependency only when the catalog has it', () => {
    expect(assessOption({ id: 'rust', label: 'rust', strategy: 'install-dependency', dependency: 'rustup' }, context())).toMatchObject({ status: 'ready', dependency: 'rustup' });
    expect(assessOption({ id: 'rust', label: 'rust', strategy: 'install-dependency', dependency: 'rustc' }, context())).toMatchObject({
      status: 'impossible',
      reason: 'the catalog has no tool "rustc"',
    });
  });

  it('runs cleanup commands as they are, or through sudo when they need root', () => {
    const update: RemedyOption = { id: 'update', label: 'update', strategy: 'cleanup-retry', cleanup: [['apt-get', 'update']], cleanupNeedsRoot: true };
    expect(assessOption(update, context())).toMatchObject({ status: 'ready', steps: [['apt-get', 'update']] });
    expect(assessOption(update, context({ privilege: 'sudo-passwordless' }))).toMatchObject({ status: 'ready', steps: [['sudo', 'apt-get', 'update']] });
    expect(assessOption(update, context({ privilege: 'none' }))).toMatchObject({ status: 'needs', needs: ['sudo'] });
    const cache: RemedyOption = { id: 'cache', label: 'cache', strategy: 'cleanup-retry', cleanup: [['npm', 'cache', 'clean', '--force']] };
    expect(assessOption(cache, context({ privilege: 'none' }))).toMatchObject({ status: 'ready', steps: [['npm', 'cache', 'clean', '--force']] });
  });

  it('carries modifiers, variables and instructions through', () => {
    expect(assessOption({ id: 'wait', label: 'wait', strategy: 'retry-with-modifier', modifier: { args: ['--classic'], env: { A: '1' }, wait: 30 } }, context())).toMatchObject({
      status: 'ready',
      args: ['--classic'],
      env: { A: '1' },
      wait: 30,
    });
    expect(assessOption({ id: 'env', label: 'env', strategy: 'fix-environment', env: { GOTOOLCHAIN: 'auto' } }, context())).toMatchObject({ status: 'ready', env: { GOTOOLCHAIN: 'auto' } });
    expect(assessOption({ id: 'again', label: 'again', strategy: 'retry' }, context({ privilege: 'none' })).status).toBe('ready');
    expect(assessOption({ id: 'hand', label: 'hand', strategy: 'manual', instructions: 'do it yourself' }, context({ family: null }))).toMatchObject({
      status: 'ready',
      instructions: 'do it yourself',
    });
  });
});

describe('recommendedOption', () => {
  it('returns the recommended option only when it is ready and not manual', () => {
    const ready = assessOption({ id: 'update', label: 'update', strategy: 'cleanup-retry', cleanup: [['apt-get', 'update']], cleanupNeedsRoot: true, recommended: true }, context());
    const blocked = assessOption({ id: 'update', label: 'update', strategy: 'cleanup-retry', cleanup: [['apt-get', 'update']], cleanupNeedsRoot: true, recommended: true }, context({ privilege: 'none' }));
    const other = assessOption({ id: 'again', label: 'again', strategy: 'retry' }, context());
    expect(recommendedOption({ options: [other, ready] })).toBe(ready);
    expect(recommendedOption({ options: [other, blocked] })).toBeNull();
    expect(recommendedOption({ options: [other] })).toBeNull();
    const manual = { ...assessOption({ id: 'hand', label: 'hand', strategy: 'manual', instructions: 'x' }, context()), recommended: true };
    expect(recommendedOption({ options: [manual] })).toBeNull();
  });
});
