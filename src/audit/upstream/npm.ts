import type { Upstream } from '../../catalog/schema.ts';
import { compareVersions } from '../../core/version.ts';
import {
  etagFor,
  isObject,
  notModified,
  optionalString,
  parseJson,
  stringField,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type NpmUpstream = Extract<Upstream, { source: 'npm' }>;

/**
 * The latest release of an npm package: the `latest` dist-tag, read from the
 * abbreviated document (a fraction of the full one's size). With
 * pre-releases wanted, the higher of `next` and `latest`.
 */
export async function latestFromNpm(upstream: NpmUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const base = trimSlash(context.endpoints.npm);
  const url = `${base}/${npmPath(upstream.package)}`;
  const response = await context.http.get(url, {
    accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8',
    etag: etagFor(context, 'registry'),
    maxBytes: 64 * 1024 * 1024,
  });
  if (response.notModified) return notModified(context, 'registry', url);
  const data = parseJson(response);
  let version = stringField(data, 'dist-tags.latest', url);
  if (context.includePrereleases) {
    const tags = isObject(data) && isObject(data['dist-tags']) ? data['dist-tags'] : {};
    const next = optionalString(tags.next);
    if (next && compareVersions(next, version) > 0) version = next;
  }
  const page = /^https:\/\/registry\.npmjs\.org$/.test(base)
    ? `https://www.npmjs.com/package/${upstream.package}/v/${version}`
    : `${url}/${version}`;
  return withEtag({ version, url: page, method: 'registry' }, response);
}

/** `@scope/name` is one path segment for the registry: `@scope%2Fname`. */
export function npmPath(name: string): string {
  if (name.startsWith('@')) {
    const [scope, rest] = name.split('/', 2);
    return `${scope}%2F${encodeURIComponent(rest ?? '')}`;
  }
  return encodeURIComponent(name);
}
