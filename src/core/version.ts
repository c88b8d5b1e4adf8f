/**
 * Parsing and comparison for the versions real tools print and real upstreams
 * tag: `v1.2.3`, `1.2`, `go1.21.3`, `2024.01.05`, `20250922`, `1.0.0-rc.1`,
 * `9.2p1`, `3.13.0a1`, `1.30.5-dispatcher`, `12.2.0-14+deb12u1`.
 *
 * semver is too strict for these (it rejects `1.2`, `9.2p1` and dates), so
 * this module keeps its own total order: release numbers first (missing parts
 * count as zero), then pre-releases before the release, then post-releases
 * (`p1`, `.post1`) after it. Build and distribution suffixes never count.
 */

export interface Version {
  /** The text the version was parsed from, without a leading `v`. */
  readonly raw: string;
  readonly release: readonly number[];
  /** Present for pre-releases: the rank of its label, and its number. */
  readonly prerelease: { readonly label: string; readonly rank: number; readonly number: number } | null;
  /** Post-release number (`9.2p1` is 1), zero when there is none. */
  readonly post: number;
}

export type VersionDelta = 'major' | 'minor' | 'patch';

const PRERELEASE_RANK: Record<string, number> = {
  dev: 0,
  snapshot: 0,
  nightly: 0,
  canary: 0,
  next: 0,
  alpha: 1,
  a: 1,
  ea: 1,
  m: 1,
  beta: 2,
  b: 2,
  pre: 3,
  preview: 3,
  rc: 4,
  c: 4,
};

/** One version-looking token; not preceded by a digit or a dot. */
const TOKEN =
  /(?<![\d.])v?(\d+(?:\.\d+)+(?:[a-z]+\d*)?(?:[-+~][0-9a-z]+(?:[.+~-][0-9a-z]+)*)?)/i;
const TOKEN_GLOBAL = new RegExp(TOKEN.source, 'gi');
/** A bare number after the word "version" or a `v`: `less 590` needs a pattern. */
const BARE_NUMBER = /\b(?:version\s+v?|v)(\d+)\b/i;
/** Lines that carry warnings rather than the version (`terraform`, `java`). */
const NOISE_LINE = /^\s*(?:warn(?:ing)?\b|deprecat|note:|error\b|\[warn|picked up _java_options)/i;

export function parseVersion(text: string): Version | null {
  const raw = text.trim().replace(/^v(?=\d)/i, '');
  const head = /^(\d+(?:\.\d+)*)/.exec(raw);
  if (!head) return null;
  const release = head[1]!.split('.').map((part) => Number.parseInt(part, 10));
  if (release.some((part) => !Number.isSafeInteger(part))) return null;
  let rest = raw.slice(head[1]!.length);
  let prerelease: Version['prerelease'] = null;
  let post = 0;

  const postMatch = /^(?:p|\.post|-post|\.r|_p)(\d+)/i.exec(rest);
  if (postMatch) {
    post = Number.parseInt(postMatch[1]!, 10);
    rest = rest.slice(postMatch[0].length);
  }
  const preMatch = /^[-.~_]?([a-z]+)\.?(\d*)/i.exec(rest);
  if (preMatch) {
    const label = preMatch[1]!.toLowerCase();
    const rank = PRERELEASE_RANK[label];
    if (rank !== undefined) {
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
 * Finds the version in a tool's output. With a pattern, the first capture
 * group of its first match (or the whole match) is taken. Without one, the
 * first version-looking token on a line that is not a warning, then on any
 * line, then a bare number after "version".
 */
export function extractVersion(output: string, pattern?: RegExp): string | null {
  if (pattern) {
    const match = pattern.exec(output);
    if (!match) return null;
    const captured = (match[1] ?? match[0]).trim();
    return captured.replace(/^v(?=\d)/i, '') || null;
  }
  const lines = output.split(/\r?\n/);
  for (const line of lines) {
    if (NOISE_LINE.test(line)) continue;
    const match = TOKEN.exec(line);
    if (match) return match[1]!;
  }
  const anywhere = TOKEN.exec(output);
  if (anywhere) return anywhere[1]!;
  const bare = BARE_NUMBER.exec(output);
  return bare ? bare[1]! : null;
}

/**
 * Normalises an upstream tag (`v1.2.3`, `jq-1.7.1`, `bun-v1.1.0`, `go1.23.4`,
 * `release-2024.01.05`) to the version it names, or null when none is found.
 */
export function versionFromTag(tag: string, prefix?: string): string | null {
  let text = tag.trim();
  if (prefix && text.startsWith(prefix)) text = text.slice(prefix.length);
  if (/^v?\d+$/i.test(text)) return text.replace(/^v/i, '');
  const match = TOKEN.exec(text);
  return match ? match[1]! : null;
}

/** Every version-looking token in a text, in order (for listings). */
export function allVersionTokens(text: string): string[] {
  return [...text.matchAll(TOKEN_GLOBAL)].map((match) => match[1]!);
}
