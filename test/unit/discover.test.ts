import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findCandidates, indexFolders, searchFolders } from '../../src/audit/discover.ts';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-discover-'));
});
afterEach(async () => rm(root, { recursive: true, force: true }));

async function executable(path: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, '#!/bin/sh\n');
  await chmod(path, 0o755);
}

describe('searchFolders', () => {
  it('keeps PATH order, then extra folders, expanding ~ and dropping repeats', () => {
    const folders = searchFolders('/usr/local/bin:/usr/bin::/usr/bin', ['~/.cargo/bin', '/usr/local/bin'], '/home/ada', '/work');
    expect(folders).toEqual([
      { path: '/usr/local/bin', onPath: true },
      { path: '/usr/bin', onPath: true },
      { path: '/home/ada/.cargo/bin', onPath: false },
    ]);
  });
});

describe('findCandidates', () => {
  it('finds every installation in search order, once per real path, executables only', async () => {
    const first = join(root, 'first');
    const second = join(root, 'second');
    const extra = join(root, 'extra');
    await executable(join(first, 'rg'));
    await mkdir(second, { recursive: true });
    await symlink(join(first, 'rg'), join(second, 'rg'));
    await executable(join(extra, 'rg'));
    await writeFile(join(second, 'fd'), 'not executable');
    await mkdir(join(first, 'fd'));
    await symlink(join(root, 'missing'), join(extra, 'fd'));

    const index = indexFolders(searchFolders(`${first}:${second}:${join(root, 'absent')}`, [extra], root, root));
    const rg = findCandidates(index, ['rg']);
    expect(rg.map((candidate) => [candidate.path, candidate.onPath])).toEqual([
      [join(first, 'rg'), true],
      [join(extra, 'rg'), false],
    ]);
    expect(rg[0]!.realPath).toBe(join(first, 'rg'));
    expect(findCandidates(index, ['fd'])).toEqual([]);
  });

  it('looks for every binary name of a tool', async () => {
    const bin = join(root, 'bin');
    await executable(join(bin, 'ast-grep'));
    await symlink(join(bin, 'ast-grep'), join(bin, 'sg'));
    await executable(join(root, 'other', 'sg'));
    const index = indexFolders(searchFolders(`${bin}:${join(root, 'other')}`, [], root, root));
    const found = findCandidates(index, ['ast-grep', 'sg']);
    expect(found.map((candidate) => candidate.path)).toEqual([join(bin, 'ast-grep'), join(root, 'other', 'sg')]);
  });
});
