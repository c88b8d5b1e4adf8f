import type { Upstream } from '../../catalog/schema.ts';
import {
  etagFor,
  isObject,
  notModified,
  optionalString,
  parseError,
  parseJson,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type CratesUpstream = Extract<Upstream, { source: 'crates' }>;

/** The latest release of a crate: `max_stable_version`, or `max_version` when there is no stable one or pre-releases are wanted. */
export async function latestFromCrates(upstream: CratesUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const base = trimSlash(context.endpoints.crates);
  const url = `${base}/api/v1/crates/${encodeURIComponent(upstream.crate)}`;
  // crates.io refuses requests without a User-Agent; the client always sends one.
  const response = await context.http.get(url, { accept: 'application/json', etag: etagFor(context, 'api') });
  if (response.notModified) return notModified(context, 'api', url);
  const data = parseJson(response);
  const crate = isObject(data) && isObject(data.crate) ? data.crate : null;
  if (!crate) throw parseError(url, 'missing field crate');
  const stable = optionalString(crate.max_stable_version);
  const newest = optionalString(crate.max_version);
  const version = context.includePrereleases ? (newest ?? stable) : (stable ?? newest);
  if (!version) throw parseError(url, 'missing field crate.max_stable_version');
  return withEtag({ version, url: `${base}/crates/${upstream.crate}/${version}`, method: 'api' }, response);
}
