import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CACHE_FILE, latestWarnings, resolveLatest, type LatestCache, type LatestProgress, type ResolveLatestOptions } from '../../src/audit/latest.ts';
import type { Tool } from '../../src/catalog/schema.ts';
import { ConfigSchema, type Config } from '../../src/core/config.ts';
import { Executor } from '../../src/core/exec.ts';
import { createHttpClient } from '../../src/core/http.ts';
import { silentLogger, type Logger } from '../../src/core/log.ts';
import type { Paths } from '../../src/core/paths.ts';
import { startFakeUpstream, type FakeTool, type FakeUpstream } from '../helpers/fake-upstream.ts';

const TOOLS: Record<string, FakeTool> = {
  gh: { source: 'github', repo: 'acme/gh', releases: [{ tag: 'v2.1.0' }] },
  black: { source: 'pypi', package: 'black', version: '24.4.2' },
  prettier: { source: 'npm', package: 'prettier', distTags: { latest: '3.3.3' } },
  ripgrep: { source: 'crates', crate: 'ripgrep', maxStable: '14.1.0', max: '14.1.0' },
  make: { source: 'gnu', project: 'make', versions: ['4.4', '4.4.1'] },
};
const TTL_SECONDS = 3600;
const START = new Date('2025-06-01T12:00:00.000Z');

let fake: FakeUpstream;
let folder: string;
let paths: Paths;
let baselinePath: string;
let clock: Date;

beforeAll(async () => {
  fake = await startFakeUpstream({ tools: TOOLS, slowMs: 3000 });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'upkeep-latest-'));
  paths = { config: join(folder, 'config'), cache: join(folder, 'cache'), state: join(folder, 'state'), data: join(folder, 'data') };
  baselinePath = join(folder, 'latest-versions.json');
  clock = new Date(START);
  for (const [id, tool] of Object.entries(TOOLS)) fake.setTool(id, tool);
  fake.clearRequests();
});
afterEach(async () => {
  await rm(folder, { recursive: true, force: true });
});

function config(audit: Partial<Config['audit']> = {}, network: Partial<Config['network']> = {}): Config {
  return ConfigSchema.parse({
    endpoints: fake.endpoints(),
    network: { timeout: 5, retries: 0, ...network },
    audit: { cacheTtl: TTL_SECONDS, ...audit },
  });
}

function tools(...ids: string[]): Array<Pick<Tool, 'id' | 'upstream'>> {
  const all = fake.tools();
  return ids.length === 0 ? all.filter((tool) => tool.id in TOOLS) : ids.map((id) => all.find((tool) => tool.id === id)!);
}

async function resolveFull(options: Partial<ResolveLatestOptions> = {}) {
  return resolveLatest({
    tools: tools(),
    config: config(),
    paths,
    environment: {},
    logger: silentLogger,
    offline: false,
    refresh: false,
    baselinePath,
    now: () => clock,
    userAgent: 'upkeep/test',
    ...options,
  });
}

async function resolve(options: Partial<ResolveLatestOptions> = {}) {
  return (await resolveFull(options)).results;
}

async function readCache(): Promise<LatestCache> {
  return JSON.parse(await readFile(join(paths.cache, CACHE_FILE), 'utf8')) as LatestCache;
}

async function writeCache(cache: LatestCache): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(paths.cache, { recursive: true });
  await writeFile(join(paths.cache, CACHE_FILE), JSON.stringify(cache));
}

async function writeBaseline(versions: Record<string, string>): Promise<void> {
  await writeFile(
    baselinePath,
    JSON.stringify({
      schemaVersion: 1,
      generatedAt: '2025-05-01T00:00:00.000Z',
      tools: Object.fromEntries(Object.entries(versions).map(([id, version]) => [id, { version, source: 'pypi' }])),
    }),
  );
}

const later = (seconds: number): Date => new Date(clock.getTime() + seconds * 1000);

describe('resolveLatest', () => {
  it('fetches every tool, caches the results with hints and ETags', async () => {
    const events: LatestProgress[] = [];
    const resolved = await resolveFull({ onProgress: (_done, _total, event) => events.push(event) });
    const results = resolved.results;
    expect(Object.fromEntries([...results].map(([id, result]) => [id, result.latest?.version]))).toEqual({
      gh: '2.1.0',
      black: '24.4.2',
      prettier: '3.3.3',
      ripgrep: '14.1.0',
      make: '4.4.1',
    });
    expect(results.get('black')!.latest).toMatchObject({ source: 'pypi', stale: false, fetchedAt: START.toISOString() });
    const cache = await readCache();
    expect(cache.schemaVersion).toBe(1);
    expect(cache.tools.black).toMatchObject({ version: '24.4.2', source: 'pypi', method: 'json', fetchedAt: START.toISOString() });
    expect(cache.tools.black!.etag).toBeTruthy();
    expect(cache.hints).toMatchObject({ gh: 'latest-redirect', black: 'json', make: 'listing' });
    expect(events.filter((event) => event.state === 'done')).toHaveLength(5);
    expect(resolved.warnings).toEqual([]);
    expect(latestWarnings(resolved)).toEqual([]);
  });

  it('uses a cache entry younger than the TTL without asking', async () => {
    await resolve();
    fake.clearRequests();
    clock = later(TTL_SECONDS - 1);
    const results = await resolve();
    expect(fake.requests).toEqual([]);
    expect(results.get('gh')!.latest).toMatchObject({ version: '2.1.0', stale: false, fetchedAt: START.toISOString() });
  });

  it('asks again after the TTL with the cached ETag; a 304 refreshes the date', async () => {
    await resolve({ tools: tools('black') });
    fake.clearRequests();
    clock = later(TTL_SECONDS + 1);
    const results = await resolve({ tools: tools('black') });
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.status).toBe(304);
    expect(fake.requests[0]!.headers['if-none-match']).toBeTruthy();
    expect(results.get('black')!.latest).toMatchObject({ version: '24.4.2', stale: false, fetchedAt: clock.toISOString() });
    expect((await readCache()).tools.black!.fetchedAt).toBe(clock.toISOString());
  });

  it('picks up a new release after the TTL', async () => {
    await resolve({ tools: tools('black') });
    fake.setTool('black', { source: 'pypi', package: 'black', version: '25.1.0' });
    clock = later(TTL_SECONDS + 1);
    const results = await resolve({ tools: tools('black') });
    expect(results.get('black')!.latest?.version).toBe('25.1.0');
  });

  it('asks for every tool with refresh', async () => {
    await resolve();
    fake.clearRequests();
    await resolve({ refresh: true });
    expect(new Set(fake.requests.map((request) => request.tool))).toEqual(new Set(Object.keys(TOOLS)));
  });

  it('tries the stored hint first', async () => {
    await writeCache({ schemaVersion: 1, tools: {}, hints: { gh: 'atom' }, failures: {} });
    const results = await resolve({ tools: tools('gh') });
    expect(results.get('gh')!.latest?.version).toBe('2.1.0');
    expect(fake.requests.map((request) => request.route)).toEqual(['atom']);
    expect((await readCache()).hints.gh).toBe('atom');
  });

  describe('offline', () => {
    it('uses the cache, else the baseline, and makes no request', async () => {
      await resolve({ tools: tools('gh', 'black') });
      fake.clearRequests();
      await writeBaseline({ black: '1.0.0', prettier: '3.0.0' });
      clock = later(TTL_SECONDS + 10);
      const results = await resolve({ offline: true, refresh: true });
      expect(fake.requests).toEqual([]);
      // The cache wins over the baseline; old values are marked stale.
      expect(results.get('black')!.latest).toMatchObject({ version: '24.4.2', stale: true });
      expect(results.get('gh')!.latest).toMatchObject({ version: '2.1.0', stale: true });
      expect(results.get('prettier')!.latest).toMatchObject({ version: '3.0.0', stale: true, fetchedAt: '2025-05-01T00:00:00.000Z' });
      expect(results.get('ripgrep')).toMatchObject({ latest: null });
      expect(results.get('ripgrep')!.reason).toMatch(/offline/);
    });

    it('follows audit.offline from the config and never loads a client', async () => {
      const results = await resolve({
        config: config({ offline: true }),
        http: {
          get: () => {
            throw new Error('no request expected');
          },
          post: () => {
            throw new Error('no request expected');
          },
          download: () => {
            throw new Error('no request expected');
          },
          rateLimitedUntil: () => null,
          close: async () => undefined,
        },
      });
      expect([...results.values()].every((result) => result.latest === null)).toBe(true);
      expect(fake.requests).toEqual([]);
    });
  });

  describe('failures', () => {
    it('keeps the cached value, marked stale, when a lookup fails', async () => {
      await resolve({ tools: tools('black') });
      fake.setBehaviour('black', 'server-error');
      clock = later(TTL_SECONDS + 1);
      const results = await resolve({ tools: tools('black') });
      expect(results.get('black')).toEqual({
        latest: { version: '24.4.2', source: 'pypi', url: expect.any(String), stale: true, fetchedAt: START.toISOString() },
        reason: 'HTTP 500',
      });
      const cache = await readCache();
      expect(cache.failures.black).toEqual({ at: clock.toISOString(), reason: 'HTTP 500' });
      expect(cache.tools.black!.version).toBe('24.4.2');
    });

    it('falls back to the baseline, marked stale, then to null with the reason', async () => {
      await writeBaseline({ black: '23.0.0' });
      fake.setBehaviour('black', 'html');
      fake.setBehaviour('prettier', 'html');
      const results = await resolve({ tools: tools('black', 'prettier') });
      expect(results.get('black')).toMatchObject({ latest: { version: '23.0.0', stale: true }, reason: 'HTML page instead of JSON' });
      expect(results.get('prettier')).toEqual({ latest: null, reason: 'HTML page instead of JSON' });
    });

    it('says which host rate-limited it', async () => {
      fake.setTool('gh', { source: 'github', repo: 'acme/gh', releases: [], behaviour: { api: 'rate-limit', tags: 'rate-limit' } });
      const results = await resolve({ tools: tools('gh') });
      expect(results.get('gh')).toEqual({ latest: null, reason: `rate limited by ${new URL(fake.urlOf('githubApi')).host}` });
    });

    it('reports a timeout and goes on with the other tools', async () => {
      fake.setBehaviour('black', 'slow');
      const results = await resolve({ tools: tools('black', 'prettier'), config: config({}, { timeout: 0.5 }) });
      expect(results.get('black')).toEqual({ latest: null, reason: 'timed out' });
      expect(results.get('prettier')!.latest?.version).toBe('3.3.3');
    });

    it('does not ask again within an hour of a failure, except with refresh', async () => {
      fake.setBehaviour('black', 'server-error');
      await resolve({ tools: tools('black') });
      fake.clearRequests();
      clock = later(30 * 60);
      const backedOff = await resolve({ tools: tools('black') });
      expect(fake.requests).toEqual([]);
      expect(backedOff.get('black')).toEqual({ latest: null, reason: 'HTTP 500' });

      await resolve({ tools: tools('black'), refresh: true });
      expect(fake.requests).toHaveLength(1);

      fake.setTool('black', TOOLS.black!);
      fake.clearRequests();
      clock = later(61 * 60);
      const recovered = await resolve({ tools: tools('black') });
      expect(fake.requests).toHaveLength(1);
      expect(recovered.get('black')!.latest).toMatchObject({ version: '24.4.2', stale: false });
      expect((await readCache()).failures.black).toBeUndefined();
    });
  });

  it('sets a corrupt cache aside, warns and rebuilds it', async () => {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(paths.cache, { recursive: true });
    await writeFile(join(paths.cache, CACHE_FILE), '{"schemaVersion": 1, "tools": {');
    const warned: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => warned.push(message) };
    const { results, warnings } = await resolveFull({ tools: tools('black'), logger });
    expect(results.get('black')!.latest?.version).toBe('24.4.2');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/unreadable.*moved to/);
    expect(warned).toEqual(warnings);
    const files = await readdir(paths.cache);
    expect(files.some((file) => file.startsWith(`${CACHE_FILE}.corrupt-`))).toBe(true);
    expect((await readCache()).tools.black!.version).toBe('24.4.2');
  });

  it('warns about an invalid baseline and goes on', async () => {
    await writeFile(baselinePath, JSON.stringify({ schemaVersion: 2 }));
    const { results, warnings } = await resolveFull({ tools: tools('black'), offline: true });
    expect(results.get('black')!.latest).toBeNull();
    expect(warnings[0]).toMatch(/baseline .* invalid/);
  });

  it('answers null for a tool without an upstream, asking nobody', async () => {
    const results = await resolve({ tools: [{ id: 'bundled', upstream: { source: 'none', reason: 'ships with the OS' } }] });
    expect(results.get('bundled')).toEqual({ latest: null, reason: 'ships with the OS' });
    expect(fake.requests).toEqual([]);
  });

  it('uses a given client without closing it', async () => {
    const http = createHttpClient({ config: config(), environment: {} });
    try {
      await resolve({ tools: tools('black'), http });
      const again = await http.get(`${fake.urlOf('pypi')}/pypi/black/json`);
      expect(again.status).toBe(200);
    } finally {
      await http.close();
    }
  });

  describe('two audits at once', () => {
    it('in one process: the cache holds both results', async () => {
      const [first, second] = await Promise.all([
        resolve({ tools: tools('gh', 'black'), refresh: true }),
        resolve({ tools: tools('prettier', 'ripgrep', 'make'), refresh: true }),
      ]);
      expect(first.get('black')!.latest?.version).toBe('24.4.2');
      expect(second.get('make')!.latest?.version).toBe('4.4.1');
      const cache = await readCache();
      expect(Object.keys(cache.tools).sort()).toEqual(['black', 'gh', 'make', 'prettier', 'ripgrep']);
    });

    it('in two processes: the cache holds both results', async () => {
      const child = fileURLToPath(new URL('../helpers/latest-child.ts', import.meta.url));
      const executor = new Executor();
      const run = (ids: string[]) =>
        executor.run([process.execPath, '--import', 'tsx', child], {
          timeout: 60_000,
          env: {
            ...process.env,
            UPKEEP_TEST_LATEST: JSON.stringify({ cacheDir: paths.cache, endpoints: fake.endpoints(), tools: tools(...ids), baselinePath }),
          },
        });
      const outputs = await Promise.all([run(['gh', 'black', 'make']), run(['prettier', 'ripgrep'])]);
      for (const output of outputs) expect(output.exitCode, output.stderr).toBe(0);
      expect(JSON.parse(outputs[0]!.stdout)).toEqual({ gh: '2.1.0', black: '24.4.2', make: '4.4.1' });
      expect(JSON.parse(outputs[1]!.stdout)).toEqual({ prettier: '3.3.3', ripgrep: '14.1.0' });
      const cache = await readCache();
      expect(Object.keys(cache.tools).sort()).toEqual(['black', 'gh', 'make', 'prettier', 'ripgrep']);
      const files = await readdir(paths.cache);
      expect(files.filter((file) => file.includes('corrupt'))).toEqual([]);
    });
  });
});
