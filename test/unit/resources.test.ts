import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Executor } from '../../src/core/exec.ts';
import { MemoryGuard, ProcessTreeMeter, sampleProcessGroup } from '../../src/update/schedule/resources.ts';

let folder: string;
beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'upkeep-resources-'));
});
afterEach(async () => rm(folder, { recursive: true, force: true }));

const executor = new Executor({ env: { PATH: '/usr/bin:/bin' } });
const linux = existsSync('/proc/self/stat');
const MEGABYTE = 1024 * 1024;

/** Polls until a file the script writes appears: the script's own signal (a shell redirection, no extra process) that it reached a point. */
async function reached(name: string): Promise<void> {
  while (!existsSync(join(folder, name))) await new Promise((done) => setTimeout(done, 20));
}

/** Lets a script blocked on `read < name` go on (writing to a FIFO waits for its reader). */
async function release(name: string): Promise<void> {
  await writeFile(join(folder, name), 'go\n');
}

/** Runs a shell script in the temp folder; the group id arrives through onStart. */
function runScript(script: string, onStart: (group: number) => void) {
  const path = join(folder, 'script.sh');
  return writeFile(path, script).then(() => executor.run(['sh', path], { cwd: folder, timeout: 20_000, onStart }));
}

const BUSY = 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done';

describe.runIf(linux)('process groups on Linux', () => {
  it('measures the CPU time and memory of a group, its reaped children included, and nothing once it is gone', async () => {
    const meter = new ProcessTreeMeter();
    let group = 0;
    const running = runScript(
      [
        'mkfifo done',
        // The busy loop runs in a child the shell reaps: its time reaches the group only through cutime.
        `(${BUSY})`,
        "memory=$(head -c 40000000 /dev/zero | tr '\\0' a)",
        ': > ready',
        'read line < done',
      ].join('\n'),
      (pid) => {
        group = pid;
        meter.start(pid);
      },
    );
    await reached('ready');
    const live = await sampleProcessGroup(group);
    expect(live.processes.map((process) => process.pid)).toEqual([group]);
    expect(live.rssBytes).toBeGreaterThan(35 * MEGABYTE);
    expect(live.cpuUserSeconds + live.cpuSystemSeconds).toBeGreaterThan(0);
    await meter.sample();
    await release('done');
    expect((await running).exitCode).toBe(0);

    const usage = await meter.finish();
    expect(usage.cpuUserSeconds + usage.cpuSystemSeconds).toBeGreaterThan(0);
    expect(usage.peakRssBytes).toBeGreaterThan(35 * MEGABYTE);
    expect(usage.readBytes).toBeGreaterThanOrEqual(0);
    expect(usage.writeBytes).toBeGreaterThanOrEqual(0);
    expect(await sampleProcessGroup(group)).toEqual({ processes: [], rssBytes: 0, cpuUserSeconds: 0, cpuSystemSeconds: 0, readBytes: 0, writeBytes: 0 });
  });

  it('counts a child seen alive once, after its parent in the group reaped it', async () => {
    const meter = new ProcessTreeMeter({ intervalMs: 60_000 });
    let group = 0;
    const running = runScript(
      [
        'mkfifo child parent',
        `sh -c '${BUSY}; : > child-ready; read line < child'`,
        ': > parent-ready',
        'read line < parent',
      ].join('\n'),
      (pid) => {
        group = pid;
        meter.start(pid);
      },
    );
    await reached('child-ready');
    await meter.sample();
    const child = (await sampleProcessGroup(group)).processes.find((process) => process.ppid === group)!;
    expect(child.userSeconds + child.systemSeconds).toBeGreaterThan(0);
    await release('child');
    await reached('parent-ready');
    await meter.sample();
    // The shell now blocks in `read`: its counters, its reaped child's included, stand still.
    const parent = await sampleProcessGroup(group);
    expect(parent.processes).toHaveLength(1);
    expect(parent.cpuUserSeconds + parent.cpuSystemSeconds).toBeGreaterThan(0);
    expect(meter.usage()).toMatchObject({ cpuUserSeconds: parent.cpuUserSeconds, cpuSystemSeconds: parent.cpuSystemSeconds });
    await release('parent');
    await running;
    // The leader was reaped by upkeep, outside the group: its last-seen counters stay.
    expect(await meter.finish()).toMatchObject({ cpuUserSeconds: parent.cpuUserSeconds, cpuSystemSeconds: parent.cpuSystemSeconds });
  });

  it('says memory is full when the registered groups hold more than the limit', async () => {
    let group = 0;
    const running = runScript(["mkfifo done; memory=$(head -c 40000000 /dev/zero | tr '\\0' a)", ': > ready', 'read line < done'].join('\n'), (pid) => {
      group = pid;
    });
    await reached('ready');
    const tight = new MemoryGuard(10);
    const roomy = new MemoryGuard(100_000);
    expect(tight.full()).toBe(false);
    tight.register(group);
    roomy.register(group);
    expect(tight.usedBytes()).toBeGreaterThan(35 * MEGABYTE);
    expect(tight.full()).toBe(true);
    expect(roomy.full()).toBe(false);
    tight.unregister(group);
    expect(tight.full()).toBe(false);
    tight.register(group);
    await release('done');
    await running;
    // Registration measures afresh; the group is gone, so it holds nothing.
    tight.unregister(group);
    tight.register(group);
    expect(tight.usedBytes()).toBe(0);
    expect(tight.full()).toBe(false);
  });
});

describe('without /proc', () => {
  const missing = '/nonexistent-proc-for-upkeep';

  it('samples a group as empty', async () => {
    expect(await sampleProcessGroup(1, missing)).toEqual({ processes: [], rssBytes: 0, cpuUserSeconds: 0, cpuSystemSeconds: 0, readBytes: 0, writeBytes: 0 });
  });

  it('meters zeros and never says memory is full', async () => {
    const meter = new ProcessTreeMeter({ procRoot: missing });
    meter.start(1);
    expect(await meter.finish()).toEqual({ cpuUserSeconds: 0, cpuSystemSeconds: 0, peakRssBytes: 0, readBytes: 0, writeBytes: 0 });
    const guard = new MemoryGuard(1, { procRoot: missing });
    guard.register(1);
    expect(guard.full()).toBe(false);
  });

  it('refuses a limit of nothing', () => {
    expect(() => new MemoryGuard(0)).toThrow(/above 0 MB/);
  });
});
