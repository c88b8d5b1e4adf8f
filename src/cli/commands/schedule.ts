import type { Command } from 'commander';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import { redact, redactText } from '../../core/log.ts';
import { formatTimeSpan, parseTimeSpan } from '../../update/timer/calendar.ts';
import { readLogTail, type LogEntry, type LoggedOutcome } from '../../update/timer/log.ts';
import { disableSchedule, enableSchedule, readInstalledDefinition, rotateScheduleLogs, runScheduleNow, scheduleStatus, type ScheduleContext } from '../../update/timer/schedule.ts';
import { SERVICE_UNIT, scheduleLogPaths, type ScheduleScope } from '../../update/timer/units.ts';
import type { Context } from '../context.ts';
import { colors, formatColumns, type Colors } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { upkeepVersion } from '../version.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

interface ScopeOptions {
  system?: boolean;
}

interface EnableOptions extends ScopeOptions {
  interval: string;
  randomizedDelay: string;
  checkOnly?: boolean;
}

interface LogsOptions extends ScopeOptions {
  lines: string;
  rotate?: boolean;
}

const DEFAULT_INTERVAL = 'weekly';
const DEFAULT_DELAY = '1h';

export function registerScheduleCommands(program: Command, run: Register): void {
  const schedule = program
    .command('schedule')
    .summary('run updates unattended on a systemd timer: enable, disable, status, run-now, logs')
    .description(
      'Writes a systemd timer and service that run `upkeep update run --json --continue-on-error` (or `update check`) on a calendar, for your user (~/.config/systemd/user) or, with --system and as root, for the machine (/etc/systemd/system). The run never prompts; its NDJSON events go to scheduled.ndjson in the state folder. Where systemd does not run, the units are written and a cron line is offered instead. docs/schedule.md has the details.',
    );
  const scoped = (command: Command): Command => command.option('--system', "the machine's schedule (/etc/systemd/system, run as root) instead of your user's");
  scoped(schedule.command('enable').summary('write the timer and service units and start the timer'))
    .option('--interval <when>', 'daily, weekly, monthly, or a systemd calendar expression (OnCalendar=)', DEFAULT_INTERVAL)
    .option('--randomized-delay <span>', 'wait up to this long at random after the calendar time (RandomizedDelaySec=; 0 turns it off)', DEFAULT_DELAY)
    .option('--check-only', 'only check what would be updated (`update check`), change nothing')
    .addHelpText(
      'after',
      [
        '',
        'The calendar is checked with `systemd-analyze calendar` where it is installed. Enabling again',
        'replaces the schedule. A run missed while the machine was off happens at the next boot.',
        '',
        'Examples:',
        '  upkeep schedule enable                                # weekly, Monday 00:00 plus up to 1h',
        '  upkeep schedule enable --interval daily --randomized-delay 30min',
        '  upkeep schedule enable --interval "Mon..Fri *-*-* 04:00:00"',
        '  sudo upkeep schedule enable --system --interval "Sun 03:00"',
        '',
      ].join('\n'),
    )
    .action(run(enableHandler));
  scoped(schedule.command('disable').summary('stop and disable the timer and remove the unit files (a run under way finishes)')).action(run(disableHandler));
  scoped(schedule.command('status').summary('whether a schedule is set, its next and last run, and how the last run went')).action(run(statusHandler));
  scoped(schedule.command('run-now').summary('start the scheduled update now (through systemd, in the background; without systemd, here)'))
    .addHelpText('after', '\nWith systemd the service starts and this returns at once: follow it with `upkeep schedule logs`.\nWithout systemd the same command line runs here, appending to the same log.\n')
    .action(run(runNowHandler));
  scoped(schedule.command('logs').summary("the end of the scheduled runs' log, one line per event"))
    .option('--lines <count>', 'how many events, from the end', '20')
    .option('--rotate', 'instead, rotate the logs that have passed 10 MiB (the scheduled service does this before each run)')
    .addHelpText('after', '\nWith --json the events are printed as they are in the log: NDJSON, one per line.\n')
    .action(run(logsHandler));
}

function scopeOf(options: ScopeOptions): ScheduleScope {
  return options.system ? 'system' : 'user';
}

function scheduleContext(context: Context): ScheduleContext {
  return {
    executor: new Executor({ env: context.environment, logger: context.logger }),
    environment: context.environment,
    home: context.home,
    paths: context.paths,
    uid: context.uid,
    now: context.now,
  };
}

/** An ISO time for people: `2026-11-23 04:00 UTC`. */
function when(iso: string | null): string {
  if (!iso) return '-';
  return /^\d{4}-\d{2}-\d{2}T/.test(iso) ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : iso;
}

function commandText(command: readonly string[]): string {
  // The node binary and the entry point are the same on every line; the subcommand is what matters.
  const index = command.indexOf('update');
  return `upkeep ${command.slice(index === -1 ? 0 : index).join(' ')}`;
}

// ---- enable -----------------------------------------------------------------------------------

const enableHandler: Handler<EnableOptions> = async (options, context) => {
  const delay = parseTimeSpan(options.randomizedDelay);
  if (delay === null) {
    throw new UpkeepError('E_USAGE', `--randomized-delay must be a time span such as 1h, 30min or 90 (seconds), not ${options.randomizedDelay}`, {
      hint: 'for example --randomized-delay 30min; 0 turns the delay off',
      exitCode: ExitCode.usage,
    });
  }
  if (!context.selfCommand) throw new Error('schedule enable needs the command line of this upkeep (context.selfCommand)');
  const result = await enableSchedule(scheduleContext(context), {
    scope: scopeOf(options),
    interval: options.interval,
    randomizedDelaySeconds: delay,
    checkOnly: options.checkOnly ?? false,
    selfCommand: context.selfCommand,
    upkeepVersion,
    cwd: context.cwd,
  });
  const { definition, calendar } = result;
  return {
    exitCode: ExitCode.success,
    data: { ...result, definition: redact(definition) },
    warnings: result.warnings,
    human: (color) => {
      const c = colors(color);
      const delayText = definition.randomizedDelaySeconds > 0 ? ` plus up to ${formatTimeSpan(definition.randomizedDelaySeconds)} at random` : '';
      return [
        c.green(`${result.replaced ? 'rescheduled' : 'scheduled'} for the ${result.scope === 'user' ? 'user' : 'system'}: ${commandText(definition.command)}`),
        formatColumns([
          [c.dim('when'), `${calendar.expression}${calendar.normalized !== calendar.expression ? c.dim(` (${calendar.normalized})`) : ''}${delayText}`],
          [c.dim('next run'), calendar.nextElapse ? `${when(calendar.nextElapse)}${delayText ? c.dim(' before the random delay') : ''}` : '-'],
          [c.dim('timer'), result.units.timer],
          [c.dim('service'), result.units.service],
          [c.dim('log'), `${definition.log.events} ${c.dim('(`upkeep schedule logs`)')}`],
        ]),
      ].join('\n');
    },
  };
};

// ---- disable ----------------------------------------------------------------------------------

const disableHandler: Handler<ScopeOptions> = async (options, context) => {
  const result = await disableSchedule(scheduleContext(context), scopeOf(options));
  return {
    exitCode: ExitCode.success,
    data: result,
    warnings: result.warnings,
    human: () =>
      result.removed.length === 0
        ? `no scheduled update was set up for the ${result.scope} (nothing to do)`
        : `scheduled updates disabled for the ${result.scope}; removed ${result.removed.join(' and ')}`,
  };
};

// ---- status -----------------------------------------------------------------------------------

const statusHandler: Handler<ScopeOptions> = async (options, context) => {
  const status = await scheduleStatus(scheduleContext(context), scopeOf(options));
  return {
    exitCode: ExitCode.success,
    data: { ...status, definition: status.definition ? redact(status.definition) : null },
    warnings: status.warnings,
    human: (color) => {
      const c = colors(color);
      const rows: string[][] = [];
      const definition = status.definition;
      if (!status.installed) {
        rows.push([c.dim('schedule'), `${c.yellow('not set up')} for the ${status.scope} ${c.dim(`(\`upkeep schedule enable${status.scope === 'system' ? ' --system' : ''}\`)`)}`]);
      } else if (definition) {
        const delay = definition.randomizedDelaySeconds > 0 ? `, plus up to ${formatTimeSpan(definition.randomizedDelaySeconds)}` : '';
        rows.push([c.dim('schedule'), `${definition.calendar}${definition.normalized !== definition.calendar ? c.dim(` (${definition.normalized})`) : ''}${delay}: ${commandText(definition.command)}`]);
      } else {
        rows.push([c.dim('schedule'), `units at ${status.units.timer} (not written by upkeep)`]);
      }
      if (status.installed) {
        const { systemd } = status;
        if (!systemd.running) rows.push([c.dim('timer'), c.yellow('systemd does not run here: nothing triggers the units (use cron, `upkeep schedule enable` printed the line)')]);
        else if (systemd.timer) {
          const state = `${systemd.timer.activeState ?? 'unknown'}, ${systemd.timer.unitFileState ?? 'unknown'}`;
          rows.push([c.dim('timer'), systemd.timer.activeState === 'active' ? c.green(state) : c.yellow(state)]);
          rows.push([c.dim('next run'), when(systemd.timer.nextRun)]);
          rows.push([c.dim('last run'), when(systemd.timer.lastTrigger)]);
          if (systemd.service?.activeState === 'activating') rows.push([c.dim('now'), c.cyan('a scheduled run is going on')]);
          else if (systemd.service?.result && systemd.timer.lastTrigger) {
            const ok = systemd.service.result === 'success';
            rows.push([c.dim('service'), ok ? c.green('success') : c.red(`${systemd.service.result}${systemd.service.exitStatus === null ? '' : ` (exit ${systemd.service.exitStatus})`}`)]);
          }
        }
      }
      if (status.lastLogged) rows.push([c.dim('last logged'), describeOutcome(status.lastLogged, c)]);
      if (status.lastRun) {
        const run = status.lastRun;
        const failed = run.failed.length > 0 ? c.red(`; failed: ${run.failed.join(', ')}`) : '';
        rows.push([c.dim('last update'), `${statusColour(run.status, c)} ${when(run.endedAt ?? run.startedAt)}${failed} ${c.dim(`(run ${run.runId}, scheduled or not)`)}`]);
      }
      rows.push([c.dim('log'), status.log.events]);
      return formatColumns(rows);
    },
  };
};

function statusColour(status: string, c: Colors): string {
  if (status === 'completed' || status === 'checked') return c.green(status);
  if (status === 'failed' || status.startsWith('E_')) return c.red(status);
  return c.yellow(status);
}

function describeOutcome(outcome: LoggedOutcome, c: Colors): string {
  const failed = outcome.failed.length > 0 ? c.red(`; failed: ${outcome.failed.join(', ')}`) : '';
  const time = outcome.time ? ` ${when(outcome.time)}` : '';
  const message = outcome.message ? `: ${redactText(outcome.message)}` : '';
  return `${outcome.kind === 'check' ? 'check ' : outcome.kind === 'error' ? 'error ' : ''}${statusColour(outcome.status, c)}${time}${failed}${message}`;
}

// ---- run-now ----------------------------------------------------------------------------------

const runNowHandler: Handler<ScopeOptions> = async (options, context) => {
  const controller = new AbortController();
  const unsubscribe = context.onInterrupt(() => controller.abort());
  try {
    const result = await runScheduleNow(scheduleContext(context), scopeOf(options), { signal: controller.signal });
    const exitCode = result.mode === 'systemd' ? ExitCode.success : toExitCode(result.exitCode);
    return {
      exitCode,
      data: result,
      human: (color) => {
        const c = colors(color);
        if (result.mode === 'systemd') {
          const journal = `journalctl${result.scope === 'user' ? ' --user' : ''} -u ${SERVICE_UNIT}`;
          return `started ${SERVICE_UNIT} in the background: ${commandText(result.command)}\nfollow it with \`upkeep schedule logs\` (events) or \`${journal}\``;
        }
        const ending = result.outcome ? describeOutcome(result.outcome, c) : `exit code ${result.exitCode ?? 'none (stopped by a signal)'}`;
        return `ran ${commandText(result.command)} here (systemd does not run): ${ending}\nlog: ${result.log.events}`;
      },
    };
  } finally {
    unsubscribe();
  }
};

function toExitCode(code: number | null): ExitCode {
  return code === 0 || code === 1 || code === 2 || code === 3 ? code : ExitCode.failure;
}

// ---- logs -------------------------------------------------------------------------------------

const logsHandler: Handler<LogsOptions> = async (options, context) => {
  const count = Number(options.lines);
  if (!Number.isInteger(count) || count < 1) {
    throw new UpkeepError('E_USAGE', `--lines must be a whole number of at least 1, not ${options.lines}`, { hint: 'for example --lines 50', exitCode: ExitCode.usage });
  }
  const definition = await readInstalledDefinition(scheduleContext(context), scopeOf(options));
  // Without a schedule, where one would log: runs started by hand through cron log there too.
  const log = definition?.log ?? scheduleLogPaths(context.paths);
  if (options.rotate) {
    const rotated = await rotateScheduleLogs(log);
    return {
      exitCode: ExitCode.success,
      data: { rotated },
      // Quiet when there was nothing to do: the service's ExecStartPre writes into the log itself.
      human: () => rotated.map((path) => `rotated ${path} to ${path}.1`).join('\n'),
    };
  }
  const path = log.events;
  const tail = await readLogTail(path, count).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EACCES') {
      throw new UpkeepError('E_NEEDS_ROOT', `${path} cannot be read by this user`, { hint: 'the system schedule logs as root: run it with sudo' });
    }
    throw error;
  });
  const warnings = tail.exists ? [] : [`no scheduled run has logged anything yet (${path})`];
  const raw = tail.entries.map((entry) => (entry.kind === 'json' ? redact(entry.value) : { unparsed: redactText(entry.text) }));
  if (context.json) for (const entry of raw) context.stdout.write(`${JSON.stringify(entry)}\n`);
  return {
    exitCode: ExitCode.success,
    data: raw,
    streamed: true,
    warnings,
    human: (color) => tail.entries.map((entry) => describeEntry(entry, colors(color))).join('\n'),
  };
};

/** One log entry as one line for people. */
export function describeEntry(entry: LogEntry, c: Colors): string {
  if (entry.kind === 'text') return redactText(entry.text);
  const value = entry.value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value);
  const event = value as Record<string, unknown>;
  const time = typeof event.time === 'string' ? `${c.dim(event.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))} ` : '';
  const plugin = typeof event.plugin === 'string' ? `${event.plugin}: ` : '';
  const text = (name: string): string => redactText(String(event[name] ?? ''));
  switch (event.type) {
    case 'run':
      return `${time}${c.bold(`run ${text('runId')} ${text('status')}`)}`;
    case 'phase': {
      const error = event.error as { message?: string } | undefined;
      const seconds = typeof event.seconds === 'number' ? ` in ${event.seconds.toFixed(1)} s` : '';
      const note = event.note ? ` (${text('note')})` : '';
      const line = `${time}${plugin}${text('phase')} ${text('status')}${Number(event.attempt) > 1 ? ` (attempt ${text('attempt')})` : ''}${seconds}${note}${error?.message ? `: ${redactText(error.message)}` : ''}`;
      return event.status === 'failed' ? c.red(line) : line;
    }
    case 'progress':
      return `${time}${plugin}${text('phase')} ${text('percent')}%${event.message ? ` ${text('message')}` : ''}`;
    case 'estimate':
      return event.applicable
        ? `${time}${plugin}${text('updates')} update${event.updates === 1 ? '' : 's'} pending`
        : `${time}${plugin}${c.dim(`does not apply${event.reason ? ` (${text('reason')})` : ''}`)}`;
    case 'plan': {
      const estimate = event.estimate as { seconds?: number } | undefined;
      return `${time}plan: about ${Math.round(estimate?.seconds ?? 0)} s`;
    }
    case 'retry':
      return c.yellow(`${time}${plugin}${text('phase')} failed transiently (${text('reason')}); retry ${text('attempt')} in ${Number(event.delaySeconds).toFixed(1)} s`);
    case 'warning':
      return c.yellow(`${time}${plugin}warning: ${text('message')}`);
    case 'output':
      return c.dim(`${time}${plugin}| ${text('line')}`);
    case 'summary': {
      const report = event.report as { status?: string; endedAt?: string; summary?: { succeeded?: string[]; failed?: string[]; packagesUpdated?: number; requiresReboot?: boolean } };
      const summary = report.summary ?? {};
      const failed = summary.failed ?? [];
      const parts = [
        `${(summary.succeeded ?? []).length} succeeded`,
        failed.length > 0 ? c.red(`${failed.length} failed (${failed.join(', ')})`) : '0 failed',
        `${summary.packagesUpdated ?? 0} packages updated`,
        ...(summary.requiresReboot ? [c.yellow('reboot needed')] : []),
      ];
      const stamp = report.endedAt ? `${c.dim(report.endedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))} ` : '';
      return `${stamp}${c.bold(`summary: ${report.status ?? 'unknown'}`)}; ${parts.join(', ')}`;
    }
    default:
      break;
  }
  if (Array.isArray(event.plugins) && 'estimate' in event) {
    const plugins = event.plugins as Array<{ name?: string; applicable?: boolean; updates?: unknown[]; error?: unknown }>;
    const pending = plugins.filter((item) => item.applicable && (item.updates?.length ?? 0) > 0);
    const failed = plugins.filter((item) => item.error).map((item) => item.name);
    const list = pending.map((item) => `${item.name} ${item.updates!.length}`).join(', ');
    return `${c.bold('check')}: ${pending.length === 0 ? 'nothing to update' : `updates pending: ${list}`}${failed.length > 0 ? c.red(`; failed: ${failed.join(', ')}`) : ''}`;
  }
  if (event.error && typeof event.error === 'object') {
    const error = event.error as { code?: string; message?: string };
    return c.red(`error[${error.code ?? 'E_INTERNAL'}]: ${redactText(error.message ?? '')}`);
  }
  return JSON.stringify(redact(value));
}
