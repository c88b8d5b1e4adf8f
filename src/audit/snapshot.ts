import { join } from 'node:path';
import * as z from '../core/zod.ts';
import { CATEGORIES } from '../catalog/schema.ts';
import { ExitCode, UpkeepError } from '../core/errors.ts';
import { readJsonFile, writeJsonAtomic } from '../core/fs.ts';
import { INSTALL_METHODS, type AuditDocument } from './types.ts';

/**
 * The audit document, as `--json` prints it, is also the snapshot that
 * `--collect-only` writes and `--from-snapshot` renders without spawning
 * anything or touching the network.
 */

const method = z.enum(INSTALL_METHODS);

const InstallationSchema = z.object({
  path: z.string(),
  realPath: z.string(),
  version: z.nullable(z.string()),
  method,
  reason: z.string(),
  onPath: z.optional(z.boolean()),
  differentTool: z.optional(z.string()),
  error: z.optional(z.string()),
  shimTarget: z.optional(z.string()),
});

export const AuditDocumentSchema = z.object({
  schemaVersion: z.literal(1),
  meta: z.object({ createdAt: z.string(), offline: z.boolean(), host: z.string(), upkeepVersion: z.string() }),
  tools: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      category: z.enum(CATEGORIES),
      status: z.enum(['up-to-date', 'outdated', 'ahead', 'not-installed', 'different-tool', 'unknown']),
      delta: z.optional(z.enum(['major', 'minor', 'patch'])),
      reason: z.optional(z.string()),
      upgrade: z.optional(z.string()),
      installed: z.nullable(z.object({ version: z.nullable(z.string()), path: z.string(), method, reason: z.string() })),
      installations: z.array(InstallationSchema),
      latest: z.nullable(
        z.object({
          version: z.string(),
          source: z.string(),
          url: z.nullable(z.string()),
          stale: z.boolean(),
          fetchedAt: z.nullable(z.string()),
        }),
      ),
    }),
  ),
});

export function defaultSnapshotPath(stateFolder: string): string {
  return join(stateFolder, 'snapshot-v1.json');
}

export async function writeSnapshot(path: string, document: AuditDocument): Promise<void> {
  await writeJsonAtomic(path, document);
}

export async function readSnapshot(path: string): Promise<AuditDocument> {
  const result = await readJsonFile(path, (raw) => AuditDocumentSchema.parse(raw) as AuditDocument);
  if (result.status === 'ok') return result.value;
  if (result.status === 'missing') {
    throw new UpkeepError('E_SNAPSHOT_MISSING', `there is no snapshot at ${path}`, {
      hint: 'run `upkeep audit --collect-only` (or any `upkeep audit`) first',
      exitCode: ExitCode.failure,
    });
  }
  throw new UpkeepError('E_SNAPSHOT_INVALID', `the snapshot ${path} is unreadable: ${result.reason}`, {
    hint: `it was moved to ${result.movedTo ?? 'a .corrupt file'}; run \`upkeep audit --collect-only\` to write a new one`,
  });
}
