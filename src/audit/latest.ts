import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from '../core/zod.ts';
import { BaselineSchema, type Baseline, type Tool, type UpstreamSource } from '../catalog/schema.ts';
import type { Config } from '../core/config.ts';
import { UpkeepError, describeError } from '../core/errors.ts';
import { readJsonFile, withLock, writeJsonAtomic } from '../core/fs.ts';
import type { HttpClient } from '../core/http.ts';
import type { Logger } from '../core/log.ts';
import type { Environment, Paths } from '../core/paths.ts';
import type { LatestVersion } from './types.ts';
import type { PreviousLookup, UpstreamResult } from './upstream/index.ts';

/**
 * The latest upstream version of each tool, through a cache
 * (`<cache>/latest-v1.json`) so that an audit asks the network only for what
 * it does not know recently:
 *
 * - offline: the cache, else the baseline shipped in the catalog; never the network.
 * - default: a cache entry younger than `audit.cacheTtl` as is; otherwise a
 *   conditional request (the cached ETag; a 304 only refreshes the date).
 * - refresh: every tool is asked again.
 *
 * A failed lookup falls back to the cached value, else the baseline's, both
 * marked stale, else null with the reason; the audit goes on. The failure is
 * remembered for an hour so that the next audit does not wait on it again.
 */

export const CACHE_FILE = 'latest-v1.json';
/** How long a failed lookup is not retried by a non-refresh audit. */
export const FAILURE_BACKOFF_MS = 60 * 60 * 1000;

const CacheEntrySchema = z.object({
  version: z.string().check(z.minLength(1)),
  source: z.string(),
  url: z.nullable(z.string()),
  fetchedAt: z.string(),
  method: z.string(),
  etag: z.optional(z.string()),
});
const CacheSchema = z.object({
  schemaVersion: z.literal(1),
  tools: z._default(z.record(z.string(), CacheEntrySchema), {}),
  hints: z._default(z.record(z.string(), z.string()), {}),
  failures: z._default(z.record(z.string(), z.object({ at: z.string(), reason: z.string() })), {}),
});
export type LatestCache = z.infer<typeof CacheSchema>;
export type LatestCacheEntry = z.infer<typeof CacheEntrySchema>;

export interface LatestResult {
  latest: LatestVersion | null;
  /** Why the value is missing or stale, e.g. "rate limited by api.github.com". */
  reason?: string;
}
export type LatestResults = Map<string, LatestResult>;

export interface ResolvedLatest {
  /** By tool id, in the order the tools were given. */
  results: LatestResults;
  /** Met while resolving: a corrupt cache set aside, an unreadable baseline, a cache not saved. */
  warnings: string[];
}

export type LatestProgress =
  | { id: string; state: 'fetching' }
  | { id: string; state: 'done'; from: 'cache' | 'network' | 'not-modified' | 'baseline' | 'stale' | 'none'; done: number; total: number };

export interface ResolveLatestOptions {
  tools: ReadonlyArray<Pick<Tool, 'id' | 'upstream'>>;
  config: Config;
  paths: Paths;
  environment: Environment;
  logger: Logger;
  offline: boolean;
  refresh: boolean;
  /** catalog/latest-versions.json */
  baselinePath: string;
  now?: () => Date;
  /** An existing client; otherwise one is made (loading undici) only if a lookup is needed, and closed at the end. */
  http?: HttpClient;
  /** For the client this module makes: `upkeep/<version>`. */
  userAgent?: string;
  /** Called as each tool starts (`fetching`) and ends (`done`); `done` counts finished tools. */
  onProgress?: (done: number, total: number, event: LatestProgress) => void;
}

/** The warnings of a resolution (same as `resolved.warnings`). */
export function latestWarnings(resolved: ResolvedLatest): string[] {
  return resolved.warnings;
}

/** One change this run makes to the cache. */
export type LatestCacheUpdate =
  | { id: string; kind: 'entry'; entry: LatestCacheEntry }
  | { id: string; kind: 'failure'; at: string; reason: string };

export async function resolveLatest(options: ResolveLatestOptions): Promise<ResolvedLatest> {
  const { config, logger } = options;
  const now = options.now ?? (() => new Date());
  const offline = options.offline || config.audit.offline;
  const ttlMs = config.audit.cacheTtl * 1000;
  const cachePath = join(options.paths.cache, CACHE_FILE);
  const warnings: string[] = [];
  const warn = (message: string): void => {
    if (warnings.includes(message)) return;
    warnings.push(message);
    logger.warn(message);
  };

  const cache = await readCache(cachePath, warn);
  let baseline: Baseline | null | undefined;
  const loadBaseline = async (): Promise<Baseline | null> => {
    if (baseline === undefined) baseline = await readBaseline(options.baselinePath, warn);
    return baseline;
  };

  const results: LatestResults = new Map();
  const total = options.tools.length;
  let done = 0;
  const finish = (id: string, result: LatestResult, from: Extract<LatestProgress, { state: 'done' }>['from']): void => {
    results.set(id, result);
    done++;
    options.onProgress?.(done, total, { id, state: 'done', from, done, total });
  };

  const ageOf = (iso: string): number => {
    const time = Date.parse(iso);
    return Number.isNaN(time) ? Number.POSITIVE_INFINITY : now().getTime() - time;
  };
  const fromEntry = (entry: LatestCacheEntry, source: UpstreamSource, stale: boolean): LatestVersion => ({
    version: entry.version,
    source,
    url: entry.url,
    stale: stale || ageOf(entry.fetchedAt) >= ttlMs,
    fetchedAt: entry.fetchedAt,
  });
  /** The value to show when the network cannot be (or was not) asked. */
  const fallback = async (tool: Pick<Tool, 'id' | 'upstream'>, forceStale: boolean): Promise<{ latest: LatestVersion | null; from: 'cache' | 'baseline' }> => {
    const entry = cache.tools[tool.id];
    if (entry && entry.source === tool.upstream.source) return { latest: fromEntry(entry, tool.upstream.source, forceStale), from: 'cache' };
    const known = (await loadBaseline())?.tools[tool.id];
    if (known) {
      const generatedAt = baseline?.generatedAt ?? null;
      return {
        latest: {
          version: known.version,
          source: tool.upstream.source,
          url: known.url ?? null,
          stale: forceStale || generatedAt === null || ageOf(generatedAt) >= ttlMs,
          fetchedAt: generatedAt,
        },
        from: 'baseline',
      };
    }
    return { latest: null, from: 'baseline' };
  };

  const toFetch: Array<Pick<Tool, 'id' | 'upstream'>> = [];
  for (const tool of options.tools) {
    if (tool.upstream.source === 'none') {
      finish(tool.id, { latest: null, reason: tool.upstream.reason ?? 'no upstream to ask' }, 'none');
      continue;
    }
    if (offline) {
      const { latest, from } = await fallback(tool, false);
      finish(tool.id, latest ? { latest } : { latest: null, reason: 'offline, and no cached or baseline version' }, from === 'cache' ? 'cache' : 'baseline');
      continue;
    }
    const entry = cache.tools[tool.id];
    const usable = entry && entry.source === tool.upstream.source ? entry : undefined;
    if (!options.refresh && usable && ageOf(usable.fetchedAt) < ttlMs) {
      finish(tool.id, { latest: fromEntry(usable, tool.upstream.source, false) }, 'cache');
      continue;
    }
    const failure = cache.failures[tool.id];
    const failureIsNewer = failure && (!usable || Date.parse(failure.at) > Date.parse(usable.fetchedAt));
    if (!options.refresh && failure && failureIsNewer && ageOf(failure.at) < FAILURE_BACKOFF_MS) {
      const { latest } = await fallback(tool, true);
      // The reason stays the one the failed lookup gave, so the audit reads the same until it is retried.
      finish(tool.id, { latest, reason: failure.reason }, latest ? 'stale' : 'none');
      continue;
    }
    toFetch.push(tool);
  }

  const updates: LatestCacheUpdate[] = [];
  if (toFetch.length > 0) {
    let http = options.http;
    let ownClient = false;
    if (!http) {
      const { createHttpClient } = await import('../core/http.ts');
      http = createHttpClient({ config, environment: options.environment, logger, ...(options.userAgent ? { userAgent: options.userAgent } : {}) });
      ownClient = true;
    }
    const { lookupLatest } = await import('./upstream/index.ts');
    const client = http;
    try {
      // All at once: the client's per-host caps bound what is really in flight.
      await Promise.all(
        toFetch.map(async (tool) => {
          options.onProgress?.(done, total, { id: tool.id, state: 'fetching' });
          const entry = cache.tools[tool.id];
          const previous: PreviousLookup | undefined =
            entry && entry.source === tool.upstream.source
              ? { version: entry.version, url: entry.url, method: entry.method, ...(entry.etag ? { etag: entry.etag } : {}) }
              : undefined;
          const hint = cache.hints[tool.id];
          let result: UpstreamResult | null;
          try {
            result = await lookupLatest(tool.upstream, {
              http: client,
              endpoints: config.endpoints,
              includePrereleases: config.audit.includePrereleases,
              ...(hint ? { hint } : {}),
              ...(previous ? { previous } : {}),
            });
          } catch (error) {
            if (!(error instanceof UpkeepError)) throw error;
            const reason = reasonFor(error);
            logger.debug('latest lookup failed', { tool: tool.id, error: describeError(error) });
            updates.push({ id: tool.id, kind: 'failure', at: now().toISOString(), reason });
            const { latest } = await fallback(tool, true);
            finish(tool.id, { latest, reason }, latest ? 'stale' : 'none');
            return;
          }
          if (!result) {
            finish(tool.id, { latest: null, reason: 'no upstream to ask' }, 'none');
            return;
          }
          const fetchedAt = now().toISOString();
          const saved: LatestCacheEntry = {
            version: result.version,
            source: tool.upstream.source,
            url: result.url,
            fetchedAt,
            method: result.method,
            ...(result.etag ? { etag: result.etag } : {}),
          };
          updates.push({ id: tool.id, kind: 'entry', entry: saved });
          finish(tool.id, { latest: fromEntry(saved, tool.upstream.source, false) }, result.notModified ? 'not-modified' : 'network');
        }),
      );
    } finally {
      if (ownClient) await client.close();
    }
  }

  if (updates.length > 0) {
    try {
      await withLock(cachePath, async () => {
        // Read again under the lock: another audit may have saved entries since we read.
        const current = await readCache(cachePath, warn);
        await writeJsonAtomic(cachePath, mergeUpdates(current, updates));
      });
    } catch (error) {
      warn(`could not save the latest-version cache ${cachePath}: ${describeError(error)}`);
    }
  }

  // Results in the order of the tools asked for.
  const ordered: LatestResults = new Map();
  for (const tool of options.tools) {
    const result = results.get(tool.id);
    if (result) ordered.set(tool.id, result);
  }
  return { results: ordered, warnings };
}

/** Applies this run's updates to what is on disk; the newer of two values for a tool wins. */
export function mergeUpdates(current: LatestCache, updates: readonly LatestCacheUpdate[]): LatestCache {
  const merged: LatestCache = {
    schemaVersion: 1,
    tools: { ...current.tools },
    hints: { ...current.hints },
    failures: { ...current.failures },
  };
  const time = (iso: string | undefined): number => (iso === undefined ? Number.NEGATIVE_INFINITY : Date.parse(iso) || 0);
  for (const update of updates) {
    if (update.kind === 'entry') {
      const existing = merged.tools[update.id];
      if (!existing || time(existing.fetchedAt) <= time(update.entry.fetchedAt)) {
        merged.tools[update.id] = update.entry;
        merged.hints[update.id] = update.entry.method;
      }
      const failure = merged.failures[update.id];
      if (failure && time(failure.at) <= time(update.entry.fetchedAt)) delete merged.failures[update.id];
    } else {
      const existing = merged.failures[update.id];
      const succeededSince = time(merged.tools[update.id]?.fetchedAt) > time(update.at);
      if (!succeededSince && (!existing || time(existing.at) <= time(update.at))) {
        merged.failures[update.id] = { at: update.at, reason: update.reason };
      }
    }
  }
  return merged;
}

function emptyCache(): LatestCache {
  return { schemaVersion: 1, tools: {}, hints: {}, failures: {} };
}

async function readCache(path: string, warn: (message: string) => void): Promise<LatestCache> {
  try {
    const read = await readJsonFile(path, (raw) => CacheSchema.parse(raw));
    if (read.status === 'ok') return read.value;
    if (read.status === 'corrupt') {
      warn(
        `the latest-version cache ${path} was unreadable (${read.reason})` +
          (read.movedTo ? `; moved to ${read.movedTo} and rebuilt` : '; rebuilt'),
      );
    }
  } catch (error) {
    warn(`could not read the latest-version cache ${path}: ${describeError(error)}`);
  }
  return emptyCache();
}

/** The baseline ships with the catalog: read-only, so a bad one is reported, never moved. */
async function readBaseline(path: string, warn: (message: string) => void): Promise<Baseline | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') warn(`could not read the baseline ${path}: ${(error as Error).message}`);
    return null;
  }
  try {
    const parsed = BaselineSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    warn(`the baseline ${path} is invalid at ${issue?.path.map(String).join('.') || '(root)'}: ${issue?.message ?? 'unknown'}; not used`);
  } catch {
    warn(`the baseline ${path} is not valid JSON; not used`);
  }
  return null;
}

/** A short reason for the audit's table: "timed out", "rate limited by api.github.com". */
export function reasonFor(error: UpkeepError): string {
  const reason = error.details?.reason;
  return typeof reason === 'string' && reason !== '' ? reason : error.message;
}
