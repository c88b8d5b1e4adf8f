import type { Writable } from 'node:stream';
import type { ExitCode } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Environment, Paths } from '../core/paths.ts';

/** Everything a command handler may use; handlers never touch `process`. */
export interface Context {
  environment: Environment;
  cwd: string;
  home: string;
  stdout: Writable;
  stderr: Writable;
  /** Live progress only on a terminal (DESIGN rule 7). */
  stderrIsTTY: boolean;
  color: boolean;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
  paths: Paths;
  logger: Logger;
  now: () => Date;
  /** The user id upkeep runs as (root needs no sudo). */
  uid: number | undefined;
  /** upkeep's own process id (recorded as the owner of an update run). */
  pid: number;
  /** The argv that runs this upkeep again (for the upkeep-tools plugin); null in-process. */
  selfCommand: string[] | null;
  /** Subscribes to Ctrl-C and SIGTERM; returns the unsubscribe function. */
  onInterrupt: (listener: () => void) => () => void;
  /** Asks a yes/no question on the terminal; null when nobody can answer (no TTY, CI). */
  confirm: ((question: string) => Promise<boolean>) | null;
  /** Text piped on stdin, read on demand (`explain-failure`). */
  readStdin: () => Promise<string>;
}

/** What a handler returns: data for --json, a renderer for people, an exit code. */
export interface CommandResult<T = unknown> {
  exitCode: ExitCode;
  data: T;
  human: (color: boolean) => string;
  /** Printed on stderr unless --quiet. */
  warnings?: string[];
  /** With --json, the handler already streamed its output (NDJSON events): print nothing more. */
  streamed?: boolean;
}
