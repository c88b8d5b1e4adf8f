import type { Upstream } from '../../catalog/schema.ts';
import {
  escapeRegExp,
  etagFor,
  highest,
  miss,
  notModified,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type GnuUpstream = Extract<Upstream, { source: 'gnu' }>;

/**
 * The latest release of a GNU project, from its folder listing on the GNU
 * mirror: the highest version among `<project>-X.Y[.Z].tar.<compression>`.
 */
export async function latestFromGnu(upstream: GnuUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const folder = `${trimSlash(context.endpoints.gnu)}/${encodeURIComponent(upstream.project)}/`;
  const response = await context.http.get(folder, { accept: 'text/html', etag: etagFor(context, 'listing') });
  if (response.notModified) return notModified(context, 'listing', folder);
  const pattern = new RegExp(
    `(?<![\\w.+-])${escapeRegExp(upstream.project)}-(\\d+(?:\\.\\d+)*[a-z]?)\\.tar\\.(gz|xz|bz2|lz|zst)(?![\\w-])`,
    'g',
  );
  const candidates: Array<{ version: string; file: string }> = [];
  for (const match of response.body.matchAll(pattern)) {
    candidates.push({ version: match[1]!, file: match[0] });
  }
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(folder, `no ${upstream.project}-<version>.tar.* file in the listing`);
  return withEtag({ version: best.version, url: `${folder}${best.file}`, method: 'listing' }, response);
}
