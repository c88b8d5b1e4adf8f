import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UpkeepError } from '../core/errors.ts';
import { readJsonFile, writeJsonAtomic } from '../core/fs.ts';
import * as z from '../core/zod.ts';

/**
 * Backups made before an upgrade: the binary and the tool's listed config
 * files, copied with their sha256 digests into
 * <data>/backups/<tool>/<time>/, with a manifest. Restoring checks every
 * digest before it copies anything back, so a damaged backup never
 * half-restores.
 */

const ManifestSchema = z.strictObject({
  schemaVersion: z.literal(1),
  tool: z.string(),
  version: z.nullable(z.string()),
  method: z.string(),
  /** The system or registry package, when the method has one. */
  package: z.optional(z.string()),
  createdAt: z.string(),
  files: z.array(
    z.strictObject({
      original: z.string(),
      stored: z.string(),
      sha256: z.string(),
      mode: z.number(),
    }),
  ),
});
export type BackupManifest = z.infer<typeof ManifestSchema>;

export interface Backup {
  folder: string;
  manifest: BackupManifest;
}

export function backupsFolder(dataFolder: string, toolId: string): string {
  return join(dataFolder, 'backups', toolId);
}

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

export interface CreateBackupOptions {
  dataFolder: string;
  tool: string;
  version: string | null;
  method: string;
  package?: string;
  /** Files to copy; missing ones (a config file never written) are skipped. */
  files: string[];
  now: Date;
  /** Backups kept per tool; older ones are removed after this one is made. */
  keep: number;
}

export async function createBackup(options: CreateBackupOptions): Promise<Backup> {
  const stamp = options.now.toISOString().replace(/[:.]/g, '-');
  const folder = join(backupsFolder(options.dataFolder, options.tool), stamp);
  await mkdir(folder, { recursive: true });
  const files: BackupManifest['files'] = [];
  for (const [index, original] of [...new Set(options.files)].entries()) {
    const info = await stat(original).catch(() => null);
    if (!info?.isFile()) continue;
    const stored = `${index}-${basename(original)}`;
    await copyFile(original, join(folder, stored));
    files.push({ original, stored, sha256: await sha256File(join(folder, stored)), mode: info.mode & 0o7777 });
  }
  const manifest: BackupManifest = {
    schemaVersion: 1,
    tool: options.tool,
    version: options.version,
    method: options.method,
    ...(options.package ? { package: options.package } : {}),
    createdAt: options.now.toISOString(),
    files,
  };
  await writeJsonAtomic(join(folder, 'manifest.json'), manifest);
  await pruneBackups(options.dataFolder, options.tool, options.keep);
  return { folder, manifest };
}

/** Backups of a tool, newest first; unreadable ones are left out. */
export async function listBackups(dataFolder: string, toolId: string): Promise<Backup[]> {
  const root = backupsFolder(dataFolder, toolId);
  const names = await readdir(root).catch(() => [] as string[]);
  const backups: Backup[] = [];
  for (const name of names.sort().reverse()) {
    const folder = join(root, name);
    const read = await readJsonFile(join(folder, 'manifest.json'), (raw) => ManifestSchema.parse(raw));
    if (read.status === 'ok') backups.push({ folder, manifest: read.value });
  }
  return backups;
}

async function pruneBackups(dataFolder: string, toolId: string, keep: number): Promise<void> {
  const root = backupsFolder(dataFolder, toolId);
  const names = (await readdir(root).catch(() => [] as string[])).sort().reverse();
  for (const name of names.slice(keep)) await rm(join(root, name), { recursive: true, force: true });
}

/** Checks every digest, then copies each file back atomically with its mode. */
export async function restoreBackup(backup: Backup): Promise<string[]> {
  for (const file of backup.manifest.files) {
    const digest = await sha256File(join(backup.folder, file.stored)).catch(() => null);
    if (digest !== file.sha256) {
      throw new UpkeepError('E_BACKUP_CORRUPT', `the backup of ${file.original} in ${backup.folder} does not match its recorded digest`, {
        hint: `nothing was restored; copy the files from ${backup.folder} by hand if you trust them, or reinstall ${backup.manifest.tool}`,
      });
    }
  }
  const restored: string[] = [];
  for (const file of backup.manifest.files) {
    await mkdir(dirname(file.original), { recursive: true });
    const temporary = join(dirname(file.original), `.${basename(file.original)}.upkeep-restore`);
    await copyFile(join(backup.folder, file.stored), temporary);
    await chmod(temporary, file.mode);
    await rename(temporary, file.original);
    restored.push(file.original);
  }
  return restored;
}
