import { hostname as osHostname, platform as osPlatform } from 'node:os';
import { delimiter, isAbsolute } from 'node:path';
import type { Config } from '../core/config.ts';
import { isUpkeepError } from '../core/errors.ts';
import type { Executor } from '../core/exec.ts';
import type { HttpClient, HttpResponse } from '../core/http.ts';
import { redactText, silentLogger, type Fields, type Logger } from '../core/log.ts';
import type { Environment } from '../core/paths.ts';
import { findExecutable } from '../install/platform.ts';
import type { Phase } from './plugin/manifest.ts';
import type { UpdateReport } from './run/orchestrator.ts';
import { formatDuration } from './stats/estimate.ts';

/**
 * Tells the user how an update run went (seed 002 §9.3, issue 5): a desktop
 * notification where a desktop session can show one, and a POST to a
 * webhook for servers. Both are best effort: a notification that cannot be
 * delivered becomes a warning and never changes the run's result or exit
 * code, so nothing here throws for a delivery failure.
 */

/** What a finished run amounts to, for the notify.on* switches. */
export type NotificationEvent = 'success' | 'failure' | 'updates-available';
export type NotificationChannel = 'desktop' | 'webhook';
export type Urgency = 'low' | 'normal' | 'critical';

export interface NotifyOptions {
  /** The loaded config: `notify` decides what is sent; `network` and `endpoints` set up the HTTP client. */
  config: Pick<Config, 'notify' | 'network' | 'endpoints'>;
  /** Runs notify-send / osascript. */
  executor: Executor;
  /** The desktop session variables, PATH and the proxy variables are read from here. */
  environment: Environment;
  logger?: Logger;
  /** node's `os.platform()` when absent: `darwin` uses osascript, anything else but win32 notify-send. */
  platform?: string;
  /** The machine named in the notification; node's `os.hostname()` when absent. */
  hostname?: string;
  /** `upkeep/<version>`, sent with the webhook POST. */
  userAgent?: string;
}

export interface NotifyResult {
  /** What the run amounted to; null when there is nothing to tell (a dry run, a check that found nothing). */
  event: NotificationEvent | null;
  /** The channels that delivered. */
  sent: NotificationChannel[];
  /** Channels not tried, each with why (switched off, no desktop session, no webhook set). */
  skipped: string[];
  /** Deliveries that failed: print them, they do not fail the run. */
  warnings: string[];
}

/** One plugin phase that failed, as the webhook reports it. */
export interface PluginError {
  plugin: string;
  phase: Phase;
  code: string;
  message: string;
}

/** The body of a `json` webhook: upkeep's summary of the run. */
export interface WebhookSummary {
  schemaVersion: 1;
  source: 'upkeep';
  event: NotificationEvent;
  title: string;
  message: string;
  host: string;
  runId: string;
  kind: UpdateReport['kind'];
  status: UpdateReport['status'];
  startedAt: string;
  endedAt: string;
  seconds: number;
  succeeded: string[];
  failed: string[];
  notRun: string[];
  packagesUpdated: number;
  /** Pending updates found by the estimate, per plugin (what a check reports). */
  updatesAvailable: number;
  updates: Array<{ plugin: string; count: number; security: boolean }>;
  requiresReboot: boolean;
  errors: PluginError[];
}

export interface Notification {
  event: NotificationEvent;
  title: string;
  /** Short plain text, one fact a line. */
  body: string;
  urgency: Urgency;
}

const PHASES: readonly Phase[] = ['estimate', 'download', 'update'];
/** notify-send waits on D-Bus; a wedged session bus must not hold the end of a run. */
const DESKTOP_TIMEOUT_MS = 5_000;
/**
 * A webhook POST is tried once more after a transient failure. A POST is not
 * idempotent and a timed-out one may have arrived, but a lost failure notice
 * costs more than a rare duplicate.
 */
const WEBHOOK_RETRIES = 1;
/** Plugin names listed in a notification before "and N more". */
const LIST_LIMIT = 6;
/** Characters of a plugin's error message kept in a notification. */
const ERROR_LIMIT = 160;

export async function notifyRunFinished(report: UpdateReport, options: NotifyOptions): Promise<NotifyResult> {
  const settings = options.config.notify;
  const logger = options.logger ?? silentLogger;
  const event = notificationEventOf(report);
  const result: NotifyResult = { event, sent: [], skipped: [], warnings: [] };
  if (event === null) {
    result.skipped.push(report.dryRun ? 'all: a dry run changes nothing' : 'all: nothing to tell (no failures, no updates found)');
    return result;
  }
  const wanted = event === 'failure' ? settings.onFailure : event === 'success' ? settings.onSuccess : settings.onUpdatesAvailable;
  if (!wanted) {
    result.skipped.push(`all: notify.${switchOf(event)} is off`);
    return result;
  }
  const host = options.hostname ?? osHostname();
  const notification = composeNotification(report, event, host);

  const deliveries: Array<Promise<void>> = [];
  if (!settings.desktop) result.skipped.push('desktop: notify.desktop is off');
  else deliveries.push(sendDesktop(notification, options, result, logger));
  if (settings.webhook === undefined) result.skipped.push('webhook: notify.webhook is not set');
  else deliveries.push(sendWebhook(settings.webhook, settings.webhookFormat, report, notification, host, options, result, logger));
  await Promise.all(deliveries);
  // Deliveries finish in any order; a stable order keeps output and tests predictable.
  result.sent.sort();
  return result;
}

function switchOf(event: NotificationEvent): string {
  return event === 'failure' ? 'onFailure' : event === 'success' ? 'onSuccess' : 'onUpdatesAvailable';
}

/**
 * failure: the run failed or was interrupted, or any plugin phase failed;
 * updates-available: a check found pending updates; success: a run or
 * download ended with no failure. A dry run, and a check that found nothing,
 * have nothing to tell.
 */
export function notificationEventOf(report: UpdateReport): NotificationEvent | null {
  if (report.dryRun) return null;
  if (report.status === 'failed' || report.status === 'interrupted' || failedPlugins(report).length > 0) return 'failure';
  if (report.kind === 'check') return pendingUpdates(report).length > 0 ? 'updates-available' : null;
  return 'success';
}

function failedPlugins(report: UpdateReport): string[] {
  const failed = new Set(report.summary.failed);
  for (const plugin of report.plugins) {
    if (PHASES.some((phase) => plugin.phases[phase]?.status === 'failed')) failed.add(plugin.name);
  }
  return [...failed];
}

function pendingUpdates(report: UpdateReport): Array<{ plugin: string; count: number; security: boolean }> {
  return report.plugins
    .filter((plugin) => plugin.applicable && plugin.updates.length > 0)
    .map((plugin) => ({ plugin: plugin.name, count: plugin.updates.length, security: plugin.securityUpdates }));
}

function pluginErrors(report: UpdateReport): PluginError[] {
  const errors: PluginError[] = [];
  for (const plugin of report.plugins) {
    for (const phase of PHASES) {
      const state = plugin.phases[phase];
      if (state?.status !== 'failed') continue;
      errors.push({
        plugin: plugin.name,
        phase,
        code: state.error?.code ?? 'FAILED',
        // Plugin output can quote URLs with credentials in them.
        message: redactText(state.error?.message ?? `${phase} failed`),
      });
    }
  }
  return errors;
}

function listNames(names: readonly string[]): string {
  if (names.length <= LIST_LIMIT) return names.join(', ');
  return `${names.slice(0, LIST_LIMIT).join(', ')} and ${names.length - LIST_LIMIT} more`;
}

function shorten(text: string, limit: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= limit ? line : `${line.slice(0, limit - 1)}…`;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The title and the few lines every channel shows. */
export function composeNotification(report: UpdateReport, event: NotificationEvent, host: string): Notification {
  const action = report.kind === 'run' ? 'update' : report.kind;
  const duration = formatDuration(report.seconds);
  const { summary } = report;
  const lines: string[] = [];

  if (event === 'updates-available') {
    const pending = pendingUpdates(report);
    const total = pending.reduce((sum, entry) => sum + entry.count, 0);
    lines.push(`${pending.map((entry) => `${entry.plugin} ${entry.count}${entry.security ? ' (security)' : ''}`).join(', ')}.`);
    lines.push('`upkeep update run` installs them.');
    return { event, title: `upkeep: ${plural(total, 'update')} available on ${host}`, body: lines.join('\n'), urgency: 'normal' };
  }

  if (event === 'failure') {
    const interrupted = report.status === 'interrupted';
    const errors = pluginErrors(report);
    const failed = failedPlugins(report);
    if (failed.length > 0) {
      const firstErrors = new Map<string, PluginError>();
      for (const error of errors) if (!firstErrors.has(error.plugin)) firstErrors.set(error.plugin, error);
      const described = failed.slice(0, LIST_LIMIT).map((name) => {
        const error = firstErrors.get(name);
        return error ? `${name} (${error.code}: ${shorten(error.message, ERROR_LIMIT)})` : name;
      });
      lines.push(`Failed: ${described.join('; ')}${failed.length > LIST_LIMIT ? ` and ${failed.length - LIST_LIMIT} more` : ''}.`);
    }
    if (summary.succeeded.length > 0) lines.push(`Succeeded: ${listNames(summary.succeeded)}.`);
    if (summary.notRun.length > 0) lines.push(`Not run: ${listNames(summary.notRun)}.`);
    if (report.kind === 'run') lines.push(`${plural(summary.packagesUpdated, 'package')} updated in ${duration}.`);
    else lines.push(`Took ${duration}.`);
    if (summary.requiresReboot) lines.push('A reboot is required.');
    lines.push(
      interrupted
        ? '`upkeep update resume` continues with what did not finish.'
        : report.kind === 'check'
          ? '`upkeep update check` shows why.'
          : '`upkeep update retry` runs the failed plugins again.',
    );
    return {
      event,
      title: `upkeep: ${action} ${interrupted ? 'interrupted' : 'failed'} on ${host}`,
      body: lines.join('\n'),
      urgency: 'critical',
    };
  }

  if (report.kind === 'download') {
    lines.push(summary.succeeded.length > 0 ? `Downloaded for ${listNames(summary.succeeded)} in ${duration}.` : `Nothing to download (${duration}).`);
  } else if (summary.packagesUpdated > 0) {
    lines.push(`${plural(summary.packagesUpdated, 'package')} updated by ${listNames(summary.succeeded)} in ${duration}.`);
  } else {
    lines.push(`Everything was up to date (${plural(report.plugins.length, 'plugin')} checked in ${duration}).`);
  }
  if (summary.requiresReboot) lines.push('A reboot is required.');
  return { event, title: `upkeep: ${action} finished on ${host}`, body: lines.join('\n'), urgency: 'low' };
}

// ---- desktop -----------------------------------------------------------------------------------

function searchPath(environment: Environment): string[] {
  // Relative entries mean the working folder, which must not decide what runs.
  return (environment.PATH ?? '').split(delimiter).filter((folder) => folder !== '' && isAbsolute(folder));
}

function present(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== '';
}

/** Where a desktop notification can be shown, the argv that shows it; otherwise why not. */
export function desktopCommand(
  notification: Notification,
  platform: string,
  environment: Environment,
): { argv: string[] } | { skipped: string } | { missing: string } {
  if (platform === 'darwin') {
    const osascript = findExecutable('osascript', searchPath(environment));
    if (!osascript) return { missing: 'osascript is not on PATH' };
    // Title and body go in as arguments of the run handler, never into the
    // script text, so no quoting of theirs can change what the script does.
    const sound = notification.urgency === 'critical' ? ' sound name "Basso"' : '';
    return {
      argv: [
        osascript,
        '-e',
        'on run argv',
        '-e',
        `display notification (item 2 of argv) with title (item 1 of argv)${sound}`,
        '-e',
        'end run',
        notification.title,
        notification.body,
      ],
    };
  }
  if (platform === 'win32') return { skipped: 'desktop notifications are not supported on Windows' };
  // A scheduled run under `systemd --user` has the session bus but no DISPLAY; a server over ssh has neither.
  if (!['DISPLAY', 'WAYLAND_DISPLAY', 'DBUS_SESSION_BUS_ADDRESS'].some((name) => present(environment[name]))) {
    return { skipped: 'no desktop session (DISPLAY, WAYLAND_DISPLAY and DBUS_SESSION_BUS_ADDRESS are unset)' };
  }
  const notifySend = findExecutable('notify-send', searchPath(environment));
  if (!notifySend) return { missing: 'notify-send is not on PATH (Debian/Ubuntu: apt install libnotify-bin; Fedora: dnf install libnotify)' };
  return { argv: [notifySend, '--app-name', 'upkeep', '--urgency', notification.urgency, notification.title, notification.body] };
}

async function sendDesktop(notification: Notification, options: NotifyOptions, result: NotifyResult, logger: Logger): Promise<void> {
  const command = desktopCommand(notification, options.platform ?? osPlatform(), options.environment);
  if ('skipped' in command) {
    result.skipped.push(`desktop: ${command.skipped}`);
    return;
  }
  const advice = 'set notify.desktop: false to stop trying';
  if ('missing' in command) {
    result.warnings.push(`desktop notification not shown: ${command.missing}; ${advice}`);
    return;
  }
  const program = command.argv[0]!.split('/').pop()!;
  try {
    const run = await options.executor.run(command.argv, { timeout: DESKTOP_TIMEOUT_MS, env: options.environment, maxOutput: 16 * 1024 });
    if (run.exitCode === 0 && !run.timedOut) {
      result.sent.push('desktop');
      logger.debug('notification sent', { channel: 'desktop', program });
      return;
    }
    const why = run.timedOut
      ? `${program} did not finish within ${DESKTOP_TIMEOUT_MS / 1000}s`
      : `${program} exited with ${run.exitCode ?? run.signal}${firstLine(run.stderr) ? `: ${firstLine(run.stderr)}` : ''}`;
    result.warnings.push(`desktop notification not shown: ${why}; ${advice}`);
  } catch (error) {
    const why = isUpkeepError(error) ? error.message : (error as Error).message;
    result.warnings.push(`desktop notification not shown: ${redactText(why)}; ${advice}`);
  }
}

function firstLine(text: string): string {
  return shorten(redactText(text.split('\n').find((line) => line.trim() !== '') ?? ''), 200);
}

// ---- webhook -----------------------------------------------------------------------------------

export interface WebhookRequest {
  body: string;
  headers: Record<string, string>;
}

/** The POST for each `notify.webhookFormat`. */
export function webhookRequest(
  format: Config['notify']['webhookFormat'],
  report: UpdateReport,
  notification: Notification,
  host: string,
): WebhookRequest {
  if (format === 'ntfy') {
    // ntfy reads the title, priority and tags from headers; the body is the message.
    return {
      body: notification.body,
      headers: {
        'content-type': 'text/plain; charset=utf-8',
        title: headerSafe(notification.title),
        priority: notification.event === 'failure' ? 'high' : notification.event === 'success' ? 'low' : 'default',
        tags: `${notification.event === 'failure' ? 'rotating_light' : notification.event === 'success' ? 'white_check_mark' : 'package'},upkeep`,
      },
    };
  }
  if (format === 'slack') {
    const lines = notification.body.split('\n').map((line) => `• ${slackEscape(line)}`);
    return {
      body: JSON.stringify({ text: `*${slackEscape(notification.title)}*\n${lines.join('\n')}` }),
      headers: { 'content-type': 'application/json' },
    };
  }
  return { body: JSON.stringify(webhookSummary(report, notification, host)), headers: { 'content-type': 'application/json' } };
}

export function webhookSummary(report: UpdateReport, notification: Notification, host: string): WebhookSummary {
  const updates = pendingUpdates(report);
  return {
    schemaVersion: 1,
    source: 'upkeep',
    event: notification.event,
    title: notification.title,
    message: notification.body,
    host,
    runId: report.runId,
    kind: report.kind,
    status: report.status,
    startedAt: report.startedAt,
    endedAt: report.endedAt,
    seconds: report.seconds,
    succeeded: report.summary.succeeded,
    failed: failedPlugins(report),
    notRun: report.summary.notRun,
    packagesUpdated: report.summary.packagesUpdated,
    updatesAvailable: updates.reduce((sum, entry) => sum + entry.count, 0),
    updates,
    requiresReboot: report.summary.requiresReboot,
    errors: pluginErrors(report),
  };
}

/** HTTP header values are Latin-1 without control characters; anything else would make the request fail. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/** Slack's mrkdwn treats these three as markup. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * How a webhook is named in warnings and logs: its origin only. Slack and
 * Discord put the secret in the path and ntfy's topic name is its password,
 * which redactText cannot know; the host is enough to tell which one failed.
 */
export function webhookLabel(webhook: string): string {
  try {
    return new URL(webhook).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** Replaces the webhook's full URL wherever it appears with its label. */
function scrubberFor(webhook: string): (text: string) => string {
  const label = `${webhookLabel(webhook)}/[redacted]`;
  const forms = new Set<string>([webhook, redactText(webhook)]);
  try {
    // The URL as written, as the URL parser normalises it, and as it is sent (credentials moved to a header).
    for (const form of [new URL(webhook).href, withoutCredentials(webhook).url]) {
      forms.add(form);
      forms.add(redactText(form));
    }
  } catch {
    // An invalid URL is refused by the config schema before it gets here.
  }
  const ordered = [...forms].filter((form) => form.length > 0).sort((left, right) => right.length - left.length);
  return (text) => {
    let safe = text;
    for (const form of ordered) safe = safe.split(form).join(label);
    return redactText(safe);
  };
}

function scrubValue(value: unknown, scrub: (text: string) => string): unknown {
  if (typeof value === 'string') return scrub(value);
  if (Array.isArray(value)) return value.map((inner) => scrubValue(inner, scrub));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, scrubValue(inner, scrub)]));
  }
  return value;
}

/** A logger that never writes the webhook's URL, for the HTTP client that posts to it. */
function scrubbingLogger(logger: Logger, scrub: (text: string) => string): Logger {
  const wrap =
    (write: (message: string, fields?: Fields) => void) =>
    (message: string, fields?: Fields): void =>
      write(scrub(message), fields === undefined ? undefined : (scrubValue(fields, scrub) as Fields));
  return {
    debug: wrap(logger.debug.bind(logger)),
    info: wrap(logger.info.bind(logger)),
    warn: wrap(logger.warn.bind(logger)),
    error: wrap(logger.error.bind(logger)),
    flush: () => logger.flush(),
  };
}

async function sendWebhook(
  webhook: string,
  format: Config['notify']['webhookFormat'],
  report: UpdateReport,
  notification: Notification,
  host: string,
  options: NotifyOptions,
  result: NotifyResult,
  logger: Logger,
): Promise<void> {
  const label = webhookLabel(webhook);
  const scrub = scrubberFor(webhook);
  const advice = 'check notify.webhook and the network; the run itself is not affected';
  // A client of its own, so that its log lines go through the scrubber.
  let http: HttpClient | undefined;
  try {
    // Loaded only when a webhook is set: most runs never touch the network here.
    const { createHttpClient } = await import('../core/http.ts');
    http = createHttpClient({
      config: options.config,
      environment: options.environment,
      logger: scrubbingLogger(logger, scrub),
      ...(options.userAgent ? { userAgent: options.userAgent } : {}),
    });
    const request = webhookRequest(format, report, notification, host);
    const target = withoutCredentials(webhook);
    if (target.authorization) request.headers.authorization = target.authorization;
    const response: HttpResponse = await http.post(target.url, { ...request, retries: WEBHOOK_RETRIES });
    if (response.status >= 300) {
      // A redirect is not followed: re-sending a POST elsewhere is the receiver's call, not ours.
      result.warnings.push(`webhook notification to ${label} not delivered: it answered with a redirect (HTTP ${response.status}); point notify.webhook at the final URL`);
      return;
    }
    result.sent.push('webhook');
    logger.debug('notification sent', { channel: 'webhook', target: label, format, status: response.status });
  } catch (error) {
    result.warnings.push(`webhook notification to ${label} not delivered: ${describeFailure(error, scrub)}; ${advice}`);
  } finally {
    await http?.close().catch(() => undefined);
  }
}

/**
 * `https://user:password@host/...` (a self-hosted ntfy behind basic auth)
 * becomes an Authorization header: undici drops credentials in the URL
 * without a word.
 */
function withoutCredentials(webhook: string): { url: string; authorization?: string } {
  const url = new URL(webhook);
  if (url.username === '' && url.password === '') return { url: url.href };
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  url.username = '';
  url.password = '';
  return { url: url.href, authorization: `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}` };
}

/** Why a POST failed, without the URL the HTTP client's messages carry. */
function describeFailure(error: unknown, scrub: (text: string) => string): string {
  if (isUpkeepError(error)) {
    const details = error.details as { reason?: unknown } | undefined;
    const reason = typeof details?.reason === 'string' ? details.reason : scrub(error.message);
    return `${reason} (${error.code})`;
  }
  return scrub(error instanceof Error ? error.message : String(error));
}
