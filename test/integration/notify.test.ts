import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigSchema, loadConfig, type Config } from '../../src/core/config.ts';
import { Executor } from '../../src/core/exec.ts';
import type { Logger } from '../../src/core/log.ts';
import { resolvePaths } from '../../src/core/paths.ts';
import { notifyRunFinished, type NotifyOptions, type WebhookSummary } from '../../src/update/notify.ts';
import { discoverPlugins } from '../../src/update/plugin/discover.ts';
import { UpdateRun, type UpdateReport } from '../../src/update/run/orchestrator.ts';
import { createSandbox, writeStub, type Sandbox } from '../helpers/sandbox.ts';
import { createUpdateSandbox, type MockPlugin, type UpdateSandbox } from '../helpers/update.ts';

/**
 * Notifications are built from real reports: the orchestrator runs the mock
 * update plugins, and the report it returns is what the CLI hands over.
 * Webhooks go to an in-process HTTP server; notify-send and osascript are
 * stubs on a temp PATH because this machine has no desktop to show them.
 */

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const SECRET = 'T0KEN-in-the-path-9f8e7d';
const HOST = 'build-box';

let server: Server;
let port = 0;
let received: Received[] = [];
/** What the in-process server answers: a status, or never (for the timeout test). */
let answer: { status: number } | 'hang' = { status: 200 };
const hanging: Array<() => void> = [];

const sandboxes: Array<Sandbox | UpdateSandbox> = [];
const reports = {} as Record<'failure' | 'success' | 'checkWithUpdates' | 'checkNothing' | 'dryRun' | 'checkFailure', UpdateReport>;

async function realReport(kind: 'check' | 'run', plugins: MockPlugin[], extra: { dryRun?: boolean; continueOnError?: boolean } = {}): Promise<UpdateReport> {
  const sandbox = await createUpdateSandbox(plugins);
  sandboxes.push(sandbox);
  const discovery = await discoverPlugins({ directories: [{ layer: 'builtin', path: sandbox.plugins }] });
  return new UpdateRun({
    kind,
    plugins: discovery.plugins.map((plugin) => plugin.manifest),
    executor: new Executor({ env: sandbox.environment }),
    environment: sandbox.environment,
    stateRoot: join(sandbox.upkeepHome, 'state'),
    settings: {},
    limits: { parallel: 4, maxDownloads: 2, maxMemoryMb: 4096, nice: 0 },
    retries: 0,
    retryDelay: 0,
    continueOnError: extra.continueOnError ?? true,
    dryRun: extra.dryRun ?? false,
    stats: null,
    now: () => new Date(),
    pid: process.pid,
    isRoot: true,
    canSudo: true,
    onEvent: () => undefined,
  }).run();
}

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body });
      if (answer === 'hang') {
        hanging.push(() => response.destroy());
        return;
      }
      response.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.status < 300 ? 'ok' : 'broken');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;

  const quick = { seconds: 0 };
  const [failure, success, checkWithUpdates, checkNothing, dryRun, checkFailure] = await Promise.all([
    realReport('run', [
      { name: 'alpha', settings: { ...quick, updates: 2 } },
      { name: 'beta', settings: { ...quick, updates: 1, fail: 'update' } },
    ]),
    realReport('run', [
      { name: 'alpha', settings: { ...quick, updates: 2 } },
      { name: 'gamma', settings: { ...quick, updates: 1 } },
    ]),
    realReport('check', [
      { name: 'alpha', settings: { updates: 2, security: true } },
      { name: 'gamma', settings: { updates: 1 } },
      { name: 'off', settings: { applicable: false } },
    ]),
    realReport('check', [{ name: 'alpha', settings: { updates: 0 } }]),
    realReport('run', [{ name: 'alpha', settings: { ...quick, updates: 2 } }], { dryRun: true }),
    realReport('check', [
      { name: 'alpha', settings: { updates: 2 } },
      { name: 'beta', settings: { fail: 'estimate' } },
    ]),
  ]);
  Object.assign(reports, { failure, success, checkWithUpdates, checkNothing, dryRun, checkFailure });
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all(sandboxes.map((sandbox) => sandbox.cleanup()));
});

beforeEach(() => {
  received = [];
  answer = { status: 200 };
});

afterEach(() => {
  for (const release of hanging.splice(0)) release();
});

function webhookUrl(path = `/hooks/${SECRET}`): string {
  return `http://127.0.0.1:${port}${path}`;
}

function config(notify: Record<string, unknown>, network: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({ notify, network: { timeout: 5, ...network } });
}

interface Recorded {
  logger: Logger;
  lines: string[];
}

function recordingLogger(): Recorded {
  const lines: string[] = [];
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  return { logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error'), flush() {} }, lines };
}

function options(notifyConfig: Config, environment: Record<string, string> = { PATH: '/nonexistent' }, extra: Partial<NotifyOptions> = {}): NotifyOptions {
  return { config: notifyConfig, executor: new Executor({ env: environment }), environment, hostname: HOST, platform: 'linux', ...extra };
}

describe('the reports the tests start from', () => {
  it('are what the orchestrator reports', () => {
    expect(reports.failure.summary).toMatchObject({ succeeded: ['alpha'], failed: ['beta'], packagesUpdated: 2 });
    expect(reports.success.summary).toMatchObject({ succeeded: ['alpha', 'gamma'], failed: [], packagesUpdated: 3 });
    expect(reports.checkWithUpdates.kind).toBe('check');
    expect(reports.dryRun.dryRun).toBe(true);
  });
});

describe('webhook formats', () => {
  it('json: upkeep summary with the host, run, counts and each plugin error', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl(), webhookFormat: 'json', desktop: false })));
    expect(result).toMatchObject({ event: 'failure', sent: ['webhook'], warnings: [] });
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request!.method).toBe('POST');
    expect(request!.url).toBe(`/hooks/${SECRET}`);
    expect(request!.headers['content-type']).toBe('application/json');
    const summary = JSON.parse(request!.body) as WebhookSummary;
    expect(summary).toMatchObject({
      schemaVersion: 1,
      source: 'upkeep',
      event: 'failure',
      host: HOST,
      runId: reports.failure.runId,
      kind: 'run',
      status: 'failed',
      seconds: reports.failure.seconds,
      succeeded: ['alpha'],
      failed: ['beta'],
      packagesUpdated: 2,
      requiresReboot: false,
      errors: [{ plugin: 'beta', phase: 'update', code: 'BROKEN', message: 'beta update broke' }],
    });
    expect(summary.title).toBe(`upkeep: update failed on ${HOST}`);
    expect(summary.message).toContain('Failed: beta (BROKEN: beta update broke).');
  });

  it('ntfy: the message as the text body, with Title, Priority and Tags headers', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl('/upkeep-alerts'), webhookFormat: 'ntfy', desktop: false })));
    expect(result.sent).toEqual(['webhook']);
    const [request] = received;
    expect(request!.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(request!.headers.title).toBe(`upkeep: update failed on ${HOST}`);
    expect(request!.headers.priority).toBe('high');
    expect(request!.headers.tags).toBe('rotating_light,upkeep');
    expect(request!.body).toContain('Failed: beta (BROKEN: beta update broke).');
    expect(request!.body).toContain('Succeeded: alpha.');
    expect(request!.body).toContain('`upkeep update retry`');
  });

  it('ntfy: a success is sent with low priority', async () => {
    const result = await notifyRunFinished(reports.success, options(config({ webhook: webhookUrl(), webhookFormat: 'ntfy', desktop: false, onSuccess: true })));
    expect(result.sent).toEqual(['webhook']);
    expect(received[0]!.headers).toMatchObject({ title: `upkeep: update finished on ${HOST}`, priority: 'low', tags: 'white_check_mark,upkeep' });
    expect(received[0]!.body).toContain('3 packages updated by alpha, gamma');
  });

  it('slack: {text} with a bold title and one line per fact', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl(), webhookFormat: 'slack', desktop: false })));
    expect(result.sent).toEqual(['webhook']);
    const payload = JSON.parse(received[0]!.body) as Record<string, unknown>;
    expect(Object.keys(payload)).toEqual(['text']);
    const lines = (payload.text as string).split('\n');
    expect(lines[0]).toBe(`*upkeep: update failed on ${HOST}*`);
    expect(lines).toContain('• Failed: beta (BROKEN: beta update broke).');
    expect(lines).toContain('• Succeeded: alpha.');
  });
});

describe('a webhook that cannot be delivered', () => {
  it('a 500 becomes a warning (after one retry) and names only the host, never the secret path', async () => {
    answer = { status: 500 };
    const recorded = recordingLogger();
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl(), desktop: false }), undefined, { logger: recorded.logger }));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain(`webhook notification to http://127.0.0.1:${port} not delivered: HTTP 500 (E_HTTP_STATUS)`);
    expect(received).toHaveLength(2);
    expect(result.warnings[0]).not.toContain(SECRET);
    expect(recorded.lines.length).toBeGreaterThan(0);
    for (const line of recorded.lines) expect(line).not.toContain(SECRET);
  });

  it('an unreachable port becomes a warning', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const recorded = recordingLogger();
    const webhook = `http://127.0.0.1:${deadPort}/hooks/${SECRET}`;
    const result = await notifyRunFinished(reports.failure, options(config({ webhook, desktop: false }), undefined, { logger: recorded.logger }));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toEqual([
      `webhook notification to http://127.0.0.1:${deadPort} not delivered: connection refused (E_HTTP_NETWORK); check notify.webhook and the network; the run itself is not affected`,
    ]);
    for (const line of recorded.lines) expect(line).not.toContain(SECRET);
  });

  it('a receiver that never answers becomes a timeout warning', async () => {
    answer = 'hang';
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl(), desktop: false }, { timeout: 0.3 })));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('timed out (E_HTTP_TIMEOUT)');
  });

  it('credentials in the user part and the query are not in warnings or logs', async () => {
    answer = { status: 403 };
    const recorded = recordingLogger();
    const webhook = `http://alice:pa55word@127.0.0.1:${port}/hooks/${SECRET}?token=${SECRET}`;
    const result = await notifyRunFinished(reports.failure, options(config({ webhook, desktop: false }), undefined, { logger: recorded.logger }));
    expect(received[0]!.headers.authorization).toBe(`Basic ${Buffer.from('alice:pa55word').toString('base64')}`);
    expect(result.warnings[0]).toContain('HTTP 403');
    expect(recorded.lines.some((line) => line.includes('http failed'))).toBe(true);
    const everything = [...result.warnings, ...recorded.lines].join('\n');
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain('pa55word');
  });
});

describe('desktop notifications', () => {
  let sandbox: Sandbox;
  let argvFile: string;

  beforeEach(async () => {
    sandbox = await createSandbox();
    sandboxes.push(sandbox);
    argvFile = join(sandbox.root, 'argv');
  });

  /** A notify-send (or osascript) that writes its arguments NUL-separated, since the body has newlines. */
  async function recordingStub(name: string, exitCode = 0, stderr = ''): Promise<void> {
    await writeStub(sandbox.bin, name, {
      script: `for argument in "$@"; do printf '%s\\0' "$argument"; done > '${argvFile}'\n${stderr ? `echo '${stderr}' >&2\n` : ''}exit ${exitCode}`,
    });
  }

  async function recordedArgv(): Promise<string[]> {
    return (await readFile(argvFile, 'utf8')).split('\0').slice(0, -1);
  }

  it('notify-send with the app name, critical urgency, the title and the body on failure', async () => {
    await recordingStub('notify-send');
    const environment = { PATH: sandbox.bin, DISPLAY: ':0' };
    const result = await notifyRunFinished(reports.failure, options(config({}), environment));
    expect(result).toMatchObject({ event: 'failure', sent: ['desktop'], warnings: [] });
    const argv = await recordedArgv();
    expect(argv.slice(0, 4)).toEqual(['--app-name', 'upkeep', '--urgency', 'critical']);
    expect(argv[4]).toBe(`upkeep: update failed on ${HOST}`);
    expect(argv[5]!.split('\n')).toEqual([
      'Failed: beta (BROKEN: beta update broke).',
      'Succeeded: alpha.',
      expect.stringMatching(/^2 packages updated in .+\.$/),
      '`upkeep update retry` runs the failed plugins again.',
    ]);
    expect(argv).toHaveLength(6);
  });

  it('low urgency on success; a Wayland or D-Bus session is enough', async () => {
    await recordingStub('notify-send');
    const sessions: Array<Record<string, string>> = [{ WAYLAND_DISPLAY: 'wayland-0' }, { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus' }];
    for (const session of sessions) {
      const result = await notifyRunFinished(reports.success, options(config({ onSuccess: true }), { PATH: sandbox.bin, ...session }));
      expect(result.sent).toEqual(['desktop']);
      const argv = await recordedArgv();
      expect(argv.slice(0, 5)).toEqual(['--app-name', 'upkeep', '--urgency', 'low', `upkeep: update finished on ${HOST}`]);
    }
  });

  it('is not attempted without a desktop session', async () => {
    await recordingStub('notify-send');
    const result = await notifyRunFinished(reports.failure, options(config({}), { PATH: sandbox.bin, DISPLAY: '' }));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.skipped).toContain('desktop: no desktop session (DISPLAY, WAYLAND_DISPLAY and DBUS_SESSION_BUS_ADDRESS are unset)');
    expect(existsSync(argvFile)).toBe(false);
    expect(existsSync(sandbox.spawnLog)).toBe(false);
  });

  it('a missing notify-send in a desktop session is a warning with the package to install', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({}), { PATH: sandbox.bin, DISPLAY: ':0' }));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/^desktop notification not shown: notify-send is not on PATH .*libnotify-bin.*notify\.desktop: false/);
  });

  it('a notify-send that fails is a warning with what it said', async () => {
    await recordingStub('notify-send', 1, 'Cannot connect to the notification daemon');
    const result = await notifyRunFinished(reports.failure, options(config({}), { PATH: sandbox.bin, DISPLAY: ':0' }));
    expect(result.sent).toEqual([]);
    expect(result.warnings).toEqual([
      'desktop notification not shown: notify-send exited with 1: Cannot connect to the notification daemon; set notify.desktop: false to stop trying',
    ]);
  });

  it('on macOS, osascript gets the title and body as arguments, so quotes in them stay text', async () => {
    await recordingStub('osascript');
    const host = 'mac "mini" \\ 2';
    const result = await notifyRunFinished(reports.failure, options(config({}), { PATH: sandbox.bin }, { platform: 'darwin', hostname: host }));
    expect(result.sent).toEqual(['desktop']);
    const argv = await recordedArgv();
    expect(argv.slice(0, 6)).toEqual([
      '-e',
      'on run argv',
      '-e',
      'display notification (item 2 of argv) with title (item 1 of argv) sound name "Basso"',
      '-e',
      'end run',
    ]);
    expect(argv[6]).toBe(`upkeep: update failed on ${host}`);
    expect(argv[7]).toContain('Failed: beta');
  });

  it('desktop and webhook go out together', async () => {
    await recordingStub('notify-send');
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl() }), { PATH: sandbox.bin, DISPLAY: ':0' }));
    expect(result.sent).toEqual(['desktop', 'webhook']);
    expect(received).toHaveLength(1);
    expect(existsSync(argvFile)).toBe(true);
  });
});

describe('when notifications are sent (notify.on*)', () => {
  let sandbox: Sandbox;
  let environment: Record<string, string>;

  beforeEach(async () => {
    sandbox = await createSandbox();
    sandboxes.push(sandbox);
    await writeStub(sandbox.bin, 'notify-send');
    environment = { PATH: sandbox.bin, DISPLAY: ':0', STUB_LOG: sandbox.spawnLog };
  });

  async function spawned(): Promise<string[]> {
    return existsSync(sandbox.spawnLog) ? (await readFile(sandbox.spawnLog, 'utf8')).split('\n').filter(Boolean) : [];
  }

  it('by default: failures yes, successes no', async () => {
    const failure = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl() }), environment));
    expect(failure.sent).toEqual(['desktop', 'webhook']);
    received = [];
    await writeFile(sandbox.spawnLog, '');
    const success = await notifyRunFinished(reports.success, options(config({ webhook: webhookUrl() }), environment));
    expect(success).toMatchObject({ event: 'success', sent: [], warnings: [], skipped: ['all: notify.onSuccess is off'] });
    expect(received).toEqual([]);
    expect(await spawned()).toEqual([]);
  });

  it('onFailure: false silences failures', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({ webhook: webhookUrl(), onFailure: false }), environment));
    expect(result).toMatchObject({ event: 'failure', sent: [], skipped: ['all: notify.onFailure is off'] });
    expect(received).toEqual([]);
    expect(await spawned()).toEqual([]);
  });

  it('onUpdatesAvailable: a check that found updates, with the count per plugin', async () => {
    const off = await notifyRunFinished(reports.checkWithUpdates, options(config({ webhook: webhookUrl() }), environment));
    expect(off).toMatchObject({ event: 'updates-available', sent: [], skipped: ['all: notify.onUpdatesAvailable is off'] });
    expect(received).toEqual([]);

    const on = await notifyRunFinished(reports.checkWithUpdates, options(config({ webhook: webhookUrl(), onUpdatesAvailable: true }), environment));
    expect(on.sent).toEqual(['desktop', 'webhook']);
    const summary = JSON.parse(received[0]!.body) as WebhookSummary;
    expect(summary).toMatchObject({
      event: 'updates-available',
      kind: 'check',
      title: `upkeep: 3 updates available on ${HOST}`,
      updatesAvailable: 3,
      updates: [
        { plugin: 'alpha', count: 2, security: true },
        { plugin: 'gamma', count: 1, security: false },
      ],
    });
    expect(summary.message).toContain('alpha 2 (security), gamma 1.');
    expect((await spawned())[0]).toBe(`notify-send --app-name upkeep --urgency normal upkeep: 3 updates available on ${HOST} alpha 2 (security), gamma 1.`);
  });

  it('a check that failed is a failure, even with updates found', async () => {
    const result = await notifyRunFinished(reports.checkFailure, options(config({ webhook: webhookUrl(), desktop: false }), environment));
    expect(result.event).toBe('failure');
    const summary = JSON.parse(received[0]!.body) as WebhookSummary;
    expect(summary).toMatchObject({ title: `upkeep: check failed on ${HOST}`, failed: ['beta'], errors: [{ plugin: 'beta', phase: 'estimate', code: 'BROKEN' }] });
  });

  it('nothing for a check that found nothing, or a dry run, whatever the switches say', async () => {
    const all = config({ webhook: webhookUrl(), onSuccess: true, onFailure: true, onUpdatesAvailable: true });
    const nothing = await notifyRunFinished(reports.checkNothing, options(all, environment));
    expect(nothing).toMatchObject({ event: null, sent: [], warnings: [] });
    const dry = await notifyRunFinished(reports.dryRun, options(all, environment));
    expect(dry).toMatchObject({ event: null, sent: [], skipped: ['all: a dry run changes nothing'] });
    expect(received).toEqual([]);
    expect(await spawned()).toEqual([]);
  });

  it('desktop: false and no webhook: nothing is tried, each says why', async () => {
    const result = await notifyRunFinished(reports.failure, options(config({ desktop: false }), environment));
    expect(result).toEqual({ event: 'failure', sent: [], warnings: [], skipped: ['desktop: notify.desktop is off', 'webhook: notify.webhook is not set'] });
    expect(await spawned()).toEqual([]);
  });
});

describe('config', () => {
  it('notify.* comes from UPKEEP_NOTIFY_* like every other key', async () => {
    const sandbox = await createSandbox();
    sandboxes.push(sandbox);
    const environment = { ...sandbox.environment, UPKEEP_NOTIFY_ON_SUCCESS: '1', UPKEEP_NOTIFY_WEBHOOK: webhookUrl(), UPKEEP_NOTIFY_WEBHOOK_FORMAT: 'slack' };
    const loaded = await loadConfig({ environment, paths: resolvePaths(environment), cwd: sandbox.home });
    expect(loaded.config.notify).toMatchObject({ onSuccess: true, webhook: webhookUrl(), webhookFormat: 'slack', desktop: true, onFailure: true });
  });
});
