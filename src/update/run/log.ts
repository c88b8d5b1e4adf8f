import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { redact } from '../../core/log.ts';

/**
 * The structured log of update runs (seed 002 §11.4): JSON lines, rotated
 * when a run starts and the file has passed `maxBytes` (update.log ->
 * update.log.1 ... .keep, the oldest dropped). One run's output is far below
 * the limit, so rotating between runs keeps each run whole in one file.
 */
export interface RunLog {
  write(entry: Record<string, unknown>): void;
  close(): Promise<void>;
}

export interface RunLogOptions {
  maxBytes?: number;
  keep?: number;
}

const MAX_BYTES = 10 * 1024 * 1024;
const KEEP = 5;

export async function openRunLog(path: string, options: RunLogOptions = {}): Promise<RunLog> {
  await mkdir(dirname(path), { recursive: true });
  await rotateWhenLarger(path, options);
  const stream = createWriteStream(path, { flags: 'a' });
  return {
    write(entry) {
      stream.write(`${JSON.stringify(redact({ time: new Date().toISOString(), ...entry }))}\n`);
    },
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

/** Rotates the log when it has passed `maxBytes` (10 MiB); true when it did. */
export async function rotateWhenLarger(path: string, options: RunLogOptions = {}): Promise<boolean> {
  const size = await stat(path).then((info) => info.size, () => 0);
  if (size < (options.maxBytes ?? MAX_BYTES)) return false;
  await rotate(path, options.keep ?? KEEP);
  return true;
}

async function rotate(path: string, keep: number): Promise<void> {
  await rm(`${path}.${keep}`, { force: true });
  for (let index = keep - 1; index >= 1; index -= 1) {
    await rename(`${path}.${index}`, `${path}.${index + 1}`).catch(() => undefined);
  }
  await rename(path, `${path}.1`).catch(() => undefined);
}
