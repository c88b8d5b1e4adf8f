/**
 * Errors a user can hit carry a stable code (listed in docs/errors.md, never
 * reused), a message that says what happened and a hint that says what to do.
 * Programmer errors stay plain `Error`.
 */
export type ErrorCode =
  | 'E_USAGE'
  | 'E_UNKNOWN_TOOL'
  | 'E_UNKNOWN_PRESET'
  | 'E_CONFIG_INVALID'
  | 'E_CONFIG_PARSE'
  | 'E_CATALOG_MISSING'
  | 'E_SNAPSHOT_MISSING'
  | 'E_SNAPSHOT_INVALID'
  | 'E_EXEC_NOT_FOUND'
  | 'E_EXEC_TIMEOUT'
  | 'E_EXEC_FAILED'
  | 'E_HTTP_TIMEOUT'
  | 'E_HTTP_STATUS'
  | 'E_HTTP_RATE_LIMIT'
  | 'E_HTTP_NETWORK'
  | 'E_HTTP_BODY'
  | 'E_UPSTREAM_PARSE'
  | 'E_UPSTREAM_UNSUPPORTED'
  | 'E_LOCK_TIMEOUT'
  | 'E_FS_WRITE'
  | 'E_PLATFORM_UNSUPPORTED'
  | 'E_NO_RECIPE'
  | 'E_NO_METHOD'
  | 'E_METHOD_UNAVAILABLE'
  | 'E_INVALID_NAME'
  | 'E_VERSION_INVALID'
  | 'E_VERSION_UNSUPPORTED'
  | 'E_NEEDS_ROOT'
  | 'E_CHECKSUM_MISMATCH'
  | 'E_CHECKSUM_UNAVAILABLE'
  | 'E_ARCHIVE_INVALID'
  | 'E_INSTALL_FAILED'
  | 'E_VERIFY_FAILED'
  | 'E_DEPENDENCY_CYCLE'
  | 'E_NOT_INSTALLED'
  | 'E_BREAKING_CHANGE'
  | 'E_DECLINED'
  | 'E_BACKUP_MISSING'
  | 'E_BACKUP_CORRUPT'
  | 'E_ROLLBACK_FAILED'
  | 'E_UNINSTALL_REFUSED'
  | 'E_PLUGIN_INVALID'
  | 'E_PLUGIN_UNKNOWN'
  | 'E_PLUGIN_PROTOCOL'
  | 'E_PLUGIN_FAILED'
  | 'E_PLUGIN_TIMEOUT'
  | 'E_MUTEX_INVALID'
  | 'E_NO_PLUGINS'
  | 'E_NO_RUN'
  | 'E_RUN_IN_PROGRESS'
  | 'E_INTERRUPTED'
  | 'E_STATS_UNAVAILABLE'
  | 'E_HOSTS_INVALID'
  | 'E_HOST_UNKNOWN'
  | 'E_SSH_CONNECT'
  | 'E_SSH_AUTH'
  | 'E_SSH_HOST_KEY'
  | 'E_REMOTE_FAILED'
  | 'E_SCHEDULE_INVALID'
  | 'E_SYSTEMD_UNAVAILABLE'
  | 'E_SUDOERS_INVALID'
  | 'E_SUDO_PATH_UNSAFE';

/** Exit codes, DESIGN rule 7. */
export const ExitCode = {
  success: 0,
  failure: 1,
  usage: 2,
  partial: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface UpkeepErrorOptions {
  hint?: string;
  cause?: unknown;
  /** The exit code the CLI ends with when this error reaches it. */
  exitCode?: ExitCode;
  /** Extra machine-readable facts printed with --json. */
  details?: Record<string, unknown>;
}

export class UpkeepError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: UpkeepErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpkeepError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

export function isUpkeepError(value: unknown): value is UpkeepError {
  return value instanceof UpkeepError;
}

/** A short, single-line description of any thrown value, for reasons and logs. */
export function describeError(error: unknown): string {
  if (error instanceof UpkeepError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
