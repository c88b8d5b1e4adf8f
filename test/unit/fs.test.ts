import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readJsonFile, withLock, writeJsonAtomic } from '../../src/core/fs.ts';

let folder: string;
beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'upkeep-fs-'));
});
afterEach(async () => rm(folder, { recursive: true, force: true }));

const validate = (raw: unknown): { schemaVersion: 1; value: number } => {
  const document = raw as { schemaVersion?: number; value?: unknown };
  if (document.schemaVersion !== 1 || typeof document.value !== 'number') throw new Error('wrong shape');
  return document as { schemaVersion: 1; value: number };
};

describe('writeJsonAtomic and readJsonFile', () => {
  it('writes into folders that do not exist yet and reads back', async () => {
    const path = join(folder, 'a', 'b', 'file.json');
    await writeJsonAtomic(path, { schemaVersion: 1, value: 7 });
    expect(await readJsonFile(path, validate)).toEqual({ status: 'ok', value: { schemaVersion: 1, value: 7 } });
    expect(await readdir(join(folder, 'a', 'b'))).toEqual(['file.json']);
  });

  it('says missing for an absent file', async () => {
    expect(await readJsonFile(join(folder, 'none.json'), validate)).toEqual({ status: 'missing' });
  });

  it.each([
    ['truncated JSON', '{"schemaVersion": 1, "val'],
    ['the wrong shape', '{"schemaVersion": 2, "value": "x"}'],
    ['an empty file', ''],
  ])('moves a file holding %s aside, keeping its bytes', async (_label, content) => {
    const path = join(folder, 'state.json');
    await writeFile(path, content);
    const result = await readJsonFile(path, validate);
    expect(result.status).toBe('corrupt');
    if (result.status !== 'corrupt') return;
    expect(result.movedTo).toMatch(/state\.json\.corrupt-/);
    expect(await readFile(result.movedTo!, 'utf8')).toBe(content);
    expect(await readJsonFile(path, validate)).toEqual({ status: 'missing' });
  });
});

describe('withLock', () => {
  it('serialises read-modify-write across concurrent writers so that none is lost', async () => {
    const path = join(folder, 'counter.json');
    await writeJsonAtomic(path, { schemaVersion: 1, value: 0 });
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withLock(path, async () => {
          const current = await readJsonFile(path, validate);
          const value = current.status === 'ok' ? current.value.value : 0;
          await new Promise((done) => setTimeout(done, 2));
          await writeJsonAtomic(path, { schemaVersion: 1, value: value + 1 });
        }),
      ),
    );
    const final = await readJsonFile(path, validate);
    expect(final).toEqual({ status: 'ok', value: { schemaVersion: 1, value: 20 } });
  });

  it('releases the lock when the action throws', async () => {
    const path = join(folder, 'x.json');
    await expect(withLock(path, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await withLock(path, async () => 'again')).toBe('again');
  });
});
