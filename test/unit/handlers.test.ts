import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadGroups, loadHandlers, type LoadedHandler } from '../../src/catalog/handlers.ts';
import { FAILURE_CATEGORIES, type FailureCategory, type Groups, type Method } from '../../src/catalog/schema.ts';
import { matchFailure, type MatchContext } from '../../src/install/remediation/match.ts';
import { assessOption, recommendedOption } from '../../src/install/remediation/options.ts';
import type { Platform } from '../../src/install/types.ts';
import { debianPlatform } from '../helpers/platform.ts';

const shipped = resolve(import.meta.dirname, '../../catalog');

/** Failures of the machine rather than of one package manager: each needs an infrastructure handler. */
const INFRASTRUCTURE_CATEGORIES: FailureCategory[] = [
  'network',
  'dns',
  'proxy-tls',
  'disk-full',
  'read-only-fs',
  'permission',
  'no-sudo',
  'out-of-memory',
  'timeout',
  'missing-command',
  'missing-build-dependency',
  'platform-unsupported',
];

function platform(overrides: Partial<Platform>): Platform {
  return debianPlatform({ methods: ['apt', 'binary', 'script', 'pipx', 'pip', 'npm', 'cargo', 'go'], ...overrides });
}

const debianAsRoot = platform({});
const debianWithoutSudo = platform({ privilege: 'none' });
const macos = platform({
  os: 'darwin',
  arch: 'aarch64',
  rawOs: 'Darwin',
  rawArch: 'arm64',
  distribution: { id: 'macos', name: 'macOS 15.1', version: '15.1', idLike: [] },
  family: 'macos',
  methods: ['brew', 'binary', 'script', 'npm', 'cargo'],
  privilege: 'sudo-password',
});

let handlers: LoadedHandler[];
let groups: Groups;
let problems: unknown[];
let toolIds: Set<string>;

beforeAll(async () => {
  const loadedGroups = await loadGroups(shipped);
  const loaded = await loadHandlers(shipped, { groups: loadedGroups.groups });
  handlers = loaded.handlers;
  groups = loadedGroups.groups;
  problems = [...loadedGroups.problems, ...loaded.problems];
  const { readdir } = await import('node:fs/promises');
  toolIds = new Set((await readdir(resolve(shipped, 'tools'))).map((name) => name.replace(/\.yaml$/, '')));
});

function contextFor(target: Platform): MatchContext {
  return { platform: target, groups, catalogHas: (id) => toolIds.has(id) };
}

describe('the shipped failure handlers', () => {
  it('load without a problem', () => {
    expect(problems).toEqual([]);
    expect(handlers.length).toBeGreaterThanOrEqual(70);
  });

  it('cover every infrastructure-like category in the infrastructure layer', () => {
    const covered = new Set(handlers.filter((handler) => handler.layer === 'infrastructure').map((handler) => handler.category));
    expect(INFRASTRUCTURE_CATEGORIES.filter((category) => !covered.has(category))).toEqual([]);
  });

  it('use every category of the vocabulary somewhere', () => {
    const used = new Set(handlers.map((handler) => handler.category));
    expect(FAILURE_CATEGORIES.filter((category) => !used.has(category))).toEqual([]);
  });

  it('give every package manager a lock handler and a package-not-found handler', () => {
    const lockless: Method[] = [];
    const unfound: Method[] = [];
    for (const method of ['apt', 'dnf', 'yum', 'pacman', 'apk', 'zypper', 'brew', 'snap'] as const) {
      const own = handlers.filter((handler) => handler.methods?.includes(method));
      if (!own.some((handler) => handler.category === 'lock-held')) lockless.push(method);
      if (!own.some((handler) => handler.category === 'not-found')) unfound.push(method);
    }
    expect({ lockless, unfound }).toEqual({ lockless: [], unfound: [] });
  });

  it('recommend at most one option per handler, and never a manual one', () => {
    for (const handler of handlers) {
      const recommended = handler.options.filter((option) => option.recommended);
      expect(recommended.length, handler.id).toBeLessThanOrEqual(1);
      expect(recommended.filter((option) => option.strategy === 'manual'), handler.id).toEqual([]);
    }
  });

  it('recognise every handler\'s own example, on every method it covers, and assess its options on three platforms', () => {
    const missed: string[] = [];
    for (const handler of handlers) {
      const methods: Method[] = handler.layer === 'method' ? handler.methods! : ['binary'];
      for (const method of methods) {
        const failure = { method, ...(handler.tool ? { tool: handler.tool } : {}), exitCode: handler.exampleExitCode ?? 1, output: handler.example };
        const matched = matchFailure(handlers, failure).map((match) => match.id);
        if (!matched.includes(handler.id)) missed.push(`${handler.id} (${method})`);
        for (const target of [debianAsRoot, debianWithoutSudo, macos]) {
          const matches = matchFailure(handlers, failure, contextFor(target));
          for (const match of matches) {
            expect(match.options.length).toBe(match.handler.options.length);
            for (const option of match.options) {
              expect(['ready', 'needs', 'impossible']).toContain(option.status);
              if (option.status === 'needs') expect(option.needs?.length, `${match.id}/${option.id}`).toBeGreaterThan(0);
              if (option.status === 'impossible') expect(option.reason, `${match.id}/${option.id}`).toBeTruthy();
            }
            const chosen = recommendedOption(match);
            if (chosen) expect(chosen.strategy).not.toBe('manual');
          }
        }
      }
    }
    expect(missed).toEqual([]);
  });

  it('only give a handler to the layer unit it belongs to', () => {
    const apt = handlers.find((handler) => handler.id === 'apt-unable-to-locate')!;
    expect(matchFailure(handlers, { method: 'dnf', exitCode: 100, output: apt.example }).map((match) => match.id)).not.toContain(apt.id);
    const docker = handlers.find((handler) => handler.id === 'docker-daemon-not-running')!;
    expect(matchFailure(handlers, { method: 'apt', tool: 'podman', exitCode: 1, output: docker.example }).map((match) => match.id)).not.toContain(docker.id);
  });
});

describe('remedies for the failures people hit most', () => {
  const recommended = (output: string, method: Method, target: Platform, exitCode: number | null = 1, tool?: string) => {
    for (const match of matchFailure(handlers, { method, exitCode, output, ...(tool ? { tool } : {}) }, contextFor(target))) {
      const option = recommendedOption(match);
      if (option) return { handler: match.id, option };
    }
    return null;
  };

  it('refreshes apt\'s lists when a package cannot be located, through sudo when not root', () => {
    const output = 'Reading package lists...\nE: Unable to locate package jq\n';
    expect(recommended(output, 'apt', debianAsRoot)).toMatchObject({ handler: 'apt-unable-to-locate', option: { strategy: 'cleanup-retry', steps: [['apt-get', 'update']] } });
    const withSudo = platform({ privilege: 'sudo-passwordless' });
    expect(recommended(output, 'apt', withSudo)?.option.steps).toEqual([['sudo', 'apt-get', 'update']]);
    // Without any way to root, nothing is applied automatically.
    expect(recommended(output, 'apt', debianWithoutSudo)).toBeNull();
  });

  it('finishes an interrupted dpkg run first', () => {
    const output = "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.\n";
    expect(recommended(output, 'apt', debianAsRoot)?.option.steps).toEqual([['dpkg', '--configure', '-a']]);
  });

  it('installs the compiler when cc is missing, as the family names it', () => {
    const output = 'error: linker `cc` not found\n  |\n  = note: No such file or directory (os error 2)\n';
    expect(recommended(output, 'cargo', debianAsRoot)?.option).toMatchObject({ packages: ['build-essential'], steps: [['apt-get', 'install', '-y', 'build-essential']] });
    const fedora = platform({ family: 'rhel', methods: ['dnf', 'binary', 'cargo'], distribution: { id: 'fedora', name: 'Fedora Linux 41', version: '41', idLike: [] } });
    expect(recommended(output, 'cargo', fedora)?.option.steps).toEqual([['dnf', 'install', '-y', 'gcc', 'gcc-c++', 'make']]);
  });

  it('moves a PEP 668 refusal to pipx, and waits for a held apt lock', () => {
    const pep668 = 'error: externally-managed-environment\n\n× This environment is externally managed\n';
    expect(recommended(pep668, 'pip', debianAsRoot)).toMatchObject({ handler: 'python-externally-managed', option: { strategy: 'switch-method', method: 'pipx' } });
    const lock = 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 812 (apt-get)\n';
    expect(recommended(lock, 'apt', debianAsRoot)?.option).toMatchObject({ strategy: 'retry-with-modifier', wait: 60 });
  });

  it('enables EPEL on RHEL-like systems but not elsewhere', () => {
    const output = 'No match for argument: ripgrep\nError: Unable to find a match: ripgrep\n';
    const rocky = platform({ family: 'rhel', methods: ['dnf', 'binary'], distribution: { id: 'rocky', name: 'Rocky Linux 9.4', version: '9.4', idLike: ['rhel', 'centos', 'fedora'] } });
    expect(recommended(output, 'dnf', rocky)?.option.steps).toEqual([['dnf', 'install', '-y', 'epel-release']]);
    const [match] = matchFailure(handlers, { method: 'dnf', exitCode: 1, output }, contextFor(debianAsRoot));
    expect(match?.options[0]).toMatchObject({ status: 'impossible', reason: expect.stringContaining('debian') });
  });

  it('treats exit 137 as the out-of-memory killer only with that exit code', () => {
    const output = '   Compiling ripgrep v14.1.1\n';
    expect(recommended(output, 'cargo', debianAsRoot, 137)).toMatchObject({ handler: 'killed-exit-137', option: { env: { CARGO_BUILD_JOBS: '1' } } });
    expect(recommended(output, 'cargo', debianAsRoot, 101)).toBeNull();
  });

  it('prefers the tool\'s own handler to the method\'s', () => {
    const output = "dpkg: error processing archive /var/cache/apt/archives/nodejs_20.18.0-1nodesource1_amd64.deb (--unpack):\n trying to overwrite '/usr/include/node/common.gypi', which is also in package libnode-dev 12.22.9~dfsg-1ubuntu3.6\n";
    const ids = matchFailure(handlers, { method: 'apt', tool: 'node', exitCode: 100, output }).map((match) => match.id);
    expect(ids.slice(0, 2)).toEqual(['nodesource-libnode-conflict', 'dpkg-file-overwrite']);
  });

  it('never gives brew sudo, asks for brew where it is missing, and says which family has no packages', () => {
    const pkgConfig = handlers.find((handler) => handler.id === 'missing-pkg-config')!.options[0]!;
    expect(assessOption(pkgConfig, { ...contextFor(macos), method: 'cargo' })).toMatchObject({ status: 'ready', steps: [['brew', 'install', 'pkg-config']] });
    const withoutBrew = platform({ ...macos, methods: ['binary', 'cargo'] });
    expect(assessOption(pkgConfig, { ...contextFor(withoutBrew), method: 'cargo' })).toMatchObject({ status: 'needs', needs: ['brew'] });
    const certificates = handlers.find((handler) => handler.id === 'tls-certificate-untrusted')!.options[0]!;
    expect(assessOption(certificates, { ...contextFor(macos), method: 'binary' })).toMatchObject({ status: 'impossible', reason: expect.stringContaining('macos') });
  });
});
