import type { Writable } from 'node:stream';

/**
 * A small logging facade. `--verbose` prints debug lines on stderr;
 * `--log-file PATH` appends JSON lines through pino. pino is loaded only when
 * a log file is asked for, so the common path starts fast.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  /** Writes what is buffered; called before the process exits. */
  flush(): void;
}

const SECRET_KEYS = /token|password|secret|authorization|cookie/i;

/** Replaces credentials in URLs and known secret fields before anything is logged. */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, SECRET_KEYS.test(key) ? '[redacted]' : redact(inner)]),
    );
  }
  return value;
}

export function redactText(text: string): string {
  return text
    .replace(/(\w+:\/\/)[^/@\s:]+(?::[^/@\s]*)?@/g, '$1[redacted]@')
    .replace(/\b(gh[pousr]_[A-Za-z0-9]{10,}|github_pat_[A-Za-z0-9_]{10,}|glpat-[A-Za-z0-9_-]{10,})\b/g, '[redacted]')
    .replace(/([?&](?:access_)?token=)[^&\s]+/gi, '$1[redacted]')
    .replace(/(authorization:\s*)(?:bearer|token|basic)?\s*\S+/gi, '$1[redacted]');
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  flush() {},
};

export interface LoggerOptions {
  verbose: boolean;
  logFile?: string | undefined;
  stderr: Writable;
}

export async function createLogger(options: LoggerOptions): Promise<Logger> {
  if (!options.verbose && !options.logFile) return silentLogger;
  const sinks: Array<(level: Level, message: string, fields: Fields) => void> = [];
  let flushFile = (): void => {};
  if (options.verbose) {
    sinks.push((level, message, fields) => {
      const extra = Object.entries(fields)
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
        .join(' ');
      options.stderr.write(`${level}: ${message}${extra ? ` ${extra}` : ''}\n`);
    });
  }
  if (options.logFile) {
    const { openLogFile } = await import('./log-file.ts');
    const file = openLogFile(options.logFile);
    sinks.push((level, message, fields) => file.write(level, fields, message));
    flushFile = () => file.flush();
  }
  const log = (level: Level) => (message: string, fields: Fields = {}) => {
    const safe = redact(fields) as Fields;
    const safeMessage = redactText(message);
    for (const sink of sinks) sink(level, safeMessage, safe);
  };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    flush: () => flushFile(),
  };
}
