import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type Sqlite from 'better-sqlite3';
import { UpkeepError } from '../../core/errors.ts';
import { withLock } from '../../core/fs.ts';
import type { Phase } from '../plugin/manifest.ts';
import { quantile } from './estimate.ts';

/**
 * The history of every plugin phase (seed 002 §11.3), in SQLite under the
 * state folder. WAL and a busy timeout let two upkeep processes record at
 * once; a file that is not a database any more is moved aside and rebuilt
 * (DESIGN rule 5) rather than failing the run.
 */

/** One plugin phase as it ran. */
export interface PhaseRecord {
  runId: string;
  plugin: string;
  phase: Phase;
  /** ISO 8601, UTC. */
  startedAt: string;
  wallSeconds: number;
  /** Of the plugin's whole process tree. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  peakRssBytes: number;
  readBytes: number;
  writeBytes: number;
  /** What the phase downloaded (or estimate-update said it would); null when the plugin did not say. */
  downloadBytes: number | null;
  /** Packages the phase handled; null when the plugin did not say. */
  packageCount: number | null;
  success: boolean;
  /** 1 unless transient failures were retried. */
  attempts: number;
  /** The last error's code and message when it failed. */
  error: string | null;
}

export interface HistoryQuery {
  plugin?: string;
  phase?: Phase;
  /** At most this many records (default: all). */
  limit?: number;
  successOnly?: boolean;
}

/** One update run, from the phases it recorded. */
export interface RunSummary {
  runId: string;
  /** When its first phase started (ISO). */
  startedAt: string;
  /** From the first phase's start to the last one's end. */
  wallSeconds: number;
  plugins: string[];
  /** Plugins with at least one failed phase. */
  failures: string[];
}

export interface PhaseSummary {
  plugin: string;
  phase: Phase;
  count: number;
  successes: number;
  /** Of the successful runs; null when there were none. */
  medianSeconds: number | null;
  p90Seconds: number | null;
  /** When the latest run of this phase started (ISO). */
  lastRun: string;
}

export interface StatsDatabase {
  record(record: PhaseRecord): void;
  /** Newest first. */
  history(query?: HistoryQuery): PhaseRecord[];
  /** The latest runs, newest first. */
  runs(limit?: number): RunSummary[];
  /** Per plugin and phase, ordered by plugin then phase (estimate, download, update). */
  summary(): PhaseSummary[];
  close(): void;
}

export interface OpenedStatsDatabase {
  database: StatsDatabase;
  /** Set when a corrupt file was moved aside: say it once to the user. */
  warning?: string;
}

export const SCHEMA_VERSION = 1;
/** How long a writer waits for another process's transaction before giving up. */
const BUSY_TIMEOUT_MS = 10_000;

type Connection = Sqlite.Database;
type Driver = typeof Sqlite;

/**
 * Schema changes: entry i takes a database from version i to i + 1. A new
 * version appends an entry (ALTER TABLE ...) and bumps SCHEMA_VERSION; the
 * history users have gathered is never dropped.
 */
const MIGRATIONS: ReadonlyArray<(connection: Connection) => void> = [
  (connection) =>
    connection.exec(`
      CREATE TABLE plugin_phases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        plugin TEXT NOT NULL,
        phase TEXT NOT NULL,
        started_at TEXT NOT NULL,
        wall_seconds REAL NOT NULL,
        cpu_user_seconds REAL NOT NULL,
        cpu_system_seconds REAL NOT NULL,
        peak_rss_bytes INTEGER NOT NULL,
        read_bytes INTEGER NOT NULL,
        write_bytes INTEGER NOT NULL,
        download_bytes INTEGER,
        package_count INTEGER,
        success INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT
      );
      CREATE INDEX plugin_phases_by_plugin ON plugin_phases (plugin, phase, started_at);
      CREATE INDEX plugin_phases_by_run ON plugin_phases (run_id);
    `),
];

/**
 * Opens (creating the folder and the file when needed) the statistics
 * database. better-sqlite3 is a native module: it is imported here, on
 * first use, so that commands which never record history never load it.
 * Throws E_STATS_UNAVAILABLE when it cannot load or the file cannot be
 * opened; a corrupt file is renamed `<path>.corrupt-<time>` and replaced.
 */
/** Tries at opening a database another process is creating (about five seconds in all). */
const BUSY_RETRIES = 80;

export async function openStatsDatabase(path: string): Promise<OpenedStatsDatabase> {
  const driver = await loadDriver();
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw openFailed(path, error);
  }
  const attempt = async (): Promise<{ database: StatsDatabase } | { corruption: Error }> => {
    for (let retry = 0; ; retry += 1) {
      try {
        return { database: connect(driver, path) };
      } catch (error) {
        if (isCorruption(driver, error)) return { corruption: error as Error };
        if (error instanceof UpkeepError) throw error;
        // Switching a new file to WAL takes an exclusive lock without waiting on the busy
        // timeout: two processes creating the database at once must take turns.
        if (error instanceof driver.SqliteError && error.code.startsWith('SQLITE_BUSY') && retry < BUSY_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
          continue;
        }
        // The native addon loads in the constructor: an error that is not SQLite's is a module that cannot load.
        throw error instanceof driver.SqliteError ? openFailed(path, error) : moduleUnavailable(error);
      }
    }
  };
  const first = await attempt();
  if ('database' in first) return first;
  // Under a lock, so that two processes finding the same corrupt file move it aside once.
  return withLock(path, async () => {
    const again = await attempt();
    if ('database' in again) return again;
    const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(path, movedTo);
    // The old file's write-ahead log must not be replayed into the new file.
    await rename(`${path}-wal`, `${movedTo}-wal`).catch(() => undefined);
    await rm(`${path}-shm`, { force: true });
    const fresh = await attempt();
    if (!('database' in fresh)) throw openFailed(path, fresh.corruption);
    return {
      database: fresh.database,
      warning: `the statistics database ${path} was unreadable (${again.corruption.message}); it was moved to ${movedTo} and a new history was started`,
    };
  });
}

async function loadDriver(): Promise<Driver> {
  try {
    // By package name: the bundled CLI in dist/ keeps better-sqlite3 external and resolves it from node_modules.
    return (await import('better-sqlite3')).default;
  } catch (error) {
    throw moduleUnavailable(error);
  }
}

function moduleUnavailable(cause: unknown): UpkeepError {
  return new UpkeepError('E_STATS_UNAVAILABLE', `the statistics database needs the better-sqlite3 module, which could not be loaded: ${describe(cause)}`, {
    hint: 'reinstall upkeep with the Node.js that runs it (or run npm rebuild better-sqlite3 in its folder); updates still work, without history or estimates',
    cause,
  });
}

function openFailed(path: string, cause: unknown): UpkeepError {
  return new UpkeepError('E_STATS_UNAVAILABLE', `could not open the statistics database ${path}: ${describe(cause)}`, {
    hint: 'check that the state folder is writable and the disk is not full',
    cause,
    details: { path, code: (cause as { code?: unknown }).code },
  });
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function isCorruption(driver: Driver, error: unknown): boolean {
  if (!(error instanceof driver.SqliteError)) return false;
  return error.code === 'SQLITE_NOTADB' || error.code.startsWith('SQLITE_CORRUPT');
}

function connect(driver: Driver, path: string): StatsDatabase {
  const connection = new driver(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    // The first statements read the header: a file that is not a database fails here.
    connection.pragma('journal_mode = WAL');
    // With WAL this cannot corrupt the file; at worst a power cut loses the last record.
    connection.pragma('synchronous = NORMAL');
    migrate(connection);
    return new SqliteStatsDatabase(connection);
  } catch (error) {
    connection.close();
    throw error;
  }
}

function migrate(connection: Connection): void {
  // IMMEDIATE: two processes creating the same new file take turns instead of both migrating.
  connection
    .transaction(() => {
      connection.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const row = connection.prepare('SELECT max(version) AS version FROM schema_version').get() as { version: number | null };
      const current = row.version ?? 0;
      if (current > SCHEMA_VERSION) {
        throw new UpkeepError('E_STATS_UNAVAILABLE', `the statistics database ${connection.name} was written by a newer upkeep (schema ${current})`, {
          hint: 'upgrade upkeep, or move the file aside to start a new history',
          details: { path: connection.name, schemaVersion: current },
        });
      }
      if (current === SCHEMA_VERSION) return;
      for (let version = current; version < SCHEMA_VERSION; version++) MIGRATIONS[version]!(connection);
      connection.exec('DELETE FROM schema_version');
      connection.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
    })
    .immediate();
}

interface PhaseRow {
  run_id: string;
  plugin: string;
  phase: Phase;
  started_at: string;
  wall_seconds: number;
  cpu_user_seconds: number;
  cpu_system_seconds: number;
  peak_rss_bytes: number;
  read_bytes: number;
  write_bytes: number;
  download_bytes: number | null;
  package_count: number | null;
  success: number;
  attempts: number;
  error: string | null;
}

interface RunRow {
  run_id: string;
  started_at: string;
  wall_seconds: number;
  plugins: string;
  failures: string;
}

const COLUMNS =
  'run_id, plugin, phase, started_at, wall_seconds, cpu_user_seconds, cpu_system_seconds, peak_rss_bytes, read_bytes, write_bytes, download_bytes, package_count, success, attempts, error';
const PHASE_ORDER: Record<Phase, number> = { estimate: 0, download: 1, update: 2 };

class SqliteStatsDatabase implements StatsDatabase {
  private readonly insert: Sqlite.Statement<[PhaseRow]>;
  private readonly latestRuns: Sqlite.Statement<[number], RunRow>;
  private readonly everyPhase: Sqlite.Statement<[], Pick<PhaseRow, 'plugin' | 'phase' | 'started_at' | 'wall_seconds' | 'success'>>;
  /** One statement per combination of filters, so that each can use the index. */
  private readonly histories = new Map<string, Sqlite.Statement<[Record<string, unknown>], PhaseRow>>();

  constructor(private readonly connection: Connection) {
    this.insert = connection.prepare(
      `INSERT INTO plugin_phases (${COLUMNS}) VALUES (@run_id, @plugin, @phase, @started_at, @wall_seconds, @cpu_user_seconds,
       @cpu_system_seconds, @peak_rss_bytes, @read_bytes, @write_bytes, @download_bytes, @package_count, @success, @attempts, @error)`,
    );
    // julianday() reads the ISO times; a day is 86 400 s.
    this.latestRuns = connection.prepare(`
      SELECT run_id, min(started_at) AS started_at,
             (max(julianday(started_at) + wall_seconds / 86400.0) - min(julianday(started_at))) * 86400.0 AS wall_seconds,
             json_group_array(DISTINCT plugin) AS plugins,
             json_group_array(DISTINCT plugin) FILTER (WHERE success = 0) AS failures
      FROM plugin_phases GROUP BY run_id ORDER BY min(started_at) DESC, run_id LIMIT ?`);
    this.everyPhase = connection.prepare('SELECT plugin, phase, started_at, wall_seconds, success FROM plugin_phases ORDER BY plugin, phase');
  }

  record(record: PhaseRecord): void {
    this.insert.run({
      run_id: record.runId,
      plugin: record.plugin,
      phase: record.phase,
      started_at: record.startedAt,
      wall_seconds: record.wallSeconds,
      cpu_user_seconds: record.cpuUserSeconds,
      cpu_system_seconds: record.cpuSystemSeconds,
      peak_rss_bytes: Math.round(record.peakRssBytes),
      read_bytes: Math.round(record.readBytes),
      write_bytes: Math.round(record.writeBytes),
      download_bytes: record.downloadBytes === null ? null : Math.round(record.downloadBytes),
      package_count: record.packageCount,
      success: record.success ? 1 : 0,
      attempts: record.attempts,
      error: record.error,
    });
  }

  history(query: HistoryQuery = {}): PhaseRecord[] {
    const filters = [
      query.plugin === undefined ? null : 'plugin = @plugin',
      query.phase === undefined ? null : 'phase = @phase',
      query.successOnly ? 'success = 1' : null,
    ].filter((filter) => filter !== null);
    const key = filters.join(' AND ');
    let statement = this.histories.get(key);
    if (statement === undefined) {
      statement = this.connection.prepare(
        `SELECT ${COLUMNS} FROM plugin_phases ${key ? `WHERE ${key}` : ''} ORDER BY started_at DESC, id DESC LIMIT @limit`,
      );
      this.histories.set(key, statement);
    }
    const parameters: Record<string, unknown> = { limit: query.limit ?? -1 };
    if (query.plugin !== undefined) parameters.plugin = query.plugin;
    if (query.phase !== undefined) parameters.phase = query.phase;
    return statement.all(parameters).map(toRecord);
  }

  runs(limit = 20): RunSummary[] {
    return this.latestRuns.all(limit).map((row) => ({
      runId: row.run_id,
      startedAt: row.started_at,
      wallSeconds: Math.round(row.wall_seconds * 1000) / 1000,
      plugins: (JSON.parse(row.plugins) as string[]).toSorted(),
      failures: (JSON.parse(row.failures) as string[]).toSorted(),
    }));
  }

  summary(): PhaseSummary[] {
    const groups = new Map<string, { plugin: string; phase: Phase; count: number; durations: number[]; lastRun: string }>();
    for (const row of this.everyPhase.iterate()) {
      const key = `${row.plugin}\u0000${row.phase}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { plugin: row.plugin, phase: row.phase, count: 0, durations: [], lastRun: row.started_at };
        groups.set(key, group);
      }
      group.count++;
      if (row.success === 1) group.durations.push(row.wall_seconds);
      if (row.started_at > group.lastRun) group.lastRun = row.started_at;
    }
    return [...groups.values()]
      .sort((a, b) => a.plugin.localeCompare(b.plugin) || PHASE_ORDER[a.phase] - PHASE_ORDER[b.phase])
      .map((group) => {
        const sorted = group.durations.toSorted((a, b) => a - b);
        return {
          plugin: group.plugin,
          phase: group.phase,
          count: group.count,
          successes: sorted.length,
          medianSeconds: sorted.length === 0 ? null : quantile(sorted, 0.5),
          p90Seconds: sorted.length === 0 ? null : quantile(sorted, 0.9),
          lastRun: group.lastRun,
        };
      });
  }

  close(): void {
    this.connection.close();
  }
}

function toRecord(row: PhaseRow): PhaseRecord {
  return {
    runId: row.run_id,
    plugin: row.plugin,
    phase: row.phase,
    startedAt: row.started_at,
    wallSeconds: row.wall_seconds,
    cpuUserSeconds: row.cpu_user_seconds,
    cpuSystemSeconds: row.cpu_system_seconds,
    peakRssBytes: row.peak_rss_bytes,
    readBytes: row.read_bytes,
    writeBytes: row.write_bytes,
    downloadBytes: row.download_bytes,
    packageCount: row.package_count,
    success: row.success === 1,
    attempts: row.attempts,
    error: row.error,
  };
}
