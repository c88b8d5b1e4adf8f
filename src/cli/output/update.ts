import type { Phase } from '../../update/plugin/manifest.ts';
import type { PluginReport, RunEstimate, UpdateEvent, UpdateReport } from '../../update/run/orchestrator.ts';
import { formatDuration, formatEstimate, type Estimate } from '../../update/stats/estimate.ts';
import type { Context } from '../context.ts';
import { colors, formatColumns, type Colors } from './colors.ts';
import { liveScreen, progressBar } from './live.ts';

/**
 * What a person or a program sees of an update run: NDJSON events on stdout
 * with --json (one per state change or progress update, docs/update.md);
 * on a terminal, a live table of the plugins and an overall bar (seed 002
 * §10.1) redrawn on stderr; otherwise plain lines on stderr. The summary
 * (§10.5) is the command's result, printed on stdout at the end.
 */
export interface UpdateDisplay {
  event(event: UpdateEvent): void;
  done(): void;
}

export function createUpdateDisplay(context: Context): UpdateDisplay {
  if (context.json) return ndjsonDisplay(context);
  if (context.quiet) return { event() {}, done() {} };
  if (context.stderrIsTTY) return liveDisplay(context);
  return lineDisplay(context);
}

function ndjsonDisplay(context: Context): UpdateDisplay {
  return {
    event(event) {
      // Plugin output is for people and the log file; --verbose streams it too.
      if (event.type === 'output' && !context.verbose) return;
      context.stdout.write(`${JSON.stringify(event)}\n`);
    },
    done() {},
  };
}

const PHASE_VERB: Record<Phase, string> = { estimate: 'estimate', download: 'download', update: 'update' };

function lineDisplay(context: Context): UpdateDisplay {
  const c = colors(context.color);
  const write = (text: string): void => {
    context.stderr.write(`${text}\n`);
  };
  return {
    event(event) {
      switch (event.type) {
        case 'phase':
          if (event.phase === 'estimate' && event.status === 'running') return;
          if (event.status === 'running') write(`${event.plugin}: ${PHASE_VERB[event.phase]} started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`);
          else if (event.status === 'failed') write(c.red(`${event.plugin}: ${PHASE_VERB[event.phase]} failed: ${event.error?.message ?? 'unknown error'}`));
          else if (event.phase !== 'estimate' || event.status !== 'completed') {
            write(`${event.plugin}: ${PHASE_VERB[event.phase]} ${event.status}${event.seconds === undefined ? '' : ` in ${formatDuration(event.seconds)}`}${event.note ? ` (${event.note})` : ''}`);
          }
          return;
        case 'estimate':
          if (event.applicable) write(`${event.plugin}: ${event.updates} update${event.updates === 1 ? '' : 's'} pending`);
          else if (context.verbose) write(c.dim(`${event.plugin}: does not apply (${event.reason ?? 'no reason given'})`));
          return;
        case 'retry':
          write(c.yellow(`${event.plugin}: ${event.phase} failed transiently (${event.reason}); retrying in ${event.delaySeconds.toFixed(1)} s`));
          return;
        case 'warning':
          write(c.yellow(`warning: ${event.message}`));
          return;
        case 'plan':
          if (event.estimate.seconds > 0) write(`estimated time: ${formatRunEstimate(event.estimate)}`);
          return;
        case 'output':
          if (context.verbose) write(c.dim(`${event.plugin}| ${event.line}`));
          return;
        default:
          return;
      }
    },
    done() {},
  };
}

interface Row {
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'idle';
  phase: Phase;
  percent: number | null;
  message: string;
  startedAt: number | null;
  estimate: number | null;
  downloadBytes: number;
  updates: number;
}

const SYMBOL: Record<Row['status'], string> = { pending: '○', running: '●', done: '✓', failed: '✗', skipped: '–', idle: '·' };
const BAR_WIDTH = 30;

/** The live table of plugins under an overall bar. */
function liveDisplay(context: Context): UpdateDisplay {
  const c = colors(context.color);
  const rows = new Map<string, Row>();
  let runEstimate: RunEstimate | null = null;
  const started = Date.now();

  const row = (plugin: string): Row => {
    let existing = rows.get(plugin);
    if (!existing) {
      existing = { status: 'pending', phase: 'estimate', percent: null, message: '', startedAt: null, estimate: null, downloadBytes: 0, updates: 0 };
      rows.set(plugin, existing);
    }
    return existing;
  };

  const render = (): string => {
    const lines: string[] = [];
    const elapsed = (Date.now() - started) / 1000;
    const total = runEstimate?.seconds ?? 0;
    const fraction = overallFraction(rows, elapsed, total);
    lines.push(`${c.bold('Overall')} ${progressBar(fraction, c, BAR_WIDTH)} ${String(Math.round(fraction * 100)).padStart(3)}% ${formatClock(elapsed)}${total > 0 ? c.dim(` of ~${formatClock(total)}`) : ''}`);
    const table = [...rows]
      .filter(([, entry]) => entry.status !== 'idle' || context.verbose)
      .map(([plugin, entry]) => [
        `${statusSymbol(entry.status, c)} ${plugin}`,
        entry.status === 'running' ? `${entry.phase === 'estimate' ? 'checking' : entry.phase === 'download' ? 'downloading' : 'updating'}` : entry.status,
        entry.percent === null ? (entry.status === 'running' ? c.dim('…') : '') : `${progressBar(entry.percent / 100, c, 10)} ${entry.percent}%`,
        eta(entry),
        entry.downloadBytes > 0 ? formatBytes(entry.downloadBytes) : '',
        c.dim(entry.message.slice(0, 50)),
      ]);
    lines.push(formatColumns([[c.dim('plugin'), c.dim('status'), c.dim('progress'), c.dim('eta'), c.dim('download'), ''], ...table]));
    return lines.join('\n');
  };
  const screen = liveScreen(context.stderr, render);

  return {
    event(event) {
      switch (event.type) {
        case 'phase': {
          const entry = row(event.plugin);
          entry.phase = event.phase;
          if (event.status === 'running') {
            entry.status = 'running';
            entry.percent = null;
            entry.startedAt = Date.now();
            entry.estimate = event.phase === 'estimate' ? null : entry.estimate;
          } else if (event.status === 'failed') {
            entry.status = 'failed';
            entry.message = event.error?.message ?? '';
          } else if (event.status === 'completed') {
            entry.status = event.phase === 'estimate' ? (entry.updates > 0 ? 'pending' : 'idle') : 'done';
            entry.message = event.phase === 'estimate' ? entry.message : (event.note ?? '');
            entry.percent = event.phase === 'estimate' ? null : 100;
          } else {
            entry.status = event.status === 'skipped' ? 'skipped' : 'pending';
            entry.message = event.note ?? '';
          }
          break;
        }
        case 'estimate': {
          const entry = row(event.plugin);
          entry.updates = event.updates;
          entry.downloadBytes = event.downloadBytes;
          entry.estimate = (event.estimates.download?.seconds ?? 0) + (event.estimates.update?.seconds ?? 0) || null;
          entry.message = event.applicable ? `${event.updates} update${event.updates === 1 ? '' : 's'}` : (event.reason ?? 'does not apply');
          if (!event.applicable || event.updates === 0) entry.status = 'idle';
          break;
        }
        case 'progress': {
          const entry = row(event.plugin);
          entry.percent = Math.round(event.percent);
          if (event.message) entry.message = event.message;
          break;
        }
        case 'plan':
          runEstimate = event.estimate;
          break;
        case 'retry':
          screen.note(c.yellow(`${event.plugin}: ${event.phase} failed transiently (${event.reason}); retrying in ${event.delaySeconds.toFixed(1)} s`));
          break;
        case 'warning':
          screen.note(c.yellow(`warning: ${event.message}`));
          break;
        default:
          return;
      }
      screen.changed();
    },
    done() {
      screen.stop();
    },
  };
}

function statusSymbol(status: Row['status'], c: Colors): string {
  const symbol = SYMBOL[status];
  if (status === 'done') return c.green(symbol);
  if (status === 'failed') return c.red(symbol);
  if (status === 'running') return c.cyan(symbol);
  return c.dim(symbol);
}

/** Work done, weighing each plugin by its estimate (1 s when it has none). */
function overallFraction(rows: ReadonlyMap<string, Row>, elapsed: number, total: number): number {
  let done = 0;
  let all = 0;
  for (const entry of rows.values()) {
    if (entry.status === 'idle' || entry.status === 'skipped') continue;
    const weight = Math.max(1, entry.estimate ?? 1);
    all += weight;
    if (entry.status === 'done' || entry.status === 'failed') done += weight;
    else if (entry.status === 'running' && entry.phase !== 'estimate') {
      const running = entry.percent !== null ? entry.percent / 100 : entry.startedAt ? Math.min(0.95, (Date.now() - entry.startedAt) / 1000 / weight) : 0;
      done += weight * running;
    }
  }
  if (all === 0) return total > 0 ? Math.min(0.99, elapsed / total) : 0;
  return done / all;
}

function eta(entry: Row): string {
  if (entry.status !== 'running' || entry.startedAt === null || entry.phase === 'estimate') return '';
  const elapsed = (Date.now() - entry.startedAt) / 1000;
  // Progress, once the plugin reports enough of it, beats the history.
  if (entry.percent !== null && entry.percent >= 5) return formatClock((elapsed * (100 - entry.percent)) / entry.percent);
  if (entry.estimate !== null) return formatClock(Math.max(0, entry.estimate - elapsed));
  return '';
}


export function formatClock(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  return `${hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}` : String(minutes)}:${String(rest).padStart(2, '0')}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

export function formatRunEstimate(estimate: RunEstimate): string {
  if (estimate.seconds <= 0) return 'nothing to do';
  const point = formatDuration(estimate.seconds);
  return estimate.high > estimate.low ? `~${point} (${formatDuration(estimate.low)} - ${formatDuration(estimate.high)})` : `~${point}`;
}

function estimateText(estimates: Partial<Record<Phase, Estimate>>): string {
  const parts = (['download', 'update'] as const).map((phase) => estimates[phase]).filter((estimate): estimate is Estimate => estimate !== undefined);
  if (parts.length === 0) return '';
  if (parts.length === 1) return formatEstimate(parts[0]!);
  const combined: Estimate = {
    seconds: parts.reduce((total, part) => total + part.seconds, 0),
    low: parts.reduce((total, part) => total + part.low, 0),
    high: parts.reduce((total, part) => total + part.high, 0),
    dataPoints: Math.min(...parts.map((part) => part.dataPoints)),
    basis: parts[parts.length - 1]!.basis,
  };
  return formatEstimate(combined);
}

/** `upkeep update check`: one row per plugin, then the packages, then the run's estimate. */
export function renderCheck(report: UpdateReport, color: boolean, verbose: boolean): string {
  const c = colors(color);
  const applicable = report.plugins.filter((plugin) => plugin.applicable);
  const failed = report.plugins.filter((plugin) => plugin.phases.estimate?.status === 'failed');
  const lines: string[] = [];
  const rows = report.plugins
    .filter((plugin) => plugin.applicable || verbose || plugin.phases.estimate?.status === 'failed')
    .map((plugin) => [
      plugin.name,
      checkStatus(plugin, c),
      plugin.downloadBytes > 0 ? formatBytes(plugin.downloadBytes) : '',
      [plugin.securityUpdates ? c.red('security') : '', plugin.requiresReboot ? c.yellow('reboot') : ''].filter(Boolean).join(' '),
      c.dim(estimateText(plugin.estimates)),
    ]);
  if (rows.length > 0) lines.push(formatColumns([[c.dim('plugin'), c.dim('updates'), c.dim('download'), c.dim('flags'), c.dim('estimate')], ...rows]));
  for (const plugin of applicable.filter((entry) => entry.updates.length > 0)) {
    lines.push('', c.bold(plugin.name));
    lines.push(
      formatColumns(
        plugin.updates.map((entry) => [entry.name, c.dim(entry.currentVersion ?? '?'), '→', entry.newVersion, entry.security ? c.red('security') : '']),
        '  ',
      ),
    );
  }
  const skipped = report.plugins.length - applicable.length - failed.length;
  const pending = applicable.reduce((total, plugin) => total + plugin.updates.length, 0);
  lines.push(
    '',
    `${pending} update${pending === 1 ? '' : 's'} from ${applicable.length} plugin${applicable.length === 1 ? '' : 's'}` +
      `${skipped > 0 && !verbose ? c.dim(` (${skipped} plugin${skipped === 1 ? ' does' : 's do'} not apply here; --verbose lists them)`) : ''}`,
  );
  if (pending > 0) lines.push(`estimated time: ${formatRunEstimate(report.estimate)}`);
  return lines.join('\n');
}

function checkStatus(plugin: PluginReport, c: Colors): string {
  if (plugin.phases.estimate?.status === 'failed') return c.red(`failed: ${plugin.phases.estimate.error?.message ?? ''}`);
  if (!plugin.applicable) return c.dim(`does not apply: ${plugin.reason ?? ''}`);
  if (plugin.updates.length === 0) return c.green('up to date');
  return `${plugin.updates.length} pending`;
}

/** The summary at the end of a run (seed 002 §10.5). */
export function renderSummary(report: UpdateReport, color: boolean): string {
  const c = colors(color);
  const { summary } = report;
  if (report.dryRun) {
    const lines = [c.bold('Plan (dry run, nothing was changed)')];
    if (!report.plan || report.plan.length === 0) lines.push('nothing to update');
    else {
      lines.push(
        formatColumns(
          report.plan.map((entry) => [`+${formatClock(entry.startSeconds)}`, entry.plugin, entry.phase, c.dim(`~${formatDuration(entry.seconds)}`)]),
          '  ',
        ),
      );
      lines.push(`estimated time: ${formatRunEstimate(report.estimate)}`);
    }
    return lines.join('\n');
  }
  const rows: string[][] = [
    ['Run', `${report.runId} ${statusWord(report, c)}`],
    ['Total time', formatDuration(report.seconds)],
    ['Plugins run', String(summary.pluginsRun)],
    ['Successful', String(summary.succeeded.length)],
    ['Failed', summary.failed.length > 0 ? c.red(`${summary.failed.length} (${summary.failed.join(', ')})`) : '0'],
  ];
  if (summary.notRun.length > 0) rows.push(['Not run', c.yellow(`${summary.notRun.length} (${summary.notRun.join(', ')})`)]);
  rows.push(['Downloaded', formatBytes(summary.downloadedBytes)]);
  if (report.kind === 'run') rows.push(['Packages', `${summary.packagesUpdated} updated`]);
  if (summary.requiresReboot) rows.push(['Reboot', c.yellow('required')]);
  const lines = [formatColumns(rows)];
  for (const plugin of report.plugins) {
    for (const phase of ['estimate', 'download', 'update'] as const) {
      const state = plugin.phases[phase];
      if (state?.status === 'failed') {
        lines.push(c.red(`✗ ${plugin.name} ${phase}: ${state.error?.code ?? ''} ${state.error?.message ?? ''}`));
        if (state.error?.details) lines.push(c.dim(state.error.details.split('\n').map((line) => `    ${line}`).join('\n')));
      }
    }
  }
  return lines.join('\n');
}

function statusWord(report: UpdateReport, c: Colors): string {
  if (report.status === 'completed') return c.green('completed');
  if (report.status === 'interrupted') return c.yellow('interrupted');
  return c.red(report.status);
}
