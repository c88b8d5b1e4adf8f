import { join } from 'node:path';
import type { Method } from '../catalog/schema.ts';
import { readJsonFile, withLock, writeJsonAtomic } from '../core/fs.ts';
import * as z from '../core/zod.ts';

/**
 * What upkeep itself installed: the method, the version and, for methods
 * that place files (binary, go), the files with their digests. Uninstall and
 * upgrade read it to act with the same method; the audit alone cannot tell a
 * downloaded release binary from one copied by hand.
 */

const RecordSchema = z.strictObject({
  method: z.string(),
  version: z.nullable(z.string()),
  installedAt: z.string(),
  packages: z.optional(z.array(z.string())),
  files: z.optional(z.array(z.strictObject({ path: z.string(), sha256: z.string() }))),
});
const RecordsSchema = z.strictObject({
  schemaVersion: z.literal(1),
  tools: z.record(z.string(), RecordSchema),
});
export type InstallRecord = z.infer<typeof RecordSchema> & { method: Method };
type Records = z.infer<typeof RecordsSchema>;

export function recordsFile(stateFolder: string): string {
  return join(stateFolder, 'installs-v1.json');
}

export async function readRecords(stateFolder: string): Promise<{ records: Map<string, InstallRecord>; warning?: string }> {
  const read = await readJsonFile(recordsFile(stateFolder), (raw) => RecordsSchema.parse(raw));
  if (read.status === 'ok') return { records: new Map(Object.entries(read.value.tools) as Array<[string, InstallRecord]>) };
  if (read.status === 'corrupt') {
    return { records: new Map(), warning: `the install records were unreadable (${read.reason}) and were set aside${read.movedTo ? ` as ${read.movedTo}` : ''}` };
  }
  return { records: new Map() };
}

/** Sets (or with null, removes) one tool's record, under the file's lock. */
export async function updateRecord(stateFolder: string, toolId: string, record: InstallRecord | null): Promise<void> {
  const file = recordsFile(stateFolder);
  await withLock(file, async () => {
    const read = await readJsonFile(file, (raw) => RecordsSchema.parse(raw));
    const current: Records = read.status === 'ok' ? read.value : { schemaVersion: 1, tools: {} };
    if (record) current.tools[toolId] = record;
    else delete current.tools[toolId];
    await writeJsonAtomic(file, current);
  });
}
