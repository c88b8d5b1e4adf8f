import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/cli/context.ts';
import { createUpdateDisplay, formatBytes, formatClock, renderSummary } from '../../src/cli/output/update.ts';
import { silentLogger } from '../../src/core/log.ts';
import { resolvePaths } from '../../src/core/paths.ts';
import { openRunLog } from '../../src/update/run/log.ts';
import type { UpdateEvent, UpdateReport } from '../../src/update/run/orchestrator.ts';

function contextFor(options: { tty: boolean; json?: boolean; verbose?: boolean }): { context: Context; stdout: () => string; stderr: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const context: Context = {
    environment: {},
    cwd: '/',
    home: '/',
    stdout,
    stderr,
    stderrIsTTY: options.tty,
    color: false,
    json: options.json ?? false,
    quiet: false,
    verbose: options.verbose ?? false,
    paths: resolvePaths({ HOME: '/nowhere' }),
    logger: silentLogger,
    now: () => new Date(),
    uid: 0,
    pid: 1,
    selfCommand: null,
    onInterrupt: () => () => undefined,
    confirm: null,
    readStdin: async () => '',
  };
  return { context, stdout: () => out, stderr: () => err };
}

const time = '2026-11-21T10:00:00.000Z';
const estimate = { seconds: 30, low: 20, high: 40, dataPoints: 6, basis: 'history' as const };
const run: UpdateEvent[] = [
  { type: 'run', runId: 'r1', status: 'estimating', time },
  { type: 'estimate', plugin: 'apt', applicable: true, updates: 12, downloadBytes: 245 * 1024 * 1024, securityUpdates: true, requiresReboot: false, estimates: { update: estimate }, time },
  { type: 'estimate', plugin: 'snap', applicable: false, reason: 'snap not found', updates: 0, downloadBytes: 0, securityUpdates: false, requiresReboot: false, estimates: {}, time },
  { type: 'plan', estimate: { seconds: 30, low: 20, high: 40 }, time },
  { type: 'phase', plugin: 'apt', phase: 'update', status: 'running', attempt: 1, time },
  { type: 'progress', plugin: 'apt', phase: 'update', percent: 40, message: 'Unpacking curl', time },
  { type: 'output', plugin: 'apt', phase: 'update', line: 'Setting up curl', time },
];

describe('the update display', () => {
  it('draws a live table on a terminal: overall bar, one row per plugin with progress, ETA and download', () => {
    const { context, stderr, stdout } = contextFor({ tty: true });
    const display = createUpdateDisplay(context);
    for (const event of run) display.event(event);
    display.done();
    const screen = stderr();
    expect(screen).toContain('Overall');
    expect(screen).toMatch(/● apt\s+updating\s+━+ 40%/);
    expect(screen).toContain('245 MB');
    expect(screen).toContain('Unpacking curl');
    // Does-not-apply plugins stay out of the table unless --verbose.
    expect(screen).not.toContain('snap');
    // Redrawn in place: the cursor goes back up over the previous drawing.
    expect(screen).toMatch(/\u001b\[\d+A/);
    expect(stdout()).toBe('');
  });

  it('prints plain lines elsewhere, with plugin output only when verbose', () => {
    const quietLines = contextFor({ tty: false });
    const plain = createUpdateDisplay(quietLines.context);
    for (const event of run) plain.event(event);
    expect(quietLines.stderr()).toContain('apt: 12 updates pending');
    expect(quietLines.stderr()).toContain('apt: update started');
    expect(quietLines.stderr()).not.toContain('Setting up curl');
    expect(quietLines.stderr()).not.toMatch(/\u001b\[/);
    const verbose = contextFor({ tty: false, verbose: true });
    const loud = createUpdateDisplay(verbose.context);
    for (const event of run) loud.event(event);
    expect(verbose.stderr()).toContain('apt| Setting up curl');
  });

  it('streams one JSON object per event on stdout with --json (output lines only when verbose)', () => {
    const { context, stdout, stderr } = contextFor({ tty: true, json: true });
    const display = createUpdateDisplay(context);
    for (const event of run) display.event(event);
    const lines = stdout().trim().split('\n').map((line) => JSON.parse(line) as UpdateEvent);
    expect(lines.map((event) => event.type)).toEqual(['run', 'estimate', 'estimate', 'plan', 'phase', 'progress']);
    expect(stderr()).toBe('');
  });

  it('summarises a run: time, counts, failures with their errors, downloads, reboot', () => {
    const report = {
      runId: 'r1',
      kind: 'run',
      status: 'failed',
      dryRun: false,
      startedAt: time,
      endedAt: time,
      seconds: 754,
      estimate: { seconds: 700, low: 600, high: 800 },
      plugins: [
        { name: 'pipx', applicable: true, updates: [], downloadBytes: 0, securityUpdates: false, requiresReboot: false, estimates: {}, phases: { update: { status: 'failed', attempts: 1, error: { code: 'NETWORK_ERROR', message: 'pypi unreachable', details: 'last line' } } } },
      ],
      summary: { pluginsRun: 4, succeeded: ['apt', 'flatpak', 'snap'], failed: ['pipx'], notRun: [], downloadedBytes: 373 * 1024 * 1024, packagesUpdated: 47, requiresReboot: true },
    } satisfies UpdateReport;
    const text = renderSummary(report, false);
    expect(text).toMatch(/Total time\s+12m 34s/);
    expect(text).toMatch(/Failed\s+1 \(pipx\)/);
    expect(text).toMatch(/Downloaded\s+373 MB/);
    expect(text).toMatch(/Packages\s+47 updated/);
    expect(text).toMatch(/Reboot\s+required/);
    expect(text).toContain('✗ pipx update: NETWORK_ERROR pypi unreachable');
  });

  it('formats clocks and sizes', () => {
    expect(formatClock(75)).toBe('1:15');
    expect(formatClock(3725)).toBe('1:02:05');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(245 * 1024 * 1024)).toBe('245 MB');
  });
});

describe('the update run log', () => {
  let folder: string;
  beforeEach(async () => {
    folder = await mkdtemp(join(tmpdir(), 'upkeep-run-log-'));
  });
  afterEach(async () => rm(folder, { recursive: true, force: true }));

  it('appends JSON lines with credentials redacted, and rotates a full file when a run starts, keeping the newest', async () => {
    const path = join(folder, 'logs', 'update.log');
    for (let round = 0; round < 4; round += 1) {
      const log = await openRunLog(path, { maxBytes: 400, keep: 2 });
      for (let line = 0; line < 5; line += 1) log.write({ round, line, url: 'https://user:secret@example.com/x' });
      await log.close();
    }
    const files = (await readdir(join(folder, 'logs'))).sort();
    expect(files).toEqual(['update.log', 'update.log.1', 'update.log.2']);
    const current = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { round: number; url: string; time: string });
    expect(current.at(-1)!.round).toBe(3);
    expect(current[0]!.url).toBe('https://[redacted]@example.com/x');
    expect(Date.parse(current[0]!.time)).not.toBeNaN();
  });
});
