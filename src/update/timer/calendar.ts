import { ExitCode, UpkeepError, isUpkeepError } from '../../core/errors.ts';
import type { Executor } from '../../core/exec.ts';
import type { Environment } from '../../core/paths.ts';

/**
 * When a scheduled update runs: a systemd calendar expression (OnCalendar=,
 * systemd.time(7)). systemd itself is the judge where it is installed
 * (`systemd-analyze calendar`); elsewhere (containers, macOS) a parser of the
 * common forms below checks the expression, and the same parser turns it
 * into a cron schedule for machines that have cron but no systemd.
 *
 *   minutely hourly daily weekly monthly quarterly semiannually yearly annually
 *   [WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [UTC|Area/City]
 *
 * where WEEKDAYS is a list of names and ranges (`Mon,Wed`, `Mon..Fri`), and
 * each number may be `*`, a list (`1,15`), a range (`2..5`) or a repetition
 * (`0/15`: 0, 15, 30, 45).
 */

/** One item of a comma-separated list: `5`, `2..5`, `0/15` or `2..20/3`. */
export interface CalendarItem {
  start: number;
  end?: number;
  step?: number;
}

/** `*` (any) or a list of items. */
export type CalendarField = '*' | CalendarItem[];

export interface CalendarSpec {
  /** Days of the week, 0 = Monday ... 6 = Sunday; null when any day will do. */
  weekdays: number[] | null;
  year: CalendarField;
  month: CalendarField;
  day: CalendarField;
  hour: CalendarField;
  minute: CalendarField;
  second: CalendarField;
  timezone: string | null;
  /** Written the way `systemd-analyze calendar` normalises it. */
  normalized: string;
}

/** Shorthands, as systemd expands them. */
const SHORTHANDS: Readonly<Record<string, string>> = {
  minutely: '*-*-* *:*:00',
  hourly: '*-*-* *:00:00',
  daily: '*-*-* 00:00:00',
  weekly: 'Mon *-*-* 00:00:00',
  monthly: '*-*-01 00:00:00',
  quarterly: '*-01,04,07,10-01 00:00:00',
  semiannually: '*-01,07-01 00:00:00',
  yearly: '*-01-01 00:00:00',
  annually: '*-01-01 00:00:00',
};

const WEEKDAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
const WEEKDAY_LONG = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const;

interface Bounds {
  name: string;
  minimum: number;
  maximum: number;
  width: number;
}

const YEAR: Bounds = { name: 'year', minimum: 1970, maximum: 2199, width: 4 };
const MONTH: Bounds = { name: 'month', minimum: 1, maximum: 12, width: 2 };
const DAY: Bounds = { name: 'day', minimum: 1, maximum: 31, width: 2 };
const HOUR: Bounds = { name: 'hour', minimum: 0, maximum: 23, width: 2 };
const MINUTE: Bounds = { name: 'minute', minimum: 0, maximum: 59, width: 2 };
const SECOND: Bounds = { name: 'second', minimum: 0, maximum: 59, width: 2 };

/** Thrown by the parser: says which part of the expression is wrong. */
export class CalendarSyntaxError extends Error {}

/**
 * Parses the common forms of a systemd calendar expression. Rarer forms
 * (`~` for the last days of a month, fractions of seconds) are refused: only
 * systemd-analyze can vouch for those.
 */
export function parseCalendar(expression: string): CalendarSpec {
  const text = expression.trim().replace(/\s+/g, ' ');
  if (text === '') throw new CalendarSyntaxError('the expression is empty');
  const shorthand = SHORTHANDS[text.toLowerCase()];
  if (shorthand) return parseCalendar(shorthand);

  const tokens = text.split(' ');
  let timezone: string | null = null;
  const last = tokens.at(-1)!;
  if (tokens.length > 1 && isTimezoneToken(last)) {
    timezone = normalizeTimezone(last);
    tokens.pop();
  }
  let weekdays: number[] | null = null;
  if (tokens.length > 0 && /^[a-z]/i.test(tokens[0]!)) weekdays = parseWeekdays(tokens.shift()!);

  let date: { year: CalendarField; month: CalendarField; day: CalendarField } = { year: '*', month: '*', day: '*' };
  let time: { hour: CalendarField; minute: CalendarField; second: CalendarField } = { hour: [{ start: 0 }], minute: [{ start: 0 }], second: [{ start: 0 }] };
  let sawDate = false;
  let sawTime = false;
  for (const token of tokens) {
    if (token.includes(':')) {
      if (sawTime) throw new CalendarSyntaxError(`"${token}": only one time of day may be given`);
      time = parseTime(token);
      sawTime = true;
    } else if (token.includes('-')) {
      if (sawDate || sawTime) throw new CalendarSyntaxError(`"${token}": the date comes once, before the time`);
      date = parseDate(token);
      sawDate = true;
    } else {
      throw new CalendarSyntaxError(`"${token}" is neither weekdays, a date (YEAR-MONTH-DAY) nor a time (HOUR:MINUTE[:SECOND])`);
    }
  }
  if (weekdays === null && !sawDate && !sawTime) throw new CalendarSyntaxError(`"${text}" names no weekday, date or time`);
  // All seven days is the same as any day, and systemd writes it so.
  if (weekdays?.length === 7) weekdays = null;

  const spec = { weekdays, ...date, ...time, timezone };
  return { ...spec, normalized: normalize(spec) };
}

function isTimezoneToken(token: string): boolean {
  return /^utc$/i.test(token) || /^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)+$/.test(token);
}

function normalizeTimezone(token: string): string {
  if (/^utc$/i.test(token)) return 'UTC';
  // Node knows the IANA zones (the same tz database systemd reads).
  const known = Intl.supportedValuesOf('timeZone');
  if (!known.includes(token)) throw new CalendarSyntaxError(`"${token}" is not a time zone this machine knows`);
  return token;
}

function parseWeekdays(token: string): number[] {
  const days = new Set<number>();
  for (const item of token.split(',')) {
    const range = item.split(/\.\.|-/);
    if (range.length > 2 || range.some((part) => part === '')) throw new CalendarSyntaxError(`"${item}" is not a weekday or a range of weekdays`);
    const [first, second] = range.map(weekdayNumber) as [number, number | undefined];
    const end = second ?? first;
    if (end < first) throw new CalendarSyntaxError(`"${item}": a range of weekdays runs forwards, from Monday to Sunday`);
    for (let day = first; day <= end; day += 1) days.add(day);
  }
  return [...days].sort((a, b) => a - b);
}

function weekdayNumber(name: string): number {
  const lower = name.toLowerCase();
  const index = WEEKDAY_LONG.findIndex((long) => long === lower || long.slice(0, 3) === lower);
  if (index === -1) throw new CalendarSyntaxError(`"${name}" is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
  return index;
}

function parseDate(token: string): { year: CalendarField; month: CalendarField; day: CalendarField } {
  if (token.includes('~')) throw new CalendarSyntaxError(`"${token}": days counted from the end of the month (~) need systemd-analyze to check`);
  const parts = token.split('-');
  if (parts.length === 2) return { year: '*', month: parseField(parts[0]!, MONTH), day: parseField(parts[1]!, DAY) };
  if (parts.length === 3) return { year: parseField(parts[0]!, YEAR), month: parseField(parts[1]!, MONTH), day: parseField(parts[2]!, DAY) };
  throw new CalendarSyntaxError(`"${token}" is not a date: write YEAR-MONTH-DAY or MONTH-DAY`);
}

function parseTime(token: string): { hour: CalendarField; minute: CalendarField; second: CalendarField } {
  const parts = token.split(':');
  if (parts.length !== 2 && parts.length !== 3) throw new CalendarSyntaxError(`"${token}" is not a time: write HOUR:MINUTE or HOUR:MINUTE:SECOND`);
  return {
    hour: parseField(parts[0]!, HOUR),
    minute: parseField(parts[1]!, MINUTE),
    second: parts[2] === undefined ? [{ start: 0 }] : parseField(parts[2], SECOND),
  };
}

function parseField(text: string, bounds: Bounds): CalendarField {
  if (text === '*') return '*';
  return text.split(',').map((item) => {
    const match = /^(\d+)(?:\.\.(\d+))?(?:\/(\d+))?$/.exec(item);
    if (!match) throw new CalendarSyntaxError(`"${item}" is not a ${bounds.name}: write a number, a list (1,15), a range (2..5) or a repetition (0/15)`);
    const start = Number(match[1]);
    const end = match[2] === undefined ? undefined : Number(match[2]);
    const step = match[3] === undefined ? undefined : Number(match[3]);
    for (const value of [start, end]) {
      if (value !== undefined && (value < bounds.minimum || value > bounds.maximum)) {
        throw new CalendarSyntaxError(`${value} is not a ${bounds.name} (${bounds.minimum} to ${bounds.maximum})`);
      }
    }
    if (end !== undefined && end < start) throw new CalendarSyntaxError(`"${item}": a range runs from the smaller ${bounds.name} to the larger`);
    if (step !== undefined && step < 1) throw new CalendarSyntaxError(`"${item}": a repetition needs a step of at least 1`);
    return { start, ...(end === undefined ? {} : { end }), ...(step === undefined ? {} : { step }) };
  });
}

function normalize(spec: Omit<CalendarSpec, 'normalized'>): string {
  const field = (value: CalendarField, bounds: Bounds): string =>
    value === '*'
      ? '*'
      : value
          .map((item) => {
            const pad = (number: number): string => String(number).padStart(bounds.width, '0');
            return `${pad(item.start)}${item.end === undefined ? '' : `..${pad(item.end)}`}${item.step === undefined ? '' : `/${item.step}`}`;
          })
          .join(',');
  const words = [
    ...(spec.weekdays ? [weekdayList(spec.weekdays)] : []),
    `${field(spec.year, YEAR)}-${field(spec.month, MONTH)}-${field(spec.day, DAY)}`,
    `${field(spec.hour, HOUR)}:${field(spec.minute, MINUTE)}:${field(spec.second, SECOND)}`,
    ...(spec.timezone ? [spec.timezone] : []),
  ];
  return words.join(' ');
}

/** Runs of three days or more become ranges, as systemd writes them: `Mon..Wed,Fri`. */
function weekdayList(days: number[]): string {
  return runs(days)
    .map(([first, last]) => (last - first >= 2 ? `${WEEKDAY_NAMES[first]}..${WEEKDAY_NAMES[last]}` : days.filter((day) => day >= first && day <= last).map((day) => WEEKDAY_NAMES[day]).join(',')))
    .join(',');
}

function runs(sorted: number[]): Array<[number, number]> {
  const result: Array<[number, number]> = [];
  for (const value of sorted) {
    const current = result.at(-1);
    if (current && value === current[1] + 1) current[1] = value;
    else result.push([value, value]);
  }
  return result;
}

/**
 * The same schedule for cron (`minute hour day month weekday`), or null when
 * cron cannot say it: seconds, years and time zones are beyond it, and cron
 * runs a job when the day of the month OR the weekday matches where systemd
 * wants both.
 */
export function toCronSchedule(spec: CalendarSpec): string | null {
  if (spec.timezone !== null || spec.year !== '*') return null;
  if (spec.second === '*' || spec.second.length !== 1 || spec.second[0]!.start !== 0 || spec.second[0]!.end !== undefined || spec.second[0]!.step !== undefined) return null;
  if (spec.day !== '*' && spec.weekdays !== null) return null;
  const field = (value: CalendarField, bounds: Bounds): string =>
    value === '*'
      ? '*'
      : value
          .map((item) => {
            if (item.step === undefined) return item.end === undefined ? String(item.start) : `${item.start}-${item.end}`;
            // systemd's `0/15` repeats to the end of the field; cron needs the range spelled out.
            return `${item.start}-${item.end ?? bounds.maximum}/${item.step}`;
          })
          .join(',');
  // cron counts Sunday as 0, systemd's week starts on Monday.
  const weekdays =
    spec.weekdays === null
      ? '*'
      : runs(spec.weekdays.map((day) => (day + 1) % 7).sort((a, b) => a - b))
          .map(([first, last]) => (last - first >= 2 ? `${first}-${last}` : first === last ? String(first) : `${first},${last}`))
          .join(',');
  return [field(spec.minute, MINUTE), field(spec.hour, HOUR), field(spec.day, DAY), field(spec.month, MONTH), weekdays].join(' ');
}

export interface CalendarCheck {
  /** As given, whitespace tidied: what goes into OnCalendar=. */
  expression: string;
  normalized: string;
  /** The next time it elapses (ISO 8601), when known. */
  nextElapse: string | null;
  /** Who vouched for it: systemd itself, or upkeep's parser where systemd-analyze is missing. */
  checkedBy: 'systemd-analyze' | 'upkeep';
  /** The same schedule for cron, or null when cron cannot express it. */
  cron: string | null;
}

const INVALID_HINT = 'use daily, weekly or monthly, or an OnCalendar expression such as "Mon *-*-* 04:00:00" or "Sat,Sun 12:30" (systemd.time(7))';

/**
 * Checks a calendar expression: with `systemd-analyze calendar` where it is
 * installed (the authority: it is what will parse the timer), otherwise with
 * parseCalendar. Throws E_SCHEDULE_INVALID for an expression that does not
 * parse or never elapses.
 */
export async function checkCalendar(expression: string, options: { executor: Executor; environment: Environment }): Promise<CalendarCheck> {
  // A line break would end OnCalendar= and start a line of the unit's own.
  if (/[\u0000-\u001f\u007f]/.test(expression)) {
    throw new UpkeepError('E_SCHEDULE_INVALID', 'the calendar expression contains a control character (a line break?)', { hint: INVALID_HINT, exitCode: ExitCode.usage });
  }
  const tidy = expression.trim().replace(/\s+/g, ' ');
  const own = tryParse(tidy);
  let analyzed: { normalized: string; nextElapse: string | null; never: boolean } | null;
  try {
    analyzed = await analyze(tidy, options);
  } catch (error) {
    if (!isUpkeepError(error) || error.code !== 'E_EXEC_NOT_FOUND') throw error;
    analyzed = null;
  }
  if (analyzed) {
    if (analyzed.never) {
      throw new UpkeepError('E_SCHEDULE_INVALID', `"${tidy}" never elapses: no time from now on matches it`, { hint: INVALID_HINT, exitCode: ExitCode.usage });
    }
    // systemd's normal form is in the common forms whenever the original was.
    const cronSource = own.spec ?? tryParse(analyzed.normalized).spec;
    return { expression: tidy, normalized: analyzed.normalized, nextElapse: analyzed.nextElapse, checkedBy: 'systemd-analyze', cron: cronSource ? toCronSchedule(cronSource) : null };
  }
  if (!own.spec) {
    throw new UpkeepError('E_SCHEDULE_INVALID', `"${tidy}" is not a calendar expression upkeep can check: ${own.problem}`, {
      hint: `${INVALID_HINT}; this machine has no systemd-analyze to check rarer forms`,
      exitCode: ExitCode.usage,
    });
  }
  return { expression: tidy, normalized: own.spec.normalized, nextElapse: null, checkedBy: 'upkeep', cron: toCronSchedule(own.spec) };
}

function tryParse(expression: string): { spec: CalendarSpec | null; problem: string } {
  try {
    return { spec: parseCalendar(expression), problem: '' };
  } catch (error) {
    if (error instanceof CalendarSyntaxError) return { spec: null, problem: error.message };
    throw error;
  }
}

async function analyze(expression: string, options: { executor: Executor; environment: Environment }): Promise<{ normalized: string; nextElapse: string | null; never: boolean }> {
  const result = await options.executor.run(['systemd-analyze', 'calendar', expression], { mode: 'always', timeout: 10_000, env: options.environment });
  const output = `${result.stdout}\n${result.stderr}`;
  const normalized = /^\s*Normalized form: (.+)$/m.exec(output)?.[1]?.trim();
  if (result.exitCode !== 0 || !normalized) {
    const reason = result.stderr.trim().split('\n').at(-1) || `systemd-analyze exited with ${result.exitCode}`;
    throw new UpkeepError('E_SCHEDULE_INVALID', `"${expression}" is not a calendar expression systemd accepts: ${reason}`, { hint: INVALID_HINT, exitCode: ExitCode.usage });
  }
  const next = /^\s*Next elapse: (.+)$/m.exec(output)?.[1]?.trim() ?? '';
  if (next === 'never') return { normalized, nextElapse: null, never: true };
  // The local time comes with a zone abbreviation JavaScript cannot read; the
  // UTC line (printed when the machine is not on UTC) or a UTC local time can be.
  const utc = /^\s*\(in UTC\): (.+)$/m.exec(output)?.[1]?.trim() ?? next;
  return { normalized, nextElapse: parseSystemdTimestamp(utc), never: false };
}

/** `Mon 2026-11-23 04:00:00 UTC` (systemd's format, in UTC) as ISO 8601; null for anything else. */
export function parseSystemdTimestamp(text: string): string | null {
  const match = /^(?:[A-Za-z]{3} )?(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.\d+)? UTC$/.exec(text.trim());
  if (!match) return null;
  const date = new Date(`${match[1]}T${match[2]}Z`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

const TIME_UNITS: ReadonlyArray<[RegExp, number]> = [
  [/^(?:s|sec|second|seconds)$/, 1],
  [/^(?:m|min|minute|minutes)$/, 60],
  [/^(?:h|hr|hour|hours)$/, 3600],
  [/^(?:d|day|days)$/, 86_400],
  [/^(?:w|week|weeks)$/, 604_800],
];

/**
 * A systemd time span (`1h`, `30min`, `1h 30min`, `90`: seconds) in seconds,
 * for RandomizedDelaySec=; null when it is not one. Months and years are left
 * out on purpose: systemd's `M` (month) and `m` (minute) are too easy to mix up.
 */
export function parseTimeSpan(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  let total = 0;
  const pattern = /(\d+)\s*([a-z]+)\s*/gy;
  let consumed = 0;
  for (const match of trimmed.matchAll(pattern)) {
    const unit = TIME_UNITS.find(([names]) => names.test(match[2]!));
    if (!unit) return null;
    total += Number(match[1]) * unit[1];
    consumed = match.index + match[0].length;
  }
  return consumed === trimmed.length ? total : null;
}

/** Seconds as systemd writes a span: `1h`, `1h 30min`, `45s`, `0`. */
export function formatTimeSpan(seconds: number): string {
  if (seconds === 0) return '0';
  const parts: string[] = [];
  let rest = seconds;
  for (const [size, unit] of [[604_800, 'w'], [86_400, 'd'], [3600, 'h'], [60, 'min'], [1, 's']] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join(' ');
}
