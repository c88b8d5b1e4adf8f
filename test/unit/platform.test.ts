import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Family } from '../../src/catalog/schema.ts';
import { detectEnvironmentMode } from '../../src/install/environment-mode.ts';
import { distributionFromOsRelease, familyOf, normaliseArch, normaliseOs, parseOsRelease } from '../../src/install/platform.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'os-release');

function distributionOf(fixture: string) {
  return distributionFromOsRelease(parseOsRelease(readFileSync(join(fixtures, fixture), 'utf8')));
}

describe('parseOsRelease', () => {
  it('reads unquoted, double-quoted and single-quoted values', () => {
    expect(parseOsRelease('ID=debian\nNAME="Debian GNU/Linux"\nPRETTY_NAME=\'Pop!_OS 22.04 LTS\'\n')).toEqual({
      ID: 'debian',
      NAME: 'Debian GNU/Linux',
      PRETTY_NAME: 'Pop!_OS 22.04 LTS',
    });
  });

  it('undoes backslash escapes inside double quotes and outside quotes, but not inside single quotes', () => {
    const fields = parseOsRelease(['A="say \\"hi\\" for \\$5 \\\\ \\`x\\`"', 'B=two\\ words', "C='back\\slash'", 'D="keep \\n as is"'].join('\n'));
    expect(fields).toEqual({ A: 'say "hi" for $5 \\ `x`', B: 'two words', C: 'back\\slash', D: 'keep \\n as is' });
  });

  it('skips comments, blank lines, indented comments and lines that are not assignments', () => {
    const text = ['# a comment', '', '   ', '  # indented comment', 'not an assignment', '1BAD=x', 'ID=arch', '#ID=commented'].join('\n');
    expect(parseOsRelease(text)).toEqual({ ID: 'arch' });
  });

  it('joins adjacent quoted pieces, keeps empty values and drops a line whose quote is never closed', () => {
    expect(parseOsRelease('A="one"\'two\'three\nEMPTY=""\nBROKEN="open\nB=ok')).toEqual({ A: 'onetwothree', EMPTY: '', B: 'ok' });
  });

  it('accepts CRLF line endings and keeps the last of repeated keys', () => {
    expect(parseOsRelease('ID=first\r\nVERSION_ID="1"\r\nID=second\r\n')).toEqual({ ID: 'second', VERSION_ID: '1' });
  });
});

describe('distributions from real os-release files', () => {
  const cases: Array<[fixture: string, id: string, version: string | null, name: string, family: Family | null]> = [
    ['debian-12', 'debian', '12', 'Debian GNU/Linux 12 (bookworm)', 'debian'],
    ['ubuntu-22.04', 'ubuntu', '22.04', 'Ubuntu 22.04.4 LTS', 'debian'],
    ['ubuntu-24.04', 'ubuntu', '24.04', 'Ubuntu 24.04 LTS', 'debian'],
    ['linuxmint-21', 'linuxmint', '21.3', 'Linux Mint 21.3', 'debian'],
    ['pop-22.04', 'pop', '22.04', 'Pop!_OS 22.04 LTS', 'debian'],
    ['kali-rolling', 'kali', '2024.2', 'Kali GNU/Linux Rolling', 'debian'],
    ['fedora-40', 'fedora', '40', 'Fedora Linux 40 (Workstation Edition)', 'rhel'],
    ['rhel-9', 'rhel', '9.4', 'Red Hat Enterprise Linux 9.4 (Plow)', 'rhel'],
    ['centos-stream-9', 'centos', '9', 'CentOS Stream 9', 'rhel'],
    ['rocky-9', 'rocky', '9.4', 'Rocky Linux 9.4 (Blue Onyx)', 'rhel'],
    ['almalinux-9', 'almalinux', '9.4', 'AlmaLinux 9.4 (Seafoam Ocelot)', 'rhel'],
    ['amazon-2023', 'amzn', '2023', 'Amazon Linux 2023.5.20240624', 'rhel'],
    ['oracle-9', 'ol', '9.4', 'Oracle Linux Server 9.4', 'rhel'],
    ['arch', 'arch', null, 'Arch Linux', 'arch'],
    ['manjaro', 'manjaro', null, 'Manjaro Linux', 'arch'],
    ['endeavouros', 'endeavouros', null, 'EndeavourOS', 'arch'],
    ['alpine-3.20', 'alpine', '3.20.0', 'Alpine Linux v3.20', 'alpine'],
    ['opensuse-tumbleweed', 'opensuse-tumbleweed', '20240710', 'openSUSE Tumbleweed', 'suse'],
    ['opensuse-leap-15.6', 'opensuse-leap', '15.6', 'openSUSE Leap 15.6', 'suse'],
    ['sles-15', 'sles', '15.6', 'SUSE Linux Enterprise Server 15 SP6', 'suse'],
    ['gentoo', 'gentoo', '2.15', 'Gentoo Linux', null],
    ['void', 'void', null, 'Void Linux', null],
  ];

  it.each(cases)('%s is %s %s (%s), family %s', (fixture, id, version, name, family) => {
    const distribution = distributionOf(fixture);
    expect(distribution).toMatchObject({ id, version, name });
    expect(familyOf(distribution)).toBe(family);
  });

  it('splits ID_LIKE into words', () => {
    expect(distributionOf('rocky-9').idLike).toEqual(['rhel', 'centos', 'fedora']);
    expect(distributionOf('linuxmint-21').idLike).toEqual(['ubuntu', 'debian']);
    expect(distributionOf('debian-12').idLike).toEqual([]);
  });

  it('reads the commented-out lines of Tumbleweed as comments, not as VERSION', () => {
    expect(parseOsRelease(readFileSync(join(fixtures, 'opensuse-tumbleweed'), 'utf8')).VERSION).toBeUndefined();
  });

  it('falls back on NAME, then on "Linux", when PRETTY_NAME is missing', () => {
    expect(distributionFromOsRelease({ ID: 'x', NAME: 'X Linux' }).name).toBe('X Linux');
    expect(distributionFromOsRelease({})).toEqual({ id: 'linux', name: 'Linux', version: null, idLike: [] });
  });
});

describe('familyOf', () => {
  it('knows every listed distribution id by itself', () => {
    const table: Record<Exclude<Family, 'macos'>, string[]> = {
      debian: ['debian', 'ubuntu', 'linuxmint', 'pop', 'raspbian', 'kali', 'elementary', 'zorin', 'devuan', 'neon'],
      rhel: ['fedora', 'rhel', 'centos', 'rocky', 'almalinux', 'ol', 'amzn', 'nobara'],
      arch: ['arch', 'manjaro', 'endeavouros', 'garuda', 'artix'],
      alpine: ['alpine'],
      suse: ['opensuse-leap', 'opensuse-tumbleweed', 'sles', 'sled', 'opensuse-microos'],
    };
    for (const [family, ids] of Object.entries(table)) {
      for (const id of ids) expect(familyOf({ id, idLike: [] }), id).toBe(family);
    }
    expect(familyOf({ id: 'macos', idLike: [] })).toBe('macos');
  });

  it('falls back on the first ID_LIKE word it knows', () => {
    expect(familyOf({ id: 'bazzite', idLike: ['fedora'] })).toBe('rhel');
    expect(familyOf({ id: 'tuxedo', idLike: ['something', 'ubuntu', 'debian'] })).toBe('debian');
    expect(familyOf({ id: 'cachyos', idLike: ['arch'] })).toBe('arch');
    expect(familyOf({ id: 'opensuse-slowroll', idLike: ['opensuse', 'suse'] })).toBe('suse');
    expect(familyOf({ id: 'postmarketos', idLike: ['alpine'] })).toBe('alpine');
  });

  it('is null for a distribution with no known id or ID_LIKE word', () => {
    expect(familyOf({ id: 'nixos', idLike: [] })).toBeNull();
    expect(familyOf({ id: 'solus', idLike: ['unknown'] })).toBeNull();
  });
});

describe('normalisation', () => {
  it('maps x64, amd64 and x86_64 to x86_64 and arm64, aarch64 to aarch64', () => {
    for (const raw of ['x64', 'amd64', 'x86_64', 'AMD64']) expect(normaliseArch(raw)).toBe('x86_64');
    for (const raw of ['arm64', 'aarch64']) expect(normaliseArch(raw)).toBe('aarch64');
  });

  it('leaves other architectures and operating systems unknown', () => {
    for (const raw of ['armv7l', 'riscv64', 'ppc64le', 's390x', 'i686']) expect(normaliseArch(raw)).toBeNull();
    expect(normaliseOs('linux')).toBe('linux');
    expect(normaliseOs('darwin')).toBe('darwin');
    for (const raw of ['win32', 'freebsd', 'openbsd']) expect(normaliseOs(raw)).toBeNull();
  });
});

describe('detectEnvironmentMode', () => {
  const nothing = (_path: string): boolean => false;
  const detect = (
    environment: Record<string, string | undefined>,
    os = 'linux',
    fileExists = nothing,
    setting?: 'auto' | 'ci' | 'server' | 'workstation',
  ) =>
    detectEnvironmentMode({ environment, os, fileExists, setting });

  it('lets the config override everything, with full confidence', () => {
    expect(detect({ CI: 'true', DISPLAY: ':0' }, 'linux', nothing, 'server')).toEqual({
      mode: 'server',
      confidence: 1,
      indicators: ['config install.environment=server'],
      overridden: true,
    });
    expect(detect({ CI: 'true' }, 'linux', nothing, 'auto').overridden).toBe(false);
  });

  it('detects CI from CI=true or CI=1 with 0.95', () => {
    expect(detect({ CI: 'true', DISPLAY: ':0' })).toEqual({ mode: 'ci', confidence: 0.95, indicators: ['CI=true'], overridden: false });
    expect(detect({ CI: '1' })).toMatchObject({ mode: 'ci', confidence: 0.95, indicators: ['CI=1'] });
  });

  it('detects each CI service with 0.99 and lists every indicator found', () => {
    for (const name of ['GITHUB_ACTIONS', 'GITLAB_CI', 'BUILDKITE', 'CIRCLECI', 'TF_BUILD', 'TRAVIS']) {
      expect(detect({ [name]: 'true' }), name).toMatchObject({ mode: 'ci', confidence: 0.99, indicators: [`${name}=true`] });
    }
    expect(detect({ JENKINS_URL: 'https://jenkins.example.com/' })).toMatchObject({ mode: 'ci', confidence: 0.99, indicators: ['JENKINS_URL set'] });
    expect(detect({ TEAMCITY_VERSION: '2024.03' })).toMatchObject({ mode: 'ci', indicators: ['TEAMCITY_VERSION=2024.03'] });
    expect(detect({ CI: 'true', GITHUB_ACTIONS: 'true' })).toMatchObject({ mode: 'ci', confidence: 0.99, indicators: ['CI=true', 'GITHUB_ACTIONS=true'] });
  });

  it('does not take CI=false, CI=0 or an empty variable for CI', () => {
    for (const environment of [{ CI: 'false' }, { CI: '0' }, { CI: '' }, { GITHUB_ACTIONS: '' }, { TRAVIS: 'false' }]) {
      expect(detect({ ...environment, DISPLAY: ':0' }).mode).toBe('workstation');
    }
  });

  it('calls a machine with a local display a workstation', () => {
    expect(detect({ DISPLAY: ':0' })).toEqual({ mode: 'workstation', confidence: 0.9, indicators: ['DISPLAY=:0'], overridden: false });
    expect(detect({ WAYLAND_DISPLAY: 'wayland-0', DISPLAY: ':1' })).toMatchObject({
      mode: 'workstation',
      indicators: ['DISPLAY=:1', 'WAYLAND_DISPLAY=wayland-0'],
    });
  });

  it('calls macOS a workstation unless it is CI', () => {
    expect(detect({}, 'darwin')).toEqual({ mode: 'workstation', confidence: 0.9, indicators: ['macOS'], overridden: false });
    expect(detect({ SSH_CONNECTION: '10.0.0.2 51000 10.0.0.1 22' }, 'darwin').mode).toBe('workstation');
    expect(detect({ GITHUB_ACTIONS: 'true' }, 'darwin').mode).toBe('ci');
  });

  it('calls Linux without a display a server, more surely with each sign', () => {
    expect(detect({})).toEqual({ mode: 'server', confidence: 0.6, indicators: ['no DISPLAY or WAYLAND_DISPLAY'], overridden: false });
    expect(detect({ SSH_CONNECTION: '10.0.0.2 51000 10.0.0.1 22' })).toEqual({
      mode: 'server',
      confidence: 0.7,
      indicators: ['SSH_CONNECTION set', 'no DISPLAY or WAYLAND_DISPLAY'],
      overridden: false,
    });
    const docker = (path: string): boolean => path === '/.dockerenv';
    expect(detect({ SSH_CONNECTION: '10.0.0.2 51000 10.0.0.1 22', container: 'podman' }, 'linux', docker)).toEqual({
      mode: 'server',
      confidence: 0.8,
      indicators: ['SSH_CONNECTION set', '/.dockerenv exists', 'container=podman', 'no DISPLAY or WAYLAND_DISPLAY'],
      overridden: false,
    });
    expect(detect({}, 'linux', docker)).toMatchObject({ mode: 'server', confidence: 0.7, indicators: ['/.dockerenv exists', 'no DISPLAY or WAYLAND_DISPLAY'] });
  });

  it('does not count an X11 display forwarded over SSH as the machine\'s own', () => {
    expect(detect({ DISPLAY: 'localhost:10.0', SSH_CONNECTION: '10.0.0.2 51000 10.0.0.1 22' })).toMatchObject({
      mode: 'server',
      confidence: 0.7,
      indicators: ['SSH_CONNECTION set', 'DISPLAY=localhost:10.0 is forwarded over SSH, not local'],
    });
  });

  it('falls back on workstation with low confidence on other systems without any sign', () => {
    expect(detect({}, 'freebsd')).toEqual({ mode: 'workstation', confidence: 0.5, indicators: ['no CI, display or server indicators'], overridden: false });
    expect(detect({ SSH_CONNECTION: 'x' }, 'freebsd')).toMatchObject({ mode: 'server', confidence: 0.6, indicators: ['SSH_CONNECTION set'] });
  });
});
