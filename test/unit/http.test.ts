import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/core/config.ts';
import { UpkeepError } from '../../src/core/errors.ts';
import { createHttpClient, parseRetryAfter, type HttpClient, type HttpClientOptions } from '../../src/core/http.ts';
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
