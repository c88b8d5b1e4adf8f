import { createWriteStream, type WriteStream } from 'node:fs';
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ExitCode, UpkeepError, isUpkeepError } from '../../core/errors.ts';
import type { ExecResult, Executor } from '../../core/exec.ts';
import { withLock, writeFileAtomic } from '../../core/fs.ts';
import { redact, redactText } from '../../core/log.ts';
import type { Environment, Paths } from '../../core/paths.ts';
import { rotateWhenLarger } from '../run/log.ts';
import { loadRunState, type RunState } from '../run/state.ts';
import { checkCalendar, parseSystemdTimestamp, type CalendarCheck } from './calendar.ts';
import { lastOutcome, parseLogText, readLogTail, type LoggedOutcome } from './log.ts';
import { NETWORK_VARIABLES } from '../environment.ts';
import {
  SERVICE_UNIT,
  TIMER_UNIT,
  cronLine,
  readScheduleDefinition,
  renderServiceUnit,
  renderTimerUnit,
  scheduleEnvironmentFile,
  scheduleLogPaths,
  scheduledArguments,
  scheduledEnvironment,
  type ScheduleDefinition,
  type ScheduleScope,
} from './units.ts';

/**
 * `upkeep schedule`: updates on a systemd timer (seed 002 §9). The units are
 * written for the user (~/.config/systemd/user) or the system
 * (/etc/systemd/system), then loaded and started through systemctl where
 * systemd runs. Where it does not (containers, WSL without systemd), the
 * units are still written and the user is given a cron line instead.
 */

export interface ScheduleContext {
  executor: Executor;
  environment: Environment;
  home: string;
  paths: Paths;
  uid: number | undefined;
  now: () => Date;
}

/** Where the units go; the UPKEEP_SYSTEMD_* variables point tests (and odd setups) elsewhere. */
export function unitDirectory(scope: ScheduleScope, environment: Environment, home: string): string {
  if (scope === 'system') return environment.UPKEEP_SYSTEMD_SYSTEM_DIR || '/etc/systemd/system';
  if (environment.UPKEEP_SYSTEMD_USER_DIR) return environment.UPKEEP_SYSTEMD_USER_DIR;
  return join(environment.XDG_CONFIG_HOME || join(home, '.config'), 'systemd', 'user');
}

export function unitPaths(scope: ScheduleScope, environment: Environment, home: string): { timer: string; service: string } {
  const folder = unitDirectory(scope, environment, home);
  return { timer: join(folder, TIMER_UNIT), service: join(folder, SERVICE_UNIT) };
}

/** systemd's own test (sd_booted): the folder exists only while systemd is the init system. */
export async function systemdRuns(environment: Environment): Promise<boolean> {
  const marker = environment.UPKEEP_SYSTEMD_RUN_DIR || '/run/systemd/system';
  return stat(marker).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

function requireRoot(scope: ScheduleScope, context: ScheduleContext, action: string): void {
  if (scope === 'system' && context.uid !== 0) {
    throw new UpkeepError('E_NEEDS_ROOT', `${action} the system's schedule needs root (it lives in /etc/systemd/system)`, {
      hint: 'run it with sudo, or leave out --system to schedule updates for your own user',
    });
  }
}

/** systemctl for one scope, with failures turned into errors a user can act on. */
export class Systemctl {
  constructor(
    private readonly executor: Executor,
    private readonly environment: Environment,
    readonly scope: ScheduleScope,
  ) {}

  argv(args: readonly string[]): string[] {
    return ['systemctl', ...(this.scope === 'user' ? ['--user'] : []), ...args];
  }

  async run(args: readonly string[], options: { env?: Environment; allowFailure?: boolean } = {}): Promise<ExecResult> {
    const argv = this.argv(args);
    let result: ExecResult;
    try {
      result = await this.executor.run(argv, { timeout: 90_000, env: options.env ?? this.environment });
    } catch (error) {
      if (isUpkeepError(error) && error.code === 'E_EXEC_NOT_FOUND') {
        throw new UpkeepError('E_SYSTEMD_UNAVAILABLE', 'systemd seems to run here, but systemctl is not on PATH', {
          hint: 'add /usr/bin (or wherever systemctl is) to PATH and try again',
          cause: error,
        });
      }
      throw error;
    }
    if (result.exitCode !== 0 && !options.allowFailure) throw this.failure(result);
    return result;
  }

  private failure(result: ExecResult): UpkeepError {
    const command = result.argv.join(' ');
    const output = (result.stderr || result.stdout).trim();
    const tail = output.split('\n').slice(-3).join('\n');
    if (this.scope === 'user' && /connect to (?:the )?bus|DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR|No medium found/i.test(output)) {
      return new UpkeepError('E_SYSTEMD_UNAVAILABLE', `${command} cannot reach your user's systemd: ${tail}`, {
        hint: 'run it from your own login session (not through su or sudo); on a machine nobody logs in to, schedule the system instead with --system (as root)',
        details: { argv: result.argv },
      });
    }
    return new UpkeepError('E_EXEC_FAILED', `${command} failed with ${result.exitCode === null ? `signal ${result.signal}` : `exit code ${result.exitCode}`}${tail ? `: ${tail}` : ''}`, {
      hint: `\`${this.argv(['status', TIMER_UNIT]).join(' ')}\` and \`journalctl${this.scope === 'user' ? ' --user' : ''} -u ${SERVICE_UNIT}\` say more`,
      details: { argv: result.argv },
    });
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

// ---- enable -----------------------------------------------------------------------------------

export interface EnableOptions {
  scope: ScheduleScope;
  /** daily, weekly, monthly or an OnCalendar expression. */
  interval: string;
  randomizedDelaySeconds: number;
  checkOnly: boolean;
  /** The argv that runs this upkeep ([node, entry]); made absolute here. */
  selfCommand: readonly string[];
  upkeepVersion: string;
  cwd: string;
}

export interface EnableResult {
  scope: ScheduleScope;
  definition: ScheduleDefinition;
  units: { timer: string; service: string };
  calendar: CalendarCheck;
  /** True when units were already there and have been replaced. */
  replaced: boolean;
  /** The systemctl commands that were run. */
  systemctl: string[][];
  warnings: string[];
}

export async function enableSchedule(context: ScheduleContext, options: EnableOptions): Promise<EnableResult> {
  requireRoot(options.scope, context, 'enabling');
  const calendar = await checkCalendar(options.interval, { executor: context.executor, environment: context.environment });
  const [program, ...rest] = options.selfCommand;
  if (!program) throw new Error('enableSchedule needs the argv that runs upkeep');
  // systemd runs the service from /, and wants absolute paths anyway.
  const self = [resolve(options.cwd, program), ...rest.map((argument, index) => (index === 0 ? resolve(options.cwd, argument) : argument))];
  const definition: ScheduleDefinition = {
    schemaVersion: 1,
    scope: options.scope,
    interval: options.interval,
    calendar: calendar.expression,
    normalized: calendar.normalized,
    randomizedDelaySeconds: options.randomizedDelaySeconds,
    checkOnly: options.checkOnly,
    command: [...self, ...scheduledArguments(options.checkOnly)],
    environment: scheduledEnvironment(context.environment, context.paths, context.home),
    environmentFile: scheduleEnvironmentFile(context.paths),
    log: scheduleLogPaths(context.paths),
    upkeepVersion: options.upkeepVersion,
    writtenAt: context.now().toISOString(),
  };
  const units = unitPaths(options.scope, context.environment, context.home);
  const warnings: string[] = [];
  // Started through tsx from a checkout, the entry is TypeScript that plain node cannot run.
  if (self.length === 2 && /\.[cm]?ts$/.test(self[1]!)) {
    warnings.push(`the scheduled command runs ${self[1]} with plain node, which cannot run TypeScript; enable the schedule from the built CLI (bin/upkeep.js) instead`);
  }
  const replaced = await withLock(join(context.paths.state, 'schedule', 'units'), async () => {
    const before = await exists(units.service);
    await writeFileAtomic(units.service, renderServiceUnit(definition));
    await writeFileAtomic(units.timer, renderTimerUnit(definition));
    // systemd opens the logs with O_APPEND but does not create their folder.
    await mkdir(dirname(definition.log.events), { recursive: true });
    return before;
  });
  for (const name of NETWORK_VARIABLES) {
    if (/:\/\/[^/@\s]+@/.test(definition.environment[name] ?? '')) {
      warnings.push(`${name} carries a password, now written into ${units.service}, which others can read; move it to ${definition.environmentFile} (mode 600) and enable again without it set`);
      break;
    }
  }

  if (!(await systemdRuns(context.environment))) {
    // The line is printed and may end up in a terminal's scrollback or a CI log: no passwords in it.
    const cron = calendar.cron ? redactText(cronLine(definition, calendar.cron)) : null;
    const where = options.scope === 'system' ? 'put this line in /etc/cron.d/upkeep-update' : 'add this line with `crontab -e`';
    const redacted = cron?.includes('[redacted]') ? ' (put the redacted password back in, or better, in a file only you can read)' : '';
    const nextStep = cron
      ? `to run the same update from cron instead, ${where}${redacted}:\n  ${cron}`
      : `cron cannot express "${calendar.expression}"; to use cron instead, run \`${definition.command.join(' ')}\` from it with the environment of ${units.service}`;
    throw new UpkeepError('E_SYSTEMD_UNAVAILABLE', `systemd does not run on this machine, so the timer cannot be enabled; the units were written to ${dirname(units.timer)} for a machine that boots with systemd`, {
      // The error is all that is printed: the warnings go with it.
      hint: nextStep + warnings.map((warning) => `\nwarning: ${warning}`).join(''),
      details: { units, cron, log: definition.log.events, definition: redact(definition) },
    });
  }

  const systemctl = new Systemctl(context.executor, context.environment, options.scope);
  const ran: string[][] = [];
  const call = async (args: string[]): Promise<void> => {
    ran.push(systemctl.argv(args));
    await systemctl.run(args);
  };
  await call(['daemon-reload']);
  await call(['enable', '--now', TIMER_UNIT]);
  // A timer that was already running keeps its old next elapse until restarted.
  if (replaced) await call(['restart', TIMER_UNIT]);
  if (options.scope === 'user') {
    const user = context.environment.USER || context.environment.LOGNAME;
    if (user && !(await exists(join(context.environment.UPKEEP_SYSTEMD_LINGER_DIR || '/var/lib/systemd/linger', user)))) {
      warnings.push(`your timers run only while you are logged in; \`loginctl enable-linger ${user}\` lets them run at any time`);
    }
  }
  return { scope: options.scope, definition, units, calendar, replaced, systemctl: ran, warnings };
}

// ---- disable ----------------------------------------------------------------------------------

export interface DisableResult {
  scope: ScheduleScope;
  /** The unit files removed; empty when there was no schedule. */
  removed: string[];
  systemctl: string[][];
  warnings: string[];
}

export async function disableSchedule(context: ScheduleContext, scope: ScheduleScope): Promise<DisableResult> {
  requireRoot(scope, context, 'disabling');
  const units = unitPaths(scope, context.environment, context.home);
  const present: string[] = [];
  for (const path of [units.timer, units.service]) if (await exists(path)) present.push(path);
  const warnings: string[] = [];
  const ran: string[][] = [];
  const running = await systemdRuns(context.environment);
  const systemctl = new Systemctl(context.executor, context.environment, scope);
  if (running && present.length > 0) {
    ran.push(systemctl.argv(['disable', '--now', TIMER_UNIT]));
    await systemctl.run(['disable', '--now', TIMER_UNIT]);
    // A run under way is left to finish: stopping a package manager halfway is worse.
    const active = await systemctl.run(['is-active', SERVICE_UNIT], { allowFailure: true });
    ran.push(active.argv as string[]);
    if (active.stdout.trim() === 'activating' || active.stdout.trim() === 'active') {
      warnings.push(`a scheduled run is going on; it is left to finish (\`${systemctl.argv(['stop', SERVICE_UNIT]).join(' ')}\` stops it)`);
    }
  }
  await withLock(join(context.paths.state, 'schedule', 'units'), async () => {
    for (const path of present) await rm(path, { force: true });
  });
  if (running && present.length > 0) {
    ran.push(systemctl.argv(['daemon-reload']));
    await systemctl.run(['daemon-reload']);
  }
  if (!running && present.length > 0) warnings.push('systemd does not run here: if you added the cron line `upkeep schedule enable` printed, remove it with `crontab -e`');
  return { scope, removed: present, systemctl: ran, warnings };
}

// ---- status -----------------------------------------------------------------------------------

export interface TimerState {
  loadState: string | null;
  activeState: string | null;
  unitFileState: string | null;
  nextRun: string | null;
  lastTrigger: string | null;
}

export interface ServiceState {
  activeState: string | null;
  result: string | null;
  exitStatus: number | null;
  lastExit: string | null;
}

export interface LastRun {
  runId: string;
  kind: RunState['kind'];
  status: RunState['status'];
  startedAt: string;
  endedAt: string | null;
  failed: string[];
}

export interface ScheduleStatus {
  scope: ScheduleScope;
  /** Both unit files are there. */
  installed: boolean;
  units: { timer: string; service: string };
  /** What the units were written from; null when missing or not written by upkeep. */
  definition: ScheduleDefinition | null;
  systemd: { running: boolean; timer: TimerState | null; service: ServiceState | null; error: string | null };
  /** The last update run of this machine (scheduled or not), from the update state. */
  lastRun: LastRun | null;
  /** How the last scheduled run ended, from its log. */
  lastLogged: LoggedOutcome | null;
  log: { events: string; stderr: string };
  warnings: string[];
}

const SHOW_PROPERTIES = ['Id', 'LoadState', 'ActiveState', 'UnitFileState', 'NextElapseUSecRealtime', 'LastTriggerUSec', 'Result', 'ExecMainStatus', 'ExecMainExitTimestamp'];

/** `systemctl show A B --property=...`: one block of Key=Value lines per unit, blocks apart by a blank line. */
export function parseShow(stdout: string): Map<string, Record<string, string>> {
  const units = new Map<string, Record<string, string>>();
  for (const block of stdout.split(/\n\s*\n/)) {
    const properties: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const equals = line.indexOf('=');
      if (equals > 0) properties[line.slice(0, equals)] = line.slice(equals + 1).trim();
    }
    if (properties.Id) units.set(properties.Id, properties);
  }
  return units;
}

function orNull(value: string | undefined): string | null {
  return value === undefined || value === '' || value === 'n/a' ? null : value;
}

export async function scheduleStatus(context: ScheduleContext, scope: ScheduleScope): Promise<ScheduleStatus> {
  const units = unitPaths(scope, context.environment, context.home);
  const warnings: string[] = [];
  const [timerThere, serviceText] = await Promise.all([exists(units.timer), readFile(units.service, 'utf8').catch(() => null)]);
  const installed = timerThere && serviceText !== null;
  const definition = serviceText === null ? null : readScheduleDefinition(serviceText);
  if (serviceText !== null && !definition) warnings.push(`${units.service} was not written by this upkeep, or was edited; \`upkeep schedule enable\` writes it again`);
  if (!installed && scope === 'user') {
    const system = unitPaths('system', context.environment, context.home);
    if (await exists(system.timer)) warnings.push('no schedule for your user, but the system has one: add --system');
  }
  if (definition) {
    for (const path of definition.command.slice(0, 2)) {
      if (!(await exists(path))) warnings.push(`${path} (in the unit's command) is gone, so scheduled runs fail; run \`upkeep schedule enable\` again from the upkeep you use now`);
    }
  }

  const running = await systemdRuns(context.environment);
  const systemd: ScheduleStatus['systemd'] = { running, timer: null, service: null, error: null };
  if (running && installed) {
    const systemctl = new Systemctl(context.executor, context.environment, scope);
    try {
      // In UTC, so that the times can be read whatever the machine's zone.
      const shown = await systemctl.run(['show', TIMER_UNIT, SERVICE_UNIT, `--property=${SHOW_PROPERTIES.join(',')}`], {
        env: { ...context.environment, TZ: 'UTC', LC_ALL: 'C' },
      });
      const parsed = parseShow(shown.stdout);
      const timer = parsed.get(TIMER_UNIT) ?? {};
      const service = parsed.get(SERVICE_UNIT) ?? {};
      const time = (value: string | undefined): string | null => (orNull(value) === null ? null : (parseSystemdTimestamp(value!) ?? value!));
      systemd.timer = {
        loadState: orNull(timer.LoadState),
        activeState: orNull(timer.ActiveState),
        unitFileState: orNull(timer.UnitFileState),
        nextRun: time(timer.NextElapseUSecRealtime),
        lastTrigger: time(timer.LastTriggerUSec),
      };
      const exitStatus = orNull(service.ExecMainStatus);
      systemd.service = {
        activeState: orNull(service.ActiveState),
        result: orNull(service.Result),
        exitStatus: exitStatus === null || !/^\d+$/.test(exitStatus) ? null : Number(exitStatus),
        lastExit: time(service.ExecMainExitTimestamp),
      };
    } catch (error) {
      if (!isUpkeepError(error)) throw error;
      systemd.error = error.message;
      warnings.push(`could not ask systemd about the timer: ${error.message}`);
    }
  }

  const { state, warning } = await loadRunState(context.paths.state);
  if (warning) warnings.push(warning);
  const lastRun: LastRun | null = state
    ? {
        runId: state.runId,
        kind: state.kind,
        status: state.status,
        startedAt: state.startedAt,
        endedAt: state.endedAt ?? null,
        failed: Object.values(state.plugins)
          .filter((plugin) => Object.values(plugin.phases).some((phase) => phase?.status === 'failed'))
          .map((plugin) => plugin.name),
      }
    : null;
  const log = definition?.log ?? scheduleLogPaths(context.paths);
  let lastLogged: LoggedOutcome | null = null;
  try {
    lastLogged = lastOutcome((await readLogTail(log.events)).entries);
  } catch (error) {
    warnings.push(`could not read ${log.events}: ${(error as Error).message}`);
  }
  return { scope, installed, units, definition, systemd, lastRun, lastLogged, log, warnings };
}

// ---- run-now ----------------------------------------------------------------------------------

export interface RunNowResult {
  scope: ScheduleScope;
  /** systemd: the service was started and runs in the background; direct: it ran here, to the end. */
  mode: 'systemd' | 'direct';
  command: string[];
  log: { events: string; stderr: string };
  /** direct: the exit code of the run. */
  exitCode: number | null;
  /** direct: how the run ended, from its events. */
  outcome: LoggedOutcome | null;
  systemctl: string[][];
}

/** The schedule the installed service unit was written from; null when there is none (or it is not upkeep's). */
export async function readInstalledDefinition(context: ScheduleContext, scope: ScheduleScope): Promise<ScheduleDefinition | null> {
  const text = await readFile(unitPaths(scope, context.environment, context.home).service, 'utf8').catch(() => null);
  return text === null ? null : readScheduleDefinition(text);
}

/** The installed schedule, or a usage error saying how to make one. */
async function installedDefinition(context: ScheduleContext, scope: ScheduleScope): Promise<ScheduleDefinition> {
  const units = unitPaths(scope, context.environment, context.home);
  const text = await readFile(units.service, 'utf8').catch(() => null);
  if (text === null) {
    throw new UpkeepError('E_USAGE', `no scheduled update is set up for the ${scope === 'user' ? 'user' : 'system'} (${units.service} does not exist)`, {
      hint: `\`upkeep schedule enable${scope === 'system' ? ' --system' : ''}\` sets one up`,
      exitCode: ExitCode.usage,
    });
  }
  const definition = readScheduleDefinition(text);
  if (!definition) {
    throw new UpkeepError('E_USAGE', `${units.service} was not written by this upkeep, or was edited past reading`, {
      hint: '`upkeep schedule enable` writes it again',
      exitCode: ExitCode.usage,
    });
  }
  return definition;
}

/** KEY=VALUE lines, as systemd's EnvironmentFile= reads them (comments, optional quotes). */
export function parseEnvironmentFile(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2]!;
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) value = value.slice(1, -1);
    result[match[1]!] = value;
  }
  return result;
}

/** How long a run started without systemd may take before it is stopped. */
const DIRECT_RUN_TIMEOUT = 24 * 3600 * 1000;
/** After a Ctrl-C the run stops starting plugins and lets the running ones end; this long at most. */
const DIRECT_RUN_KILL_GRACE = 5 * 60 * 1000;

export async function runScheduleNow(context: ScheduleContext, scope: ScheduleScope, options: { signal?: AbortSignal } = {}): Promise<RunNowResult> {
  requireRoot(scope, context, 'starting');
  const definition = await installedDefinition(context, scope);
  if (await systemdRuns(context.environment)) {
    const systemctl = new Systemctl(context.executor, context.environment, scope);
    // --no-block: a oneshot start waits for the whole update otherwise.
    const args = ['start', '--no-block', SERVICE_UNIT];
    await systemctl.run(args);
    return { scope, mode: 'systemd', command: definition.command, log: definition.log, exitCode: null, outcome: null, systemctl: [systemctl.argv(args)] };
  }

  // Without systemd the same command line runs here, with the unit's environment.
  const fromFile = await readFile(definition.environmentFile, 'utf8').then(parseEnvironmentFile, () => ({}));
  const passed: Record<string, string> = {};
  for (const name of ['USER', 'LOGNAME', 'LANG', 'TZ']) {
    const value = context.environment[name];
    if (value) passed[name] = value;
  }
  await mkdir(dirname(definition.log.events), { recursive: true });
  await rotateScheduleLogs(definition.log);
  const events = createWriteStream(definition.log.events, { flags: 'a' });
  const errors = createWriteStream(definition.log.stderr, { flags: 'a' });
  const printed: string[] = [];
  let result: ExecResult;
  try {
    result = await context.executor.run(definition.command, {
      // As systemd does: the environment file overrides Environment=.
      env: { ...passed, ...definition.environment, ...fromFile },
      timeout: DIRECT_RUN_TIMEOUT,
      killGrace: DIRECT_RUN_KILL_GRACE,
      maxOutput: 64 * 1024,
      ...(options.signal ? { signal: options.signal } : {}),
      onLine: (stream, line) => {
        (stream === 'stdout' ? events : errors).write(`${line}\n`);
        if (stream === 'stdout') printed.push(line);
      },
    });
  } finally {
    await Promise.all([closeStream(events), closeStream(errors)]);
  }
  const outcome = lastOutcome(parseLogText(printed.join('\n')));
  return { scope, mode: 'direct', command: definition.command, log: definition.log, exitCode: result.exitCode, outcome, systemctl: [] };
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((done) => stream.end(done));
}

/**
 * The scheduled runs' logs grow run after run: each is rotated like the run
 * log (past 10 MiB: .1 to .5, the oldest dropped) before a run appends to
 * it. The service does this in ExecStartPre, cron in the line before the
 * run, run-now here. The rotated paths.
 */
export async function rotateScheduleLogs(log: { events: string; stderr: string }): Promise<string[]> {
  const rotated: string[] = [];
  for (const path of [log.events, log.stderr]) if (await rotateWhenLarger(path)) rotated.push(path);
  return rotated;
}
