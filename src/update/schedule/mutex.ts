import { ExitCode, UpkeepError } from '../../core/errors.ts';

/**
 * Mutex names (seed 002 §5.1): `category:resource`, compared case-insensitively.
 * `internal:` is upkeep's own (plugins may not name it); `system:` holds the
 * machine-wide resources every plugin may share.
 */
export const MUTEX_CATEGORIES = ['pkgmgr', 'runtime', 'app', 'system'] as const;
const RESERVED = ['internal'];
const PATTERN = /^([a-z0-9_-]+):([a-z0-9_-]+)$/;
const MAX_LENGTH = 64;

/** The canonical (lower-case) form of a mutex name; E_MUTEX_INVALID when it breaks the rules. */
export function normalizeMutex(name: string, where = 'mutex'): string {
  const lower = name.trim().toLowerCase();
  const invalid = (why: string): UpkeepError =>
    new UpkeepError('E_MUTEX_INVALID', `${where} "${name}" ${why}`, {
      hint: 'write category:resource, e.g. pkgmgr:apt or runtime:python (letters, digits, - and _, at most 64 characters)',
      exitCode: ExitCode.usage,
    });
  if (lower.length > MAX_LENGTH) throw invalid(`is longer than ${MAX_LENGTH} characters`);
  const match = PATTERN.exec(lower);
  if (!match) throw invalid('is not category:resource');
  const category = match[1]!;
  if (RESERVED.includes(category)) throw invalid(`uses the reserved category ${category}:`);
  if (!(MUTEX_CATEGORIES as readonly string[]).includes(category)) {
    throw invalid(`has an unknown category (use ${MUTEX_CATEGORIES.join(', ')})`);
  }
  return lower;
}
