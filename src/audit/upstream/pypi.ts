import type { Upstream } from '../../catalog/schema.ts';
import { isPrerelease } from '../../core/version.ts';
import {
  etagFor,
  highest,
  isObject,
  miss,
  notModified,
  parseJson,
  stringField,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type PypiUpstream = Extract<Upstream, { source: 'pypi' }>;

/** Big projects list thousands of files; their JSON runs to tens of megabytes. */
const MAX_BYTES = 64 * 1024 * 1024;

/**
 * The latest release of a PyPI project: `info.version`, unless that is a
 * pre-release nobody asked for; then the highest stable version in
 * `releases` that still has a file that is not yanked.
 */
export async function latestFromPypi(upstream: PypiUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const base = trimSlash(context.endpoints.pypi);
  const url = `${base}/pypi/${encodeURIComponent(upstream.package)}/json`;
  const response = await context.http.get(url, { accept: 'application/json', etag: etagFor(context, 'json'), maxBytes: MAX_BYTES });
  if (response.notModified) return notModified(context, 'json', url);
  const data = parseJson(response);
  let version = stringField(data, 'info.version', url);
  if (!context.includePrereleases && isPrerelease(version)) {
    const releases = isObject(data) && isObject(data.releases) ? data.releases : {};
    const candidates = Object.entries(releases)
      .filter(([, files]) => Array.isArray(files) && files.some((file) => !(isObject(file) && file.yanked === true)))
      .map(([key]) => ({ version: key }));
    const best = highest(candidates, false);
    if (!best) throw miss(url, 'no stable release');
    version = best.version;
  }
  return withEtag({ version, url: `${base}/project/${upstream.package}/${version}/`, method: 'json' }, response);
}
