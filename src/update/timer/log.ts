import { open } from 'node:fs/promises';

/**
 * Reading the scheduled runs' log back. The file is what `upkeep update run
 * --json` printed, appended run after run: NDJSON events, one per line, but
 * also pretty-printed objects (the result of `update check --json`, an
 * `{"error": ...}` when a run could not start), and whatever else reached
 * stdout. Each becomes one entry; a line that is no JSON is kept as text.
 */

export type LogEntry = { kind: 'json'; value: unknown } | { kind: 'text'; text: string };

export interface LogTail {
  exists: boolean;
  /** The file's size in bytes. */
  size: number;
  entries: LogEntry[];
}

/** Only the end of a long log is read: a year of weekly runs is a few megabytes. */
const WINDOW_BYTES = 4 * 1024 * 1024;

/** The last `count` entries of the log (all of them without a count). */
export async function readLogTail(path: string, count?: number, windowBytes = WINDOW_BYTES): Promise<LogTail> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, size: 0, entries: [] };
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - windowBytes);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    let text = buffer.toString('utf8');
    if (start > 0) {
      // The window began mid-entry: start at the next line that opens one.
      const next = text.indexOf('\n{');
      text = next === -1 ? '' : text.slice(next + 1);
    }
    const entries = parseLogText(text);
    return { exists: true, size, entries: count === undefined ? entries : entries.slice(-count) };
  } finally {
    await handle.close();
  }
}

/**
 * Splits the log into entries. NDJSON lines parse alone; a pretty-printed
 * object starts with a line that is only `{` and ends with a line that is
 * only `}` (JSON.stringify indents everything between).
 */
export function parseLogText(text: string): LogEntry[] {
  const entries: LogEntry[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line === '{' || line === '[') {
      const closing = line === '{' ? '}' : ']';
      const end = lines.findIndex((candidate, position) => position > index && candidate.replace(/\r$/, '') === closing);
      if (end !== -1) {
        const block = lines.slice(index, end + 1).join('\n');
        const value = parseJson(block);
        if (value !== undefined) {
          entries.push({ kind: 'json', value });
          index = end;
          continue;
        }
      }
    }
    const value = line.startsWith('{') || line.startsWith('[') ? parseJson(line) : undefined;
    entries.push(value === undefined ? { kind: 'text', text: line } : { kind: 'json', value });
  }
  return entries;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** How a run ended, as far as the log tells. */
export interface LoggedOutcome {
  kind: 'run' | 'check' | 'error';
  /** When it ended (runs), or null when the entry has no time. */
  time: string | null;
  /** run: the run's status (completed, failed, interrupted); check: `checked`; error: the error code. */
  status: string;
  failed: string[];
  message: string | null;
}

/** The last entry that tells how a scheduled run ended: a run's summary, a check's result, or an error. */
export function lastOutcome(entries: readonly LogEntry[]): LoggedOutcome | null {
  for (let index = entries.length - 1; index >= 0; index -= 1) {
    const entry = entries[index]!;
    if (entry.kind !== 'json') continue;
    const outcome = outcomeOf(entry.value);
    if (outcome) return outcome;
  }
  return null;
}

interface SummaryEvent {
  type: 'summary';
  report: { status?: string; endedAt?: string; summary?: { failed?: string[] } };
}

export function outcomeOf(value: unknown): LoggedOutcome | null {
  if (!value || typeof value !== 'object') return null;
  const record = value as Record<string, unknown>;
  if (record.type === 'summary' && record.report && typeof record.report === 'object') {
    const { report } = record as unknown as SummaryEvent;
    return { kind: 'run', time: report.endedAt ?? null, status: report.status ?? 'unknown', failed: report.summary?.failed ?? [], message: null };
  }
  if (Array.isArray(record.plugins) && 'estimate' in record && !('type' in record)) {
    const plugins = record.plugins as Array<{ name?: string; error?: unknown }>;
    return { kind: 'check', time: null, status: 'checked', failed: plugins.filter((plugin) => plugin.error).map((plugin) => String(plugin.name)), message: null };
  }
  if (record.error && typeof record.error === 'object' && !('type' in record)) {
    const error = record.error as { code?: string; message?: string };
    return { kind: 'error', time: null, status: error.code ?? 'E_INTERNAL', failed: [], message: error.message ?? null };
  }
  return null;
}
