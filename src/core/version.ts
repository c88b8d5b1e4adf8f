/**
 * Parsing and comparison for the versions real tools print and real upstreams
 * tag: `v1.2.3`, `1.2`, `go1.21.3`, `2024.01.05`, `20250922`, `2022-01-14`,
 * `1.0.0-rc.1`, `9.2p1`, `3.13.0a1`, `3.3a`, `1.8.0_392`, `1.30.5-dispatcher`,
 * `12.2.0-14+deb12u1`.
 *
 * semver is too strict for these (it rejects `1.2`, `9.2p1` and dates), so
 * this module keeps its own total order: release numbers first (missing parts
 * count as zero), then pre-releases before the release, then post-releases
 * (`p1`, `.post1`, `_392`, a lone letter as in `3.3a` or `1.1.1w`) after it.
 * Build, vendor and distribution suffixes (`+deb12u1`, `-dispatcher`,
 * `-14`) never count.
 */

export interface Version {
  /** The text the version was parsed from, without a leading `v` or name (`go`, `jq-`). */
  readonly raw: string;
  readonly release: readonly number[];
  /** Present for pre-releases: the rank of its label, and its number. */
  readonly prerelease: { readonly label: string; readonly rank: number; readonly number: number } | null;
  /** Post-release number (`9.2p1` is 1, `3.3a` is 1, `1.1.1w` is 23), zero when there is none. */
  readonly post: number;
}

export type VersionDelta = 'major' | 'minor' | 'patch';

const PRERELEASE_RANK: Readonly<Record<string, number>> = {
  dev: 0,
  snapshot: 0,
  nightly: 0,
  canary: 0,
  next: 0,
  alpha: 1,
  a: 1,
  ea: 1,
  m: 1,
  milestone: 1,
  beta: 2,
  b: 2,
  pre: 3,
  preview: 3,
  rc: 4,
  c: 4,
  cr: 4,
};

/**
 * One version-looking token: at least two dotted numbers, not preceded by a
 * digit or a dot (so `go1.21.3` and `OpenSSH_9.2p1` match but the middle of
 * `10.1.2.3` does not), with the suffixes real versions carry.
 */
const TOKEN_SOURCE = [
  String.raw`(?<![\d.])v?(`,
  String.raw`\d+(?:\.\d+)+`,
  // `9.2p1`, `3.13.0a1`, `3.3a`, `1.1.1w`
  String.raw`(?:[a-z]+\d*)?`,
  // Python's `1.2.3.post1`, `2.0.0.dev1`
  String.raw`(?:\.(?:post|dev|rc|alpha|beta|pre)\d*)?`,
  // Java 8's `1.8.0_392`
  String.raw`(?:_\d+)?`,
  // `-rc.1`, `-14+deb12u1`, `+k3s1`, `~deb12u1`, `-dispatcher`
  String.raw`(?:[-+~][0-9a-z]+(?:[.+~-][0-9a-z]+)*)?`,
  ')',
].join('');
const TOKEN = new RegExp(TOKEN_SOURCE, 'i');

/**
 * A lone number (`less 590`, `openjdk version "21"`, `iputils 20221126`) or
 * an ISO date (`xxd 2022-01-14`). Only tried on the first line, and only when
 * no dotted version appears anywhere: elsewhere lone numbers are years,
 * counts and licence versions ("GPL version 3").
 */
const BARE = /(?<![\w.:/+-])v?(?:(\d{4}-\d{2}-\d{2})(?!\d)|(\d+)(?![\w.:/+-]))/i;

/**
 * Lines that carry warnings, notices or update hints rather than the version:
 * `WARNING: ...`, `perl: warning: ...`, `npm warn ...`, Python's
 * `file.py:5: DeprecationWarning: ...`, `(node:123) ...`, the JVM's
 * `Picked up JAVA_TOOL_OPTIONS: ...`, Terraform's boxed diagnostics, and
 * "a new release is available" notices (which name a newer version).
 */
const NOISE_LINES: readonly RegExp[] = [
  /^\s*(?:[\w./-]+:\s*)?(?:warn(?:ing)?s?|deprecat\w*|error|err!|note|notice)\b/i,
  /^\s*npm (?:warn|notice|err)/i,
  /\b\w*(?:Warning|Error):/,
  /^\s*\(node:\d+\)/,
  /^\s*picked up \w*options\b/i,
  /^\s*[│╷╵┃]/,
  /^\s*\[notice\]/i,
  /\bnew (?:major |minor |patch )?(?:release|version)\b.*\bavailable\b/i,
  /\b(?:update available|out of date|you can update)\b/i,
];

/** Terminal escape sequences: colours (`mvn` prints bold even into a pipe) and titles. */
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

/** A leading name before the number: `v`, `go`, `jq-`, `bun-v`, `OpenSSH_`, `cli/v`. */
const LEADING_NAME = /^(?:[a-z][a-z_-]*?[-_/]?)?v?(?=\d)/i;

export function parseVersion(text: string): Version | null {
  // A Debian epoch (`1:2.36-9`) orders archive entries, not upstream releases.
  const raw = text.trim().replace(LEADING_NAME, '').replace(/^\d+:(?=\d)/, '');
  const date = /^(\d{4})-(\d{2})-(\d{2})(?!\d)/.exec(raw);
  const head = date ? date[0] : /^\d+(?:\.\d+)*/.exec(raw)?.[0];
  if (head === undefined) return null;
  const release = (date ? date.slice(1) : head.split('.')).map((part) => Number.parseInt(part ?? '', 10));
  if (release.some((part) => !Number.isSafeInteger(part))) return null;

  const rest = raw.slice(head.length);
  let prerelease: Version['prerelease'] = null;
  let post = 0;
  const postMatch = /^(?:[.-]?post|p|r|_p?|\.r)(\d+)/i.exec(rest);
  const letter = /^([a-z])(?![a-z\d])/i.exec(rest);
  if (postMatch) {
    post = Number.parseInt(postMatch[1]!, 10);
  } else if (letter) {
    // `3.3a`, `1.1.1w`: a patch letter, not an alpha (an alpha has a number: `3.13.0a1`).
    post = letter[1]!.toLowerCase().charCodeAt(0) - 96;
  } else {
    // The label must end the word: `-c0d9beba` (a commit hash) is no release candidate.
    const preMatch = /^[-.~_]?([a-z]+)[-.]?(\d*)(?![a-z\d])/i.exec(rest);
    const label = preMatch?.[1]?.toLowerCase();
    const rank = label === undefined ? undefined : PRERELEASE_RANK[label];
    if (preMatch && label !== undefined && rank !== undefined) {
      prerelease = { label, rank, number: preMatch[2] ? Number.parseInt(preMatch[2], 10) : 0 };
    }
  }
  return { raw, release, prerelease, post };
}

/** Negative when a < b, zero when equal, positive when a > b. */
export function compareParsed(a: Version, b: Version): number {
  const length = Math.max(a.release.length, b.release.length);
  for (let index = 0; index < length; index++) {
    const difference = (a.release[index] ?? 0) - (b.release[index] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  if (a.prerelease && !b.prerelease) return -1;
  if (!a.prerelease && b.prerelease) return 1;
  if (a.prerelease && b.prerelease) {
    const rank = a.prerelease.rank - b.prerelease.rank;
    if (rank !== 0) return Math.sign(rank);
    const number = a.prerelease.number - b.prerelease.number;
    if (number !== 0) return Math.sign(number);
  }
  return Math.sign(a.post - b.post);
}

/**
 * Compares two version strings. Unparseable versions sort before parseable
 * ones and compare equal to each other only when their text is equal.
 */
export function compareVersions(a: string, b: string): number {
  const left = parseVersion(a);
  const right = parseVersion(b);
  if (left && right) return compareParsed(left, right);
  if (!left && !right) return a === b ? 0 : a < b ? -1 : 1;
  return left ? 1 : -1;
}

export function isPrerelease(text: string): boolean {
  return parseVersion(text)?.prerelease != null;
}

/** How far apart an older and a newer version are. */
export function versionDelta(older: string, newer: string): VersionDelta {
  const from = parseVersion(older);
  const to = parseVersion(newer);
  if (!from || !to) return 'patch';
  if ((from.release[0] ?? 0) !== (to.release[0] ?? 0)) return 'major';
  if ((from.release[1] ?? 0) !== (to.release[1] ?? 0)) return 'minor';
  return 'patch';
}

/**
 * Splits a line into the text outside brackets and the text inside them, each
 * keeping its length (the other part blanked) so tokens cannot run together.
 * `gcc (Debian 12.2.0-14+deb12u1) 12.2.0` names the packaging in brackets and
 * the version outside; `perl` has only `(v5.36.0)`.
 */
function splitBrackets(line: string): { outside: string; inside: string } {
  let depth = 0;
  let outside = '';
  let inside = '';
  for (const character of line) {
    if (character === '(' || character === '[') {
      depth++;
      outside += ' ';
      inside += ' ';
    } else if ((character === ')' || character === ']') && depth > 0) {
      depth--;
      outside += ' ';
      inside += ' ';
    } else if (depth > 0) {
      outside += ' ';
      inside += character;
    } else {
      outside += character;
      inside += ' ';
    }
  }
  return { outside, inside };
}

function isNoise(line: string): boolean {
  return NOISE_LINES.some((noise) => noise.test(line));
}

/**
 * Finds the version in a tool's output. With a pattern, its named group
 * `version`, else its first group that matched, else the whole match. Without
 * one, in order:
 * 1. the first dotted version on a line that is not a warning, looking
 *    outside brackets before inside them, line by line;
 * 2. a lone number or ISO date on the first such line (`less 590`);
 * 3. a dotted version on a warning line (a tool that prints only warnings).
 */
export function extractVersion(output: string, pattern?: RegExp): string | null {
  const text = output.replace(ANSI, '');
  if (pattern) {
    // A global or sticky pattern would carry lastIndex from call to call.
    const match = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')).exec(text);
    if (!match) return null;
    const captured = match.groups?.['version'] ?? match.slice(1).find((group) => group !== undefined) ?? match[0];
    const version = captured.trim().replace(/^v(?=\d)/i, '');
    return version === '' ? null : version;
  }
  const lines = text.split(/\r\n|\r|\n/);
  const kept = lines.filter((line) => !isNoise(line));
  for (const line of kept) {
    const { outside, inside } = splitBrackets(line);
    const match = TOKEN.exec(outside) ?? TOKEN.exec(inside);
    if (match) return match[1]!;
  }
  const first = kept.find((line) => line.trim() !== '' && !/^\s*copyright\b/i.test(line));
  if (first !== undefined) {
    const { outside, inside } = splitBrackets(first);
    const bare = BARE.exec(outside) ?? BARE.exec(inside);
    if (bare) return (bare[1] ?? bare[2])!;
  }
  for (const line of lines) {
    const match = TOKEN.exec(line);
    if (match) return match[1]!;
  }
  return null;
}

/**
 * Normalises an upstream tag (`v1.2.3`, `jq-1.7.1`, `bun-v1.1.0`, `go1.23.4`,
 * `release-2024.01.05`, `cli/v2.0.1`, `curl-8_11_0`, `refs/tags/v1.2.3^{}`)
 * to the version it names, or null when none is found. With a prefix, only
 * tags starting with it count (a monorepo's `cli-v` tags), and others give null.
 */
export function versionFromTag(tag: string, prefix?: string): string | null {
  let text = tag.trim().replace(/^refs\/tags\//, '').replace(/\^\{\}$/, '');
  if (prefix) {
    if (!text.startsWith(prefix)) return null;
    text = text.slice(prefix.length);
  }
  // curl, old OpenSSL and OpenSSH tag with underscores: `curl-8_11_0`,
  // `OpenSSL_1_1_1w`, `V_10_2_P1` (a portable release: 10.2p1).
  if (!/\d\.\d/.test(text) && /\d_\d/.test(text)) {
    text = text.replace(/(\d)_(?=\d)/g, '$1.').replace(/(\d)_p(\d+)/gi, '$1p$2');
  }
  const token = TOKEN.exec(text);
  if (token) return token[1]!;
  // Single numbers and dates: `v20250922`, `release-2024-01-05`, `jdk-17+35`.
  const bare = /(?<![\d.])v?(\d+(?:[-+~][0-9a-z]+(?:[.+~-][0-9a-z]+)*)?)$/i.exec(text);
  return bare ? bare[1]! : null;
}
