import { describe, expect, it } from 'vitest';

import { compareParsed, compareVersions, isPrerelease, parseVersion, versionDelta, versionFromTag } from '../../src/core/version.ts';

describe('parseVersion', () => {
  it.each([
    ['1.2.3', [1, 2, 3]],
    ['v1.2.3', [1, 2, 3]],
    ['V1.2.3', [1, 2, 3]],
    ['1.2', [1, 2]],
    ['7', [7]],
    ['go1.21.3', [1, 21, 3]],
    ['2024.01.05', [2024, 1, 5]],
    ['20250922', [20250922]],
    ['2022-01-14', [2022, 1, 14]],
    ['1.0.0-rc.1', [1, 0, 0]],
    ['9.2p1', [9, 2]],
    ['1.30.5-dispatcher', [1, 30, 5]],
    ['12.2.0-14+deb12u1', [12, 2, 0]],
    ['1:2.36-9+deb12u14', [2, 36]],
    ['6.4.20221231', [6, 4, 20221231]],
    ['  3.11.7\n', [3, 11, 7]],
  ])('%s has release %j', (text, release) => {
    expect(parseVersion(text)?.release).toEqual(release);
  });

  it('drops a leading v or name from raw and keeps the rest', () => {
    expect(parseVersion('v1.2.3-rc.1')?.raw).toBe('1.2.3-rc.1');
    expect(parseVersion('go1.23.4')?.raw).toBe('1.23.4');
    expect(parseVersion('OpenSSH_9.2p1')?.raw).toBe('9.2p1');
  });

  it.each([
    ['1.0.0-rc.1', 'rc', 1],
    ['1.0.0-rc1', 'rc', 1],
    ['1.0.0-RC2', 'rc', 2],
    ['3.13.0a1', 'a', 1],
    ['3.13.0b2', 'b', 2],
    ['3.13.0rc1', 'rc', 1],
    ['2.0.0-beta', 'beta', 0],
    ['1.0.0-alpha.3', 'alpha', 3],
    ['2.0.0.dev1', 'dev', 1],
    ['1.85.0-nightly', 'nightly', 0],
    ['0.14.0-dev.2577+271452d22', 'dev', 2577],
    ['9.0.100-preview.7', 'preview', 7],
    ['1.0~rc1-1', 'rc', 1],
    ['4.0.0-SNAPSHOT', 'snapshot', 0],
  ])('%s is the pre-release %s %d', (text, label, number) => {
    expect(parseVersion(text)?.prerelease).toMatchObject({ label, number });
  });

  it.each([
    ['9.2p1', 1],
    ['1.9.13p3', 3],
    ['1.2.3.post2', 2],
    ['1.2.3-post4', 4],
    ['1.8.0_392', 392],
    ['3.3a', 1],
    ['1.1.1w', 23],
    ['7.1.4r165100', 165100],
    ['1.2.3', 0],
  ])('%s has post-release %d', (text, post) => {
    const version = parseVersion(text);
    expect(version?.post).toBe(post);
    expect(version?.prerelease).toBeNull();
  });

  it('does not read a build number after an update as a beta', () => {
    expect(parseVersion('1.8.0_392-b08')?.prerelease).toBeNull();
  });

  it.each(['', 'latest', 'stable', 'unknown', 'v', '.1.2', `${'9'.repeat(30)}.1`])('rejects %j', (text) => {
    expect(parseVersion(text)).toBeNull();
  });
});

describe('compareVersions', () => {
  it.each([
    ['1.2', '1.2.0'],
    ['v1.2.3', '1.2.3'],
    ['go1.21.3', '1.21.3'],
    ['1.30.5-dispatcher', '1.30.5'],
    ['0.148.0-c0d9beba', '0.148.0'],
    ['12.2.0-14+deb12u1', '12.2.0'],
    ['1.2.3+build.5', '1.2.3'],
    ['2024.01.05', '2024.1.5'],
    ['1.0.0-rc1', '1.0.0-rc.1'],
    ['2.36-9+deb12u14', '2.36'],
    ['1:7.2+dfsg-7', '7.2'],
    ['unknown', 'unknown'],
  ])('%s equals %s', (a, b) => {
    expect(compareVersions(a, b)).toBe(0);
    expect(compareVersions(b, a)).toBe(0);
  });

  it.each([
    ['1.9', '1.10'],
    ['1.2.3', '1.2.4'],
    ['1.2', '1.2.1'],
    ['2024.01.05', '2024.10.01'],
    ['20250922', '20251001'],
    ['2022-01-14', '2023-01-01'],
    ['9.2', '9.2p1'],
    ['9.2p1', '9.2p2'],
    ['9.2p1', '9.3'],
    ['1.0.0-rc.1', '1.0.0-rc.2'],
    ['1.0.0-rc.2', '1.0.0'],
    ['1.0.0-alpha', '1.0.0-beta'],
    ['1.0.0-beta.11', '1.0.0-rc.1'],
    ['3.13.0a1', '3.13.0b1'],
    ['3.13.0b1', '3.13.0rc1'],
    ['3.13.0rc1', '3.13.0'],
    ['3.13.0', '3.13.0.post1'],
    ['2.0.0.dev1', '2.0.0a1'],
    ['1.85.0-nightly', '1.85.0'],
    ['1.0.0', '1.0.1-rc.1'],
    ['3.3', '3.3a'],
    ['3.3a', '3.3b'],
    ['3.3a', '3.4'],
    ['1.1.1v', '1.1.1w'],
    ['1.8.0_202', '1.8.0_392'],
    ['1.8.0_392', '11.0.25'],
    ['17.0.15', '21'],
    ['v0.9.9', 'v0.10.0'],
    ['latest', '0.0.1'],
    ['alpha', 'beta'],
  ])('%s < %s', (lower, higher) => {
    expect(compareVersions(lower, higher)).toBe(-1);
    expect(compareVersions(higher, lower)).toBe(1);
  });

  it('is a consistent total order over mixed forms', () => {
    const versions = [
      '1.0.0-rc.1', '1.0.0', 'v1.0', '1.0.0p1', '0.9', '1.0.0-dispatcher', '1.0.0a1', '1.0.1', 'nightly',
      '2024.01.05', '20250922', '9.2p1', '9.2', '9.3', 'latest', '1.0.0+build', '1.0.0-beta', '1.0.0.post1',
    ];
    for (const a of versions) {
      for (const b of versions) {
        expect(Math.sign(compareVersions(a, b)) + Math.sign(compareVersions(b, a)), `${a} vs ${b}`).toBe(0);
        for (const c of versions) {
          if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) {
            expect(compareVersions(a, c), `${a} <= ${b} <= ${c}`).toBeLessThanOrEqual(0);
          }
        }
      }
    }
  });
});

describe('compareParsed', () => {
  it('orders parsed versions as compareVersions orders their text', () => {
    const a = parseVersion('1.0.0-rc.1')!;
    const b = parseVersion('1.0.0')!;
    expect(compareParsed(a, b)).toBe(-1);
    expect(compareParsed(b, a)).toBe(1);
    expect(compareParsed(b, parseVersion('v1.0')!)).toBe(0);
  });
});

describe('sorting', () => {
  /** A small deterministic generator so the shuffles differ but repeat. */
  function shuffled<T>(items: readonly T[], seed: number): T[] {
    const result = [...items];
    let state = seed;
    for (let index = result.length - 1; index > 0; index--) {
      state = (state * 1103515245 + 12345) % 2147483648;
      const other = state % (index + 1);
      [result[index], result[other]] = [result[other]!, result[index]!];
    }
    return result;
  }

  const ascending = [
    'not-a-version',
    '0.9.9',
    '1.0.0-dev',
    '1.0.0-alpha.1',
    '1.0.0-beta',
    '1.0.0-rc.1',
    '1.0.0-rc.2',
    '1.0.0',
    '1.0.0p1',
    '1.0.1',
    '1.2',
    '1.9',
    '1.10',
    '2.0.0a1',
    '2.0.0b1',
    '2.0.0rc1',
    '2.0.0',
    '9.2',
    '9.2p1',
    '9.3',
    '2024.01.05',
    '2024.10.01',
    '20250922',
  ];

  it.each([1, 2, 3, 42, 2024, 99991])('sorts a shuffled list into order (seed %d)', (seed) => {
    const input = shuffled(ascending, seed);
    expect(input).not.toEqual(ascending);
    expect([...input].sort(compareVersions)).toEqual(ascending);
    expect([...input].sort((a, b) => compareVersions(b, a))).toEqual([...ascending].reverse());
  });

  it('keeps equal versions in their given order', () => {
    expect(['1.10', 'v1.2.0', '1.2', '1.2.0-14+deb12u1', '1.9'].sort(compareVersions)).toEqual(['v1.2.0', '1.2', '1.2.0-14+deb12u1', '1.9', '1.10']);
    expect(['1.2.0-14+deb12u1', '1.2', 'v1.2.0'].sort(compareVersions)).toEqual(['1.2.0-14+deb12u1', '1.2', 'v1.2.0']);
  });
});

describe('isPrerelease', () => {
  it.each(['1.0.0-rc.1', '3.13.0a1', '3.13.0b1', '3.13.0rc1', '2.0.0.dev1', '1.85.0-nightly', '1.0.0-beta.56', '9.0.100-rc.2.24474.11', '4.0.0-SNAPSHOT', 'v2.0.0-preview.3'])(
    '%s is a pre-release',
    (text) => {
      expect(isPrerelease(text)).toBe(true);
    },
  );

  it.each(['1.0.0', 'v1.2.3', '9.2p1', '3.3a', '1.30.5-dispatcher', '12.2.0-14+deb12u1', '1.9.0-stable', '2.1.0-release-394', '1.2.3+rc1', '1.8.0_392-b08', '0.148.0-c0d9beba', 'latest'])(
    '%s is not a pre-release',
    (text) => {
      expect(isPrerelease(text)).toBe(false);
    },
  );
});

describe('versionDelta', () => {
  it.each([
    ['1.2.3', '2.0.0', 'major'],
    ['1.2.3', '1.3.0', 'minor'],
    ['1.2.3', '1.2.4', 'patch'],
    ['1.2', '1.2.1', 'patch'],
    ['1.2', '1.3', 'minor'],
    ['v1.9', '1.10', 'minor'],
    ['go1.21.3', 'go1.22.0', 'minor'],
    ['9.2p1', '9.2p2', 'patch'],
    ['9.2p1', '9.3p1', 'minor'],
    ['1.0.0-rc.1', '1.0.0', 'patch'],
    ['0.9.0', '1.0.0-rc.1', 'major'],
    ['2024.01.05', '2025.01.05', 'major'],
    ['2024.01.05', '2024.10.01', 'minor'],
    ['1.30.5-dispatcher', '1.31.0', 'minor'],
    ['latest', '1.2.3', 'patch'],
  ])('%s to %s is %s', (older, newer, delta) => {
    expect(versionDelta(older, newer)).toBe(delta);
  });
});

describe('versionFromTag', () => {
  it.each([
    ['v1.2.3', '1.2.3'],
    ['1.2.3', '1.2.3'],
    ['jq-1.7.1', '1.7.1'],
    ['bun-v1.1.0', '1.1.0'],
    ['go1.23.4', '1.23.4'],
    ['go1.22rc1', '1.22rc1'],
    ['release-2024.01.05', '2024.01.05'],
    ['cli/v2.0.1', '2.0.1'],
    ['rust-v0.1.0', '0.1.0'],
    ['v1.0.0-rc.1', '1.0.0-rc.1'],
    ['v20250922', '20250922'],
    ['release-20250922', '20250922'],
    ['v2', '2'],
    ['jdk-17+35', '17+35'],
    ['curl-8_11_0', '8.11.0'],
    ['OpenSSL_1_1_1w', '1.1.1w'],
    ['V_10_2_P1', '10.2p1'],
    ['V_9_9_P2', '9.9p2'],
    ['refs/tags/v1.2.3', '1.2.3'],
    ['refs/tags/v1.2.3^{}', '1.2.3'],
    ['@scope/pkg@4.5.6', '4.5.6'],
    ['llvmorg-17.0.6', '17.0.6'],
    ['  v1.2.3\n', '1.2.3'],
  ])('%s names %s', (tag, version) => {
    expect(versionFromTag(tag)).toBe(version);
  });

  it.each(['nightly', 'latest', 'stable', '', 'k8s'])('%j names no version', (tag) => {
    expect(versionFromTag(tag)).toBeNull();
  });

  it.each([
    ['cli-v2.0.1', 'cli-v', '2.0.1'],
    ['cli-v2.0.1', 'cli-', '2.0.1'],
    ['cli/v3.4.5', 'cli/', '3.4.5'],
    ['tool-20250922', 'tool-', '20250922'],
    ['v1.2.3', 'v', '1.2.3'],
  ])('%s with prefix %s names %s', (tag, prefix, version) => {
    expect(versionFromTag(tag, prefix)).toBe(version);
  });

  it('ignores tags without the prefix (other packages of a monorepo)', () => {
    expect(versionFromTag('sdk-v3.0.0', 'cli-v')).toBeNull();
    expect(versionFromTag('v3.0.0', 'cli-v')).toBeNull();
  });

  it('treats an empty prefix as none', () => {
    expect(versionFromTag('v1.2.3', '')).toBe('1.2.3');
  });

  it('gives versions that compare as the tags sort', () => {
    const tags = ['v1.10.0', 'v1.9.0', 'v1.10.0-rc.1', 'v2.0.0-beta.1', 'v1.2.0'];
    const versions = tags.map((tag) => versionFromTag(tag)!).sort(compareVersions);
    expect(versions).toEqual(['1.2.0', '1.9.0', '1.10.0-rc.1', '1.10.0', '2.0.0-beta.1']);
  });
});
