import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/core/config.ts';
import { UpkeepError } from '../../src/core/errors.ts';
import { createHttpClient, parseRetryAfter, sharedLookup, type HttpClient, type HttpClientOptions } from '../../src/core/http.ts';
import type { Logger } from '../../src/core/log.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';

let fake: FakeUpstream;
const clients: HttpClient[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream({
    slowMs: 3000,
    tools: {
      ok: { source: 'pypi', package: 'okpkg', version: '1.2.3' },
      flaky: { source: 'pypi', package: 'flakypkg', version: '2.0.0', behaviour: 'flaky' },
      broken: { source: 'pypi', package: 'brokenpkg', version: '2.0.0', behaviour: 'server-error' },
      throttled: { source: 'pypi', package: 'throttledpkg', version: '3.0.0', behaviour: 'throttled' },
      throttledAgain: { source: 'pypi', package: 'throttledagain', version: '3.0.0', behaviour: 'throttled' },
      slow: { source: 'pypi', package: 'slowpkg', version: '1.0.0', behaviour: 'slow' },
      reset: { source: 'pypi', package: 'resetpkg', version: '1.0.0', behaviour: 'reset' },
      missing: { source: 'pypi', package: 'missingpkg', version: '1.0.0', behaviour: 'not-found' },
      limited: { source: 'github', repo: 'acme/limited', releases: [{ tag: 'v1.0.0' }], behaviour: { api: 'rate-limit' } },
      other: { source: 'github', repo: 'acme/other', releases: [{ tag: 'v2.0.0' }] },
      gitlabbed: { source: 'gitlab', project: 'group/tool', releases: [{ tag: 'v1.0.0' }] },
      crate: { source: 'crates', crate: 'fast', maxStable: '1.0.0', max: '1.1.0-beta.1' },
    },
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  fake.clearRequests();
});

afterAll(async () => {
  await fake.close();
});

function makeConfig(network: Partial<Config['network']> = {}): Config {
  return ConfigSchema.parse({ endpoints: fake.endpoints(), network: { timeout: 5, retries: 2, perHostConcurrency: 4, ...network } });
}

interface TestClient {
  client: HttpClient;
  delays: number[];
  lines: string[];
}

function makeClient(options: Partial<HttpClientOptions> & { network?: Partial<Config['network']> } = {}): TestClient {
  const delays: number[] = [];
  const lines: string[] = [];
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), flush() {} };
  const client = createHttpClient({
    config: makeConfig(options.network),
    environment: {},
    logger,
    userAgent: 'upkeep/9.9.9-test',
    // Backoff is asserted through the delays asked for, never by waiting.
    sleep: async (milliseconds) => {
      delays.push(milliseconds);
    },
    random: () => 0.5,
    ...options,
  });
  clients.push(client);
  return { client, delays, lines };
}

async function failure(promise: Promise<unknown>): Promise<UpkeepError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UpkeepError);
    return error as UpkeepError;
  }
  throw new Error('expected a failure');
}

const pypi = (name: string): string => `${fake.urlOf('pypi')}/pypi/${name}/json`;

describe('http client', () => {
  it('gets a body with the user agent and a keep-alive connection', async () => {
    const { client } = makeClient();
    const first = await client.get(pypi('okpkg'));
    const second = await client.get(pypi('okpkg'));
    expect(first.status).toBe(200);
    expect(first.notModified).toBe(false);
    expect(JSON.parse(first.body).info.version).toBe('1.2.3');
    expect(first.headers.etag).toMatch(/^"/);
    expect(second.status).toBe(200);
    expect(fake.requests.map((request) => request.headers['user-agent'])).toEqual(['upkeep/9.9.9-test', 'upkeep/9.9.9-test']);
  });

  it('sends If-None-Match and reports a 304 as notModified', async () => {
    const { client } = makeClient();
    const first = await client.get(pypi('okpkg'));
    const second = await client.get(pypi('okpkg'), { etag: first.headers.etag! });
    expect(second.status).toBe(304);
    expect(second.notModified).toBe(true);
    expect(second.body).toBe('');
    expect(fake.requests[1]!.headers['if-none-match']).toBe(first.headers.etag);
    const stale = await client.get(pypi('okpkg'), { etag: '"something-else"' });
    expect(stale.status).toBe(200);
  });

  it('retries a 502 and succeeds', async () => {
    const { client, delays } = makeClient();
    const response = await client.get(pypi('flakypkg'));
    expect(response.status).toBe(200);
    expect(fake.requests.filter((request) => request.tool === 'flaky').map((request) => request.status)).toEqual([502, 200]);
    expect(delays).toHaveLength(1);
  });

  it('backs off exponentially and gives up after the configured retries', async () => {
    const { client, delays } = makeClient({ network: { retries: 3 } });
    const error = await failure(client.get(pypi('brokenpkg')));
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details?.status).toBe(500);
    expect(error.hint).toBeTruthy();
    expect(fake.requests.filter((request) => request.tool === 'broken')).toHaveLength(4);
    expect(delays).toHaveLength(3);
    expect(delays[1]!).toBeGreaterThan(delays[0]!);
    expect(delays[2]!).toBeGreaterThan(delays[1]!);
  });

  it('does not retry a 404', async () => {
    const { client, delays } = makeClient();
    const error = await failure(client.get(pypi('missingpkg')));
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details?.status).toBe(404);
    expect(fake.requests).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('waits for a short Retry-After on 429 and retries', async () => {
    const { client, delays } = makeClient();
    const response = await client.get(pypi('throttledpkg'));
    expect(response.status).toBe(200);
    expect(delays).toEqual([1000]);
  });

  it('does not wait for a Retry-After past the cap', async () => {
    const { client, delays } = makeClient({ backoff: { retryAfterCapMs: 500 } });
    const error = await failure(client.get(pypi('throttledagain')));
    expect(error.code).toBe('E_HTTP_RATE_LIMIT');
    expect(delays).toEqual([]);
  });

  it('times out a slow answer, retries, then reports E_HTTP_TIMEOUT', async () => {
    const { client } = makeClient({ network: { timeout: 0.2, retries: 1 } });
    const error = await failure(client.get(pypi('slowpkg')));
    expect(error.code).toBe('E_HTTP_TIMEOUT');
    expect(error.details?.reason).toBe('timed out');
    expect(fake.requests.filter((request) => request.tool === 'slow')).toHaveLength(2);
  });

  it('retries a reset connection, then reports E_HTTP_NETWORK', async () => {
    const { client, delays } = makeClient({ network: { retries: 2 } });
    const error = await failure(client.get(pypi('resetpkg')));
    expect(error.code).toBe('E_HTTP_NETWORK');
    expect(fake.requests.filter((request) => request.tool === 'reset')).toHaveLength(3);
    expect(delays).toHaveLength(2);
  });

  it('skips a host that never answered after three network failures, but keeps retrying one that has answered', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { client, delays } = makeClient({ network: { retries: 1 } });
    const refused = await failure(client.get(`http://127.0.0.1:${port}/one`));
    expect(refused.details?.reason).toBe('connection refused');
    expect(delays).toHaveLength(1);
    // Its third failure gives up on the host: this request is not retried, the next is not even sent.
    await failure(client.get(`http://127.0.0.1:${port}/two`));
    expect(delays).toHaveLength(1);
    const skipped = await failure(client.get(`http://127.0.0.1:${port}/three`));
    expect(skipped).toMatchObject({ code: 'E_HTTP_NETWORK', details: { reason: 'host unreachable' } });
    expect(skipped.message).toContain('did not answer earlier in this run');
    expect(delays).toHaveLength(1);

    const reset = makeClient({ network: { retries: 2 } });
    await reset.client.get(pypi('ripgrep')).catch(() => undefined);
    for (let request = 0; request < 2; request += 1) await failure(reset.client.get(pypi('resetpkg')));
    expect(fake.requests.filter((entry) => entry.tool === 'reset')).toHaveLength(6);
  });

  it('reports a refused connection as E_HTTP_NETWORK', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const { client } = makeClient({ network: { retries: 1 } });
    const error = await failure(client.get(`http://127.0.0.1:${port}/`));
    expect(error.code).toBe('E_HTTP_NETWORK');
    expect(error.details?.reason).toBe('connection refused');
  });

  it('stops at a GitHub rate limit, marks the host and fails further requests to it at once', async () => {
    const { client, delays } = makeClient();
    const api = fake.urlOf('githubApi');
    const error = await failure(client.get(`${api}/repos/acme/limited/releases/latest`));
    expect(error.code).toBe('E_HTTP_RATE_LIMIT');
    expect(error.details?.reason).toBe(`rate limited by ${new URL(api).host}`);
    expect(error.hint).toContain('GITHUB_TOKEN');
    expect(delays).toEqual([]);
    expect(fake.requests).toHaveLength(1);
    expect(client.rateLimitedUntil(new URL(api).host)).toBeGreaterThan(Date.now());

    const again = await failure(client.get(`${api}/repos/acme/other/releases/latest`));
    expect(again.code).toBe('E_HTTP_RATE_LIMIT');
    expect(fake.requests).toHaveLength(1);
    // Other hosts are not affected.
    const web = await client.get(`${fake.urlOf('github')}/acme/other/releases/latest`);
    expect(web.status).toBe(302);
  });

  it('sends tokens only to the hosts they belong to', async () => {
    const { client } = makeClient({ environment: { GH_TOKEN: 'ghp_abcdefghijklmnopqrstuv', GITLAB_TOKEN: 'glpat-abcdefghijklmnop' } });
    await client.get(`${fake.urlOf('githubApi')}/repos/acme/other/releases/latest`);
    await client.get(`${fake.urlOf('github')}/acme/other/releases.atom`);
    await client.get(`${fake.urlOf('gitlab')}/api/v4/projects/group%2Ftool/releases`);
    await client.get(pypi('okpkg'));
    await client.get(`${fake.urlOf('crates')}/api/v1/crates/fast`);
    const authorization = Object.fromEntries(fake.requests.map((request) => [request.service, request.headers.authorization]));
    expect(authorization).toEqual({
      githubApi: 'Bearer ghp_abcdefghijklmnopqrstuv',
      github: 'Bearer ghp_abcdefghijklmnopqrstuv',
      gitlab: 'Bearer glpat-abcdefghijklmnop',
      pypi: undefined,
      crates: undefined,
    });
  });

  it('prefers GITHUB_TOKEN over GH_TOKEN and lets an explicit authorization header win', async () => {
    const { client } = makeClient({ environment: { GITHUB_TOKEN: 'first-token-value', GH_TOKEN: 'second-token-value' } });
    await client.get(`${fake.urlOf('githubApi')}/repos/acme/other/releases/latest`);
    await client.get(`${fake.urlOf('githubApi')}/repos/acme/other/releases/latest`, { headers: { Authorization: 'token explicit' } });
    expect(fake.requests.map((request) => request.headers.authorization)).toEqual(['Bearer first-token-value', 'token explicit']);
  });

  it('redacts tokens in URLs and headers from error messages and log lines', async () => {
    const secret = 'plain-secret-0123456789';
    const { client, lines } = makeClient({ environment: { GITHUB_TOKEN: secret }, network: { retries: 1 } });
    const inQuery = await failure(client.get(`${pypi('brokenpkg')}?access_token=qwertyuiop12345`));
    const inUserinfo = await failure(client.get(pypi('resetpkg').replace('http://', 'http://someone:hunter2hunter2@')));
    const inPath = await failure(client.get(`${fake.urlOf('githubApi')}/repos/acme/${secret}/releases/latest`));
    const inHeader = await failure(client.get(pypi('resetpkg'), { headers: { authorization: 'token header-secret-987654' } }));
    for (const error of [inQuery, inUserinfo, inPath, inHeader]) {
      const text = `${error.message} ${error.hint} ${JSON.stringify(error.details)} ${String((error.cause as Error | undefined)?.message)}`;
      expect(text).not.toContain('qwertyuiop12345');
      expect(text).not.toContain('hunter2hunter2');
      expect(text).not.toContain(secret);
      expect(text).not.toContain('header-secret-987654');
    }
    expect(inQuery.message).toContain('[redacted]');
    const log = lines.join('\n');
    expect(log).not.toContain('qwertyuiop12345');
    expect(log).not.toContain('hunter2hunter2');
    expect(log).not.toContain(secret);
    expect(log).not.toContain('header-secret-987654');
  });

  it('keeps requests in flight to one host within network.perHostConcurrency', async () => {
    const latent = await startFakeUpstream({ latencyMs: 40, tools: { ok: { source: 'pypi', package: 'okpkg', version: '1.0.0' } } });
    try {
      const client = createHttpClient({
        config: ConfigSchema.parse({ endpoints: latent.endpoints(), network: { perHostConcurrency: 3 } }),
        environment: {},
      });
      clients.push(client);
      const url = `${latent.urlOf('pypi')}/pypi/okpkg/json`;
      const responses = await Promise.all(Array.from({ length: 12 }, () => client.get(url)));
      expect(responses.every((response) => response.status === 200)).toBe(true);
      expect(latent.requests).toHaveLength(12);
      expect(latent.maxInFlight('pypi')).toBeLessThanOrEqual(3);
      expect(latent.maxInFlight('pypi')).toBeGreaterThan(1);
    } finally {
      await latent.close();
    }
  });

  it('refuses a body larger than maxBytes', async () => {
    const { client, delays } = makeClient();
    const error = await failure(client.get(pypi('okpkg'), { maxBytes: 16 }));
    expect(error.code).toBe('E_HTTP_BODY');
    expect(delays).toEqual([]);
  });

  it('does not follow redirects unless asked', async () => {
    const { client } = makeClient();
    const url = `${fake.urlOf('github')}/acme/other/releases/latest`;
    const manual = await client.get(url);
    expect(manual.status).toBe(302);
    expect(manual.headers.location).toMatch(/\/acme\/other\/releases\/tag\/v2\.0\.0$/);
    const followed = await client.get(url, { followRedirects: true });
    expect(followed.status).toBe(200);
    expect(followed.url).toMatch(/\/releases\/tag\/v2\.0\.0$/);
  });

  it('parses Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeNull();
    expect(parseRetryAfter(undefined, 0)).toBeNull();
  });
});

describe('proxies', () => {
  let proxy: Server;
  let proxyUrl: string;
  const tunnels: string[] = [];
  const proxySockets = new Set<Socket>();

  beforeAll(async () => {
    proxy = createServer((_request, response) => {
      response.writeHead(405);
      response.end();
    });
    // A CONNECT proxy that tunnels to loopback only and refuses anything else.
    proxy.on('connect', (request, client: Socket, head: Buffer) => {
      const target = request.url ?? '';
      tunnels.push(target);
      proxySockets.add(client);
      const [host, port] = target.split(':');
      if (host !== '127.0.0.1') {
        client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      const upstream = connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      proxySockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterEach(() => {
    tunnels.length = 0;
  });

  afterAll(async () => {
    for (const socket of proxySockets) socket.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  it('sends http requests through HTTP_PROXY from the given environment', async () => {
    const { client } = makeClient({ environment: { HTTP_PROXY: proxyUrl } });
    const response = await client.get(pypi('okpkg'));
    expect(response.status).toBe(200);
    expect(tunnels).toEqual([new URL(fake.urlOf('pypi')).host]);
  });

  it('sends https requests through HTTPS_PROXY and keeps its password out of errors', async () => {
    const withPassword = proxyUrl.replace('http://', 'http://proxyuser:pr0xy-passw0rd@');
    const { client } = makeClient({ environment: { HTTPS_PROXY: withPassword }, network: { retries: 0 } });
    const error = await failure(client.get('https://upstream.example.test/pypi/okpkg/json'));
    expect(tunnels).toEqual(['upstream.example.test:443']);
    expect(error.code).toBe('E_HTTP_NETWORK');
    expect(`${error.message} ${JSON.stringify(error.details)}`).not.toContain('pr0xy-passw0rd');
    // Plain http is not sent to an HTTPS-only proxy.
    tunnels.length = 0;
    await client.get(pypi('okpkg'));
    expect(tunnels).toEqual([]);
  });

  it('honours NO_PROXY', async () => {
    const { client } = makeClient({ environment: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: 'localhost,127.0.0.1' } });
    const response = await client.get(pypi('okpkg'));
    expect(response.status).toBe(200);
    expect(tunnels).toEqual([]);
  });

  it('never reads proxies from process.env', async () => {
    const saved = process.env.HTTP_PROXY;
    process.env.HTTP_PROXY = proxyUrl;
    try {
      const { client } = makeClient({ environment: {} });
      await client.get(pypi('okpkg'));
      const { client: viaEmptyNoProxy } = makeClient({ environment: { HTTPS_PROXY: proxyUrl } });
      await viaEmptyNoProxy.get(pypi('okpkg'));
      expect(tunnels).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.HTTP_PROXY;
      else process.env.HTTP_PROXY = saved;
    }
  });
});

describe('download', () => {
  let assets: Server;
  let elsewhere: Server;
  let assetsUrl: string;
  let elsewhereUrl: string;
  let folder: string;
  const payload = Buffer.from(Array.from({ length: 200_000 }, (_, index) => (index * 7) % 251));
  const seen: Array<{ server: 'assets' | 'elsewhere'; path: string; authorization: string | undefined; acceptEncoding: string | undefined }> = [];
  let flakyFailures = 0;
  let cutFailures = 0;
  const openSockets = new Set<Socket>();

  const digest = (algorithm: string, data: Buffer): string => createHash(algorithm).update(data).digest('hex');

  beforeAll(async () => {
    elsewhere = createServer((request, response) => {
      seen.push({ server: 'elsewhere', path: request.url ?? '', authorization: request.headers.authorization, acceptEncoding: request.headers['accept-encoding'] });
      if (request.url === '/object/asset.bin') {
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(payload.length) });
        response.end(payload);
        return;
      }
      response.writeHead(404);
      response.end();
    });
    assets = createServer((request, response) => {
      seen.push({ server: 'assets', path: request.url ?? '', authorization: request.headers.authorization, acceptEncoding: request.headers['accept-encoding'] });
      const path = request.url ?? '';
      if (path === '/asset.bin') {
        response.writeHead(200, { 'content-length': String(payload.length) });
        response.end(payload);
      } else if (path === '/chunked.bin') {
        // No content-length: the total is unknown while it arrives.
        response.writeHead(200);
        response.write(payload.subarray(0, 1000));
        response.end(payload.subarray(1000));
      } else if (path === '/gzipped.gz') {
        // Served with a content-encoding, as misconfigured servers do for .gz files: kept as is.
        response.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(payload.length) });
        response.end(payload);
      } else if (path === '/moved') {
        response.writeHead(302, { location: `${elsewhereUrl}/object/asset.bin` });
        response.end();
      } else if (path === '/relative') {
        response.writeHead(301, { location: '/asset.bin' });
        response.end();
      } else if (path === '/loop') {
        response.writeHead(302, { location: '/loop' });
        response.end();
      } else if (path === '/flaky.bin') {
        if (flakyFailures++ === 0) {
          response.writeHead(502);
          response.end();
          return;
        }
        response.writeHead(200, { 'content-length': String(payload.length) });
        response.end(payload);
      } else if (path === '/stall.bin') {
        // Some bytes, then silence: a stuck transfer, not a slow one.
        response.writeHead(200, { 'content-length': String(payload.length) });
        response.write(payload.subarray(0, 5000));
      } else if (path === '/cut.bin') {
        // The first answer promises everything and stops half-way.
        if (cutFailures++ === 0) {
          response.writeHead(200, { 'content-length': String(payload.length) });
          response.write(payload.subarray(0, 5000), () => response.socket?.destroy());
          return;
        }
        response.writeHead(200, { 'content-length': String(payload.length) });
        response.end(payload);
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    for (const server of [assets, elsewhere]) server.on('connection', (socket) => {
      openSockets.add(socket);
      socket.on('close', () => openSockets.delete(socket));
    });
    await new Promise<void>((resolve) => assets.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    assetsUrl = `http://127.0.0.1:${(assets.address() as AddressInfo).port}`;
    elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
    folder = await mkdtemp(join(tmpdir(), 'upkeep-download-'));
  });

  afterEach(() => {
    seen.length = 0;
  });

  afterAll(async () => {
    for (const socket of openSockets) socket.destroy();
    await Promise.all([assets, elsewhere].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await rm(folder, { recursive: true, force: true });
  });

  /** A client that treats the assets server as GitHub, so it gets the token. */
  function downloadClient(environment: Record<string, string> = {}, network: Partial<Config['network']> = {}): TestClient {
    return makeClient({
      config: ConfigSchema.parse({ endpoints: { ...fake.endpoints(), github: assetsUrl }, network: { timeout: 5, retries: 2, ...network } }),
      environment,
    });
  }

  it('writes the body to the file, creating its folder, and returns its size and digests', async () => {
    const { client } = downloadClient();
    const destination = join(folder, 'plain', 'nested', 'asset.bin');
    const result = await client.download(`${assetsUrl}/asset.bin`, destination);
    expect(result).toEqual({ bytes: payload.length, sha256: digest('sha256', payload), sha512: digest('sha512', payload) });
    expect((await readFile(destination)).equals(payload)).toBe(true);
    expect(seen[0]!.acceptEncoding).toBe('identity');
  });

  it('keeps a body with a content-encoding as served, so published checksums match', async () => {
    const { client } = downloadClient();
    const destination = join(folder, 'encoded.gz');
    const result = await client.download(`${assetsUrl}/gzipped.gz`, destination);
    expect(result.sha256).toBe(digest('sha256', payload));
    expect((await readFile(destination)).equals(payload)).toBe(true);
  });

  it('reports progress up to the declared total, or with a null total when none is declared', async () => {
    const { client } = downloadClient();
    const declared: Array<[number, number | null]> = [];
    await client.download(`${assetsUrl}/asset.bin`, join(folder, 'progress.bin'), { onProgress: (received, total) => declared.push([received, total]) });
    expect(declared[0]).toEqual([0, payload.length]);
    expect(declared.at(-1)).toEqual([payload.length, payload.length]);
    const received = declared.map(([count]) => count);
    expect(received).toEqual([...received].sort((left, right) => left - right));

    const undeclared: Array<[number, number | null]> = [];
    const result = await client.download(`${assetsUrl}/chunked.bin`, join(folder, 'chunked.bin'), { onProgress: (count, total) => undeclared.push([count, total]) });
    expect(result.bytes).toBe(payload.length);
    expect(undeclared.every(([, total]) => total === null)).toBe(true);
    expect(undeclared.at(-1)![0]).toBe(payload.length);
  });

  it('follows a redirect to another host and sends the token only to the host it belongs to', async () => {
    const { client } = downloadClient({ GITHUB_TOKEN: 'ghp_downloadtoken123456' });
    const destination = join(folder, 'moved.bin');
    const result = await client.download(`${assetsUrl}/moved`, destination);
    expect(result.sha256).toBe(digest('sha256', payload));
    expect(seen.map((request) => [request.server, request.path, request.authorization])).toEqual([
      ['assets', '/moved', 'Bearer ghp_downloadtoken123456'],
      ['elsewhere', '/object/asset.bin', undefined],
    ]);
  });

  it('follows a relative redirect and stops a redirect loop', async () => {
    const { client } = downloadClient();
    const relative = await client.download(`${assetsUrl}/relative`, join(folder, 'relative.bin'));
    expect(relative.bytes).toBe(payload.length);
    const error = await failure(client.download(`${assetsUrl}/loop`, join(folder, 'loop.bin')));
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details?.reason).toBe('too many redirects');
  });

  it('retries a 502 and a connection cut part-way, starting the file afresh', async () => {
    const { client, delays } = downloadClient();
    const flaky = await client.download(`${assetsUrl}/flaky.bin`, join(folder, 'flaky.bin'));
    expect(flaky.sha256).toBe(digest('sha256', payload));
    const destination = join(folder, 'cut.bin');
    const cut = await client.download(`${assetsUrl}/cut.bin`, destination);
    expect(cut.bytes).toBe(payload.length);
    expect((await readFile(destination)).equals(payload)).toBe(true);
    expect(seen.filter((request) => request.path === '/cut.bin')).toHaveLength(2);
    expect(delays).toHaveLength(2);
  });

  it('fails a 404 with E_HTTP_STATUS naming the redacted URL, without retrying or leaving a file', async () => {
    const { client, delays } = downloadClient();
    const destination = join(folder, 'missing.bin');
    const error = await failure(client.download(`${assetsUrl}/missing.bin?token=secretvalue12345`, destination));
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details?.status).toBe(404);
    expect(error.message).toContain(`${assetsUrl}/missing.bin`);
    expect(error.message).not.toContain('secretvalue12345');
    expect(delays).toEqual([]);
    await expect(readFile(destination)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a file larger than maxBytes, declared or not, and removes what was written', async () => {
    const { client } = downloadClient();
    const declared = await failure(client.download(`${assetsUrl}/asset.bin`, join(folder, 'big.bin'), { maxBytes: 1000 }));
    expect(declared.code).toBe('E_HTTP_BODY');
    const destination = join(folder, 'big-chunked.bin');
    const streamed = await failure(client.download(`${assetsUrl}/chunked.bin`, destination, { maxBytes: 1000 }));
    expect(streamed.code).toBe('E_HTTP_BODY');
    await expect(readFile(destination)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a destination it cannot write as E_FS_WRITE without retrying', async () => {
    const { client, delays } = downloadClient();
    const blocker = join(folder, 'a-file');
    await writeFile(blocker, 'not a folder');
    const error = await failure(client.download(`${assetsUrl}/asset.bin`, join(blocker, 'asset.bin')));
    expect(error.code).toBe('E_FS_WRITE');
    expect(error.details?.path).toBe(join(blocker, 'asset.bin'));
    const onFolder = await failure(client.download(`${assetsUrl}/asset.bin`, folder));
    expect(onFolder.code).toBe('E_FS_WRITE');
    expect(delays).toEqual([]);
  });

  it('abandons a transfer that stops sending and reports E_HTTP_TIMEOUT', async () => {
    const { client } = downloadClient({}, { retries: 0 });
    const destination = join(folder, 'stall.bin');
    const error = await failure(client.download(`${assetsUrl}/stall.bin`, destination, { idleTimeoutMs: 200 }));
    expect(error.code).toBe('E_HTTP_TIMEOUT');
    await expect(readFile(destination)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('sharedLookup', () => {
  const ipv4 = { address: '192.0.2.7', family: 4 };
  const ipv6 = { address: '2001:db8::7', family: 6 };

  /** A resolver that counts the names it was asked, answering from a table (a missing name is ENOTFOUND). */
  function resolver(table: Record<string, Array<{ address: string; family: number }> | NodeJS.ErrnoException>) {
    const asked: string[] = [];
    const resolve = async (hostname: string) => {
      asked.push(hostname);
      await new Promise((done) => setTimeout(done, 10));
      const answer = table[hostname] ?? Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      if (answer instanceof Error) throw answer;
      return answer;
    };
    return { asked, resolve };
  }

  function look(lookup: ReturnType<typeof sharedLookup>, hostname: string, options: { all?: boolean; family?: number } = {}) {
    return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>((done) => {
      lookup(hostname, options, (error, address, family) => done({ error, address, ...(family === undefined ? {} : { family }) }));
    });
  }

  it('asks the resolver once per name however many requests look it up at once', async () => {
    const { asked, resolve } = resolver({ 'example.org': [ipv4, ipv6] });
    const lookup = sharedLookup(resolve);
    const answers = await Promise.all(Array.from({ length: 20 }, () => look(lookup, 'example.org')));
    expect(asked).toEqual(['example.org']);
    expect(answers.every((answer) => answer.error === null && answer.address === '192.0.2.7' && answer.family === 4)).toBe(true);
    expect(await look(lookup, 'example.org', { all: true })).toEqual({ error: null, address: [ipv4, ipv6] });
    expect(asked).toEqual(['example.org']);
  });

  it('answers with the family asked for, and ENOTFOUND when the name has none of it', async () => {
    const lookup = sharedLookup(resolver({ 'both.example': [ipv4, ipv6], 'v4.example': [ipv4] }).resolve);
    expect(await look(lookup, 'both.example', { family: 6 })).toEqual({ error: null, address: '2001:db8::7', family: 6 });
    expect((await look(lookup, 'v4.example', { family: 6 })).error).toMatchObject({ code: 'ENOTFOUND' });
  });

  it('keeps "no such name", but asks again after a resolver failure that may pass', async () => {
    const timeout = Object.assign(new Error('getaddrinfo EAI_AGAIN flaky.example'), { code: 'EAI_AGAIN' });
    const { asked, resolve } = resolver({ 'flaky.example': timeout });
    const lookup = sharedLookup(resolve);
    expect((await look(lookup, 'missing.example')).error).toMatchObject({ code: 'ENOTFOUND' });
    expect((await look(lookup, 'missing.example')).error).toMatchObject({ code: 'ENOTFOUND' });
    expect((await look(lookup, 'flaky.example')).error).toMatchObject({ code: 'EAI_AGAIN' });
    expect((await look(lookup, 'flaky.example')).error).toMatchObject({ code: 'EAI_AGAIN' });
    expect(asked).toEqual(['missing.example', 'flaky.example', 'flaky.example']);
  });
});
