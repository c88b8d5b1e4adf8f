import type { Upstream } from '../../catalog/schema.ts';
import { versionFromTag } from '../../core/version.ts';
import {
  etagFor,
  highest,
  isObject,
  miss,
  notModified,
  optionalString,
  parseError,
  parseJson,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type GitlabUpstream = Extract<Upstream, { source: 'gitlab' }>;

/**
 * The latest release of a GitLab project, from the releases API of
 * `endpoints.gitlab` or of the project's own host. Upcoming releases (dated
 * in the future) do not count; the highest version among the others wins,
 * so a late patch to an old branch never hides the newest line.
 */
export async function latestFromGitlab(upstream: GitlabUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const base = gitlabBase(upstream, context);
  const url = `${base}/api/v4/projects/${encodeURIComponent(upstream.project)}/releases`;
  const response = await context.http.get(url, { accept: 'application/json', etag: etagFor(context, 'api') });
  if (response.notModified) return notModified(context, 'api', url);
  const data = parseJson(response);
  if (!Array.isArray(data)) throw parseError(url, 'expected a list of releases');
  const candidates: Array<{ version: string; page: string }> = [];
  for (const release of data) {
    if (!isObject(release) || release.upcoming_release === true) continue;
    const tag = optionalString(release.tag_name);
    if (!tag) continue;
    if (upstream.tagPrefix && !tag.startsWith(upstream.tagPrefix)) continue;
    const version = versionFromTag(tag, upstream.tagPrefix);
    if (!version) continue;
    const links = isObject(release._links) ? release._links : {};
    const page = optionalString(links.self) ?? `${base}/${upstream.project}/-/releases/${encodeURIComponent(tag)}`;
    candidates.push({ version, page });
  }
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(url, `no ${context.includePrereleases ? '' : 'stable '}release`);
  return withEtag({ version: best.version, url: best.page, method: 'api' }, response);
}

function gitlabBase(upstream: GitlabUpstream, context: UpstreamContext): string {
  const configured = trimSlash(context.endpoints.gitlab);
  if (!upstream.host) return configured;
  const host = upstream.host.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (new URL(configured).host === host) return configured;
  return `https://${host}`;
}
