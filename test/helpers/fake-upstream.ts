import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Tool, Upstream } from '../../src/catalog/schema.ts';
import type { Config } from '../../src/core/config.ts';

/**
 * An in-process imitation of the upstreams upkeep asks for latest versions:
 * GitHub (web and API), GitLab, PyPI, crates.io, npm, the GNU mirror and the
 * Debian and Ubuntu pools. Each service listens on its own loopback port (so
 * that per-host limits and rate limits behave as with the real hosts), all
 * driven by one table of tool -> data and behaviour, and every request is
 * logged.
 */

/** What a route does instead of (or before) answering normally. */
export type Behaviour =
  /** Answer normally, with an ETag; a matching If-None-Match gets a 304. */
  | 'ok'
  /** 403 with `x-ratelimit-remaining: 0` and a reset an hour away (GitHub's primary rate limit). */
  | 'rate-limit'
  /** 429 with `Retry-After: 1` for the first `failuresBeforeSuccess` requests, then normal. */
  | 'throttled'
  /** 500, always. */
  | 'server-error'
  /** 502 for the first `failuresBeforeSuccess` requests, then normal (for retries). */
  | 'flaky'
  /** A 200 HTML page (a login wall) instead of the JSON or listing. */
  | 'html'
  /** A 200 JSON answer cut in the middle. */
  | 'bad-json'
  /** Valid JSON without the fields a client needs. */
  | 'missing-field'
  /** Answers normally after `slowMs`, past any sensible timeout. */
  | 'slow'
  /** Closes the connection without answering. */
  | 'reset'
  /** 404. */
  | 'not-found';

/** Route names are the lookup methods that use them. */
export type Route = 'latest-redirect' | 'api' | 'atom' | 'tags' | 'release-page' | 'json' | 'registry' | 'listing' | 'pool';

export interface FakeRelease {
  tag: string;
  prerelease?: boolean;
  draft?: boolean;
  /** GitLab: a release dated in the future. */
  upcoming?: boolean;
}

interface Behaving {
  /** One behaviour for every route of the tool, or one per route (the rest `ok`). */
  behaviour?: Behaviour | Partial<Record<Route, Behaviour>>;
}

export type FakeTool = Behaving &
  (
    | { source: 'github'; repo: string; tagPrefix?: string; /** Newest first, as GitHub lists them. */ releases?: FakeRelease[]; tags?: string[] }
    | { source: 'gitlab'; project: string; tagPrefix?: string; releases: FakeRelease[] }
    | { source: 'pypi'; package: string; /** info.version */ version: string; /** Keys of `releases`; default [version]. */ releases?: string[]; yanked?: string[] }
    | { source: 'crates'; crate: string; maxStable: string | null; max: string }
    | { source: 'npm'; package: string; distTags: Record<string, string> }
    | { source: 'gnu'; project: string; versions: string[] }
    | { source: 'debian'; package: string; archive?: 'debian' | 'ubuntu'; /** Full Debian versions, e.g. `1.7.1-3`. */ versions: string[] }
  );

export type Service = 'github' | 'githubApi' | 'gitlab' | 'pypi' | 'crates' | 'npm' | 'gnu' | 'debian' | 'ubuntu';
const SERVICES: readonly Service[] = ['github', 'githubApi', 'gitlab', 'pypi', 'crates', 'npm', 'gnu', 'debian', 'ubuntu'];
/** Path prefixes of the services that live under a folder on their real hosts. */
const BASE_PATH: Partial<Record<Service, string>> = { gnu: '/gnu', debian: '/debian', ubuntu: '/ubuntu' };

export interface LoggedRequest {
  service: Service;
  method: string;
  /** Path and query, as sent (still percent-encoded). */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  tool: string | null;
  route: Route | null;
  /** 0 when the connection was reset. */
  status: number;
}

export interface FakeUpstreamOptions {
  tools?: Record<string, FakeTool>;
  /** Added before every answer (the benchmark uses 100). */
  latencyMs?: number;
  /** How long `slow` waits; default 5000. */
  slowMs?: number;
  /** For `flaky` and `throttled`: failed answers per tool and route before a good one. Default 1. */
  failuresBeforeSuccess?: number;
}

export interface FakeUpstream {
  /** Base URLs of every service, for `config.endpoints`. */
  endpoints(): Config['endpoints'];
  urlOf(service: Service): string;
  /** Catalog-like tools (`id`, `upstream`) built from the table. */
  tools(): Array<Pick<Tool, 'id' | 'upstream'>>;
  setTool(id: string, tool: FakeTool): void;
  setBehaviour(id: string, behaviour: FakeTool['behaviour']): void;
  readonly requests: LoggedRequest[];
  clearRequests(): void;
  /** The most requests one service had in flight at once since the last clear. */
  maxInFlight(service: Service): number;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const table = new Map<string, FakeTool>(Object.entries(options.tools ?? {}));
  const latencyMs = options.latencyMs ?? 0;
  const slowMs = options.slowMs ?? 5000;
  const failuresBeforeSuccess = options.failuresBeforeSuccess ?? 1;
  const requests: LoggedRequest[] = [];
  const inFlight = new Map<Service, number>();
  const maxInFlight = new Map<Service, number>();
  /** Failed answers given so far by `flaky`/`throttled`, by tool and route. */
  const failuresGiven = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const servers = new Map<Service, Server>();
  const bases = new Map<Service, string>();

  const wait = (milliseconds: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, milliseconds);
      timers.add(timer);
    });

  const base = (service: Service): string => bases.get(service)!;

  const find = (predicate: (tool: FakeTool) => boolean): [string, FakeTool] | null => {
    for (const entry of table) if (predicate(entry[1])) return entry;
    return null;
  };

  function behaviourOf(tool: FakeTool, route: Route): Behaviour {
    const behaviour = tool.behaviour;
    if (behaviour === undefined) return 'ok';
    if (typeof behaviour === 'string') return route === 'release-page' ? 'ok' : behaviour;
    return behaviour[route] ?? 'ok';
  }

  /** Which tool and route a request is for, and the normal answer. */
  function route(service: Service, path: string): { id: string; tool: FakeTool; route: Route; answer: () => Answer } | null {
    const [pathname = '/', query = ''] = path.split('?', 2) as [string, string?];
    const segments = pathname.split('/').filter(Boolean);
    switch (service) {
      case 'github': {
        const repo = `${segments[0]}/${segments[1]}`;
        const found = find((tool) => tool.source === 'github' && tool.repo === repo);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'github' }>];
        const releases = (tool.releases ?? []).filter((release) => !release.draft);
        const rest = segments.slice(2).join('/');
        if (rest === 'releases/latest') {
          return {
            id,
            tool,
            route: 'latest-redirect',
            answer: () => {
              const latest = releases.find((release) => !release.prerelease);
              const location = latest
                ? `${base('github')}/${repo}/releases/tag/${encodeURIComponent(latest.tag)}`
                : `${base('github')}/${repo}/releases`;
              return { status: 302, headers: { location }, body: `<html><body>You are being <a href="${location}">redirected</a>.</body></html>` };
            },
          };
        }
        if (rest === 'releases.atom') {
          return { id, tool, route: 'atom', answer: () => ({ status: 200, headers: { 'content-type': 'application/atom+xml; charset=utf-8' }, body: atomFeed(base('github'), repo, releases) }) };
        }
        if (rest.startsWith('releases/tag/')) {
          return { id, tool, route: 'release-page', answer: () => ({ status: 200, headers: { 'content-type': 'text/html' }, body: `<html><body>${rest}</body></html>` }) };
        }
        return null;
      }
      case 'githubApi': {
        if (segments[0] !== 'repos') return null;
        const repo = `${segments[1]}/${segments[2]}`;
        const found = find((tool) => tool.source === 'github' && tool.repo === repo);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'github' }>];
        const all = tool.releases ?? [];
        const rest = segments.slice(3).join('/');
        const releaseJson = (release: FakeRelease, index: number): Record<string, unknown> => ({
          id: index + 1,
          tag_name: release.tag,
          name: release.tag,
          draft: release.draft ?? false,
          prerelease: release.prerelease ?? false,
          html_url: `${base('github')}/${repo}/releases/tag/${encodeURIComponent(release.tag)}`,
        });
        if (rest === 'releases/latest') {
          return {
            id,
            tool,
            route: 'api',
            answer: () => {
              const index = all.findIndex((release) => !release.draft && !release.prerelease);
              if (index < 0) return json(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
              return json(200, releaseJson(all[index]!, index));
            },
          };
        }
        if (rest === 'releases') {
          const perPage = Number(new URLSearchParams(query).get('per_page') ?? 30);
          return { id, tool, route: 'api', answer: () => json(200, all.slice(0, perPage).map(releaseJson)) };
        }
        if (rest === 'tags') {
          const names = tool.tags ?? all.filter((release) => !release.draft).map((release) => release.tag);
          return { id, tool, route: 'tags', answer: () => json(200, names.map((name) => ({ name, commit: { sha: sha(name) } }))) };
        }
        return null;
      }
      case 'gitlab': {
        const match = /^\/api\/v4\/projects\/([^/]+)\/releases$/.exec(pathname);
        if (!match) return null;
        const project = decodeURIComponent(match[1]!);
        const found = find((tool) => tool.source === 'gitlab' && tool.project === project);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'gitlab' }>];
        return {
          id,
          tool,
          route: 'api',
          answer: () =>
            json(
              200,
              tool.releases
                .filter((release) => !release.draft)
                .map((release, index) => ({
                  tag_name: release.tag,
                  name: release.tag,
                  upcoming_release: release.upcoming ?? false,
                  released_at: new Date(Date.UTC(2025, 0, 1) - index * 86_400_000).toISOString(),
                  _links: { self: `${base('gitlab')}/${project}/-/releases/${encodeURIComponent(release.tag)}` },
                })),
            ),
        };
      }
      case 'pypi': {
        if (segments[0] !== 'pypi' || segments[2] !== 'json' || segments.length !== 3) return null;
        const name = decodeURIComponent(segments[1]!);
        const found = find((tool) => tool.source === 'pypi' && tool.package === name);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'pypi' }>];
        return {
          id,
          tool,
          route: 'json',
          answer: () => {
            const releases: Record<string, unknown[]> = {};
            for (const version of tool.releases ?? [tool.version]) {
              releases[version] = [{ filename: `${name}-${version}.tar.gz`, yanked: (tool.yanked ?? []).includes(version) }];
            }
            return json(200, { info: { name, version: tool.version, summary: 'a fake package' }, releases });
          },
        };
      }
      case 'crates': {
        if (pathname.startsWith('/api/v1/crates/') && segments.length === 4) {
          const name = decodeURIComponent(segments[3]!);
          const found = find((tool) => tool.source === 'crates' && tool.crate === name);
          if (!found) return null;
          const [id, tool] = found as [string, Extract<FakeTool, { source: 'crates' }>];
          return {
            id,
            tool,
            route: 'api',
            answer: () => json(200, { crate: { id: name, name, max_stable_version: tool.maxStable, max_version: tool.max, newest_version: tool.max }, versions: null }),
          };
        }
        return null;
      }
      case 'npm': {
        if (segments.length !== 1) return null;
        const name = decodeURIComponent(segments[0]!);
        const found = find((tool) => tool.source === 'npm' && tool.package === name);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'npm' }>];
        return {
          id,
          tool,
          route: 'registry',
          answer: () => {
            const versions = Object.fromEntries(Object.values(tool.distTags).map((version) => [version, { name, version }]));
            return json(200, { name, 'dist-tags': tool.distTags, versions, modified: '2025-01-01T00:00:00.000Z' }, 'application/vnd.npm.install-v1+json');
          },
        };
      }
      case 'gnu': {
        if (segments.length !== 1 || !pathname.endsWith('/')) return null;
        const project = decodeURIComponent(segments[0]!);
        const found = find((tool) => tool.source === 'gnu' && tool.project === project);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'gnu' }>];
        return { id, tool, route: 'listing', answer: () => html(listing(`/gnu/${project}/`, gnuFiles(project, tool.versions))) };
      }
      case 'debian':
      case 'ubuntu': {
        // <base>/pool/main/<prefix>/<package>/
        if (segments.length !== 4 || segments[0] !== 'pool' || segments[1] !== 'main' || !pathname.endsWith('/')) return null;
        const name = decodeURIComponent(segments[3]!);
        const found = find((tool) => tool.source === 'debian' && tool.package === name && (tool.archive ?? 'debian') === service);
        if (!found) return null;
        const [id, tool] = found as [string, Extract<FakeTool, { source: 'debian' }>];
        const prefix = name.startsWith('lib') && name.length > 3 ? name.slice(0, 4) : name.slice(0, 1);
        if (segments[2] !== prefix) return null;
        return { id, tool, route: 'pool', answer: () => html(listing(`/${service}${pathname}`, debianFiles(name, tool.versions))) };
      }
    }
  }

  async function handle(service: Service, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const rawPath = request.url ?? '/';
    const prefix = BASE_PATH[service] ?? '';
    const path = prefix && rawPath.startsWith(prefix) ? rawPath.slice(prefix.length) || '/' : prefix ? '' : rawPath;
    const matched = path ? route(service, path) : null;
    const entry: LoggedRequest = {
      service,
      method: request.method ?? 'GET',
      path: rawPath,
      headers: { ...request.headers },
      tool: matched?.id ?? null,
      route: matched?.route ?? null,
      status: 0,
    };
    requests.push(entry);
    const current = (inFlight.get(service) ?? 0) + 1;
    inFlight.set(service, current);
    maxInFlight.set(service, Math.max(maxInFlight.get(service) ?? 0, current));
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      inFlight.set(service, (inFlight.get(service) ?? 1) - 1);
    };
    response.on('close', done);

    if (latencyMs > 0) await wait(latencyMs);

    const send = (answer: Answer): void => {
      if (response.destroyed) return;
      entry.status = answer.status;
      response.writeHead(answer.status, { 'content-length': Buffer.byteLength(answer.body ?? ''), ...answer.headers });
      response.end(answer.body ?? '');
    };

    if (!matched) return send(json(404, { message: 'Not Found' }));
    if (service === 'crates' && !request.headers['user-agent']) {
      return send({ status: 403, headers: { 'content-type': 'text/plain' }, body: 'We require that all requests include a `User-Agent` header.' });
    }
    const behaviour = behaviourOf(matched.tool, matched.route);
    const failureKey = `${matched.id} ${matched.route}`;
    switch (behaviour) {
      case 'rate-limit': {
        const reset = Math.floor(Date.now() / 1000) + 3600;
        return send({
          ...json(403, { message: 'API rate limit exceeded for 127.0.0.1.', documentation_url: 'https://docs.github.com/rest/rate-limit' }),
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'x-ratelimit-limit': '60',
            'x-ratelimit-remaining': '0',
            'x-ratelimit-used': '60',
            'x-ratelimit-reset': String(reset),
          },
        });
      }
      case 'server-error':
        return send({ status: 500, headers: { 'content-type': 'text/plain' }, body: 'Internal Server Error' });
      case 'flaky':
      case 'throttled': {
        const given = failuresGiven.get(failureKey) ?? 0;
        if (given < failuresBeforeSuccess) {
          failuresGiven.set(failureKey, given + 1);
          return send(
            behaviour === 'flaky'
              ? { status: 502, headers: { 'content-type': 'text/html' }, body: '<html><body>502 Bad Gateway</body></html>' }
              : { status: 429, headers: { 'retry-after': '1', 'content-type': 'text/plain' }, body: 'Too Many Requests' },
          );
        }
        break;
      }
      case 'html':
        return send(html('<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action="/login">Please sign in</form></body></html>'));
      case 'bad-json':
        return send({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"info": {"version": "1.2' });
      case 'missing-field':
        return send(json(200, {}));
      case 'slow':
        await wait(slowMs);
        break;
      case 'reset':
        entry.status = 0;
        request.socket.destroy();
        return;
      case 'not-found':
        return send(json(404, { message: 'Not Found' }));
      case 'ok':
        break;
    }
    const answer = matched.answer();
    if (answer.status === 200 && answer.body !== undefined) {
      const etag = `"${sha(answer.body).slice(0, 16)}"`;
      if (request.headers['if-none-match'] === etag) return send({ status: 304, headers: { etag } });
      answer.headers = { ...answer.headers, etag };
    }
    send(answer);
  }

  for (const service of SERVICES) {
    const server = createServer((request, response) => {
      handle(service, request, response).catch((error: unknown) => {
        if (!response.headersSent && !response.destroyed) {
          response.writeHead(500);
          response.end(String(error));
        }
      });
    });
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    servers.set(service, server);
    bases.set(service, `http://127.0.0.1:${port}${BASE_PATH[service] ?? ''}`);
  }

  return {
    endpoints: () => ({
      github: base('github'),
      githubApi: base('githubApi'),
      gitlab: base('gitlab'),
      pypi: base('pypi'),
      crates: base('crates'),
      npm: base('npm'),
      gnu: base('gnu'),
      debian: base('debian'),
      ubuntu: base('ubuntu'),
    }),
    urlOf: base,
    tools: () => [...table].map(([id, tool]) => ({ id, upstream: upstreamOf(tool) })),
    setTool: (id, tool) => {
      table.set(id, tool);
    },
    setBehaviour: (id, behaviour) => {
      const tool = table.get(id);
      if (!tool) throw new Error(`no fake tool ${id}`);
      table.set(id, { ...tool, behaviour });
    },
    requests,
    clearRequests: () => {
      requests.length = 0;
      maxInFlight.clear();
    },
    maxInFlight: (service) => maxInFlight.get(service) ?? 0,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      await Promise.all(
        [...servers.values()].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.closeAllConnections();
              server.close(() => resolve());
            }),
        ),
      );
    },
  };
}

/** The catalog `upstream` block a fake tool stands for. */
export function upstreamOf(tool: FakeTool): Upstream {
  switch (tool.source) {
    case 'github':
      return { source: 'github', repo: tool.repo, ...(tool.tagPrefix ? { tagPrefix: tool.tagPrefix } : {}) };
    case 'gitlab':
      return { source: 'gitlab', project: tool.project, ...(tool.tagPrefix ? { tagPrefix: tool.tagPrefix } : {}) };
    case 'pypi':
      return { source: 'pypi', package: tool.package };
    case 'crates':
      return { source: 'crates', crate: tool.crate };
    case 'npm':
      return { source: 'npm', package: tool.package };
    case 'gnu':
      return { source: 'gnu', project: tool.project };
    case 'debian':
      return { source: 'debian', package: tool.package, ...(tool.archive ? { archive: tool.archive } : {}) };
  }
}

function sha(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

function json(status: number, value: unknown, type = 'application/json; charset=utf-8'): Answer {
  return { status, headers: { 'content-type': type }, body: JSON.stringify(value) };
}

function html(body: string): Answer {
  return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function atomFeed(base: string, repo: string, releases: FakeRelease[]): string {
  const entries = releases
    .map(
      (release, index) => `  <entry>
    <id>tag:github.com,2008:Repository/1/${escapeXml(release.tag)}</id>
    <updated>${new Date(Date.UTC(2025, 0, 1) - index * 86_400_000).toISOString()}</updated>
    <link rel="alternate" type="text/html" href="${escapeXml(`${base}/${repo}/releases/tag/${encodeURIComponent(release.tag)}`)}"/>
    <title>${escapeXml(release.tag)}</title>
    <content type="html">&lt;p&gt;Notes&lt;/p&gt;</content>
  </entry>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-US">
  <id>tag:github.com,2008:${base}/${repo}/releases</id>
  <link type="text/html" rel="alternate" href="${base}/${repo}/releases"/>
  <link type="application/atom+xml" rel="self" href="${base}/${repo}/releases.atom"/>
  <title>Release notes from ${repo}</title>
${entries}
</feed>
`;
}

/** An Apache-style folder listing. */
function listing(title: string, files: string[]): string {
  const rows = files
    .map((file) => `<tr><td><a href="${encodeURIComponent(file)}">${escapeXml(file)}</a></td><td align="right">2025-01-01 00:00</td><td align="right">1.2M</td></tr>`)
    .join('\n');
  return `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of ${escapeXml(title)}</title></head><body>
<h1>Index of ${escapeXml(title)}</h1>
<table>
<tr><th><a href="?C=N;O=D">Name</a></th><th>Last modified</th><th>Size</th></tr>
<tr><td><a href="../">Parent Directory</a></td><td>&nbsp;</td><td align="right">-</td></tr>
${rows}
</table></body></html>
`;
}

function gnuFiles(project: string, versions: string[]): string[] {
  const files = ['README', `${project}-keyring.gpg`, `x${project}-99.0.tar.gz`, `${project}-latest-is-not-a-version.tar.gz`];
  versions.forEach((version, index) => {
    const extension = ['gz', 'xz', 'bz2', 'lz'][index % 4]!;
    files.push(`${project}-${version}.tar.${extension}`, `${project}-${version}.tar.${extension}.sig`);
  });
  return files;
}

function debianFiles(name: string, versions: string[]): string[] {
  const files: string[] = [];
  for (const full of versions) {
    const version = full.replace(/^\d+:/, '');
    const dash = version.lastIndexOf('-');
    const upstream = dash > 0 ? version.slice(0, dash) : version;
    files.push(`${name}_${upstream}.orig.tar.gz`, `${name}_${version}.debian.tar.xz`, `${name}_${version}.dsc`, `${name}_${version}_amd64.deb`);
  }
  // A package whose name starts the same must not count.
  files.push(`${name}-doc_99.0-1.dsc`);
  return files;
}
