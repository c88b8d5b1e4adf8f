import type { Config } from '../../core/config.ts';
import { UpkeepError } from '../../core/errors.ts';
import type { HttpClient, HttpResponse } from '../../core/http.ts';
import { compareVersions, isPrerelease } from '../../core/version.ts';

/** What every upstream lookup returns. */
export interface UpstreamResult {
  version: string;
  /** A page a person can open for this version. */
  url: string;
  /** How the version was found (`api`, `atom`, `listing`...), stored as the next lookup's hint. */
  method: string;
  /** The validator of the answer, for a conditional request next time. */
  etag?: string;
  /** True when the server answered 304: `version` and `url` are the previous ones. */
  notModified?: boolean;
}

/** What the last successful lookup found; its ETag is sent when the same method is tried. */
export interface PreviousLookup {
  version: string;
  url: string | null;
  method: string;
  etag?: string;
}

export interface UpstreamContext {
  http: HttpClient;
  endpoints: Config['endpoints'];
  includePrereleases: boolean;
  /** The method that worked last time; tried first. */
  hint?: string;
  previous?: PreviousLookup;
}

export function trimSlash(base: string): string {
  return base.replace(/\/+$/, '');
}

/**
 * A method that worked but found nothing suitable (no releases, only
 * pre-releases, no tag with the prefix): the next method may do better, and
 * a real failure elsewhere is the more useful error to report.
 */
export function miss(url: string, reason: string): UpkeepError {
  return new UpkeepError('E_UPSTREAM_PARSE', `${reason} at ${url}`, {
    hint: 'check the upstream entry in the catalog (repository, package name, tag prefix)',
    details: { url, reason, miss: true },
  });
}

export function isMiss(error: unknown): boolean {
  return error instanceof UpkeepError && error.details?.miss === true;
}

export function parseError(url: string, reason: string): UpkeepError {
  return new UpkeepError('E_UPSTREAM_PARSE', `${reason} at ${url}`, {
    hint: 'the upstream answered something upkeep does not understand; try again later or report it',
    details: { url, reason },
  });
}

/** Parses a JSON answer, telling an HTML page (a login wall, a captive portal) from broken JSON. */
export function parseJson(response: HttpResponse): unknown {
  const type = response.headers['content-type'] ?? '';
  const start = response.body.trimStart().slice(0, 1);
  if (/text\/html/i.test(type) || start === '<') throw parseError(response.url, 'HTML page instead of JSON');
  try {
    return JSON.parse(response.body) as unknown;
  } catch {
    throw parseError(response.url, 'bad JSON');
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A required string field, or E_UPSTREAM_PARSE naming it. */
export function stringField(value: unknown, path: string, url: string): string {
  let node: unknown = value;
  for (const part of path.split('.')) node = isObject(node) ? node[part] : undefined;
  if (typeof node !== 'string' || node.trim() === '') throw parseError(url, `missing field ${path}`);
  return node.trim();
}

export function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** The ETag to send when trying `method`: only the previous answer of that same method has one that applies. */
export function etagFor(context: UpstreamContext, method: string): string | undefined {
  return context.previous?.method === method ? context.previous.etag : undefined;
}

export function notModified(context: UpstreamContext, method: string, fallbackUrl: string): UpstreamResult {
  const previous = context.previous!;
  return {
    version: previous.version,
    url: previous.url ?? fallbackUrl,
    method,
    ...(previous.etag === undefined ? {} : { etag: previous.etag }),
    notModified: true,
  };
}

export function withEtag(result: UpstreamResult, response: HttpResponse): UpstreamResult {
  const etag = response.headers.etag;
  return etag ? { ...result, etag } : result;
}

/** The highest of `candidates` by version, pre-releases left out unless wanted. */
export function highest<T extends { version: string }>(candidates: readonly T[], includePrereleases: boolean): T | undefined {
  let best: T | undefined;
  for (const candidate of candidates) {
    if (!includePrereleases && isPrerelease(candidate.version)) continue;
    if (!best || compareVersions(candidate.version, best.version) > 0) best = candidate;
  }
  return best;
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function decodeHtmlEntities(text: string): string {
  return text
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, decimal: string) => String.fromCodePoint(Number.parseInt(decimal, 10)));
}

export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
