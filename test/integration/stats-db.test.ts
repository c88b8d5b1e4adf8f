import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Executor } from '../../src/core/exec.ts';
import { openStatsDatabase, type PhaseRecord, type StatsDatabase } from '../../src/update/stats/db.ts';

let folder: string;
let path: string;
const opened: StatsDatabase[] = [];

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'upkeep-stats-'));
  path = join(folder, 'state', 'upkeep', 'stats.db');
});
afterEach(async () => {
  for (const database of opened.splice(0)) database.close();
  await rm(folder, { recursive: true, force: true });
});

async function open(): Promise<{ database: StatsDatabase; warning?: string }> {
  const result = await openStatsDatabase(path);
  opened.push(result.database);
  return result;
}

function phase(overrides: Partial<PhaseRecord>): PhaseRecord {
  return {
    runId: 'run-1',
    plugin: 'apt',
    phase: 'update',
    startedAt: '2025-03-01T10:00:00.000Z',
    wallSeconds: 30,
    cpuUserSeconds: 4.5,
    cpuSystemSeconds: 1.25,
    peakRssBytes: 52_428_800,
    readBytes: 1_000_000,
    writeBytes: 2_000_000,
    downloadBytes: 12_345_678,
    packageCount: 7,
    success: true,
    attempts: 1,
    error: null,
    ...overrides,
  };
}

describe('openStatsDatabase', () => {
  it('creates the folder and the file, and gives back what was recorded', async () => {
    const { database, warning } = await open();
    expect(warning).toBeUndefined();
    const failed = phase({ runId: 'run-2', success: false, attempts: 3, error: 'NETWORK_ERROR: mirror unreachable', downloadBytes: null, packageCount: null });
    database.record(phase({}));
    database.record(failed);
    expect(database.history()).toEqual([failed, phase({})]);
  });

  it('keeps the history across connections and stamps the schema version', async () => {
    const first = await open();
    first.database.record(phase({}));
    first.database.close();
    opened.pop();
    const second = await open();
    expect(second.warning).toBeUndefined();
    expect(second.database.history()).toEqual([phase({})]);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare('SELECT version FROM schema_version').all()).toEqual([{ version: 1 }]);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });

  it('refuses a database written by a newer upkeep instead of guessing at its tables', async () => {
    (await open()).database.close();
    opened.pop();
    const raw = new Database(path);
    raw.prepare('UPDATE schema_version SET version = 2').run();
    raw.close();
    await expect(openStatsDatabase(path)).rejects.toMatchObject({ code: 'E_STATS_UNAVAILABLE', message: expect.stringMatching(/newer upkeep/) });
  });

  it('moves a corrupt file aside, says so, and starts a new history that works', async () => {
    await open().then(({ database }) => database.close());
    opened.pop();
    const garbage = Buffer.from('these bytes are not an SQLite database '.repeat(200));
    await writeFile(path, garbage);

    const { database, warning } = await open();
    const folderContents = await readdir(join(folder, 'state', 'upkeep'));
    const moved = folderContents.filter((name) => name.startsWith('stats.db.corrupt-'));
    expect(moved).toHaveLength(1);
    expect(moved[0]).not.toContain(':');
    expect(warning).toContain(join(folder, 'state', 'upkeep', moved[0]!));
    expect(warning).toMatch(/unreadable.*new history/);
    expect(await readFile(join(folder, 'state', 'upkeep', moved[0]!))).toEqual(garbage);

    database.record(phase({}));
    expect(database.history()).toEqual([phase({})]);
    database.close();
    opened.pop();
    expect((await open()).warning).toBeUndefined();
  });
});

describe('history', () => {
  let database: StatsDatabase;
  beforeEach(async () => {
    ({ database } = await open());
    const records = [
      phase({ plugin: 'apt', phase: 'estimate', startedAt: '2025-03-01T10:00:00.000Z', wallSeconds: 2 }),
      phase({ plugin: 'apt', phase: 'update', startedAt: '2025-03-01T10:00:05.000Z', wallSeconds: 40 }),
      phase({ plugin: 'npm', phase: 'update', startedAt: '2025-03-01T10:00:06.000Z', wallSeconds: 9, success: false, error: 'E' }),
      phase({ runId: 'run-2', plugin: 'apt', phase: 'update', startedAt: '2025-03-02T10:00:05.000Z', wallSeconds: 35, success: false, error: 'E' }),
      phase({ runId: 'run-2', plugin: 'apt', phase: 'update', startedAt: '2025-03-02T10:00:05.000Z', wallSeconds: 36 }),
      phase({ runId: 'run-3', plugin: 'apt', phase: 'update', startedAt: '2025-03-03T10:00:05.000Z', wallSeconds: 50 }),
    ];
    for (const record of records) database.record(record);
  });

  const seconds = (records: PhaseRecord[]) => records.map((record) => record.wallSeconds);

  it('lists newest first, the later of two records at the same instant first', () => {
    expect(seconds(database.history())).toEqual([50, 36, 35, 9, 40, 2]);
  });

  it('filters by plugin, phase and success, and limits', () => {
    expect(seconds(database.history({ plugin: 'apt' }))).toEqual([50, 36, 35, 40, 2]);
    expect(seconds(database.history({ plugin: 'apt', phase: 'update' }))).toEqual([50, 36, 35, 40]);
    expect(seconds(database.history({ plugin: 'apt', phase: 'update', successOnly: true }))).toEqual([50, 36, 40]);
    expect(seconds(database.history({ phase: 'update', successOnly: true, limit: 2 }))).toEqual([50, 36]);
    expect(seconds(database.history({ plugin: 'npm', successOnly: true }))).toEqual([]);
    expect(database.history({ plugin: 'pacman' })).toEqual([]);
  });

  it('summarises runs: first start to last end, plugins, plugins that failed', () => {
    expect(database.runs()).toEqual([
      { runId: 'run-3', startedAt: '2025-03-03T10:00:05.000Z', wallSeconds: 50, plugins: ['apt'], failures: [] },
      { runId: 'run-2', startedAt: '2025-03-02T10:00:05.000Z', wallSeconds: 36, plugins: ['apt'], failures: ['apt'] },
      // apt's update started 5 s in and lasted 40 s: the run ended 45 s after it began.
      { runId: 'run-1', startedAt: '2025-03-01T10:00:00.000Z', wallSeconds: 45, plugins: ['apt', 'npm'], failures: ['npm'] },
    ]);
    expect(database.runs(1).map((run) => run.runId)).toEqual(['run-3']);
  });
});

describe('summary', () => {
  it('counts runs and successes and gives the median and 90th percentile of successful ones', async () => {
    const { database } = await open();
    [10, 20, 30, 40, 50].forEach((wallSeconds, day) =>
      database.record(phase({ runId: `run-${day}`, startedAt: `2025-03-0${day + 1}T10:00:00.000Z`, wallSeconds })),
    );
    database.record(phase({ runId: 'run-9', startedAt: '2025-03-09T10:00:00.000Z', wallSeconds: 999, success: false, error: 'E' }));
    database.record(phase({ phase: 'download', wallSeconds: 12 }));
    database.record(phase({ plugin: 'npm', success: false, error: 'E' }));
    expect(database.summary()).toEqual([
      { plugin: 'apt', phase: 'download', count: 1, successes: 1, medianSeconds: 12, p90Seconds: 12, lastRun: '2025-03-01T10:00:00.000Z' },
      // 90th percentile interpolated between 40 and 50.
      { plugin: 'apt', phase: 'update', count: 6, successes: 5, medianSeconds: 30, p90Seconds: 46, lastRun: '2025-03-09T10:00:00.000Z' },
      { plugin: 'npm', phase: 'update', count: 1, successes: 0, medianSeconds: null, p90Seconds: null, lastRun: '2025-03-01T10:00:00.000Z' },
    ]);
  });
});

describe('two processes', () => {
  it('create the same database and record into it at once, losing nothing', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const module = fileURLToPath(new URL('../../src/update/stats/db.ts', import.meta.url));
    // Both wait for each other before opening, so that creation, migration and writes overlap.
    const child = (name: string) => `
      import { existsSync, writeFileSync } from 'node:fs';
      const { openStatsDatabase } = await import(${JSON.stringify(module)});
      writeFileSync(${JSON.stringify(join(folder, 'ready-'))} + ${JSON.stringify(name)}, '');
      const other = ${JSON.stringify(join(folder, 'ready-'))} + (${JSON.stringify(name)} === 'a' ? 'b' : 'a');
      while (!existsSync(other)) await new Promise((resolve) => setTimeout(resolve, 5));
      const { database } = await openStatsDatabase(${JSON.stringify(path)});
      for (let index = 0; index < 300; index++) {
        database.record({
          runId: ${JSON.stringify(name)} + '-' + index, plugin: ${JSON.stringify(name)}, phase: 'update',
          startedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, index)).toISOString(), wallSeconds: index,
          cpuUserSeconds: 0, cpuSystemSeconds: 0, peakRssBytes: 0, readBytes: 0, writeBytes: 0,
          downloadBytes: null, packageCount: null, success: true, attempts: 1, error: null,
        });
        if (index % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      database.close();
    `;
    const executor = new Executor();
    const run = (name: string) =>
      executor.run([process.execPath, '--import', 'tsx', '--input-type=module', '-e', child(name)], { cwd: root, timeout: 60_000 });
    const results = await Promise.all([run('a'), run('b')]);
    for (const result of results) expect(result.exitCode, result.stderr).toBe(0);

    const { database } = await open();
    for (const plugin of ['a', 'b']) {
      const records = database.history({ plugin });
      expect(records).toHaveLength(300);
      expect(new Set(records.map((record) => record.runId)).size).toBe(300);
    }
  });
});
