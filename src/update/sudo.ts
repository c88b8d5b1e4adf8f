import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, lstat, mkdtemp, open, readdir, readFile, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join, normalize, resolve } from 'node:path';
import { ExitCode, UpkeepError, isUpkeepError } from '../core/errors.ts';
import type { Executor } from '../core/exec.ts';
import type { Environment } from '../core/paths.ts';
import type { PluginManifest } from './plugin/manifest.ts';
import { invokePlugin, type InvokeOptions } from './plugin/run.ts';

/**
 * Passwordless sudo for the update plugins that need root (seed 002 §13.1):
 * one sudoers file per plugin in /etc/sudoers.d, allowing the target user
 * exactly the programs the plugin lists in `sudo-programs-paths`, and only
 * when nobody but root can change what those paths run. Every file is
 * checked by the real visudo before it is installed, and installed with a
 * rename so that sudo never reads half of one: a broken sudoers file can
 * lock every user out of sudo.
 */

/** The first line of every file upkeep writes; `--remove` deletes only files that start with it. */
export const SUDOERS_HEADER = '# Written by upkeep sudo-setup';

/**
 * Variables sudo must keep for package managers of the apt family: sudo's
 * env_reset drops them, and without DEBIAN_FRONTEND=noninteractive a
 * package's debconf question would wait for an answer nobody gives.
 */
export const APT_KEPT_ENVIRONMENT = ['DEBIAN_FRONTEND', 'APT_LISTCHANGES_FRONTEND'] as const;
const APT_PROGRAMS = new Set(['apt', 'apt-get', 'aptitude', 'dpkg', 'unattended-upgrade']);
const APT_MUTEXES = new Set(['pkgmgr:apt', 'pkgmgr:dpkg']);

/** Where sudo reads drop-in files; UPKEEP_SUDOERS_DIR moves it (for tests, and for packagers building an image). */
export function sudoersDirectory(environment: Environment): string {
  return environment.UPKEEP_SUDOERS_DIR || '/etc/sudoers.d';
}

/** Plugin names are `[a-z0-9-]`: no dot, so sudo's @includedir reads the file. */
export function sudoersFileName(plugin: string): string {
  return `upkeep-${plugin}`;
}

// ---- program paths ---------------------------------------------------------------------------

/** A longer chain of symbolic links than this is a loop (Linux gives up at 40 as well). */
const MAX_LINKS = 40;

/**
 * Why granting `path` through sudo would be unsafe, or null when it is safe:
 * it must be absolute and plain, name an existing executable regular file,
 * and everything that decides what it runs (the file, each folder on the
 * way, each symbolic link's folder and the link's target, down to the real
 * file) must be owned by root and writable by nobody else. Otherwise the
 * user could replace the program and run anything as root.
 */
export async function programPathProblem(path: string): Promise<string | null> {
  if (!isAbsolute(path)) return 'is not an absolute path (sudo needs the full path of the program)';
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains a control character (a newline would start another sudoers line)';
  if (normalize(path) !== path || path.endsWith('/')) return 'is not in plain form ("..", "." or a doubled or trailing "/"): name the program itself';
  // sudoers reads these as wildcards, so the rule would allow other programs too.
  if (/[*?[\]]/.test(path)) return 'contains a wildcard character (* ? [ ]), which sudo would match against other programs';
  let target;
  try {
    target = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${code ?? (error as Error).message})`;
  }
  if (!target.isFile()) return 'is not a regular file';
  if ((target.mode & 0o111) === 0) return 'is not executable';
  try {
    // The program itself first: of all the owners and modes, its own is the one a reader expects to hear about.
    checkComponent(path, target, 'the file');
    await walkChecked(path, 0);
  } catch (error) {
    if (error instanceof UnsafeComponent) return error.message;
    // A folder the user running --print may not search: what cannot be checked is not granted.
    return `cannot be checked (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
  return null;
}

class UnsafeComponent extends Error {}

/** Owned by root and writable by neither its group nor others. */
function checkComponent(path: string, stats: { uid: number; mode: number }, kind: string): void {
  if (stats.uid !== 0) throw new UnsafeComponent(`${kind} ${path} is owned by uid ${stats.uid}, not root: its owner could replace the program`);
  if ((stats.mode & 0o022) !== 0) {
    throw new UnsafeComponent(`${kind} ${path} is writable by its group or by others (mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')}): they could replace the program`);
  }
}

/**
 * Resolves `path` one component at a time, checking each real folder and the
 * real file, and following each symbolic link (whose own mode means nothing:
 * only the folder holding it can change it, and that folder is checked).
 * Returns the real path.
 */
async function walkChecked(path: string, links: number): Promise<string> {
  let current = '/';
  checkComponent('/', await lstat('/'), 'the folder');
  const parts = path.split('/').filter(Boolean);
  for (const [index, part] of parts.entries()) {
    const next = join(current, part);
    const stats = await lstat(next);
    if (stats.isSymbolicLink()) {
      if (links >= MAX_LINKS) throw new UnsafeComponent(`passes through more than ${MAX_LINKS} symbolic links`);
      current = await walkChecked(resolve(current, await readlink(next)), links + 1);
      continue;
    }
    checkComponent(next, stats, index === parts.length - 1 ? 'the file' : 'the folder');
    current = next;
  }
  return current;
}

// ---- rendering -------------------------------------------------------------------------------

/**
 * A path as a sudoers command name. sudoers splits commands at ",", reads
 * ":" and "=" as syntax, a space as the start of the arguments and "#" as a
 * comment; its grammar lets a backslash escape each of them. A backslash
 * itself cannot be escaped in a command name: it is written escaped anyway,
 * and visudo rejects the file (E_SUDOERS_INVALID) instead of sudo matching
 * another program.
 */
export function sudoersCommand(path: string): string {
  return path.replace(/[\\ ,:=#]/g, (character) => `\\${character}`);
}

/** User names upkeep writes into sudoers: the portable set, plus "@" for directory users (user@example.org). */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/;

/** Why `user` cannot be the target of a rule, or null. */
export function userNameProblem(user: string): string | null {
  if (user === '') return 'is empty';
  if (!USER_NAME.test(user)) return 'has characters sudoers reads as syntax (only letters, digits, "_", ".", "@", "-" and a final "$" are written)';
  return null;
}

/**
 * A user name as a sudoers word. Lower-case plain names stand as they are;
 * any other is quoted, so that sudo reads it as a user and never as the
 * keyword ALL or an alias (upper-case words are aliases in sudoers).
 */
export function sudoersUser(user: string): string {
  return /^[a-z_][a-z0-9_.-]*\$?$/.test(user) ? user : `"${user}"`;
}

/** A plugin of the apt family: its programs or its mutexes say so. */
export function isAptLike(manifest: PluginManifest, paths: readonly string[]): boolean {
  if (paths.some((path) => APT_PROGRAMS.has(basename(path)))) return true;
  return Object.values(manifest.mutexes).some((names) => names.some((name) => APT_MUTEXES.has(name)));
}

export interface SudoersEntry {
  plugin: string;
  user: string;
  paths: string[];
  /** Variables sudo keeps for these programs (empty: sudo's defaults). */
  keepEnvironment: string[];
}

/** The whole file for one plugin: the header, then the rules. */
export function renderSudoersFile(entry: SudoersEntry): string {
  const commands = entry.paths.map(sudoersCommand).join(', ');
  const lines = [
    `${SUDOERS_HEADER} for the update plugin ${entry.plugin}.`,
    `# It lets ${entry.user} run the programs below as root without a password, so that`,
    '# `upkeep update run` works unattended. Undo it with',
    `#   sudo upkeep sudo-setup --remove --plugin ${entry.plugin}`,
    '# (or delete this file). upkeep rewrites it: edit a copy under another name instead.',
  ];
  if (entry.keepEnvironment.length > 0) lines.push(`Defaults!${commands} env_keep += "${entry.keepEnvironment.join(' ')}"`);
  lines.push(`${sudoersUser(entry.user)} ALL=(root) NOPASSWD: ${commands}`);
  return `${lines.join('\n')}\n`;
}

// ---- asking the plugins ----------------------------------------------------------------------

export type SudoQuery =
  /** The plugin needs root for these programs (deduplicated, in its order). */
  | { status: 'needed'; paths: string[]; requiresSudo: boolean }
  /** The manifest says no and does-require-sudo answers no. */
  | { status: 'not-needed' }
  | { status: 'failed'; error: UpkeepError }
  /** The answer named paths that cannot be granted at all (relative ones, which the protocol's schema refuses). */
  | { status: 'unsafe'; paths: { path: string; problem: string }[] };

export interface QueryOptions extends Omit<InvokeOptions, 'runDir'> {
  /** A folder of its own for this plugin's queries. */
  runDir: string;
  /** Named with --plugin: its programs are asked for even when it answers that it needs no root. */
  named?: boolean;
}

/**
 * Asks one plugin whether it needs root (the manifest, else `does-require-sudo`)
 * and, when it does, for `sudo-programs-paths`.
 */
export async function querySudoPrograms(manifest: PluginManifest, options: QueryOptions): Promise<SudoQuery> {
  let requiresSudo = manifest.requiresSudo;
  if (!requiresSudo) {
    const asked = await invokePlugin(manifest, 'does-require-sudo', options);
    if (asked.answer.kind === 'failed') return { status: 'failed', error: pluginError(manifest, 'does-require-sudo', asked.answer.error, asked.answer.timedOut) };
    requiresSudo = asked.answer.kind === 'success';
    if (!requiresSudo && !options.named) return { status: 'not-needed' };
  }
  const asked = await invokePlugin(manifest, 'sudo-programs-paths', options);
  const answer = asked.answer;
  if (answer.kind === 'success') return { status: 'needed', paths: [...new Set(answer.data.paths)], requiresSudo };
  if (answer.kind === 'failed') {
    // The protocol's schema refuses relative paths, so the answer "breaks the
    // protocol"; saying which path is relative helps more than that.
    const relative = relativePathsIn(asked.result.stdout);
    if (answer.error.code === 'PROTOCOL' && relative.length > 0) {
      return { status: 'unsafe', paths: relative.map((path) => ({ path, problem: 'is not an absolute path (sudo needs the full path of the program)' })) };
    }
    return { status: 'failed', error: pluginError(manifest, 'sudo-programs-paths', answer.error, answer.timedOut) };
  }
  return {
    status: 'failed',
    error: new UpkeepError('E_PLUGIN_PROTOCOL', `plugin ${manifest.name} answered sudo-programs-paths with ${answer.kind}, not a list of programs`, {
      hint: `plugins that need root must implement sudo-programs-paths; check it with \`upkeep plugins validate ${manifest.source.path}\``,
    }),
  };
}

function relativePathsIn(stdout: string): string[] {
  try {
    const paths = (JSON.parse(stdout) as { data?: { paths?: unknown } }).data?.paths;
    return Array.isArray(paths) ? paths.filter((path): path is string => typeof path === 'string' && !isAbsolute(path)) : [];
  } catch {
    return [];
  }
}

function pluginError(manifest: PluginManifest, command: string, error: { code: string; message: string; details?: string }, timedOut: boolean): UpkeepError {
  const code = timedOut ? 'E_PLUGIN_TIMEOUT' : error.code === 'PROTOCOL' ? 'E_PLUGIN_PROTOCOL' : 'E_PLUGIN_FAILED';
  return new UpkeepError(code, `plugin ${manifest.name} failed to answer ${command}: ${error.message}`, {
    hint: `run \`${manifest.executable} ${command}\` to see why, or \`upkeep plugins validate ${manifest.source.path}\``,
    details: { plugin: manifest.name, command, pluginError: error },
  });
}

// ---- checking with visudo --------------------------------------------------------------------

/** Where visudo lives when PATH (of a user, not root) leaves out the sbin folders. */
const SBIN_FOLDERS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** visudo on PATH or in the usual sbin folders; null when sudo is not installed. */
export async function findVisudo(environment: Environment): Promise<string | null> {
  const folders = [...(environment.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN_FOLDERS];
  for (const folder of folders) {
    const candidate = join(folder, 'visudo');
    try {
      if (!(await stat(candidate)).isFile()) continue;
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return null;
}

export function visudoMissing(): UpkeepError {
  return new UpkeepError('E_EXEC_NOT_FOUND', 'visudo is not installed, and upkeep installs no sudoers file that visudo has not checked', {
    hint: 'install sudo (it brings visudo): `apt-get install sudo`, `dnf install sudo`, ...; `upkeep sudo-setup --print` shows the entries meanwhile',
  });
}

/**
 * `visudo -c -s -f FILE`: strict mode also refuses what plain mode only
 * warns about, such as an alias that is never defined.
 */
export async function checkSudoersFile(file: string, plugin: string, options: { executor: Executor; visudo: string }): Promise<void> {
  const result = await options.executor.run([options.visudo, '-c', '-s', '-f', file], {
    mode: 'always',
    timeout: 30_000,
    env: { PATH: SBIN_FOLDERS.concat(['/usr/bin', '/bin']).join(delimiter), LANG: 'C', LC_ALL: 'C' },
  });
  if (result.exitCode === 0) return;
  const said = `${result.stderr}\n${result.stdout}`
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '' && !line.endsWith('parsed OK'))
    .join('\n');
  throw new UpkeepError('E_SUDOERS_INVALID', `visudo rejected the sudoers entry for plugin ${plugin}; nothing was installed:\n${said || `visudo exited with ${result.exitCode ?? result.signal}`}`, {
    hint: 'a program path with a character sudoers cannot spell (a backslash) must be renamed, or linked from a plain name the plugin lists; otherwise it is a bug: report it with the entry shown by `upkeep sudo-setup --print`',
    details: { plugin, visudo: said },
  });
}

/** Checks rendered text with visudo in a private temp folder (for --print, which installs nothing). */
export async function checkSudoersText(text: string, plugin: string, options: { executor: Executor; visudo: string }): Promise<void> {
  const folder = await mkdtemp(join(tmpdir(), 'upkeep-sudoers-'));
  try {
    const file = join(folder, sudoersFileName(plugin));
    await writeFile(file, text, { mode: 0o440 });
    await checkSudoersFile(file, plugin, options);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

// ---- installing and removing -----------------------------------------------------------------

export type InstallStatus = 'installed' | 'unchanged' | 'foreign';

export interface InstallOutcome {
  plugin: string;
  file: string;
  /** foreign: a file of that name exists without upkeep's header; it was left alone. */
  status: InstallStatus;
}

export interface InstallOptions {
  executor: Executor;
  visudo: string;
}

/**
 * Installs one file per entry into `directory`. Each is first written next to
 * its final place under a name sudo ignores (it has dots: @includedir skips
 * such names), owned by root with mode 0440, and checked by visudo; only
 * when every one passed are they renamed into place, so a rejected entry
 * installs nothing at all. core/fs writeFileAtomic is not used: it cannot
 * give the file its owner and mode before the rename.
 */
export async function installSudoersFiles(directory: string, files: { plugin: string; text: string }[], options: InstallOptions): Promise<InstallOutcome[]> {
  await requireDirectory(directory);
  const outcomes: InstallOutcome[] = [];
  const pending: { temporary: string; outcome: InstallOutcome }[] = [];
  try {
    for (const { plugin, text } of files) {
      const file = join(directory, sudoersFileName(plugin));
      const existing = await readInstalled(file);
      if (existing && !existing.text.startsWith(SUDOERS_HEADER)) {
        outcomes.push({ plugin, file, status: 'foreign' });
        continue;
      }
      const temporary = join(directory, `.${sudoersFileName(plugin)}.${randomBytes(6).toString('hex')}.tmp`);
      await writeRootFile(temporary, text);
      // A file with the right text but another owner or mode is replaced: sudo ignores a world-writable one.
      const unchanged = existing !== null && existing.text === text && existing.uid === 0 && existing.mode === 0o440;
      pending.push({ temporary, outcome: { plugin, file, status: unchanged ? 'unchanged' : 'installed' } });
      await checkSudoersFile(temporary, plugin, options);
    }
    for (const { temporary, outcome } of pending) {
      if (outcome.status === 'unchanged') continue;
      await rename(temporary, outcome.file);
    }
    await syncDirectory(directory);
  } finally {
    await Promise.all(pending.map(({ temporary }) => rm(temporary, { force: true }).catch(() => undefined)));
  }
  return [...outcomes, ...pending.map(({ outcome }) => outcome)].sort((left, right) => left.plugin.localeCompare(right.plugin));
}

async function readInstalled(file: string): Promise<{ text: string; uid: number; mode: number } | null> {
  try {
    const stats = await lstat(file);
    // A link or a folder of that name is someone else's doing: reported as foreign, never followed.
    if (!stats.isFile()) return { text: '', uid: stats.uid, mode: stats.mode & 0o7777 };
    return { text: await readFile(file, 'utf8'), uid: stats.uid, mode: stats.mode & 0o7777 };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function requireDirectory(directory: string): Promise<void> {
  try {
    if ((await stat(directory)).isDirectory()) return;
  } catch {
    // reported below
  }
  throw new UpkeepError('E_FS_WRITE', `the sudoers folder ${directory} does not exist`, {
    hint: 'install sudo (its /etc/sudoers reads /etc/sudoers.d through @includedir), or point UPKEEP_SUDOERS_DIR at the folder your sudo reads',
  });
}

/** Created exclusively (never through a planted link), root:root 0440, synced. */
async function writeRootFile(path: string, text: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o440);
    await handle.writeFile(text);
    await handle.chown(0, 0);
    // The umask may have taken bits away from the mode given to open; sudo wants exactly 0440.
    await handle.chmod(0o440);
    await handle.sync();
  } catch (error) {
    if (isUpkeepError(error)) throw error;
    throw new UpkeepError('E_FS_WRITE', `could not write ${path}: ${(error as Error).message}`, {
      hint: 'run it as root (`sudo upkeep sudo-setup`); the sudoers folder must be writable by root',
      cause: error,
    });
  } finally {
    await handle?.close();
  }
}

/** A rename is durable only once its folder is synced. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface RemoveOutcome {
  /** Deleted: upkeep's files. */
  removed: string[];
  /** Named like upkeep's but without its header: left alone. */
  kept: string[];
}

/** Deletes upkeep's files (all, or one plugin's), and temp files an interrupted setup left behind. */
export async function removeSudoersFiles(directory: string, plugin?: string): Promise<RemoveOutcome> {
  await requireDirectory(directory);
  const outcome: RemoveOutcome = { removed: [], kept: [] };
  const wanted = plugin ? sudoersFileName(plugin) : null;
  for (const name of (await readdir(directory)).sort()) {
    const path = join(directory, name);
    const temporary = /^\.(upkeep-[a-z0-9-]+)\.[0-9a-f]{12}\.tmp$/.exec(name);
    if (temporary) {
      if (!wanted || temporary[1] === wanted) await rm(path, { force: true });
      continue;
    }
    if (wanted ? name !== wanted : !/^upkeep-[a-z0-9-]+$/.test(name)) continue;
    const regular = await lstat(path).then((stats) => stats.isFile(), () => false);
    const text = regular ? await readFile(path, 'utf8').catch(() => '') : '';
    if (!text.startsWith(SUDOERS_HEADER)) {
      outcome.kept.push(path);
      continue;
    }
    await rm(path, { force: true });
    outcome.removed.push(path);
  }
  if (outcome.removed.length > 0) await syncDirectory(directory);
  return outcome;
}

// ---- the target user -------------------------------------------------------------------------

/**
 * Whether `user` exists here, through getent (which sees LDAP and other NSS
 * users that /etc/passwd does not list); null when getent is missing.
 */
export async function userExists(user: string, options: { executor: Executor; environment: Environment }): Promise<boolean | null> {
  try {
    const result = await options.executor.run(['getent', 'passwd', user], {
      mode: 'always',
      timeout: 10_000,
      env: { PATH: [options.environment.PATH ?? '', '/usr/bin', '/bin'].filter(Boolean).join(delimiter), LANG: 'C' },
    });
    return result.exitCode === 0;
  } catch (error) {
    if (isUpkeepError(error) && error.code === 'E_EXEC_NOT_FOUND') return null;
    throw error;
  }
}

/** The user a rule is for: --user, else the one who ran sudo, else the one running upkeep. */
export function targetUser(explicit: string | undefined, environment: Environment): string | undefined {
  return explicit || environment.SUDO_USER || environment.USER || environment.LOGNAME || undefined;
}

export function unsafePathsError(problems: { plugin: string; path: string; problem: string }[]): UpkeepError {
  const lines = problems.map(({ plugin, path, problem }) => `plugin ${plugin}: ${JSON.stringify(path)} ${problem}`);
  return new UpkeepError('E_SUDO_PATH_UNSAFE', `refusing to let sudo run ${problems.length === 1 ? 'a program' : 'programs'} without a password; nothing was installed:\n${lines.join('\n')}`, {
    hint: "fix the plugin's sudo-programs-paths, or make the file and its folders owned by root and writable only by root (chown root:root, chmod go-w); `upkeep plugins disable NAME` leaves a plugin out",
    exitCode: ExitCode.failure,
    details: { paths: problems },
  });
}
