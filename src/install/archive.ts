import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { ArchiveFormat } from '../catalog/schema.ts';
import { UpkeepError, isUpkeepError } from '../core/errors.ts';
import type { ExecResult, Executor } from '../core/exec.ts';

/**
 * Unpacking release assets. Archives come from the internet, so a member
 * that would land outside the folder (an absolute path, a `..` step, a path
 * through another member that is not a folder, a symbolic link pointing out)
 * makes the whole archive refused before anything of it is used. tar and
 * unzip are the system's, run through the executor; gzip is node's own.
 */

const LIST_TIMEOUT = 60_000;
const EXTRACT_TIMEOUT = 5 * 60_000;
/** Enough for the member list of any real release (node's has ~10k lines). */
const LIST_MAX_OUTPUT = 64 * 1024 * 1024;
/** How many executables an error message names before it stops. */
const LISTED_EXECUTABLES = 20;

export interface UnpackRequest {
  /** The downloaded file. */
  archive: string;
  format: ArchiveFormat;
  /** An empty folder that receives the contents. */
  destination: string;
  executor: Executor;
  /** For `gz` and `raw`, which hold one file: the name it is given in `destination`. */
  singleFileName: string;
}

export async function unpackArchive(request: UnpackRequest): Promise<void> {
  const { archive, format, destination, executor } = request;
  await mkdir(destination, { recursive: true });
  const label = basename(archive);
  if (format === 'raw') {
    await copyFile(archive, join(destination, request.singleFileName));
    return;
  }
  if (format === 'gz') {
    try {
      await pipeline(createReadStream(archive), createGunzip(), createWriteStream(join(destination, request.singleFileName)));
    } catch (error) {
      throw invalid(`${label} is not a valid gzip file: ${(error as Error).message}`, 'the download may be damaged, or the recipe names the wrong format', error);
    }
    return;
  }
  if (format === 'zip') {
    const members = await listZip(archive, executor);
    refuseUnsafeMembers(members, label);
    const result = await runTool(executor, ['unzip', '-q', '-o', archive, '-d', destination], EXTRACT_TIMEOUT, 'unzip');
    // 1 is unzip's "warnings, but everything was extracted".
    if (result.exitCode !== 0 && result.exitCode !== 1) throw commandFailed(result, label, 'zip');
  } else {
    let tarFile = archive;
    if (format === 'tar.zst') {
      // Decompressed first, because not every tar knows --zstd.
      tarFile = `${archive}.tar`;
      const result = await runTool(executor, ['zstd', '-d', '-q', '-f', '-o', tarFile, archive], EXTRACT_TIMEOUT, 'zstd');
      if (result.exitCode !== 0) throw commandFailed(result, label, format);
    }
    const members = await listTar(tarFile, label, format, executor);
    refuseUnsafeMembers(members, label);
    // GNU and BSD tar both find the compression from the file itself.
    const result = await runTool(executor, ['tar', '--no-same-owner', '-xf', tarFile, '-C', destination], EXTRACT_TIMEOUT, 'tar');
    if (result.exitCode !== 0) throw commandFailed(result, label, format);
  }
  const escaping = await findEscapingLinks(destination);
  if (escaping.length > 0) {
    throw invalid(
      `${label} holds symbolic links that point outside it: ${escaping.slice(0, 5).join(', ')}`,
      'the archive is unsafe and was not used; report it to the tool\'s maintainers',
    );
  }
}

async function listTar(tarFile: string, label: string, format: ArchiveFormat, executor: Executor): Promise<string[]> {
  const result = await runTool(executor, ['tar', '-tf', tarFile], LIST_TIMEOUT, 'tar', LIST_MAX_OUTPUT);
  if (result.exitCode !== 0) throw commandFailed(result, label, format);
  if (result.truncated) throw invalid(`${label} lists too many members to check`, 'the archive was not used');
  return splitLines(result.stdout);
}

async function listZip(archive: string, executor: Executor): Promise<string[]> {
  const label = basename(archive);
  const result = await runTool(executor, ['unzip', '-Z1', archive], LIST_TIMEOUT, 'unzip', LIST_MAX_OUTPUT);
  if (result.exitCode !== 0) throw commandFailed(result, label, 'zip');
  if (result.truncated) throw invalid(`${label} lists too many members to check`, 'the archive was not used');
  return splitLines(result.stdout);
}

function splitLines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/**
 * Why a member name is unsafe to extract, or null. Backslashes count as
 * separators too: unzip turns them into `/` for archives made on Windows.
 */
export function unsafeMemberReason(name: string): string | null {
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:[\\/]/.test(name)) return 'an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'a ".." step';
  return null;
}

/** The member names, normalised: no leading `./`, no trailing `/`. */
function normaliseMember(name: string): string {
  let normal = name;
  while (normal.startsWith('./')) normal = normal.slice(2);
  return normal.replace(/\/+$/, '');
}

/**
 * Refuses absolute and `..` members, and members below another member that
 * is not a folder: that member can only be a link, and writing through it
 * would write wherever it points.
 */
export function refuseUnsafeMembers(members: readonly string[], label: string): void {
  const unsafe: string[] = [];
  for (const member of members) {
    const reason = unsafeMemberReason(member);
    if (reason) unsafe.push(`${member} (${reason})`);
  }
  const nonFolders = new Set(members.filter((member) => !member.endsWith('/')).map(normaliseMember));
  for (const member of members) {
    const parts = normaliseMember(member).split('/');
    for (let length = 1; length < parts.length; length++) {
      const ancestor = parts.slice(0, length).join('/');
      if (nonFolders.has(ancestor)) {
        unsafe.push(`${member} (inside ${ancestor}, which is not a folder)`);
        break;
      }
    }
  }
  if (unsafe.length > 0) {
    throw invalid(
      `${label} has members that would land outside the folder it is unpacked in: ${unsafe.slice(0, 5).join(', ')}`,
      'the archive is unsafe and was not used; report it to the tool\'s maintainers',
      undefined,
      { members: unsafe },
    );
  }
}

/** Symbolic links under `root` whose target resolves outside it (relative paths, sorted). */
export async function findEscapingLinks(root: string): Promise<string[]> {
  const realRoot = await realpath(root);
  const escaping: string[] = [];
  for (const entry of await walk(root)) {
    if (!entry.isSymbolicLink) continue;
    const link = join(root, entry.path);
    let target: string;
    try {
      target = await realpath(link);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        escaping.push(entry.path);
        continue;
      }
      // A dangling link is judged by where its text points.
      const text = await readlink(link);
      target = isAbsolute(text) ? text : resolve(dirname(join(realRoot, entry.path)), text);
    }
    if (!isInside(realRoot, target)) escaping.push(entry.path);
  }
  return escaping.sort();
}

export interface WantedFile {
  name: string;
  /** Where the recipe says it is; null: search for a regular file called `name`. */
  pathInArchive: string | null;
}

/**
 * The real path of a wanted file in an unpacked folder, or null when it is
 * not there. A search takes the shallowest regular file with that exact name
 * (a symbolic link is never picked by name); the first by path on a tie.
 */
export async function locateFile(root: string, wanted: WantedFile): Promise<string | null> {
  const realRoot = await realpath(root);
  if (wanted.pathInArchive !== null) {
    const inside = normaliseMember(wanted.pathInArchive);
    if (unsafeMemberReason(inside)) return null;
    try {
      const real = await realpath(join(realRoot, inside));
      if (!isInside(realRoot, real)) return null;
      return (await stat(real)).isFile() ? real : null;
    } catch {
      return null;
    }
  }
  const matches = (await walk(realRoot))
    .filter((entry) => entry.isFile && basename(entry.path) === wanted.name)
    .map((entry) => ({ path: entry.path, depth: entry.path.split(sep).length }))
    .sort((left, right) => left.depth - right.depth || (left.path < right.path ? -1 : left.path > right.path ? 1 : 0));
  const best = matches[0];
  return best ? join(realRoot, best.path) : null;
}

/** Regular files with an executable bit, relative to `root`, sorted: what an error offers instead. */
export async function listExecutables(root: string): Promise<string[]> {
  return (await walk(root))
    .filter((entry) => entry.isFile && (entry.mode & 0o111) !== 0)
    .map((entry) => entry.path)
    .sort();
}

/** `found a, b, c` for error messages. */
export function describeExecutables(executables: readonly string[]): string {
  if (executables.length === 0) return 'it holds no executable files';
  const shown = executables.slice(0, LISTED_EXECUTABLES).join(', ');
  const more = executables.length > LISTED_EXECUTABLES ? ` and ${executables.length - LISTED_EXECUTABLES} more` : '';
  return `its executables are ${shown}${more}`;
}

interface WalkEntry {
  /** Relative to the walked root. */
  path: string;
  isFile: boolean;
  isSymbolicLink: boolean;
  mode: number;
}

/** Every entry under `root`, never following links. */
async function walk(root: string): Promise<WalkEntry[]> {
  const entries: WalkEntry[] = [];
  const pending = [''];
  while (pending.length > 0) {
    const folder = pending.shift()!;
    const names = (await readdir(join(root, folder))).sort();
    for (const name of names) {
      const path = folder === '' ? name : join(folder, name);
      const info = await lstat(join(root, path));
      entries.push({ path, isFile: info.isFile(), isSymbolicLink: info.isSymbolicLink(), mode: info.mode });
      if (info.isDirectory()) pending.push(path);
    }
  }
  return entries;
}

function isInside(root: string, path: string): boolean {
  const fromRoot = relative(root, path);
  return fromRoot === '' || (!fromRoot.startsWith('..') && !isAbsolute(fromRoot));
}

const INSTALL_HINTS: Record<string, string> = {
  tar: 'install tar (apt install tar, dnf install tar)',
  unzip: 'install unzip (apt install unzip, dnf install unzip, brew install unzip)',
  zstd: 'install zstd (apt install zstd, dnf install zstd, brew install zstd)',
};

/** Runs an unpacking tool; a missing tool is a user-fixable archive problem, not a crash. */
async function runTool(executor: Executor, argv: string[], timeout: number, tool: string, maxOutput?: number): Promise<ExecResult> {
  try {
    const result = await executor.run(argv, { timeout, ...(maxOutput === undefined ? {} : { maxOutput }) });
    if (result.timedOut) throw invalid(`${tool} did not finish unpacking in time and was stopped`, 'the archive may be huge or damaged');
    return result;
  } catch (error) {
    if (isUpkeepError(error) && error.code === 'E_EXEC_NOT_FOUND') {
      throw invalid(`${tool} is needed to unpack this download and is not installed`, INSTALL_HINTS[tool] ?? `install ${tool}`, error);
    }
    throw error;
  }
}

function commandFailed(result: ExecResult, label: string, format: ArchiveFormat): UpkeepError {
  const tail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join('\n');
  return invalid(
    `could not unpack ${label} as ${format}${tail ? `: ${tail}` : ''}`,
    format === 'tar.xz' || format === 'tar.bz2'
      ? `the download may be damaged, or ${format === 'tar.xz' ? 'xz' : 'bzip2'} is not installed`
      : 'the download may be damaged, or the recipe names the wrong format',
    undefined,
    { argv: result.argv, exitCode: result.exitCode },
  );
}

function invalid(message: string, hint: string, cause?: unknown, details?: Record<string, unknown>): UpkeepError {
  return new UpkeepError('E_ARCHIVE_INVALID', message, {
    hint,
    ...(cause === undefined ? {} : { cause }),
    ...(details === undefined ? {} : { details }),
  });
}
