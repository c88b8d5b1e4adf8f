import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { redact } from '../../core/log.ts';

/**
 * The structured log of update runs (seed 002 §11.4): JSON lines, rotated when
 * the file passes `maxBytes` (update.log -> update.log.1 ... .keep, the oldest
 * dropped). Rotation is checked when the log opens and as it grows, so one
 * long run cannot fill the disk either.
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
  const maxBytes = options.maxBytes ?? MAX_BYTES;
  const keep = options.keep ?? KEEP;
  await mkdir(dirname(path), { recursive: true });
  let size = await stat(path).then((info) => info.size, () => 0);
  if (size >= maxBytes) {
    await rotate(path, keep);
    size = 0;
  }
  let stream: WriteStream = createWriteStream(path, { flags: 'a' });
  let rotating: Promise<void> = Promise.resolve();
  return {
    write(entry) {
      const line = `${JSON.stringify(redact({ time: new Date().toISOString(), ...entry }))}\n`;
      size += Buffer.byteLength(line);
      stream.write(line);
      if (size >= maxBytes) {
        size = 0;
        const full = stream;
        stream = createWriteStream(`${path}.next`, { flags: 'a' });
        // The lines written meanwhile go to .next, which becomes the fresh log.
        rotating = rotating.then(async () => {
          await new Promise<void>((resolve) => full.end(resolve));
          await rotate(path, keep);
          await rename(`${path}.next`, path).catch(() => undefined);
        });
      }
    },
    async close() {
      await rotating;
      await new Promise<void>((resolve) => stream.end(resolve));
    },
  };
}

async function rotate(path: string, keep: number): Promise<void> {
  await rm(`${path}.${keep}`, { force: true });
  for (let index = keep - 1; index >= 1; index -= 1) {
    await rename(`${path}.${index}`, `${path}.${index + 1}`).catch(() => undefined);
  }
  await rename(path, `${path}.1`).catch(() => undefined);
}
