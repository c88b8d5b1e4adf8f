import { readdir, realpath, stat } from 'node:fs/promises';
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

export async function indexFolders(folders: SearchFolder[]): Promise<FolderIndex> {
  const listings = await Promise.all(
    folders.map(async (folder) => {
      try {
        return [folder.path, new Set(await readdir(folder.path))] as const;
      } catch {
        return [folder.path, new Set<string>()] as const;
      }
    }),
  );
  return { folders, names: new Map(listings) };
}

/** Every executable file named one of `binaries`, in search order, one per real path. */
export async function findCandidates(index: FolderIndex, binaries: readonly string[]): Promise<Candidate[]> {
  const hits: Array<{ path: string; onPath: boolean }> = [];
  for (const folder of index.folders) {
    const names = index.names.get(folder.path);
    if (!names) continue;
    for (const binary of binaries) {
      if (names.has(binary)) hits.push({ path: join(folder.path, binary), onPath: folder.onPath });
    }
  }
  if (hits.length === 0) return [];
  const resolved = await Promise.all(
    hits.map(async (hit) => {
      try {
        const realPath = await realpath(hit.path);
        const info = await stat(realPath);
        if (!info.isFile() || (info.mode & 0o111) === 0) return null;
        return { ...hit, realPath, size: info.size, mtimeMs: info.mtimeMs, inode: info.ino };
      } catch {
        // A dangling symlink or a file removed since readdir: not an installation.
        return null;
      }
    }),
  );
  const seen = new Set<string>();
  const candidates: Candidate[] = [];
  for (const candidate of resolved) {
    if (!candidate || seen.has(candidate.realPath)) continue;
    seen.add(candidate.realPath);
    candidates.push(candidate);
  }
  return candidates;
}
