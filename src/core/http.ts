import { createHash } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { LookupFunction } from 'node:net';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import type { Config } from './config.ts';
import { UpkeepError } from './errors.ts';
import { redactText, silentLogger, type Logger } from './log.ts';
import type { Environment } from './paths.ts';

/**
 * The one door to the network (DESIGN rule 3). Every HTTP request upkeep makes
 * goes through `HttpClient.get`, `post` (webhooks), or `download` for files
 * streamed to disk:
 * one keep-alive undici dispatcher (through the proxy from
 * HTTPS_PROXY/HTTP_PROXY unless NO_PROXY says otherwise), a cap on
 * requests in flight per host, a timeout per attempt, retries with
 * exponential backoff and jitter on transient failures, GitHub rate-limit
 * awareness, conditional requests, a body size cap and tokens sent only to
 * the hosts they belong to. Messages and log lines never carry credentials.
 *
 * undici is imported here and nowhere else; callers that may stay offline
 * load this module with a dynamic import.
 */

export interface HttpRequestOptions {
  /** Extra request headers; an explicit `authorization` wins over env tokens. */
  headers?: Record<string, string>;
  /** Sent as If-None-Match; a 304 answer comes back as `notModified`. */
  etag?: string;
  /** Follow 3xx answers (up to 5). Off by default: callers may read Location. */
  followRedirects?: boolean;
  accept?: string;
  /** Largest body accepted, after decompression. Default 20 MiB. */
  maxBytes?: number;
  /** Milliseconds for one attempt; default `network.timeout`. */
  timeoutMs?: number;
  /** Retries of a transient failure; default `network.retries`. */
  retries?: number;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Empty for 304 and for redirects that were not followed. */
  body: string;
  /** The URL that answered (after redirects, when followed). */
  url: string;
  notModified: boolean;
}

export interface DownloadOptions {
  /** Largest file accepted. Default 2 GiB. */
  maxBytes?: number;
  /** Called as bytes arrive; `total` is the declared length, null when the server gave none. Restarts at 0 on a retry. */
  onProgress?: (received: number, total: number | null) => void;
  headers?: Record<string, string>;
  accept?: string;
  /** Milliseconds without a byte before an attempt is abandoned; default `network.timeout`. */
  idleTimeoutMs?: number;
  /** Retries of a transient failure; default `network.retries`. */
  retries?: number;
}

export interface DownloadResult {
  bytes: number;
  /** Lower-case hex digests of the bytes written. */
  sha256: string;
  sha512: string;
}

export interface HttpPostOptions {
  /** Sent as is; set `content-type` in `headers`. */
  body: string;
  headers?: Record<string, string>;
  accept?: string;
  /** Largest answer accepted. Default 1 MiB: a POST's answer is an acknowledgement, not data. */
  maxBytes?: number;
  /** Milliseconds for one attempt; default `network.timeout`. */
  timeoutMs?: number;
  /**
   * Retries of a transient failure. Default 0, unlike `get`: a POST is not
   * idempotent, and a timed-out request may have arrived, so repeating it
   * could deliver it twice. A caller that knows better passes a number.
   */
  retries?: number;
}

export type HttpMethod = 'GET' | 'POST';

export interface HttpClient {
  get(url: string, options?: HttpRequestOptions): Promise<HttpResponse>;
  /**
   * Sends `body` with POST (webhooks). Redirects are never followed (a 3xx
   * comes back as the response); any other status outside 2xx is an
   * E_HTTP_STATUS error, as with `get`. Same proxy, timeout, per-host cap
   * and credential redaction as `get`.
   */
  post(url: string, options: HttpPostOptions): Promise<HttpResponse>;
  /**
   * Streams a body into `destination` (created or truncated; its folder is
   * created) while hashing it, following redirects. The bytes are stored as
   * served, never decompressed, so that checksums published for the file
   * match. On failure the partial file is removed.
   */
  download(url: string, destination: string, options?: DownloadOptions): Promise<DownloadResult>;
  /** When a host answered with a rate limit, the time (ms since epoch) it resets; else null. */
  rateLimitedUntil(host: string): number | null;
  close(): Promise<void>;
}

export interface HttpClientOptions {
  config: Pick<Config, 'network' | 'endpoints'>;
  /** Read for proxies and tokens; process.env is never read directly. */
  environment: Environment;
  logger?: Logger;
  /** `upkeep/<version>`. */
  userAgent?: string;
  /** Backoff tuning; tests shrink these. */
  backoff?: {
    /** First retry waits about this long (ms); each next one twice as long. */
    baseMs?: number;
    maxMs?: number;
    /** A 429/503 Retry-After longer than this is not waited for. */
    retryAfterCapMs?: number;
  };
  /** Test seams. */
  sleep?: (milliseconds: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

const DEFAULT_MAX_BYTES = 20 * 1024 * 1024;
const DEFAULT_MAX_POST_ANSWER_BYTES = 1024 * 1024;
const DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
/** Socket-level failures worth another try. DNS "not found" and TLS errors are not. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter, so `active` stays the same.
    if (next) next();
    else this.active--;
  }
}

/** Network-level failures, with no answer ever, after which a host is skipped for the rest of the run. */
const UNREACHABLE_AFTER = 3;

/**
 * One DNS lookup per host name, shared by every request of the client to that
 * host. getaddrinfo runs on libuv's four threads: an audit asking hundreds of
 * URLs at once would otherwise send hundreds of queries, a busy resolver drops
 * some (each then waits out the resolver's timeout), and lookups of names that
 * do not resolve hold the threads that hosts which work are waiting for.
 * Answers and "no such name" are kept for the client's life (one command);
 * other failures (a resolver timeout) are asked again by the next attempt.
 */
export function sharedLookup(resolve: (hostname: string) => Promise<LookupAddress[]> = (hostname) => dnsLookup(hostname, { all: true, verbatim: true })): LookupFunction {
  const answers = new Map<string, Promise<LookupAddress[]>>();
  return (hostname, options, callback) => {
    let answer = answers.get(hostname);
    if (!answer) {
      answer = resolve(hostname);
      answers.set(hostname, answer);
      answer.catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTFOUND') answers.delete(hostname);
      });
    }
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    answer.then(
      (addresses) => {
        const usable = family === 0 ? addresses : addresses.filter((address) => address.family === family);
        if (usable.length === 0) {
          callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), options.all ? [] : '', 0);
        } else if (options.all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, options.all ? [] : '', 0),
    );
  };
}

/** An error whose retry decision is already made. */
class AttemptError extends Error {
  constructor(
    readonly error: UpkeepError,
    readonly transient: boolean,
    /** For Retry-After: how long to wait before the next attempt. */
    readonly waitMs?: number,
    /** No answer at all (name, connection or timeout), as opposed to an answer we did not like. */
    readonly networkLevel = false,
  ) {
    super(error.message);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const { config, environment } = options;
  const logger = options.logger ?? silentLogger;
  const userAgent = options.userAgent ?? 'upkeep';
  const sleep = options.sleep ?? ((milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds)));
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const baseMs = options.backoff?.baseMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 4_000;
  const retryAfterCapMs = options.backoff?.retryAfterCapMs ?? 10_000;
  const defaultTimeoutMs = config.network.timeout * 1000;
  const perHost = config.network.perHostConcurrency;

  const githubToken = nonEmpty(environment.GITHUB_TOKEN) ?? nonEmpty(environment.GH_TOKEN);
  const gitlabToken = nonEmpty(environment.GITLAB_TOKEN);
  const githubOrigins = new Set([originOf(config.endpoints.github), originOf(config.endpoints.githubApi)].filter((origin) => origin !== null));
  const gitlabOrigin = originOf(config.endpoints.gitlab);

  const httpProxy = nonEmpty(environment.http_proxy) ?? nonEmpty(environment.HTTP_PROXY);
  const httpsProxy = nonEmpty(environment.https_proxy) ?? nonEmpty(environment.HTTPS_PROXY);
  const noProxy = nonEmpty(environment.no_proxy) ?? nonEmpty(environment.NO_PROXY);

  /** Literal secrets that redactText's patterns might not recognise. */
  const secrets = [githubToken, gitlabToken, ...[httpProxy, httpsProxy].map(proxyPassword)].filter(
    (secret): secret is string => secret !== undefined && secret.length >= 4,
  );
  const redact = (text: string): string => {
    let safe = redactText(text);
    for (const secret of secrets) safe = safe.split(secret).join('[redacted]');
    return safe;
  };

  const agentOptions: Agent.Options = {
    connections: perHost,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    connect: { timeout: defaultTimeoutMs, lookup: sharedLookup() },
  };
  // Empty strings (never undefined) so that undici does not fall back to process.env.
  const dispatcher: Dispatcher =
    httpProxy || httpsProxy
      ? new EnvHttpProxyAgent({ ...agentOptions, httpProxy: httpProxy ?? '', httpsProxy: httpsProxy ?? '', noProxy: noProxy ?? '' })
      : new Agent(agentOptions);

  const limiters = new Map<string, Semaphore>();
  const limiterFor = (host: string): Semaphore => {
    let limiter = limiters.get(host);
    if (!limiter) {
      limiter = new Semaphore(perHost);
      limiters.set(host, limiter);
    }
    return limiter;
  };
  const limitedUntil = new Map<string, number>();
  /**
   * Hosts that failed at the network level (no such name, refused, timed
   * out) before ever answering: every further request to them fails at once
   * with that error. Without this, a machine that cannot reach GitHub waits
   * out timeouts and retries for every single tool (minutes for a catalog).
   * It takes three such failures, so that one request still gets its retries;
   * a host that has answered once is retried normally.
   */
  const unreachable = new Map<string, UpkeepError>();
  const networkFailures = new Map<string, number>();
  const answered = new Set<string>();
  let closed = false;

  function rateLimitedUntil(host: string): number | null {
    const until = limitedUntil.get(host);
    if (until === undefined) return null;
    if (until <= now()) {
      limitedUntil.delete(host);
      return null;
    }
    return until;
  }

  function tokenFor(url: URL): string | undefined {
    if (githubToken && githubOrigins.has(url.origin)) return githubToken;
    if (gitlabToken && gitlabOrigin === url.origin) return gitlabToken;
    return undefined;
  }

  function rateLimitError(url: URL, until: number, method: HttpMethod = 'GET'): UpkeepError {
    const isGithub = githubOrigins.has(url.origin);
    const at = new Date(until).toISOString().slice(11, 16);
    const hint =
      isGithub && !githubToken
        ? `set GITHUB_TOKEN (or GH_TOKEN) to raise the limit, or wait until ${at} UTC`
        : `wait until ${at} UTC and try again`;
    return new UpkeepError('E_HTTP_RATE_LIMIT', `rate limited by ${url.host} until ${at} UTC (${method} ${redact(url.href)})`, {
      hint,
      details: { url: redact(url.href), host: url.host, until: new Date(until).toISOString(), reason: `rate limited by ${url.host}` },
    });
  }

  function backoffDelay(attempt: number): number {
    const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
    // "Equal jitter": at least half the step, so retries never bunch up at zero.
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }

  async function attempt(url: URL, requestOptions: HttpRequestOptions, method: HttpMethod = 'GET', body?: string): Promise<HttpResponse> {
    const headers: Record<string, string> = {
      'user-agent': userAgent,
      'accept-encoding': 'gzip, deflate, br',
      accept: requestOptions.accept ?? '*/*',
    };
    for (const [name, value] of Object.entries(requestOptions.headers ?? {})) headers[name.toLowerCase()] = value;
    if (requestOptions.etag) headers['if-none-match'] = requestOptions.etag;
    const token = tokenFor(url);
    if (token && headers.authorization === undefined) headers.authorization = `Bearer ${token}`;

    const timeoutMs = requestOptions.timeoutMs ?? defaultTimeoutMs;
    const maxBytes = requestOptions.maxBytes ?? DEFAULT_MAX_BYTES;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const safeUrl = redact(url.href);
    try {
      const response = await request(url, { method, headers, dispatcher, signal: controller.signal, ...(body === undefined ? {} : { body }) });
      const responseHeaders = normaliseHeaders(response.headers);
      const status = response.statusCode;
      const ok = (status >= 200 && status < 300) || status === 304 || REDIRECT_STATUS.has(status);
      if (!ok || status === 304 || REDIRECT_STATUS.has(status)) {
        await response.body.dump().catch(() => undefined);
        if (!ok) throw statusFailure(url, status, responseHeaders, method);
        return { status, headers: responseHeaders, body: '', url: url.href, notModified: status === 304 };
      }
      const declared = Number(responseHeaders['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        response.body.on('error', () => undefined).destroy();
        throw new AttemptError(bodyTooLarge(safeUrl, maxBytes, method), false);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length;
        // Leaving the loop destroys the stream (and its connection).
        if (size > maxBytes) {
          throw new AttemptError(bodyTooLarge(safeUrl, maxBytes, method), false);
        }
        chunks.push(chunk as Buffer);
      }
      const text = decode(Buffer.concat(chunks), responseHeaders['content-encoding'], maxBytes, safeUrl, method);
      return { status, headers: responseHeaders, body: text, url: url.href, notModified: false };
    } catch (error) {
      if (error instanceof AttemptError) throw error;
      if (timedOut) {
        throw new AttemptError(timeoutFailure(`timed out after ${formatSeconds(timeoutMs)}`, safeUrl, url, method), true, undefined, true);
      }
      throw networkFailure(url, error, method);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One hop of a download: either a redirect to follow or the body, written and hashed. */
  async function downloadAttempt(url: URL, destination: string, downloadOptions: DownloadOptions): Promise<DownloadHop> {
    const headers: Record<string, string> = {
      'user-agent': userAgent,
      // The bytes are kept as served: a checksum is published for the file, not for a decoded body.
      'accept-encoding': 'identity',
      accept: downloadOptions.accept ?? '*/*',
    };
    for (const [name, value] of Object.entries(downloadOptions.headers ?? {})) headers[name.toLowerCase()] = value;
    const token = tokenFor(url);
    if (token && headers.authorization === undefined) headers.authorization = `Bearer ${token}`;

    const idleMs = downloadOptions.idleTimeoutMs ?? defaultTimeoutMs;
    const maxBytes = downloadOptions.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
    const safeUrl = redact(url.href);
    const controller = new AbortController();
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    // An idle timer rather than a deadline: a large file on a slow link is fine as long as bytes keep coming.
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, idleMs);
    };
    let writeError: Error | undefined;
    arm();
    try {
      const response = await request(url, { method: 'GET', headers, dispatcher, signal: controller.signal });
      const responseHeaders = normaliseHeaders(response.headers);
      const status = response.statusCode;
      if (REDIRECT_STATUS.has(status) && responseHeaders.location) {
        await response.body.dump().catch(() => undefined);
        return { status, location: responseHeaders.location, bytes: 0, sha256: '', sha512: '' };
      }
      if (status < 200 || status >= 300) {
        await response.body.dump().catch(() => undefined);
        throw statusFailure(url, status, responseHeaders);
      }
      const declared = Number(responseHeaders['content-length']);
      const total = responseHeaders['content-length'] !== undefined && Number.isFinite(declared) ? declared : null;
      if (total !== null && total > maxBytes) {
        response.body.on('error', () => undefined).destroy();
        throw new AttemptError(bodyTooLarge(safeUrl, maxBytes), false);
      }

      const sha256 = createHash('sha256');
      const sha512 = createHash('sha512');
      let received = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          received += chunk.length;
          if (received > maxBytes) {
            callback(new AttemptError(bodyTooLarge(safeUrl, maxBytes), false));
            return;
          }
          sha256.update(chunk);
          sha512.update(chunk);
          arm();
          downloadOptions.onProgress?.(received, total);
          callback(null, chunk);
        },
      });
      const file = createWriteStream(destination, { mode: 0o644 });
      file.on('error', (error) => {
        writeError ??= error;
      });
      downloadOptions.onProgress?.(0, total);
      await pipeline(response.body, meter, file);
      if (total !== null && received !== total) {
        throw new AttemptError(
          new UpkeepError('E_HTTP_BODY', `GET ${safeUrl} ended after ${received} of ${total} bytes`, {
            hint: 'the connection was cut; try again',
            details: { url: safeUrl, host: url.host, received, total, reason: 'body cut short' },
          }),
          true,
        );
      }
      return { status, location: null, bytes: received, sha256: sha256.digest('hex'), sha512: sha512.digest('hex') };
    } catch (error) {
      if (error instanceof AttemptError) throw error;
      if (writeError) throw new AttemptError(writeFailure(destination, writeError, safeUrl), false);
      if (timedOut) {
        throw new AttemptError(timeoutFailure(`no data for ${formatSeconds(idleMs)}`, safeUrl, url), true);
      }
      throw networkFailure(url, error);
    } finally {
      clearTimeout(timer);
    }
  }

  function statusFailure(url: URL, status: number, headers: Record<string, string>, method: HttpMethod = 'GET'): AttemptError {
    const retryAfterMs = parseRetryAfter(headers['retry-after'], now());
    const githubLimit = (status === 403 || status === 429) && headers['x-ratelimit-remaining'] === '0';
    // GitHub's secondary limits answer 403 with Retry-After and no remaining count.
    const secondaryLimit = status === 403 && retryAfterMs !== null && githubOrigins.has(url.origin);
    if (githubLimit || secondaryLimit) {
      const reset = Number(headers['x-ratelimit-reset']);
      const until = Number.isFinite(reset) && reset > 0 ? reset * 1000 : now() + (retryAfterMs ?? 60_000);
      limitedUntil.set(url.host, Math.max(until, now() + 1000));
      return new AttemptError(rateLimitError(url, until, method), false);
    }
    if (status === 429 || status === 503) {
      if (retryAfterMs !== null && retryAfterMs > retryAfterCapMs) {
        if (status === 429) {
          limitedUntil.set(url.host, now() + retryAfterMs);
          return new AttemptError(rateLimitError(url, now() + retryAfterMs, method), false);
        }
        return new AttemptError(httpStatusError(url, status, method), false);
      }
      const error = status === 429 ? rateLimitError(url, now() + (retryAfterMs ?? 0), method) : httpStatusError(url, status, method);
      return new AttemptError(error, true, retryAfterMs ?? undefined);
    }
    return new AttemptError(httpStatusError(url, status, method), TRANSIENT_STATUS.has(status));
  }

  function httpStatusError(url: URL, status: number, method: HttpMethod = 'GET'): UpkeepError {
    const safeUrl = redact(url.href);
    const hint =
      method === 'POST' && status < 500
        ? 'check the URL and any credentials it needs; the receiver refused the request'
        : status === 404
        ? 'check the name in the catalog; the project may have moved'
        : status === 401 || status === 403
          ? 'check the token in the environment (GITHUB_TOKEN, GITLAB_TOKEN) or the proxy'
          : status >= 500
            ? 'the server has trouble; try again later'
            : 'see the URL in a browser';
    return new UpkeepError('E_HTTP_STATUS', `HTTP ${status} from ${method} ${safeUrl}`, {
      hint,
      details: { url: safeUrl, host: url.host, status, reason: `HTTP ${status}` },
    });
  }

  function networkFailure(url: URL, error: unknown, method: HttpMethod = 'GET'): AttemptError {
    const safeUrl = redact(url.href);
    const code = errorCode(error);
    const description = redact(describeCause(error));
    const timeout = code !== undefined && TIMEOUT_CODES.has(code);
    const reason = timeout
      ? 'timed out'
      : code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET'
          ? 'connection reset'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? `cannot resolve ${url.hostname}`
            : 'network error';
    const cause = Object.assign(new Error(description), code === undefined ? {} : { code });
    const upkeepError = timeout
      ? new UpkeepError('E_HTTP_TIMEOUT', `timed out (${method} ${safeUrl}): ${description}`, {
          hint: 'the server or network is slow; raise network.timeout or try again later',
          cause,
          details: { url: safeUrl, host: url.host, reason },
        })
      : new UpkeepError('E_HTTP_NETWORK', `${reason} (${method} ${safeUrl}): ${description}`, {
          hint: 'check the network connection and the HTTPS_PROXY / NO_PROXY variables',
          cause,
          details: { url: safeUrl, host: url.host, reason, ...(code === undefined ? {} : { errorCode: code }) },
        });
    return new AttemptError(upkeepError, code !== undefined && TRANSIENT_CODES.has(code), undefined, true);
  }

  async function withRetries<T>(
    url: URL,
    retries: number,
    perform: () => Promise<T>,
    summary: (result: T) => Record<string, unknown>,
    method: HttpMethod = 'GET',
  ): Promise<T> {
    for (let attemptNumber = 0; ; attemptNumber++) {
      if (closed) throw new Error('HttpClient used after close()');
      const until = rateLimitedUntil(url.host);
      if (until !== null) throw rateLimitError(url, until, method);
      const limiter = limiterFor(url.host);
      await limiter.acquire();
      const down = unreachable.get(url.host);
      if (down) {
        limiter.release();
        throw new UpkeepError(down.code, `${url.host} did not answer earlier in this run; skipped (${method} ${redact(url.href)})`, {
          ...(down.hint === undefined ? {} : { hint: down.hint }),
          cause: down,
          details: { url: redact(url.href), host: url.host, reason: 'host unreachable' },
        });
      }
      const started = now();
      let waitMs: number;
      try {
        const result = await perform();
        answered.add(url.host);
        logger.debug('http', { method, url: redact(url.href), ...summary(result), ms: now() - started, attempt: attemptNumber + 1 });
        return result;
      } catch (error) {
        if (!(error instanceof AttemptError)) throw error;
        // Any HTTP answer, even an error status, shows the host is there.
        if (!error.networkLevel) answered.add(url.host);
        else if (!answered.has(url.host)) {
          const count = (networkFailures.get(url.host) ?? 0) + 1;
          networkFailures.set(url.host, count);
          if (count >= UNREACHABLE_AFTER) unreachable.set(url.host, error.error);
        }
        const last = attemptNumber >= retries || !error.transient || unreachable.has(url.host);
        logger.debug('http failed', {
          method,
          url: redact(url.href),
          error: error.error.message,
          ms: now() - started,
          attempt: attemptNumber + 1,
          retrying: !last,
        });
        if (last) throw error.error;
        waitMs = error.waitMs ?? backoffDelay(attemptNumber);
      } finally {
        // Released before any backoff so a waiting request to the host can use the slot.
        limiter.release();
      }
      await sleep(waitMs);
    }
  }

  return {
    async get(url: string, requestOptions: HttpRequestOptions = {}): Promise<HttpResponse> {
      let current: URL;
      try {
        current = new URL(url);
      } catch {
        throw new Error(`not a URL: ${redact(url)}`);
      }
      for (let hop = 0; ; hop++) {
        // The etag belongs to the first URL only.
        const hopOptions = hop === 0 ? requestOptions : { ...requestOptions, etag: undefined };
        const hopUrl = current;
        const response = await withRetries(
          hopUrl,
          hopOptions.retries ?? config.network.retries,
          () => attempt(hopUrl, hopOptions),
          (answer) => ({ status: answer.status }),
        );
        const location = response.headers.location;
        if (!requestOptions.followRedirects || !REDIRECT_STATUS.has(response.status) || !location) return response;
        if (hop >= MAX_REDIRECTS) {
          throw new UpkeepError('E_HTTP_STATUS', `too many redirects from GET ${redact(url)}`, {
            hint: 'the server redirects in a loop; try again later',
            details: { url: redact(url), status: response.status, reason: 'too many redirects' },
          });
        }
        // Tokens are chosen per hop by origin, so a redirect elsewhere never carries them.
        current = new URL(location, current);
      }
    },
    async download(url: string, destination: string, downloadOptions: DownloadOptions = {}): Promise<DownloadResult> {
      let current: URL;
      try {
        current = new URL(url);
      } catch {
        throw new Error(`not a URL: ${redact(url)}`);
      }
      try {
        await mkdir(dirname(destination), { recursive: true });
      } catch (error) {
        throw writeFailure(destination, error as Error, redact(url));
      }
      try {
        for (let hop = 0; ; hop++) {
          const hopUrl = current;
          const result = await withRetries(
            hopUrl,
            downloadOptions.retries ?? config.network.retries,
            () => downloadAttempt(hopUrl, destination, downloadOptions),
            (answer) => (answer.location === null ? { status: answer.status, bytes: answer.bytes } : { status: answer.status }),
          );
          if (result.location === null) return { bytes: result.bytes, sha256: result.sha256, sha512: result.sha512 };
          if (hop >= MAX_REDIRECTS) {
            throw new UpkeepError('E_HTTP_STATUS', `too many redirects from GET ${redact(url)}`, {
              hint: 'the server redirects in a loop; try again later',
              details: { url: redact(url), status: result.status, reason: 'too many redirects' },
            });
          }
          // Tokens are chosen per hop by origin, so a redirect to an asset host never carries them.
          current = new URL(result.location, hopUrl);
        }
      } catch (error) {
        await rm(destination, { force: true }).catch(() => undefined);
        throw error;
      }
    },
    async post(url: string, postOptions: HttpPostOptions): Promise<HttpResponse> {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        throw new Error(`not a URL: ${redact(url)}`);
      }
      const attemptOptions: HttpRequestOptions = {
        ...(postOptions.headers ? { headers: postOptions.headers } : {}),
        ...(postOptions.accept ? { accept: postOptions.accept } : {}),
        ...(postOptions.timeoutMs === undefined ? {} : { timeoutMs: postOptions.timeoutMs }),
        maxBytes: postOptions.maxBytes ?? DEFAULT_MAX_POST_ANSWER_BYTES,
      };
      return withRetries(
        target,
        postOptions.retries ?? 0,
        () => attempt(target, attemptOptions, 'POST', postOptions.body),
        (answer) => ({ status: answer.status }),
        'POST',
      );
    },
    rateLimitedUntil,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await dispatcher.close().catch(() => dispatcher.destroy().catch(() => undefined));
    },
  };
}

interface DownloadHop {
  status: number;
  /** Where a redirect points; null when the body was written. */
  location: string | null;
  bytes: number;
  sha256: string;
  sha512: string;
}

function normaliseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    result[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return result;
}

function decode(raw: Buffer, encoding: string | undefined, maxBytes: number, safeUrl: string, method: HttpMethod = 'GET'): string {
  const kind = encoding?.trim().toLowerCase();
  if (!kind || kind === 'identity') return raw.toString('utf8');
  try {
    const options = { maxOutputLength: maxBytes };
    if (kind === 'gzip' || kind === 'x-gzip') return gunzipSync(raw, options).toString('utf8');
    if (kind === 'br') return brotliDecompressSync(raw, options).toString('utf8');
    if (kind === 'deflate') return inflateSync(raw, options).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new AttemptError(bodyTooLarge(safeUrl, maxBytes, method), false);
    throw new AttemptError(
      new UpkeepError('E_HTTP_BODY', `could not decompress the ${kind} body of ${method} ${safeUrl}`, {
        hint: 'the server sent a broken answer; try again later',
        details: { url: safeUrl, reason: 'broken compressed body' },
      }),
      true,
    );
  }
  throw new AttemptError(
    new UpkeepError('E_HTTP_BODY', `unknown content encoding "${kind}" from ${method} ${safeUrl}`, {
      hint: 'a proxy may be rewriting answers; check HTTPS_PROXY',
      details: { url: safeUrl, reason: `unknown content encoding ${kind}` },
    }),
    false,
  );
}

function writeFailure(destination: string, error: Error, safeUrl: string): UpkeepError {
  return new UpkeepError('E_FS_WRITE', `could not write ${destination}: ${error.message}`, {
    hint: 'check that the folder is writable and the disk is not full',
    cause: error,
    details: { url: safeUrl, path: destination, reason: 'write failed' },
  });
}

function bodyTooLarge(safeUrl: string, maxBytes: number, method: HttpMethod = 'GET'): UpkeepError {
  return new UpkeepError('E_HTTP_BODY', `answer from ${method} ${safeUrl} is larger than ${maxBytes} bytes`, {
    hint: 'the URL may point at a download instead of an index; check the catalog entry',
    details: { url: safeUrl, maxBytes, reason: 'answer too large' },
  });
}

/** Milliseconds to wait, from seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (value === undefined || value.trim() === '') return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED' && code !== 'ABORT_ERR') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeCause(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 3 && current; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (message && !parts.includes(message)) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ') || 'unknown error';
}

function proxyPassword(proxy: string | undefined): string | undefined {
  if (!proxy) return undefined;
  try {
    const password = new URL(proxy).password;
    return password ? decodeURIComponent(password) : undefined;
  } catch {
    return undefined;
  }
}

function formatSeconds(milliseconds: number): string {
  return milliseconds % 1000 === 0 ? `${milliseconds / 1000}s` : `${(milliseconds / 1000).toFixed(1)}s`;
}

function timeoutFailure(what: string, safeUrl: string, url: URL, method: HttpMethod = 'GET'): UpkeepError {
  return new UpkeepError('E_HTTP_TIMEOUT', `${what} (${method} ${safeUrl})`, {
    hint: 'the server or network is slow; raise network.timeout or try again later',
    details: { url: safeUrl, host: url.host, reason: 'timed out' },
  });
}
