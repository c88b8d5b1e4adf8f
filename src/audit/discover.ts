import { readdirSync, realpathSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/**
 * Finds every installation of a binary name: each folder on PATH, then the
 * usual extra places, read once with readdir (one call per folder instead of
 * one stat per tool and folder), then de-duplicated by real path.
 */

export interface SearchFolder {
  path: string;
  /** True for folders from PATH: the first hit there is the one that runs. */
  onPath: boolean;
}

export interface Candidate {
  path: string;
  realPath: string;
  onPath: boolean;
  size: number;
  mtimeMs: number;
  inode: number;
}

export function searchFolders(pathVariable: string | undefined, extraPaths: readonly string[], home: string, cwd: string): SearchFolder[] {
  const seen = new Set<string>();
  const folders: SearchFolder[] = [];
  const add = (folder: string, onPath: boolean): void => {
    if (!folder) return;
    const expanded = folder === '~' ? home : folder.startsWith('~/') ? join(home, folder.slice(2)) : folder;
    // An empty or relative PATH entry means the working folder; keep it honest.
    const absolute = isAbsolute(expanded) ? expanded : resolve(cwd, expanded);
    if (seen.has(absolute)) return;
    seen.add(absolute);
    folders.push({ path: absolute, onPath });
  };
  for (const entry of (pathVariable ?? '').split(delimiter)) add(entry, true);
  for (const entry of extraPaths) add(entry, false);
  return folders;
}

export interface FolderIndex {
  folders: SearchFolder[];
  /** Names present in each folder (by folder path). */
  names: Map<string, Set<string>>;
}

// Discovery uses synchronous calls on purpose: a few dozen readdir, realpath
// and stat calls answer from the kernel's caches in microseconds, while
// their promise versions each take a round trip through libuv's thread pool
// (measured: several milliseconds for a whole catalog on a warm audit).
export function indexFolders(folders: SearchFolder[]): FolderIndex {
  const names = new Map<string, Set<string>>();
  for (const folder of folders) {
    try {
      names.set(folder.path, new Set(readdirSync(folder.path)));
    } catch {
      names.set(folder.path, new Set());
    }
  }
  return { folders, names };
}

/** Every executable file named one of `binaries`, in search order, one per real path. */
export function findCandidates(index: FolderIndex, binaries: readonly string[]): Candidate[] {
  const hits: Array<{ path: string; onPath: boolean }> = [];
  for (const folder of index.folders) {
    const names = index.names.get(folder.path);
    if (!names) continue;
    for (const binary of binaries) {
      if (names.has(binary)) hits.push({ path: join(folder.path, binary), onPath: folder.onPath });
    }
  }
  if (hits.length === 0) return [];
  const resolved = hits.map((hit) => {
    try {
      // The native call is one syscall; the JavaScript one walks every component.
      const realPath = realpathSync.native(hit.path);
      const info = statSync(realPath);
      if (!info.isFile() || (info.mode & 0o111) === 0) return null;
      return { ...hit, realPath, size: info.size, mtimeMs: info.mtimeMs, inode: info.ino };
    } catch {
      // A dangling symlink or a file removed since readdir: not an installation.
      return null;
    }
  });
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  for (const candidate of resolved) {
    if (!candidate || seen.has(candidate.realPath)) continue;
    seen.add(candidate.realPath);
    candidates.push(candidate);
  }
  return candidates;
}
