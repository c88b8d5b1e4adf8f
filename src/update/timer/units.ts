import { isAbsolute, join } from 'node:path';
import type { Environment, Paths } from '../../core/paths.ts';
import * as z from '../../core/zod.ts';
import { formatTimeSpan } from './calendar.ts';
import { MANAGER_VARIABLES, NETWORK_VARIABLES } from '../environment.ts';

/**
 * The two systemd units of a scheduled update (seed 002 §9.1): a timer that
 * fires on the calendar, and a oneshot service that runs this very upkeep,
 * unattended, with its NDJSON events appended to a log in the state folder.
 * The service also carries, as a comment, the schedule it was written from
 * (JSON), so that `status` and `run-now` read back exactly what was enabled.
 */

export const TIMER_UNIT = 'upkeep-update.timer';
export const SERVICE_UNIT = 'upkeep-update.service';
export const SCHEDULE_SCOPES = ['user', 'system'] as const;
export type ScheduleScope = (typeof SCHEDULE_SCOPES)[number];

const DEFINITION_MARKER = '# upkeep-schedule: ';

export const ScheduleDefinitionSchema = z.object({
  schemaVersion: z.literal(1),
  scope: z.enum(SCHEDULE_SCOPES),
  /** --interval as given (daily, weekly, monthly or a calendar expression). */
  interval: z.string(),
  /** OnCalendar= */
  calendar: z.string(),
  /** How systemd (or upkeep's parser) normalised it. */
  normalized: z.string(),
  randomizedDelaySeconds: z.int(),
  checkOnly: z.boolean(),
  /** The whole command line, absolute paths first. */
  command: z.array(z.string()),
  environment: z.record(z.string(), z.string()),
  /** Optional KEY=VALUE file read by systemd too: the place for secrets such as GITHUB_TOKEN. */
  environmentFile: z.string(),
  log: z.object({ events: z.string(), stderr: z.string() }),
  upkeepVersion: z.string(),
  writtenAt: z.string(),
});
export type ScheduleDefinition = z.infer<typeof ScheduleDefinitionSchema>;

/** Where the scheduled run writes: NDJSON events (stdout) and everything else (stderr). */
export function scheduleLogPaths(paths: Paths): { events: string; stderr: string } {
  return { events: join(paths.state, 'logs', 'scheduled.ndjson'), stderr: join(paths.state, 'logs', 'scheduled.stderr.log') };
}

export function scheduleEnvironmentFile(paths: Paths): string {
  return join(paths.config, 'schedule.env');
}

/** Where upkeep's own files are found; systemd's environment has no XDG variables or UPKEEP_HOME. */
const LOCATION_VARIABLES = [
  'UPKEEP_HOME',
  'UPKEEP_CATALOG_DIR',
  'UPKEEP_SYSTEM_CONFIG',
  'UPKEEP_BUILTIN_PLUGINS_DIR',
  'UPKEEP_SYSTEM_PLUGINS_DIR',
  'UPKEEP_OS_RELEASE',
  'UPKEEP_INSTALL_BIN_DIR',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'XDG_DATA_HOME',
  'XDG_STATE_HOME',
] as const;

/**
 * The environment of the scheduled run. systemd starts services with almost
 * nothing, so what the run needs from the shell that enabled it is written
 * down now: PATH (where the package managers are), upkeep's folders, the
 * proxy and CA variables that are set, and the managers' homes. CI=true and
 * UPKEEP_SCHEDULED=1 make it unattended: nothing may wait for an answer
 * (stdin is /dev/null too). Tokens are left out on purpose: they belong in
 * the environment file (mode 600), not in a world-readable unit.
 */
export function scheduledEnvironment(environment: Environment, paths: Paths, home: string): Record<string, string> {
  const result: Record<string, string> = {};
  const copy = (name: string): void => {
    const value = environment[name];
    if (value !== undefined && value !== '') result[name] = value;
  };
  copy('PATH');
  result.HOME = home;
  result.UPKEEP_CONFIG_DIR = paths.config;
  result.UPKEEP_CACHE_DIR = paths.cache;
  result.UPKEEP_STATE_DIR = paths.state;
  result.UPKEEP_DATA_DIR = paths.data;
  for (const name of [...LOCATION_VARIABLES, ...NETWORK_VARIABLES, ...MANAGER_VARIABLES]) copy(name);
  result.CI = 'true';
  result.UPKEEP_SCHEDULED = '1';
  result.NO_COLOR = '1';
  return result;
}

/** The update command a scheduled run executes, after this upkeep's own argv. */
export function scheduledArguments(checkOnly: boolean): string[] {
  return checkOnly ? ['update', 'check', '--json'] : ['update', 'run', '--json', '--continue-on-error'];
}

/** What runs before each scheduled run: the same upkeep, rotating the logs the run appends to. */
export function rotationCommand(definition: ScheduleDefinition): string[] {
  const self = definition.command.slice(0, definition.command.length - scheduledArguments(definition.checkOnly).length);
  return [...self, 'schedule', 'logs', '--rotate', ...(definition.scope === 'system' ? ['--system'] : [])];
}

/** Specifiers (`%h`, `%n`...) are expanded in almost every unit setting: a literal % is written %%. */
function escapeSpecifiers(text: string): string {
  return text.replace(/%/g, '%%');
}

/** Inside double quotes systemd reads C escapes. */
function cQuote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r')}"`;
}

/**
 * One word of an ExecStart= line: `%` would expand a specifier and, in the
 * arguments (not the program, which systemd takes as it is), `$` a variable;
 * spaces, quotes, backslashes and a lone `;` (which separates commands) need quotes.
 */
export function quoteExecArgument(argument: string, options: { program?: boolean } = {}): string {
  const specifiersEscaped = escapeSpecifiers(argument);
  const escaped = options.program ? specifiersEscaped : specifiersEscaped.replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(escaped) ? escaped : cQuote(escaped);
}

/** `Environment="NAME=value"`: quoted whole, so that spaces and quotes in values survive. */
export function environmentLine(name: string, value: string): string {
  return `Environment=${cQuote(escapeSpecifiers(`${name}=${value}`))}`;
}

function checkPath(path: string, what: string): string {
  if (!isAbsolute(path) || /[\n\r]/.test(path)) throw new Error(`${what} must be an absolute path on one line: ${JSON.stringify(path)}`);
  return path;
}

function header(definition: ScheduleDefinition): string {
  return `# Written by \`upkeep schedule enable\` (upkeep ${definition.upkeepVersion}); \`upkeep schedule disable\` removes it.\n# Edit the schedule with \`upkeep schedule enable --interval ...\` rather than by hand.\n`;
}

export function renderTimerUnit(definition: ScheduleDefinition): string {
  return `${header(definition)}
[Unit]
Description=upkeep: scheduled update of this machine's software (${escapeSpecifiers(definition.calendar)})

[Timer]
OnCalendar=${escapeSpecifiers(definition.calendar)}
# Spreads a fleet's runs so that they do not all hit the mirrors at once.
RandomizedDelaySec=${formatTimeSpan(definition.randomizedDelaySeconds)}
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
`;
}

export function renderServiceUnit(definition: ScheduleDefinition): string {
  const [program, ...rest] = definition.command;
  checkPath(program ?? '', 'the program of ExecStart=');
  const execLine = ([first, ...others]: string[]): string => [quoteExecArgument(first!, { program: true }), ...others.map((argument) => quoteExecArgument(argument))].join(' ');
  const execStart = execLine([program!, ...rest]);
  const environment = Object.entries(definition.environment).map(([name, value]) => environmentLine(name, value));
  return `${header(definition)}${DEFINITION_MARKER}${JSON.stringify(definition)}

[Unit]
Description=upkeep: ${definition.checkOnly ? 'check for' : 'apply'} updates of this machine's software, unattended
# Best effort in a user unit: the user's systemd cannot see the system's network targets.
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
# The logs below would grow run after run: past 10 MiB they are rotated first ("-": never a reason not to run).
ExecStartPre=-${execLine(rotationCommand(definition))}
ExecStart=${execStart}
${environment.join('\n')}
EnvironmentFile=-${escapeSpecifiers(checkPath(definition.environmentFile, 'the environment file'))}
StandardInput=null
StandardOutput=append:${escapeSpecifiers(checkPath(definition.log.events, 'the events log'))}
StandardError=append:${escapeSpecifiers(checkPath(definition.log.stderr, 'the stderr log'))}
# Updates are background work: they must not slow down what the user is doing.
Nice=10
IOSchedulingClass=idle
`;
}

/** The schedule a service unit was written from; null when it was not written by upkeep or was edited past reading. */
export function readScheduleDefinition(serviceText: string): ScheduleDefinition | null {
  const line = serviceText.split('\n').find((candidate) => candidate.startsWith(DEFINITION_MARKER));
  if (!line) return null;
  try {
    const parsed = ScheduleDefinitionSchema.safeParse(JSON.parse(line.slice(DEFINITION_MARKER.length)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** A word for /bin/sh: single quotes, with the single quotes inside closed and reopened. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The same run as a cron job, for machines without systemd: a crontab line
 * (or, for the system, an /etc/cron.d line with the user field). cron turns
 * an unescaped % into a line break, so every % is escaped.
 */
export function cronLine(definition: ScheduleDefinition, schedule: string): string {
  const assignments = Object.entries(definition.environment).map(([name, value]) => shellQuote(`${name}=${value}`));
  const command = [
    'env',
    ...assignments,
    ...definition.command.map(shellQuote),
    `>>${shellQuote(definition.log.events)}`,
    `2>>${shellQuote(definition.log.stderr)}`,
    '</dev/null',
  ].join(' ');
  const rotation = `${['env', ...assignments, ...rotationCommand(definition).map(shellQuote)].join(' ')} >/dev/null 2>&1;`;
  const user = definition.scope === 'system' ? ' root' : '';
  return `${schedule}${user} ${rotation} ${command}`.replace(/%/g, '\\%');
}
