import type { Upstream } from '../../catalog/schema.ts';
import { UpkeepError } from '../../core/errors.ts';
import { isPrerelease, versionFromTag } from '../../core/version.ts';
import {
  decodeHtmlEntities,
  etagFor,
  highest,
  isMiss,
  isObject,
  miss,
  notModified,
  optionalString,
  parseError,
  parseJson,
  safeDecode,
  stringField,
  trimSlash,
  withEtag,
  type UpstreamContext,
  type UpstreamResult,
} from './common.ts';

type GithubUpstream = Extract<Upstream, { source: 'github' }>;

export const GITHUB_METHODS = ['latest-redirect', 'api', 'atom', 'tags'] as const;
export type GithubMethod = (typeof GITHUB_METHODS)[number];

/**
 * The latest release of a GitHub repository. Methods, cheapest first:
 * `latest-redirect` (the web page's redirect; no API quota), `api`,
 * `atom` (the releases feed; no API quota, so it is where a rate-limited API
 * falls through to) and `tags`. The method that worked last time is tried
 * first. A method that finds nothing suitable, or fails, hands over to the
 * next; when all fail, the first real failure is reported.
 */
export async function latestFromGithub(upstream: GithubUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const errors: unknown[] = [];
  for (const method of githubMethodOrder(context)) {
    try {
      return await METHODS[method](upstream, context);
    } catch (error) {
      if (!(error instanceof UpkeepError)) throw error;
      errors.push(error);
    }
  }
  throw errors.find((error) => !isMiss(error)) ?? errors[0] ?? miss(`${trimSlash(context.endpoints.github)}/${upstream.repo}`, 'no release found');
}

export function githubMethodOrder(context: Pick<UpstreamContext, 'hint' | 'includePrereleases'>): GithubMethod[] {
  // "latest" on GitHub never is a pre-release, so it cannot answer when pre-releases are wanted.
  const available = GITHUB_METHODS.filter((method) => !(context.includePrereleases && method === 'latest-redirect'));
  const hint = available.find((method) => method === context.hint);
  return hint ? [hint, ...available.filter((method) => method !== hint)] : [...available];
}

const METHODS: Record<GithubMethod, (upstream: GithubUpstream, context: UpstreamContext) => Promise<UpstreamResult>> = {
  'latest-redirect': latestRedirect,
  api: fromApi,
  atom: fromAtom,
  tags: fromTags,
};

function releasePage(context: UpstreamContext, repo: string, tag: string): string {
  return `${trimSlash(context.endpoints.github)}/${repo}/releases/tag/${encodeURI(tag)}`;
}

/** The version a tag names when it passes the prefix filter, else null. */
function tagVersion(tag: string, prefix: string | undefined): string | null {
  if (prefix && !tag.startsWith(prefix)) return null;
  return versionFromTag(tag, prefix);
}

async function latestRedirect(upstream: GithubUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const url = `${trimSlash(context.endpoints.github)}/${upstream.repo}/releases/latest`;
  const response = await context.http.get(url, { followRedirects: false, accept: 'text/html' });
  const location = response.headers.location;
  if (!location) throw parseError(url, `HTTP ${response.status} without a redirect to the release`);
  const match = /\/releases\/tag\/([^?#]+)/.exec(location);
  if (!match) throw miss(url, 'no published release');
  const tag = safeDecode(match[1]!);
  const version = tagVersion(tag, upstream.tagPrefix);
  if (!version) throw miss(url, `latest release tag ${tag} has no version${upstream.tagPrefix ? ` with prefix ${upstream.tagPrefix}` : ''}`);
  if (!context.includePrereleases && isPrerelease(version)) throw miss(url, `latest release ${tag} is a pre-release`);
  return { version, url: releasePage(context, upstream.repo, tag), method: 'latest-redirect' };
}

async function fromApi(upstream: GithubUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const base = `${trimSlash(context.endpoints.githubApi)}/repos/${upstream.repo}`;
  const listed = Boolean(upstream.tagPrefix) || context.includePrereleases;
  const url = listed ? `${base}/releases?per_page=100` : `${base}/releases/latest`;
  let response;
  try {
    response = await context.http.get(url, { accept: 'application/vnd.github+json', etag: etagFor(context, 'api') });
  } catch (error) {
    // The repository exists but has never published a release.
    if (!listed && error instanceof UpkeepError && error.details?.status === 404) throw miss(url, 'no published release');
    throw error;
  }
  if (response.notModified) return notModified(context, 'api', url);
  const data = parseJson(response);
  if (!listed) {
    const tag = stringField(data, 'tag_name', url);
    const version = tagVersion(tag, upstream.tagPrefix);
    if (!version) throw parseError(url, `tag ${tag} names no version`);
    if (!context.includePrereleases && isPrerelease(version)) throw miss(url, `latest release ${tag} is a pre-release`);
    const page = isObject(data) ? optionalString(data.html_url) : undefined;
    return withEtag({ version, url: page ?? releasePage(context, upstream.repo, tag), method: 'api' }, response);
  }
  if (!Array.isArray(data)) throw parseError(url, 'expected a list of releases');
  const candidates: Array<{ version: string; tag: string; page: string | undefined }> = [];
  for (const release of data) {
    if (!isObject(release) || release.draft === true) continue;
    if (release.prerelease === true && !context.includePrereleases) continue;
    const tag = optionalString(release.tag_name);
    if (!tag) continue;
    const version = tagVersion(tag, upstream.tagPrefix);
    if (version) candidates.push({ version, tag, page: optionalString(release.html_url) });
  }
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(url, `no ${context.includePrereleases ? '' : 'stable '}release${upstream.tagPrefix ? ` with prefix ${upstream.tagPrefix}` : ''}`);
  return withEtag({ version: best.version, url: best.page ?? releasePage(context, upstream.repo, best.tag), method: 'api' }, response);
}

async function fromAtom(upstream: GithubUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const url = `${trimSlash(context.endpoints.github)}/${upstream.repo}/releases.atom`;
  const response = await context.http.get(url, { accept: 'application/atom+xml', etag: etagFor(context, 'atom') });
  if (response.notModified) return notModified(context, 'atom', url);
  if (!/<feed[\s>]/.test(response.body)) {
    throw parseError(url, /<html[\s>]/i.test(response.body) ? 'HTML page instead of an Atom feed' : 'not an Atom feed');
  }
  const candidates: Array<{ version: string; tag: string }> = [];
  for (const entry of response.body.matchAll(/<entry[\s>][\s\S]*?<\/entry>/g)) {
    const link = /<link\b[^>]*\bhref="([^"]*\/releases\/tag\/[^"]+)"/.exec(entry[0]);
    if (!link) continue;
    const tag = safeDecode(/\/releases\/tag\/(.+)$/.exec(decodeHtmlEntities(link[1]!))![1]!);
    const version = tagVersion(tag, upstream.tagPrefix);
    if (version) candidates.push({ version, tag });
  }
  // The feed does not say which entries are pre-releases; their version names do.
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(url, `no ${context.includePrereleases ? '' : 'stable '}release in the feed`);
  return withEtag({ version: best.version, url: releasePage(context, upstream.repo, best.tag), method: 'atom' }, response);
}

async function fromTags(upstream: GithubUpstream, context: UpstreamContext): Promise<UpstreamResult> {
  const url = `${trimSlash(context.endpoints.githubApi)}/repos/${upstream.repo}/tags?per_page=100`;
  const response = await context.http.get(url, { accept: 'application/vnd.github+json', etag: etagFor(context, 'tags') });
  if (response.notModified) return notModified(context, 'tags', url);
  const data = parseJson(response);
  if (!Array.isArray(data)) throw parseError(url, 'expected a list of tags');
  const candidates: Array<{ version: string; tag: string }> = [];
  for (const item of data) {
    const tag = isObject(item) ? optionalString(item.name) : undefined;
    if (!tag) continue;
    const version = tagVersion(tag, upstream.tagPrefix);
    if (version) candidates.push({ version, tag });
  }
  const best = highest(candidates, context.includePrereleases);
  if (!best) throw miss(url, `no ${context.includePrereleases ? '' : 'stable '}version tag`);
  return withEtag({ version: best.version, url: releasePage(context, upstream.repo, best.tag), method: 'tags' }, response);
}
