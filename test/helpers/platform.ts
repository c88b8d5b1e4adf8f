import type { Platform } from '../../src/install/types.ts';

/** A Debian 12 workstation where upkeep is root; tests override what they are about. */
export function debianPlatform(overrides: Partial<Platform> = {}): Platform {
  return {
    os: 'linux',
    arch: 'x86_64',
    rawOs: 'Linux',
    rawArch: 'x86_64',
    distribution: { id: 'debian', name: 'Debian GNU/Linux 12 (bookworm)', version: '12', idLike: [] },
    family: 'debian',
    methods: ['apt', 'binary', 'script'],
    managerPaths: {},
    privilege: 'root',
    environment: { mode: 'workstation', confidence: 1, indicators: [], overridden: false },
    ...overrides,
  };
}
