import type { Upstream } from '../../catalog/schema.ts';
import { compareVersions } from '../../core/version.ts';
import {
  escapeRegExp,
  etagFor,
  highest,
  miss,
  notModified,
  safeDecode,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type DebianUpstream = Extract<Upstream, { source: 'debian' }>;

/**
 * The newest version a Debian (or Ubuntu) archive holds of a source package,
 * from its pool folder: every `<package>_<version>.dsc` there. The upstream
 * part is reported: no epoch (never in file names anyway), no Debian
 * revision, no repack suffix (`+dfsg`, `+ds`).
 */
export async function latestFromDebian(upstream: DebianUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const archive = upstream.archive ?? 'debian';
  const base = trimSlash(archive === 'ubuntu' ? context.endpoints.ubuntu : context.endpoints.debian);
  const folder = `${base}/pool/main/${poolPrefix(upstream.package)}/${upstream.package}/`;
  const response = await context.http.get(folder, { accept: 'text/html', etag: etagFor(context, 'pool') });
  if (response.notModified) return notModified(context, 'pool', folder);
  const pattern = new RegExp(`(?<![\\w.+-])${escapeRegExp(upstream.package)}_([^_"'<>\\s/]+?)\\.dsc(?![\\w.-])`, 'g');
  const candidates: Array<{ version: string; full: string; file: string }> = [];
  for (const match of response.body.matchAll(pattern)) {
    const full = safeDecode(match[1]!);
    candidates.push({ version: upstreamPart(full), full, file: `${upstream.package}_${full}.dsc` });
  }
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(folder, `no ${upstream.package}_<version>.dsc file in the pool`);
  // Among equal upstream versions, the highest Debian revision names the file.
  const file = candidates
    .filter((candidate) => compareVersions(candidate.version, best.version) === 0)
    .sort((left, right) => compareVersions(right.full.replace(/^.*-/, ''), left.full.replace(/^.*-/, '')))[0]!.file;
  return withEtag({ version: best.version, url: `${folder}${file}`, method: 'pool' }, response);
}

/** Pool folders are named by the first letter, or the first four for `lib*` packages. */
export function poolPrefix(name: string): string {
  return name.startsWith('lib') && name.length > 3 ? name.slice(0, 4) : name.slice(0, 1);
}

/** `1:2.40.1+dfsg-3+deb12u1` -> `2.40.1`. */
export function upstreamPart(version: string): string {
  let text = version.replace(/^\d+:/, '');
  const dash = text.lastIndexOf('-');
  if (dash > 0) text = text.slice(0, dash);
  return text.replace(/[+~.](?:dfsg|ds|repack)\d*.*$/i, '');
}
