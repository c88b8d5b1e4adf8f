import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../../src/catalog/schema.ts';
import { ConfigSchema, type Config } from '../../src/core/config.ts';
import { UpkeepError } from '../../src/core/errors.ts';
import { createHttpClient, type HttpClient } from '../../src/core/http.ts';
import { poolPrefix, upstreamPart } from '../../src/audit/upstream/debian.ts';
import { githubMethodOrder, lookupLatest, type UpstreamContext, type UpstreamResult } from '../../src/audit/upstream/index.ts';
import { npmPath } from '../../src/audit/upstream/npm.ts';
import { startFakeUpstream, upstreamOf, type FakeTool, type FakeUpstream } from '../helpers/fake-upstream.ts';

const TOOLS: Record<string, FakeTool> = {
  gh: { source: 'github', repo: 'acme/gh', releases: [{ tag: 'v2.1.0' }, { tag: 'v2.0.0' }] },
  'gh-pre': {
    source: 'github',
    repo: 'acme/pre',
    releases: [{ tag: 'v3.0.0-rc.1', prerelease: true }, { tag: 'v2.9.0' }, { tag: 'v2.8.0' }],
  },
  'gh-mono': {
    source: 'github',
    repo: 'acme/mono',
    tagPrefix: 'cli-v',
    releases: [
      { tag: 'server-v9.0.0' },
      { tag: 'cli-v1.5.0-beta.1', prerelease: true },
      { tag: 'cli-v1.6.0', draft: true },
      { tag: 'cli-v1.4.0' },
      { tag: 'cli-v1.3.0' },
    ],
  },
  'gh-tags': { source: 'github', repo: 'acme/tags', tags: ['v0.9.0', 'v1.1.0-rc1', 'v1.0.0', 'nightly'] },
  'gh-limited': {
    source: 'github',
    repo: 'acme/limited',
    releases: [{ tag: 'v5.0.0' }, { tag: 'v4.0.0' }],
    behaviour: { 'latest-redirect': 'server-error', api: 'rate-limit' },
  },
  'gh-down': { source: 'github', repo: 'acme/down', releases: [{ tag: 'v1.0.0' }], behaviour: 'server-error' },
  'gh-html': {
    source: 'github',
    repo: 'acme/html',
    releases: [{ tag: 'v1.0.0' }],
    behaviour: { 'latest-redirect': 'html', api: 'html', atom: 'html', tags: 'html' },
  },
  'gh-flaky': { source: 'github', repo: 'acme/flaky', releases: [{ tag: 'v7.1.0' }], behaviour: { 'latest-redirect': 'flaky' } },
  gitlab: {
    source: 'gitlab',
    project: 'group/sub/tool',
    releases: [{ tag: 'v17.0.0', upcoming: true }, { tag: 'v16.3.0-rc1' }, { tag: 'v16.2.0' }, { tag: 'v16.1.5' }],
  },
  'gitlab-prefix': { source: 'gitlab', project: 'group/mono', tagPrefix: 'agent-', releases: [{ tag: 'server-9.0' }, { tag: 'agent-2.3.1' }] },
  pypi: { source: 'pypi', package: 'black', version: '24.4.2', releases: ['24.4.0', '24.4.2'] },
  'pypi-pre': { source: 'pypi', package: 'prepkg', version: '3.0.0b1', releases: ['2.9.0', '2.10.0', '2.11.0', '3.0.0b1'], yanked: ['2.11.0'] },
  'pypi-html': { source: 'pypi', package: 'htmlpkg', version: '1.0', behaviour: 'html' },
  'pypi-bad': { source: 'pypi', package: 'badpkg', version: '1.0', behaviour: 'bad-json' },
  'pypi-missing': { source: 'pypi', package: 'missingpkg', version: '1.0', behaviour: 'missing-field' },
  'pypi-500': { source: 'pypi', package: 'errorpkg', version: '1.0', behaviour: 'server-error' },
  'pypi-slow': { source: 'pypi', package: 'slowpkg', version: '1.0', behaviour: 'slow' },
  'pypi-reset': { source: 'pypi', package: 'resetpkg', version: '1.0', behaviour: 'reset' },
  'pypi-flaky': { source: 'pypi', package: 'flakypkg', version: '1.5', behaviour: 'flaky' },
  'pypi-404': { source: 'pypi', package: 'gonepkg', version: '1.0', behaviour: 'not-found' },
  crates: { source: 'crates', crate: 'ripgrep', maxStable: '14.1.0', max: '15.0.0-alpha.1' },
  'crates-pre-only': { source: 'crates', crate: 'newcrate', maxStable: null, max: '0.1.0-alpha.2' },
  'crates-missing': { source: 'crates', crate: 'brokencrate', maxStable: '1.0.0', max: '1.0.0', behaviour: 'missing-field' },
  npm: { source: 'npm', package: '@acme/cli', distTags: { latest: '1.2.3', next: '2.0.0-beta.1' } },
  'npm-plain': { source: 'npm', package: 'prettier', distTags: { latest: '3.3.3' } },
  gnu: { source: 'gnu', project: 'make', versions: ['3.82', '4.3', '4.4', '4.4.1'] },
  'gnu-dated': { source: 'gnu', project: 'parallel', versions: ['20221122', '20250822', '20250722'] },
  debian: { source: 'debian', package: 'ripgrep', versions: ['13.0.0-4+b1', '14.1.0-1', '14.1.1+ds-2', '14.1.1+ds-1'] },
  'debian-lib': { source: 'debian', package: 'libyaml', versions: ['0.2.5-1', '0.2.4-1'] },
  'debian-pre': { source: 'debian', package: 'jq', versions: ['1.7.1-3', '1.8.0~rc1-1'] },
  ubuntu: { source: 'debian', package: 'curl', archive: 'ubuntu', versions: ['8.5.0-2ubuntu10', '8.9.1-2ubuntu2'] },
};

let fake: FakeUpstream;
const clients: HttpClient[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream({ tools: TOOLS, slowMs: 3000 });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  fake.clearRequests();
});
afterAll(async () => {
  await fake.close();
});

function config(network: Partial<Config['network']> = {}): Config {
  return ConfigSchema.parse({ endpoints: fake.endpoints(), network: { timeout: 5, retries: 1, ...network } });
}

function context(extra: Partial<UpstreamContext> = {}, network: Partial<Config['network']> = {}): UpstreamContext {
  const http = createHttpClient({ config: config(network), environment: {}, userAgent: 'upkeep/test', sleep: async () => undefined });
  clients.push(http);
  return { http, endpoints: fake.endpoints(), includePrereleases: false, ...extra };
}

function upstream(id: string): Upstream {
  return upstreamOf(TOOLS[id]!);
}

async function lookup(id: string, extra: Partial<UpstreamContext> = {}, network: Partial<Config['network']> = {}): Promise<UpstreamResult> {
  const result = await lookupLatest(upstream(id), context(extra, network));
  if (!result) throw new Error('no result');
  return result;
}

async function lookupFailure(id: string, extra: Partial<UpstreamContext> = {}, network: Partial<Config['network']> = {}): Promise<UpkeepError> {
  try {
    await lookup(id, extra, network);
  } catch (error) {
    expect(error).toBeInstanceOf(UpkeepError);
    return error as UpkeepError;
  }
  throw new Error(`expected ${id} to fail`);
}

const routesAsked = (): Array<string | null> => fake.requests.map((request) => request.route);

describe('github', () => {
  it('reads the latest release from the web redirect first, with no API request', async () => {
    const result = await lookup('gh');
    expect(result).toMatchObject({ version: '2.1.0', method: 'latest-redirect' });
    expect(result.url).toBe(`${fake.urlOf('github')}/acme/gh/releases/tag/v2.1.0`);
    expect(routesAsked()).toEqual(['latest-redirect']);
  });

  it('skips pre-releases unless asked', async () => {
    expect((await lookup('gh-pre')).version).toBe('2.9.0');
    fake.clearRequests();
    const withPre = await lookup('gh-pre', { includePrereleases: true });
    expect(withPre).toMatchObject({ version: '3.0.0-rc.1', method: 'api' });
    expect(routesAsked()).toEqual(['api']);
    expect(fake.requests[0]!.path).toContain('/releases?per_page=100');
  });

  it('filters by tag prefix, skipping drafts and pre-releases', async () => {
    const result = await lookup('gh-mono');
    expect(result).toMatchObject({ version: '1.4.0', method: 'api' });
    // The redirect names server-v9.0.0: not ours, so the API list is asked.
    expect(routesAsked()).toEqual(['latest-redirect', 'api']);
  });

  it('falls back to tags when there are no releases', async () => {
    const result = await lookup('gh-tags');
    expect(result).toMatchObject({ version: '1.0.0', method: 'tags' });
    expect(routesAsked()).toEqual(['latest-redirect', 'api', 'atom', 'tags']);
  });

  it('falls through from a rate-limited API to the Atom feed', async () => {
    const result = await lookup('gh-limited');
    expect(result).toMatchObject({ version: '5.0.0', method: 'atom' });
    expect(routesAsked()).toEqual(['latest-redirect', 'latest-redirect', 'api', 'atom']);
  });

  it('tries the hint first', async () => {
    const result = await lookup('gh', { hint: 'atom' });
    expect(result).toMatchObject({ version: '2.1.0', method: 'atom' });
    expect(routesAsked()).toEqual(['atom']);
    expect(githubMethodOrder({ hint: 'tags', includePrereleases: false })).toEqual(['tags', 'latest-redirect', 'api', 'atom']);
    expect(githubMethodOrder({ hint: 'bogus', includePrereleases: false })).toEqual(['latest-redirect', 'api', 'atom', 'tags']);
    expect(githubMethodOrder({ includePrereleases: true })).toEqual(['api', 'atom', 'tags']);
  });

  it('sends the previous ETag to the method that produced it and reports a 304', async () => {
    const first = await lookup('gh', { hint: 'api' });
    expect(first.method).toBe('api');
    expect(first.etag).toBeTruthy();
    fake.clearRequests();
    const second = await lookup('gh', { hint: 'api', previous: { version: first.version, url: first.url, method: 'api', etag: first.etag! } });
    expect(second).toMatchObject({ version: '2.1.0', method: 'api', notModified: true, etag: first.etag });
    expect(fake.requests[0]!.headers['if-none-match']).toBe(first.etag);
  });

  it('retries a flaky redirect', async () => {
    expect(await lookup('gh-flaky')).toMatchObject({ version: '7.1.0', method: 'latest-redirect' });
  });

  it('reports the first real failure when every method fails', async () => {
    const error = await lookupFailure('gh-down');
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details?.status).toBe(500);
    const html = await lookupFailure('gh-html');
    expect(html.code).toBe('E_UPSTREAM_PARSE');
  });
});

describe('gitlab', () => {
  it('takes the highest stable release that is not upcoming', async () => {
    const result = await lookup('gitlab');
    expect(result).toMatchObject({ version: '16.2.0', method: 'api' });
    expect(fake.requests[0]!.path).toBe('/api/v4/projects/group%2Fsub%2Ftool/releases');
    expect(result.url).toContain('/group/sub/tool/-/releases/v16.2.0');
  });

  it('filters by tag prefix', async () => {
    expect((await lookup('gitlab-prefix')).version).toBe('2.3.1');
  });
});

describe('pypi', () => {
  it('reads info.version', async () => {
    const result = await lookup('pypi');
    expect(result).toMatchObject({ version: '24.4.2', method: 'json' });
    expect(result.url).toBe(`${fake.urlOf('pypi')}/project/black/24.4.2/`);
  });

  it('replaces a pre-release with the highest stable release that is not yanked', async () => {
    expect((await lookup('pypi-pre')).version).toBe('2.10.0');
    expect((await lookup('pypi-pre', { includePrereleases: true })).version).toBe('3.0.0b1');
  });

  it.each([
    ['pypi-html', 'E_UPSTREAM_PARSE', 'HTML page instead of JSON'],
    ['pypi-bad', 'E_UPSTREAM_PARSE', 'bad JSON'],
    ['pypi-missing', 'E_UPSTREAM_PARSE', 'missing field info.version'],
    ['pypi-500', 'E_HTTP_STATUS', 'HTTP 500'],
    ['pypi-404', 'E_HTTP_STATUS', 'HTTP 404'],
    ['pypi-slow', 'E_HTTP_TIMEOUT', 'timed out'],
    ['pypi-reset', 'E_HTTP_NETWORK', 'connection reset'],
  ])('reports %s as %s (%s) with the URL', async (id, code, reason) => {
    // Only the slow answer needs a short timeout; the others keep a generous one for loaded machines.
    const error = await lookupFailure(id, {}, id === 'pypi-slow' ? { timeout: 0.3 } : {});
    expect(error.code).toBe(code);
    expect(error.details?.reason).toBe(reason);
    expect(error.message).toContain(`${fake.urlOf('pypi')}/pypi/`);
  });

  it('retries a 502 and succeeds', async () => {
    expect((await lookup('pypi-flaky')).version).toBe('1.5');
    expect(fake.requests.map((request) => request.status)).toEqual([502, 200]);
  });
});

describe('crates', () => {
  it('reads max_stable_version, or max_version with pre-releases or without a stable one', async () => {
    expect(await lookup('crates')).toMatchObject({ version: '14.1.0', method: 'api' });
    expect((await lookup('crates', { includePrereleases: true })).version).toBe('15.0.0-alpha.1');
    expect((await lookup('crates-pre-only')).version).toBe('0.1.0-alpha.2');
    expect(fake.requests.every((request) => request.headers['user-agent'] === 'upkeep/test')).toBe(true);
  });

  it('reports a missing field', async () => {
    const error = await lookupFailure('crates-missing');
    expect(error.code).toBe('E_UPSTREAM_PARSE');
  });
});

describe('npm', () => {
  it('reads dist-tags.latest from the abbreviated document of a scoped package', async () => {
    const result = await lookup('npm');
    expect(result).toMatchObject({ version: '1.2.3', method: 'registry' });
    expect(fake.requests[0]!.path).toBe('/@acme%2Fcli');
    expect(fake.requests[0]!.headers.accept).toContain('application/vnd.npm.install-v1+json');
    expect((await lookup('npm-plain')).version).toBe('3.3.3');
  });

  it('takes the higher of next and latest when pre-releases are wanted', async () => {
    expect((await lookup('npm', { includePrereleases: true })).version).toBe('2.0.0-beta.1');
    expect((await lookup('npm-plain', { includePrereleases: true })).version).toBe('3.3.3');
    expect(npmPath('@scope/name')).toBe('@scope%2Fname');
  });
});

describe('gnu', () => {
  it('finds the highest tarball version in the listing', async () => {
    const result = await lookup('gnu');
    expect(result).toMatchObject({ version: '4.4.1', method: 'listing' });
    expect(result.url).toMatch(/\/gnu\/make\/make-4\.4\.1\.tar\.(gz|xz|bz2|lz)$/);
  });

  it('reads date versions without a dot (GNU parallel)', async () => {
    expect((await lookup('gnu-dated')).version).toBe('20250822');
  });
});

describe('debian', () => {
  it('reports the upstream part of the highest .dsc in the pool', async () => {
    const result = await lookup('debian');
    expect(result).toMatchObject({ version: '14.1.1', method: 'pool' });
    expect(result.url).toBe(`${fake.urlOf('debian')}/pool/main/r/ripgrep/ripgrep_14.1.1+ds-2.dsc`);
  });

  it('uses the lib prefix folder and the Ubuntu archive', async () => {
    expect((await lookup('debian-lib')).version).toBe('0.2.5');
    expect(fake.requests[0]!.path).toBe('/debian/pool/main/liby/libyaml/');
    expect((await lookup('ubuntu')).version).toBe('8.9.1');
  });

  it('skips pre-releases unless asked', async () => {
    expect((await lookup('debian-pre')).version).toBe('1.7.1');
    expect((await lookup('debian-pre', { includePrereleases: true })).version).toBe('1.8.0~rc1');
  });

  it('parses versions and pool prefixes', () => {
    expect(upstreamPart('1:2.40.1+dfsg-3+deb12u1')).toBe('2.40.1');
    expect(upstreamPart('13.0.0-4+b1')).toBe('13.0.0');
    expect(upstreamPart('0.10.0+ds1-2')).toBe('0.10.0');
    expect(upstreamPart('20240101')).toBe('20240101');
    expect(poolPrefix('libyaml')).toBe('liby');
    expect(poolPrefix('lib')).toBe('l');
    expect(poolPrefix('jq')).toBe('j');
  });
});

describe('none', () => {
  it('asks nobody', async () => {
    expect(await lookupLatest({ source: 'none', reason: 'bundled' }, context())).toBeNull();
    expect(fake.requests).toEqual([]);
  });
});
