import { describe, expect, it } from 'vitest';
import { ToolSchema, type Family, type Groups, type Method, type Tool, type ToolInput } from '../../src/catalog/schema.ts';
import { ConfigSchema, type Config } from '../../src/core/config.ts';
import { isUpkeepError, type UpkeepError } from '../../src/core/errors.ts';
import { retryableReason, sameVersion } from '../../src/install/apply.ts';
import { dependencyLevels } from '../../src/install/bulk.ts';
import { installCommands, methodSpec, uninstallCommands, upgradeCommands, type MethodSpec } from '../../src/install/managers.ts';
import { checkVersion, planTool, type PlanContext, type PlannedStep, type PlanRequest } from '../../src/install/plan.ts';
import { selectMethod } from '../../src/install/select.ts';
import type { EnvironmentMode, Platform, Privilege } from '../../src/install/types.ts';

/** A platform as detectPlatform would report it, for a family, with the given managers on PATH. */
function platform(options: {
  family: Family | null;
  methods: Method[];
  privilege?: Privilege;
  mode?: EnvironmentMode;
  os?: 'linux' | 'darwin';
  arch?: 'x86_64' | 'aarch64' | null;
}): Platform {
  const os = options.os ?? (options.family === 'macos' ? 'darwin' : 'linux');
  const names: Record<string, string> = { debian: 'Debian GNU/Linux 12 (bookworm)', rhel: 'Fedora Linux 40', arch: 'Arch Linux', alpine: 'Alpine Linux v3.20', suse: 'openSUSE Tumbleweed', macos: 'macOS 14.5' };
  return {
    os,
    arch: options.arch === undefined ? 'x86_64' : options.arch,
    rawOs: os,
    rawArch: options.arch === null ? 'riscv64' : 'x86_64',
    distribution: options.family ? { id: options.family, name: names[options.family]!, version: '1', idLike: [] } : { id: 'gentoo', name: 'Gentoo Linux', version: null, idLike: [] },
    family: options.family,
    methods: [...new Set<Method>(['binary', ...options.methods])],
    managerPaths: {},
    privilege: options.privilege ?? 'root',
    environment: { mode: options.mode ?? 'server', confidence: 1, indicators: ['test'], overridden: true },
  };
}

function config(install: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({ install });
}

function tool(input: Partial<ToolInput> & { id: string }): Tool {
  const parsed = ToolSchema.parse({
    name: input.id,
    description: `the ${input.id} tool`,
    homepage: `https://example.com/${input.id}`,
    category: 'text',
    upstream: { source: 'none' },
    ...input,
  });
  return { ...parsed, binaries: parsed.binaries ?? [parsed.id] };
}

const groups: Groups = {
  'build-tools': { description: 'compilers', debian: ['build-essential'], rhel: ['gcc', 'make'], macos: ['gcc'] },
};

function context(target: Platform, overrides: Partial<PlanContext> = {}): PlanContext {
  return {
    platform: target,
    config: config(),
    groups,
    binDir: '/home/me/.local/bin',
    hasCommand: () => false,
    toolForBinary: () => null,
    knownLatest: () => null,
    ...overrides,
  };
}

function thrown(action: () => unknown): UpkeepError {
  try {
    action();
  } catch (error) {
    if (isUpkeepError(error)) return error;
    throw error;
  }
  throw new Error('expected an UpkeepError');
}

function argvOf(steps: PlannedStep[]): Array<string[] | string> {
  return steps.map((step) => (step.kind === 'command' ? step.argv : step.kind));
}

const everywhere = tool({
  id: 'alpha',
  install: { apt: 'alpha', dnf: 'alpha', pacman: 'alpha', apk: 'alpha', zypper: 'alpha', brew: 'alpha', pipx: 'alpha-py' },
});
const systemOnly = tool({ id: 'sysonly', install: { apt: 'sysonly', dnf: 'sysonly', pacman: 'sysonly', apk: 'sysonly', zypper: 'sysonly' } });

describe('selectMethod', () => {
  const families: Array<[Family, Method]> = [
    ['debian', 'apt'],
    ['rhel', 'dnf'],
    ['arch', 'pacman'],
    ['alpine', 'apk'],
    ['suse', 'zypper'],
  ];
  it.each(families)('on a %s server picks %s, and says why', (family, method) => {
    const selection = selectMethod(everywhere, { platform: platform({ family, methods: [method, 'pipx'] }), config: config().install });
    expect(selection.chosen).toEqual({ method, reason: `the ${family} system package manager, preferred on servers` });
    expect(selection.alternatives.map((choice) => choice.method)).toEqual(['pipx']);
    const others = families.map(([, other]) => other).filter((other) => other !== method);
    for (const other of others) {
      expect(selection.rejected).toContainEqual({ method: other, reason: expect.stringMatching(new RegExp(`^${other} is the package manager of the \\w+ family; this system is ${family}$`)) });
    }
  });

  it('on macOS picks Homebrew on a workstation, and leaves the Linux managers out', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'macos', methods: ['brew', 'pipx'], privilege: 'sudo-password', mode: 'workstation' }), config: config().install });
    expect(selection.chosen).toEqual({ method: 'brew', reason: 'Homebrew, preferred on workstations that have it' });
    expect(selection.rejected.find((entry) => entry.method === 'apt')?.reason).toMatch(/this system is macos/);
  });

  it('never runs Homebrew as root', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'macos', methods: ['brew', 'pipx'], privilege: 'root', mode: 'workstation' }), config: config().install });
    expect(selection.chosen.method).toBe('pipx');
    expect(selection.rejected).toContainEqual({ method: 'brew', reason: 'Homebrew refuses to run as root' });
  });

  it('prefers a user-level method in CI', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'debian', methods: ['apt', 'pipx'], mode: 'ci' }), config: config().install });
    expect(selection.chosen).toEqual({ method: 'pipx', reason: 'a user-level, non-interactive method, preferred in CI' });
    expect(selection.alternatives[0]!.method).toBe('apt');
  });

  it('leaves out methods that need root when there is neither root nor sudo', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'debian', methods: ['apt', 'pipx'], privilege: 'none' }), config: config().install });
    expect(selection.chosen.method).toBe('pipx');
    expect(selection.rejected).toContainEqual({ method: 'apt', reason: 'apt needs root, and upkeep is not root and has no sudo' });
  });

  it('leaves out a manager that is not installed', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'debian', methods: ['apt'] }), config: config().install });
    expect(selection.rejected).toContainEqual({ method: 'pipx', reason: 'pipx is not installed' });
  });

  it('follows config: the tool pin first, then install.prefer, and never a method in install.avoid', () => {
    const target = platform({ family: 'debian', methods: ['apt', 'pipx', 'brew'], privilege: 'sudo-passwordless' });
    expect(selectMethod(everywhere, { platform: target, config: config({ prefer: ['pipx'] }).install }).chosen).toEqual({ method: 'pipx', reason: 'first in config install.prefer' });
    expect(selectMethod(everywhere, { platform: target, config: config({ prefer: ['pipx'], tools: { alpha: { method: 'brew' } } }).install }).chosen).toEqual({
      method: 'brew',
      reason: 'config install.tools.alpha.method',
    });
    const avoided = selectMethod(everywhere, { platform: target, config: config({ avoid: ['apt'] }).install });
    expect(avoided.chosen.method).not.toBe('apt');
    expect(avoided.rejected).toContainEqual({ method: 'apt', reason: 'config install.avoid lists it' });
  });

  it("follows the ecosystem's configured order, then the recipe's own preference", () => {
    const python = tool({ id: 'linter', ecosystem: 'python', prefer: ['pipx'], install: { apt: 'linter', pipx: 'linter', uv: 'linter' } });
    const target = platform({ family: 'debian', methods: ['apt', 'pipx', 'uv'] });
    expect(selectMethod(python, { platform: target, config: config().install }).chosen).toEqual({ method: 'pipx', reason: "linter's recipe prefers it" });
    expect(selectMethod(python, { platform: target, config: config({ ecosystems: { python: ['uv'] } }).install }).chosen).toEqual({
      method: 'uv',
      reason: 'config install.ecosystems.python prefers it',
    });
  });

  it('leaves out methods that cannot pin a version when one is asked for', () => {
    const selection = selectMethod(everywhere, { platform: platform({ family: 'arch', methods: ['pacman', 'pipx'] }), config: config().install, version: '1.2.3' });
    expect(selection.chosen.method).toBe('pipx');
    expect(selection.rejected).toContainEqual({ method: 'pacman', reason: 'pacman cannot install a chosen version' });
  });

  it('on a distribution of no known family, E_NO_METHOD lists every method and why not', () => {
    const error = thrown(() => selectMethod(systemOnly, { platform: platform({ family: null, methods: ['apt'] }), config: config().install }));
    expect(error.code).toBe('E_NO_METHOD');
    expect(error.message).toBe('no install method for sysonly works on Gentoo Linux');
    for (const method of ['apt', 'dnf', 'pacman', 'apk', 'zypper']) expect(error.hint).toContain(`${method}: ${method} is the package manager of the`);
    expect((error.details as { rejected: unknown[] }).rejected).toHaveLength(5);
  });

  it('refuses a tool without recipes', () => {
    expect(thrown(() => selectMethod(tool({ id: 'bare' }), { platform: platform({ family: 'debian', methods: ['apt'] }), config: config().install })).code).toBe('E_NO_RECIPE');
  });

  describe('--method', () => {
    const debian = platform({ family: 'debian', methods: ['apt', 'pipx'], privilege: 'none' });
    it('takes the method as asked, when it can run', () => {
      expect(selectMethod(everywhere, { platform: debian, config: config().install, method: 'pipx' }).chosen).toEqual({ method: 'pipx', reason: 'chosen with --method' });
    });
    it('E_METHOD_UNAVAILABLE (usage) when the recipe has no such method', () => {
      const error = thrown(() => selectMethod(everywhere, { platform: debian, config: config().install, method: 'cargo' }));
      expect([error.code, error.exitCode]).toEqual(['E_METHOD_UNAVAILABLE', 2]);
      expect(error.hint).toMatch(/apt, dnf, pacman, apk, zypper, brew, pipx/);
    });
    it('E_NEEDS_ROOT when the method needs root and there is none to be had', () => {
      const error = thrown(() => selectMethod(everywhere, { platform: debian, config: config().install, method: 'apt' }));
      expect([error.code, error.exitCode]).toEqual(['E_NEEDS_ROOT', 1]);
      expect(error.message).toMatch(/alpha with apt needs root/);
    });
    it("E_PLATFORM_UNSUPPORTED for another family's manager", () => {
      const error = thrown(() => selectMethod(everywhere, { platform: platform({ family: 'debian', methods: ['apt', 'dnf'] }), config: config().install, method: 'dnf' }));
      expect(error.code).toBe('E_PLATFORM_UNSUPPORTED');
    });
    it('E_VERSION_UNSUPPORTED for a version with a method that cannot pin one', () => {
      const error = thrown(() => selectMethod(everywhere, { platform: platform({ family: 'arch', methods: ['pacman'] }), config: config().install, method: 'pacman', version: '1.0.0' }));
      expect(error.code).toBe('E_VERSION_UNSUPPORTED');
    });
  });
});

describe('planTool', () => {
  const install: PlanRequest = { action: 'install' };

  it('runs system package managers through `sudo -n env ...` when upkeep is not root', () => {
    const plan = planTool(everywhere, install, context(platform({ family: 'debian', methods: ['apt'], privilege: 'sudo-passwordless' })));
    expect(plan).toMatchObject({ tool: 'alpha', method: 'apt', packages: ['alpha'], version: null });
    expect(plan.steps).toEqual([
      expect.objectContaining({
        kind: 'command',
        argv: ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive', 'NEEDRESTART_MODE=a', 'apt-get', 'install', '-y', 'alpha'],
        env: { DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_MODE: 'a' },
        root: 'apt-get changes system folders',
        lock: 'dpkg',
      }),
    ]);
  });

  it('runs them directly as root, and user-level methods never with sudo', () => {
    expect(argvOf(planTool(everywhere, install, context(platform({ family: 'rhel', methods: ['dnf'] }))).steps)).toEqual([['dnf', 'install', '-y', 'alpha']]);
    const pipx = planTool(everywhere, { action: 'install', method: 'pipx' }, context(platform({ family: 'debian', methods: ['apt', 'pipx'], privilege: 'sudo-passwordless' })));
    expect(pipx.steps).toEqual([expect.objectContaining({ argv: ['pipx', 'install', 'alpha-py'], root: null, lock: 'pipx' })]);
  });

  it.each<[Family, Method, string[]]>([
    ['debian', 'apt', ['apt-get', 'install', '-y', 'alpha']],
    ['rhel', 'dnf', ['dnf', 'install', '-y', 'alpha']],
    ['arch', 'pacman', ['pacman', '-S', '--noconfirm', '--needed', 'alpha']],
    ['alpine', 'apk', ['apk', 'add', 'alpha']],
    ['suse', 'zypper', ['zypper', '--non-interactive', 'install', 'alpha']],
    ['macos', 'brew', ['brew', 'install', 'alpha']],
  ])('on %s installs with %s', (family, method, argv) => {
    const target = platform({ family, methods: [method], privilege: family === 'macos' ? 'sudo-password' : 'root', mode: family === 'macos' ? 'workstation' : 'server' });
    const plan = planTool(everywhere, install, context(target));
    expect(plan.method).toBe(method);
    expect(argvOf(plan.steps)).toEqual([argv]);
  });

  it('installs the required system packages first, from a group, in the family', () => {
    const built = tool({ id: 'built', requires: { packages: ['build-tools'] }, install: { apt: 'built', dnf: 'built' } });
    expect(argvOf(planTool(built, install, context(platform({ family: 'debian', methods: ['apt'] }))).steps)).toEqual([
      ['apt-get', 'install', '-y', 'build-essential'],
      ['apt-get', 'install', '-y', 'built'],
    ]);
    const rhel = planTool(built, install, context(platform({ family: 'rhel', methods: ['dnf'] })));
    expect(argvOf(rhel.steps)).toEqual([
      ['dnf', 'install', '-y', 'gcc', 'make'],
      ['dnf', 'install', '-y', 'built'],
    ]);
    expect(rhel.steps[0]!.description).toBe('install the packages it needs first: gcc, make');
  });

  it('turns a missing command into a requirement on the catalog tool that provides it, or reports it missing', () => {
    const needy = tool({ id: 'needy', requires: { binaries: ['node', 'frobnicate', 'present'], tools: ['gamma'] }, install: { npm: 'needy' } });
    const plan = planTool(
      needy,
      install,
      context(platform({ family: 'debian', methods: ['npm'] }), {
        hasCommand: (name) => name === 'present',
        toolForBinary: (name) => (name === 'node' ? 'node' : null),
      }),
    );
    expect(plan.requires.sort()).toEqual(['gamma', 'node']);
    expect(plan.missingBinaries).toEqual(['frobnicate']);
  });

  it('pins versions the way each manager spells them', () => {
    const pinned = tool({ id: 'pinned', install: { apt: 'pinned', dnf: 'pinned', npm: 'pinned', pipx: 'pinned', go: { module: 'example.com/pinned/cmd/pinned' }, cargo: 'pinned' } });
    const versioned = (family: Family, method: Method): Array<string[] | string> =>
      argvOf(planTool(pinned, { action: 'install', method, version: 'v1.2.3' }, context(platform({ family, methods: [method] }))).steps);
    expect(versioned('debian', 'apt')).toEqual([['apt-get', 'install', '-y', '--allow-downgrades', 'pinned=1.2.3']]);
    expect(versioned('rhel', 'dnf')).toEqual([['dnf', 'install', '-y', 'pinned-1.2.3']]);
    expect(versioned('debian', 'npm')).toEqual([['npm', 'install', '-g', 'pinned@1.2.3']]);
    expect(versioned('debian', 'pipx')).toEqual([['pipx', 'install', '--force', 'pinned==1.2.3']]);
    expect(versioned('debian', 'go')).toEqual([['go', 'install', 'example.com/pinned/cmd/pinned@v1.2.3']]);
    expect(versioned('debian', 'cargo')).toEqual([['cargo', 'install', '--locked', '--version', '1.2.3', 'pinned']]);
  });

  it('gives builds from source twice the step timeout', () => {
    const crate = tool({ id: 'crate', install: { cargo: 'crate', npm: 'crate' } });
    const target = platform({ family: 'debian', methods: ['cargo', 'npm'] });
    expect(planTool(crate, { action: 'install', method: 'cargo' }, context(target)).steps[0]!.timeoutSeconds).toBe(1800);
    expect(planTool(crate, { action: 'install', method: 'npm' }, context(target)).steps[0]!.timeoutSeconds).toBe(900);
  });

  it('uses cargo-binstall when it is on PATH', () => {
    const crate = tool({ id: 'crate', install: { cargo: 'crate' } });
    const plan = planTool(crate, { action: 'install', version: '0.4.0' }, context(platform({ family: 'debian', methods: ['cargo'] }), { hasCommand: (name) => name === 'cargo-binstall' }));
    expect(argvOf(plan.steps)).toEqual([['cargo', 'binstall', '-y', 'crate@0.4.0']]);
  });

  it('upgrades and uninstalls with the method and package it was installed with', () => {
    const target = platform({ family: 'debian', methods: ['apt', 'pipx'], privilege: 'sudo-passwordless' });
    const upgrade = planTool(everywhere, { action: 'upgrade', installed: { method: 'pipx', package: 'alpha-renamed' } }, context(target));
    expect(upgrade).toMatchObject({ method: 'pipx', reason: 'it was installed with pipx', packages: ['alpha-renamed'] });
    expect(argvOf(upgrade.steps)).toEqual([['pipx', 'upgrade', 'alpha-renamed']]);
    const removal = planTool(everywhere, { action: 'uninstall', installed: { method: 'apt' } }, context(target));
    expect(argvOf(removal.steps)).toEqual([['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive', 'NEEDRESTART_MODE=a', 'apt-get', 'remove', '-y', 'alpha']]);
  });

  it('removes the recorded files of a go install', () => {
    const module = tool({ id: 'gopher', install: { go: { module: 'example.com/gopher' } } });
    const plan = planTool(module, { action: 'uninstall', installed: { method: 'go', files: ['/home/me/go/bin/gopher'] } }, context(platform({ family: 'debian', methods: ['go'] })));
    expect(plan.steps).toEqual([expect.objectContaining({ kind: 'remove-files', files: ['/home/me/go/bin/gopher'] })]);
  });

  describe('release binaries', () => {
    const released = tool({
      id: 'released',
      install: { binary: { url: 'https://example.com/released/v{version}/released-{os}-{arch}.tar.gz', checksum: { url: 'https://example.com/released/v{version}/SHA256SUMS' } } },
    });

    it('downloads the latest known version into binDir', () => {
      const plan = planTool(released, install, context(platform({ family: 'debian', methods: [] }), { knownLatest: () => '2.1.0' }));
      expect(plan).toMatchObject({ method: 'binary', version: '2.1.0' });
      const [step] = plan.steps;
      expect(step).toMatchObject({ kind: 'binary', binDir: '/home/me/.local/bin', root: null, download: { url: 'https://example.com/released/v2.1.0/released-linux-x86_64.tar.gz' } });
    });

    it('needs a version when none is known', () => {
      const error = thrown(() => planTool(released, install, context(platform({ family: 'debian', methods: [] }))));
      expect(error.code).toBe('E_NO_METHOD');
      expect(error.hint).toMatch(/--version/);
    });

    it('is unavailable on an architecture upkeep has no name for', () => {
      const error = thrown(() => planTool(released, install, context(platform({ family: 'debian', methods: [], arch: null }), { knownLatest: () => '2.1.0' })));
      expect(error.code).toBe('E_NO_METHOD');
      expect(error.hint).toMatch(/binary: no release binaries for linux\/riscv64/);
    });

    it('uninstalls by removing the files it placed', () => {
      const plan = planTool(released, { action: 'uninstall', installed: { method: 'binary', files: ['/home/me/.local/bin/released'] } }, context(platform({ family: 'debian', methods: [] })));
      expect(plan.steps).toEqual([expect.objectContaining({ kind: 'remove-files', files: ['/home/me/.local/bin/released'] })]);
    });
  });

  it("refuses to uninstall what a vendor's script installed when the recipe has no uninstall command", () => {
    const scripted = tool({ id: 'scripted', install: { script: { url: 'https://example.com/install.sh' } } });
    const error = thrown(() => planTool(scripted, { action: 'uninstall', installed: { method: 'script' } }, context(platform({ family: 'debian', methods: ['script'] }))));
    expect(error.code).toBe('E_UNINSTALL_REFUSED');
  });

  it('checks the version before anything else', () => {
    const error = thrown(() => planTool(everywhere, { action: 'install', version: '1.0; rm -rf /' }, context(platform({ family: 'debian', methods: ['apt'] }))));
    expect([error.code, error.exitCode]).toEqual(['E_VERSION_INVALID', 2]);
  });
});

describe('upgrade and uninstall commands per manager', () => {
  const spec = (method: Method, packages = ['thing'], extra: Partial<MethodSpec> = {}): MethodSpec => ({ ...methodSpec({ [method]: packages } as never, method)!, ...extra });

  it.each<[Method, string[]]>([
    ['apt', ['apt-get', 'install', '--only-upgrade', '-y', 'thing']],
    ['dnf', ['dnf', 'upgrade', '-y', 'thing']],
    ['yum', ['yum', 'update', '-y', 'thing']],
    ['pacman', ['pacman', '-S', '--noconfirm', 'thing']],
    ['apk', ['apk', 'upgrade', 'thing']],
    ['zypper', ['zypper', '--non-interactive', 'update', 'thing']],
    ['brew', ['brew', 'upgrade', 'thing']],
    ['snap', ['snap', 'refresh', 'thing']],
    ['flatpak', ['flatpak', 'update', '--user', '-y', '--noninteractive', 'thing']],
    ['pipx', ['pipx', 'upgrade', 'thing']],
    ['uv', ['uv', 'tool', 'upgrade', 'thing']],
    ['pip', ['python3', '-m', 'pip', 'install', '--user', '--upgrade', 'thing']],
    ['npm', ['npm', 'install', '-g', 'thing@latest']],
    ['cargo', ['cargo', 'install', '--locked', '--force', 'thing']],
    ['go', ['go', 'install', 'thing@latest']],
  ])('%s upgrades with %j', (method, argv) => {
    expect(upgradeCommands(spec(method)).map((step) => step.argv)).toEqual([argv]);
  });

  it('upgrades a Homebrew cask as a cask, and a crate with cargo-binstall when it is there', () => {
    expect(upgradeCommands(spec('brew', ['thing'], { cask: true }))[0]!.argv).toEqual(['brew', 'upgrade', '--cask', 'thing']);
    expect(upgradeCommands(spec('cargo'), { hasBinstall: true })[0]!.argv).toEqual(['cargo', 'binstall', '-y', 'thing']);
  });

  it.each<[Method, string[]]>([
    ['apt', ['apt-get', 'remove', '-y', 'thing']],
    ['dnf', ['dnf', 'remove', '-y', 'thing']],
    ['pacman', ['pacman', '-R', '--noconfirm', 'thing']],
    ['apk', ['apk', 'del', 'thing']],
    ['zypper', ['zypper', '--non-interactive', 'remove', 'thing']],
    ['brew', ['brew', 'uninstall', 'thing']],
    ['pipx', ['pipx', 'uninstall', 'thing']],
    ['uv', ['uv', 'tool', 'uninstall', 'thing']],
    ['npm', ['npm', 'uninstall', '-g', 'thing']],
    ['cargo', ['cargo', 'uninstall', 'thing']],
  ])('%s uninstalls with %j', (method, argv) => {
    expect(uninstallCommands(spec(method)).map((step) => step.argv)).toEqual([argv]);
  });

  it('adds a tap before a Homebrew install', () => {
    expect(installCommands(spec('brew', ['thing'], { tap: 'owner/tap' }), null).map((step) => step.argv)).toEqual([
      ['brew', 'tap', 'owner/tap'],
      ['brew', 'install', 'thing'],
    ]);
  });

  it('package managers that remove nothing by name refuse to plan a removal', () => {
    expect(() => uninstallCommands(spec('go'))).toThrow(/removes files/);
    expect(() => upgradeCommands({ ...spec('npm'), method: 'binary' })).toThrow(/upgrades by installing again/);
  });
});

describe('checkVersion', () => {
  it.each([
    ['1.2.3', '1.2.3'],
    ['v1.2.3', '1.2.3'],
    ['0.39.0', '0.39.0'],
    ['1.0.0-rc.1', '1.0.0-rc.1'],
    ['2024.01.02', '2024.01.02'],
    ['1.7.1+build.5', '1.7.1+build.5'],
  ])('%s', (input, expected) => {
    expect(checkVersion(input, '--version')).toBe(expected);
  });

  it.each(['1.0; rm -rf /', '2:1.2-1~deb12u1', '$(id)', '`id`', '--help', '', 'latest', '1.2.3 4', '1.2.3\n', '../1.2', `1.${'0'.repeat(70)}`])('refuses %j', (input) => {
    const error = thrown(() => checkVersion(input, '--to'));
    expect([error.code, error.exitCode]).toEqual(['E_VERSION_INVALID', 2]);
    expect(error.message.startsWith('--to ')).toBe(true);
  });
});

describe('dependencyLevels', () => {
  const item = (id: string, ...requires: string[]) => ({ id, requires });

  it('puts each item after everything it requires, keeping the given order within a level', () => {
    const levels = dependencyLevels([item('c', 'b'), item('a'), item('b', 'a'), item('d'), item('e', 'a', 'c')]);
    expect(levels.map((level) => level.map((entry) => entry.id))).toEqual([['a', 'd'], ['b'], ['c'], ['e']]);
  });

  it('ignores requirements outside the run', () => {
    expect(dependencyLevels([item('a', 'elsewhere'), item('b')]).map((level) => level.map((entry) => entry.id))).toEqual([['a', 'b']]);
  });

  it('names every tool of a cycle', () => {
    const error = thrown(() => dependencyLevels([item('start', 'one'), item('one', 'two'), item('two', 'three'), item('three', 'one')]));
    expect(error.code).toBe('E_DEPENDENCY_CYCLE');
    expect(error.message).toMatch(/one -> two -> three -> one/);
    expect(error.hint).toContain('catalog/tools/one.yaml, catalog/tools/two.yaml, catalog/tools/three.yaml');
    expect(error.details).toEqual({ cycle: ['one', 'two', 'three', 'one'] });
  });

  it('calls a tool that requires itself a cycle', () => {
    expect(thrown(() => dependencyLevels([item('self', 'self')])).code).toBe('E_DEPENDENCY_CYCLE');
  });
});

describe('retries and version matching', () => {
  it.each([
    ['E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)', 'another process holds the package manager lock'],
    ['error: failed to init transaction (unable to lock database)', 'another process holds the package manager lock'],
    ['System management is locked by the application with pid 4242 (zypper).', 'another process holds the package manager lock'],
    ["Temporary failure resolving 'deb.debian.org'", 'a network error'],
    ['curl: (6) Could not resolve host: example.com', 'a network error'],
  ])('retries after %j', (output, reason) => {
    expect(retryableReason(100, output)).toBe(reason);
  });

  it('does not retry what another try cannot fix', () => {
    expect(retryableReason(100, 'E: Unable to locate package alpha')).toBeNull();
    expect(retryableReason(137, '')).toBeNull();
    expect(retryableReason(75, '')).toBe('a temporary failure (exit code 75)');
  });

  it('matches a distribution revision and a leading v to the version asked for', () => {
    expect(sameVersion('1.2.3-1', '1.2.3')).toBe(true);
    expect(sameVersion('v1.2.3', '1.2.3')).toBe(true);
    expect(sameVersion('1.2.4', '1.2.3')).toBe(false);
  });
});
