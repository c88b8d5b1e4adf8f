import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSuccess, Executor, processGroupRunning } from '../../src/core/exec.ts';
import { UpkeepError } from '../../src/core/errors.ts';

let folder: string;
beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'upkeep-exec-'));
});
afterEach(async () => rm(folder, { recursive: true, force: true }));

const executor = new Executor({ env: { PATH: '/usr/bin:/bin' } });

/** Running, as opposed to gone or a zombie waiting for a reaper that this container may not have. */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('Executor.run', () => {
  it('captures stdout, stderr and the exit code of an argv (no shell)', async () => {
    const result = await executor.run(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(result).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 3, timedOut: false, dryRun: false });
    const literal = await executor.run(['echo', '$HOME; rm -rf /']);
    expect(literal.stdout).toBe('$HOME; rm -rf /\n');
  });

  it('kills the whole process group at the timeout, grandchildren included', async () => {
    const pidFile = join(folder, 'grandchild.pid');
    const result = await executor.run(['sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], { timeout: 300 });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    const grandchild = Number((await readFile(pidFile, 'utf8')).trim());
    await new Promise((done) => setTimeout(done, 100));
    expect(await alive(grandchild)).toBe(false);
  });

  it('returns when the leader exits even if a daemonised child keeps the pipes open', async () => {
    const result = await executor.run(['sh', '-c', 'echo version 1.2.3; (sleep 30 &) ; exit 0'], { timeout: 10_000 });
    expect(result.exitCode).toBe(0);
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toContain('version 1.2.3');
  });

  it('caps captured output and says so', async () => {
    const result = await executor.run(['sh', '-c', 'head -c 100000 /dev/zero'], { maxOutput: 1000 });
    expect(result.stdout).toHaveLength(1000);
    expect(result.truncated).toBe(true);
  });

  it('closes stdin so that a program waiting for input ends at once', async () => {
    const result = await executor.run(['cat'], { timeout: 5000 });
    expect(result).toMatchObject({ exitCode: 0, stdout: '', timedOut: false });
    const fed = await executor.run(['cat'], { input: 'hello' });
    expect(fed.stdout).toBe('hello');
  });

  it('passes exactly the environment it is given', async () => {
    const result = await executor.run(['sh', '-c', 'echo "$ONLY_THIS:$HOME"'], { env: { ONLY_THIS: 'yes', PATH: '/usr/bin:/bin' } });
    expect(result.stdout).toBe('yes:\n');
  });

  it('streams lines as they come, split across chunks, and still captures them', async () => {
    const lines: string[] = [];
    const result = await executor.run(['sh', '-c', 'printf "one\\ntw"; sleep 0.1; printf "o\\nthree"; printf "err\\n" >&2'], {
      onLine: (stream, line) => lines.push(`${stream}:${line}`),
    });
    expect(lines.filter((line) => line.startsWith('stdout:'))).toEqual(['stdout:one', 'stdout:two', 'stdout:three']);
    expect(lines).toContain('stderr:err');
    expect(result.stdout).toBe('one\ntwo\nthree');
  });

  it('stops the whole group on abort, SIGTERM first so the program can clean up', async () => {
    const marker = join(folder, 'cleaned');
    const controller = new AbortController();
    let groupId = 0;
    // Abort once the trap is set, which the script announces, rather than after a guessed delay.
    const result = await executor.run(['sh', '-c', `trap 'echo bye > ${marker}; exit 9' TERM; echo ready; sleep 30 & wait`], {
      onStart: (pid) => {
        groupId = pid;
      },
      onLine: (stream, line) => {
        if (line === 'ready') controller.abort();
      },
      signal: controller.signal,
      killGrace: 2000,
      timeout: 20_000,
    });
    expect(result.aborted).toBe(true);
    expect(await readFile(marker, 'utf8')).toBe('bye\n');
    expect(groupId).toBeGreaterThan(0);
    // The background sleep got the same SIGTERM; it may take a moment to exit, and may linger as a
    // zombie nobody reaps in a container, which does not count as running.
    const deadline = Date.now() + 5000;
    while ((await processGroupRunning(groupId)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await processGroupRunning(groupId)).toBe(false);
  });

  it('runs the process at the nice level asked for', async () => {
    const result = await executor.run(['sh', '-c', 'sleep 0.2; cut -d" " -f19 /proc/$$/stat'], { nice: 7 });
    expect(result.stdout.trim()).toBe('7');
  });

  it('throws E_EXEC_NOT_FOUND for a missing program', async () => {
    await expect(executor.run(['/nonexistent/tool', '--version'])).rejects.toMatchObject({ code: 'E_EXEC_NOT_FOUND' });
  });

  it('records instead of running in dry-run mode, but runs read-only probes', async () => {
    const dry = new Executor({ dryRun: true, env: { PATH: '/usr/bin:/bin' } });
    const marker = join(folder, 'made');
    const result = await dry.run(['touch', marker]);
    expect(result.dryRun).toBe(true);
    expect(dry.recorded).toEqual([['touch', marker]]);
    await expect(readFile(marker)).rejects.toThrow();
    const probe = await dry.run(['echo', 'probe'], { mode: 'always' });
    expect(probe.stdout).toBe('probe\n');
  });
});

describe('ensureSuccess', () => {
  it('turns a failure into an error that quotes the last lines', async () => {
    const result = await executor.run(['sh', '-c', 'echo first >&2; echo "E: broken" >&2; exit 100']);
    expect(() => ensureSuccess(result)).toThrow(UpkeepError);
    expect(() => ensureSuccess(result)).toThrow(/exit code 100: first\nE: broken/);
  });
});
