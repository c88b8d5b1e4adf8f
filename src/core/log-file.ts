import { pino } from 'pino';

/**
 * The JSON-lines log file behind `--log-file`, through pino. Kept apart from
 * log.ts and loaded lazily (a static import here keeps pino's named exports
 * in the bundle) so that runs without a log file never load pino.
 */
export function openLogFile(path: string): {
  write(level: 'debug' | 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void;
  flush(): void;
} {
  const destination = pino.destination({ dest: path, sync: true, mkdir: true, append: true });
  const file = pino({ level: 'debug', base: { pid: process.pid } }, destination);
  return {
    write: (level, fields, message) => file[level](fields, message),
    flush: () => destination.flushSync(),
  };
}
