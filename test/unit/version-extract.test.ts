import { describe, expect, it } from 'vitest';

import { extractVersion, parseVersion } from '../../src/core/version.ts';
import { capturedOutputs, recalledOutputs, versionOutputs } from '../fixtures/version-outputs/index.ts';
import type { VersionOutput } from '../fixtures/version-outputs/index.ts';

/** Compiled as src/audit/probe.ts compiles a catalog pattern. */
function patternOf(entry: VersionOutput): RegExp | undefined {
  return entry.pattern === undefined ? undefined : new RegExp(entry.pattern, 'm');
}

function title(entry: VersionOutput): string {
  return `${entry.tool} ${entry.args.join(' ')}`.trim();
}

const cases = versionOutputs.map((entry, index) => ({ name: `#${index} ${title(entry)} (${entry.source})`, entry }));
const patterned = versionOutputs.filter((entry) => entry.pattern !== undefined);

describe('the corpus of real version outputs', () => {
  it('holds at least 150 outputs captured on this machine, besides recalled ones', () => {
    expect(versionOutputs.length).toBeGreaterThanOrEqual(150);
    expect(capturedOutputs.length).toBeGreaterThanOrEqual(150);
    expect(capturedOutputs.every((entry) => entry.source === 'captured')).toBe(true);
    expect(recalledOutputs.every((entry) => entry.source === 'recalled')).toBe(true);
  });

  it('covers the awkward forms the issue names', () => {
    const outputs = versionOutputs.map((entry) => entry.output);
    const some = (test: RegExp) => outputs.some((output) => test.test(output));
    expect(some(/^openjdk version "/m)).toBe(true); // java -version on stderr
    expect(some(/^OpenSSH_9\.2p1 Debian/m)).toBe(true);
    expect(some(/^Python 2\.7/m)).toBe(true);
    expect(some(/out of date!/)).toBe(true);
    expect(some(/^Picked up JAVA_TOOL_OPTIONS/m)).toBe(true);
    expect(some(/libcurl\/[\d.]+ OpenSSL/)).toBe(true);
    expect(some(/^gcc \(Debian 12\.2\.0-14\+deb12u1\) 12\.2\.0/m)).toBe(true);
    expect(some(/^ldd \(/m)).toBe(true);
    expect(some(/^Docker version [\d.]+, build e6534b4/m)).toBe(true);
    expect(some(/^go version go1\.21\.3 linux\/amd64/m)).toBe(true);
    expect(some(/^Client Version: v[\d.]+-dispatcher/m)).toBe(true);
    expect(some(/^rustc 1\.95\.0 \(59807616e 2026-04-14\)/m)).toBe(true);
    expect(some(/^less 590/m)).toBe(true);
    expect(versionOutputs.some((entry) => entry.stream === 'stderr')).toBe(true);
    expect(versionOutputs.some((entry) => /^\d+(?:\.\d+)*\n$/.test(entry.output))).toBe(true); // a bare number
  });

  it('keeps patterned entries a small minority, each with a reason', () => {
    expect(patterned.length).toBeGreaterThan(0);
    expect(patterned.length).toBeLessThan(versionOutputs.length / 20);
    for (const entry of patterned) expect(entry.why?.length ?? 0, title(entry)).toBeGreaterThan(20);
  });

  it.each(patterned.map((entry) => ({ name: title(entry), entry })))('needs its pattern: $name', ({ entry }) => {
    // A pattern the generic extractor does not need belongs out of the catalog.
    expect(extractVersion(entry.output)).not.toBe(entry.expected);
  });
});

describe('extractVersion on real outputs', () => {
  it.each(cases)('$name', ({ entry }) => {
    expect(extractVersion(entry.output, patternOf(entry))).toBe(entry.expected);
  });

  it.each(cases.filter(({ entry }) => entry.expected !== null))('$name gives a version that parses', ({ entry }) => {
    expect(parseVersion(entry.expected!)).not.toBeNull();
  });
});

describe('extractVersion', () => {
  it('returns null when there is no version', () => {
    expect(extractVersion('')).toBeNull();
    expect(extractVersion('usage: tool [-h] [--verbose]\n')).toBeNull();
    expect(extractVersion('time (GNU Time) UNKNOWN\nLicense GPLv3+: GNU GPL version 3 or later\n')).toBeNull();
  });

  it('takes the first version, not a later one', () => {
    expect(extractVersion('tool 1.2.3\nbuilt with lib 4.5.6\n')).toBe('1.2.3');
  });

  it('prefers a version outside brackets to the packaging inside them, line by line', () => {
    expect(extractVersion('gdb (Debian 13.1-3) 13.1\n')).toBe('13.1');
    expect(extractVersion('This is perl 5, version 36, subversion 0 (v5.36.0) built for x86_64\n')).toBe('5.36.0');
    // A bracketed version on the first line beats an unbracketed one on a later line.
    expect(extractVersion('ansible [core 2.17.7]\n  python version = 3.12.3\n')).toBe('2.17.7');
  });

  it('skips warning lines, even when they carry numbers', () => {
    expect(extractVersion('WARNING: config 1.0 is deprecated\ntool 2.3.4\n')).toBe('2.3.4');
    expect(extractVersion('/usr/lib/python3.11/site.py:5: DeprecationWarning: old\n4.26.0\n')).toBe('4.26.0');
    expect(extractVersion('Picked up _JAVA_OPTIONS: -Dsun.java2d.uiScale=1.5\nopenjdk version "11.0.25"\n')).toBe('11.0.25');
    expect(extractVersion('npm notice New major version of npm available! 10.8.2 -> 11.0.0\n')).toBe('10.8.2');
  });

  it('falls back to a version on a warning line when nothing else has one', () => {
    expect(extractVersion('Warning: client version is 0.5.4\n')).toBe('0.5.4');
  });

  it('takes a lone number or date only from the first line', () => {
    expect(extractVersion('less 590 (GNU regular expressions)\nCopyright (C) 1984-2021\n')).toBe('590');
    expect(extractVersion('xxd 2022-01-14 by Juergen Weigert et al.\n')).toBe('2022-01-14');
    expect(extractVersion('tool\nLicense GPL version 3\nsince 2019\n')).toBeNull();
    expect(extractVersion('Copyright 2024 Someone\n')).toBeNull();
  });

  it('ignores terminal escape codes', () => {
    expect(extractVersion('\u001b[1mApache Maven 3.9.9\u001b[m\n')).toBe('3.9.9');
    expect(extractVersion('\u001b[38;5;208m1.2.3\u001b[0m')).toBe('1.2.3');
  });

  it('reads Windows and old Mac line endings', () => {
    expect(extractVersion('WARNING: 9.9.9 is old\r\ntool 1.2.3\r\n')).toBe('1.2.3');
    expect(extractVersion('WARNING: 9.9.9 is old\rtool 1.2.3\r')).toBe('1.2.3');
  });

  it('keeps the suffixes that belong to the version', () => {
    expect(extractVersion('OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024')).toBe('9.2p1');
    expect(extractVersion('Client Version: v1.30.5-dispatcher')).toBe('1.30.5-dispatcher');
    expect(extractVersion('Python 3.13.0a1')).toBe('3.13.0a1');
    expect(extractVersion('tool 1.2.3.post1')).toBe('1.2.3.post1');
    expect(extractVersion('java version "1.8.0_202"')).toBe('1.8.0_202');
    expect(extractVersion('go version go1.21.3 linux/amd64')).toBe('1.21.3');
  });

  describe('with a pattern', () => {
    it('takes the first group that matched', () => {
      expect(extractVersion('Python 3.11.7\nFlask 3.1.3\n', /^Flask (\S+)/m)).toBe('3.1.3');
      expect(extractVersion('x 1.2', /(?:a(\d))|x (\S+)/)).toBe('1.2');
    });

    it('prefers a group named version', () => {
      expect(extractVersion('tool 1.2.3 (build 456)', /(?<name>\w+) (?<version>\S+)/)).toBe('1.2.3');
    });

    it('takes the whole match when there is no group, without a leading v', () => {
      expect(extractVersion('release v4.5.6', /v\d+\.\d+\.\d+/)).toBe('4.5.6');
    });

    it('gives null when the pattern does not match or captures nothing', () => {
      expect(extractVersion('tool 1.2.3', /^Flask (\S+)/m)).toBeNull();
      expect(extractVersion('tool  ', /tool(\s*)/)).toBeNull();
    });

    it('gives the same answer every time with a global pattern', () => {
      const pattern = /tool (\S+)/g;
      expect(extractVersion('tool 1.2.3', pattern)).toBe('1.2.3');
      expect(extractVersion('tool 1.2.3', pattern)).toBe('1.2.3');
      expect(pattern.lastIndex).toBe(0);
    });

    it('matches against the text without escape codes', () => {
      expect(extractVersion('\u001b[1mFlask 3.1.3\u001b[0m', /^Flask (\S+)$/m)).toBe('3.1.3');
    });
  });
});

