import { execFile } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.ts';
import { createSandbox, writeStub, type Sandbox } from '../helpers/sandbox.ts';
import { createUpdateSandbox } from '../helpers/update.ts';

/**
 * `upkeep schedule` against a stub systemctl (systemd does not run on this
 * machine) and the real systemd-analyze, which is installed here: it checks
 * the calendar expressions and verifies the unit files written.
 */

const execute = promisify(execFile);
const ENTRY = fileURLToPath(new URL('../../bin/upkeep.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
const ANALYZE = '/usr/bin/systemd-analyze';
/** Just past 10 MiB of logged runs: a scheduled log due for rotation. */
const OLD_RUNS = '{"type":"run","runId":"old","status":"completed","time":"2026-01-01T00:00:00.000Z"}\n'.repeat(125_000);

let sandbox: Sandbox | undefined;
const cleanups: string[] = [];
afterEach(async () => {
  await sandbox?.cleanup();
  sandbox = undefined;
  for (const folder of cleanups.splice(0)) await rm(folder, { recursive: true, force: true });
});

interface Setup {
  /** Pretend systemd runs (the marker folder exists). */
  systemd?: boolean;
  /** The real systemd-analyze on PATH. */
  analyze?: boolean;
  /** Replaces the stub systemctl's answers. */
  systemctl?: string;
}

const SHOW = [
  'Id=upkeep-update.timer',
  'LoadState=loaded',
  'ActiveState=active',
  'UnitFileState=enabled',
  'NextElapseUSecRealtime=Mon 2026-11-23 00:41:07 UTC',
  'LastTriggerUSec=Mon 2026-11-16 00:12:40 UTC',
  'Result=success',
  '',
  'Id=upkeep-update.service',
  'LoadState=loaded',
  'ActiveState=inactive',
  'Result=exit-code',
  'ExecMainStatus=3',
  'ExecMainExitTimestamp=Mon 2026-11-16 00:20:02 UTC',
].join('\n');

/** Answers `show` and `is-active` like systemd would for an enabled, idle timer; records TZ for `show`. */
const SYSTEMCTL = `case "$*" in
  *show*) echo "TZ=$TZ" >> "$STUB_LOG"; /bin/cat <<'EOF'
${SHOW}
EOF
  ;;
  *is-active*) echo inactive; exit 3 ;;
esac
exit 0`;

async function prepare(base: Sandbox, setup: Setup = {}): Promise<Sandbox> {
  const { root, bin } = base;
  Object.assign(base.environment, {
    UPKEEP_SYSTEMD_USER_DIR: join(root, 'systemd-user'),
    UPKEEP_SYSTEMD_SYSTEM_DIR: join(root, 'systemd-system'),
    UPKEEP_SYSTEMD_RUN_DIR: join(root, 'run-systemd-system'),
    UPKEEP_SYSTEMD_LINGER_DIR: join(root, 'linger'),
  });
  if (setup.systemd ?? true) await mkdir(join(root, 'run-systemd-system'));
  if (setup.analyze ?? true) await symlink(ANALYZE, join(bin, 'systemd-analyze'));
  await writeStub(bin, 'systemctl', { script: setup.systemctl ?? SYSTEMCTL });
  return base;
}

async function scheduleSandbox(setup: Setup = {}): Promise<Sandbox> {
  sandbox = await prepare(await createSandbox(), setup);
  return sandbox;
}

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  json<T = Record<string, unknown>>(): T;
}

/** Runs upkeep in-process as the built CLI would: with the command line that runs it again. */
async function upkeep(argv: string[], options: { uid?: number; selfCommand?: string[] } = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exitCode = await runCli(argv, {
    environment: sandbox!.environment,
    cwd: sandbox!.home,
    stdout,
    stderr,
    stdoutIsTTY: false,
    stderrIsTTY: false,
    pid: process.pid,
    selfCommand: options.selfCommand ?? [process.execPath, ENTRY],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
  });
  return { exitCode, stdout: out, stderr: err, json: <T>() => JSON.parse(out) as T };
}

async function spawned(): Promise<string[]> {
  const text = await readFile(sandbox!.spawnLog, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

function userUnits(): { timer: string; service: string } {
  const folder = sandbox!.environment.UPKEEP_SYSTEMD_USER_DIR!;
  return { timer: join(folder, 'upkeep-update.timer'), service: join(folder, 'upkeep-update.service') };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('upkeep schedule enable', () => {
  it('writes the user timer and service and enables the timer through systemctl --user', async () => {
    await scheduleSandbox();
    Object.assign(sandbox!.environment, { HTTPS_PROXY: 'http://proxy.example:3128', NODE_EXTRA_CA_CERTS: '/etc/ssl/corp.pem' });
    const result = await upkeep(['schedule', 'enable']);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/scheduled for the user: upkeep update run --json --continue-on-error/);
    expect(result.stdout).toMatch(/when\s+weekly \(Mon \*-\*-\* 00:00:00\) plus up to 1h at random/);
    expect(result.stdout).toMatch(/next run\s+\d{4}-\d{2}-\d{2} 00:00 UTC/);
    expect(await spawned()).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now upkeep-update.timer']);

    const units = userUnits();
    const timer = await readFile(units.timer, 'utf8');
    for (const line of ['OnCalendar=weekly', 'RandomizedDelaySec=1h', 'Persistent=true', 'WantedBy=timers.target']) expect(timer.split('\n'), line).toContain(line);
    const service = (await readFile(units.service, 'utf8')).split('\n');
    const state = join(sandbox!.upkeepHome, 'state');
    for (const line of [
      'Type=oneshot',
      `ExecStart=${process.execPath} ${ENTRY} update run --json --continue-on-error`,
      'After=network-online.target',
      'Wants=network-online.target',
      'Nice=10',
      'IOSchedulingClass=idle',
      'StandardInput=null',
      `StandardOutput=append:${state}/logs/scheduled.ndjson`,
      `Environment="UPKEEP_STATE_DIR=${state}"`,
      `Environment="UPKEEP_CONFIG_DIR=${join(sandbox!.upkeepHome, 'config')}"`,
      `Environment="UPKEEP_HOME=${sandbox!.upkeepHome}"`,
      `Environment="PATH=${sandbox!.bin}"`,
      'Environment="HTTPS_PROXY=http://proxy.example:3128"',
      'Environment="NODE_EXTRA_CA_CERTS=/etc/ssl/corp.pem"',
      'Environment="CI=true"',
      'Environment="UPKEEP_SCHEDULED=1"',
    ]) {
      expect(service, line).toContain(line);
    }
    // Only what is set is carried; what only tests need is not.
    expect(service.filter((line) => line.startsWith('Environment=')).join('\n')).not.toMatch(/HTTP_PROXY=|SSL_CERT_FILE|UPKEEP_SYSTEMD_/);
    // systemd appends to the log but does not create its folder.
    expect(await exists(join(state, 'logs'))).toBe(true);

    const json = await upkeep(['schedule', 'enable', '--json']);
    expect(json.json()).toMatchObject({ scope: 'user', replaced: true, calendar: { expression: 'weekly', normalized: 'Mon *-*-* 00:00:00', checkedBy: 'systemd-analyze', cron: '0 0 * * 1' } });
  });

  it('replaces the schedule when enabled again, restarting the timer so that the new calendar applies', async () => {
    await scheduleSandbox();
    expect((await upkeep(['schedule', 'enable'])).exitCode).toBe(0);
    const again = await upkeep(['schedule', 'enable', '--interval', 'Mon..Fri 04:30', '--randomized-delay', '30min', '--check-only']);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/rescheduled for the user: upkeep update check --json/);
    expect((await spawned()).slice(2)).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now upkeep-update.timer', 'systemctl --user restart upkeep-update.timer']);
    const timer = await readFile(userUnits().timer, 'utf8');
    expect(timer).toContain('OnCalendar=Mon..Fri 04:30\n');
    expect(timer).toContain('RandomizedDelaySec=30min\n');
    expect(await readFile(userUnits().service, 'utf8')).toContain(`ExecStart=${process.execPath} ${ENTRY} update check --json\n`);
  });

  it('puts the user units under XDG_CONFIG_HOME/systemd/user when no folder is forced', async () => {
    await scheduleSandbox();
    delete sandbox!.environment.UPKEEP_SYSTEMD_USER_DIR;
    sandbox!.environment.XDG_CONFIG_HOME = join(sandbox!.root, 'xdg');
    expect((await upkeep(['schedule', 'enable'])).exitCode).toBe(0);
    expect(await exists(join(sandbox!.root, 'xdg', 'systemd', 'user', 'upkeep-update.timer'))).toBe(true);
  });

  it('refuses a calendar expression systemd-analyze rejects, or one that never elapses, and writes nothing', async () => {
    await scheduleSandbox();
    for (const interval of ['fortnightly', '*-*-* 25:00', '2020-01-01']) {
      const result = await upkeep(['schedule', 'enable', '--interval', interval]);
      expect(result.exitCode, interval).toBe(2);
      expect(result.stderr, interval).toContain('error[E_SCHEDULE_INVALID]');
      expect(result.stderr, interval).toContain('hint: use daily, weekly or monthly');
    }
    expect((await upkeep(['schedule', 'enable', '--interval', '2020-01-01'])).stderr).toContain('never elapses');
    const injected = await upkeep(['schedule', 'enable', '--interval', 'daily\nExecStartPre=/bin/rm -rf /', '--json']);
    expect(injected.exitCode).toBe(2);
    expect(injected.json<{ error: { code: string } }>().error.code).toBe('E_SCHEDULE_INVALID');
    expect(await exists(userUnits().timer)).toBe(false);
    expect(await spawned()).toEqual([]);
  });

  it("checks the expression with upkeep's own parser where systemd-analyze is missing", async () => {
    await scheduleSandbox({ analyze: false });
    const good = await upkeep(['schedule', 'enable', '--interval', 'Sat,Sun 12:30', '--json']);
    expect(good.exitCode).toBe(0);
    expect(good.json()).toMatchObject({ calendar: { normalized: 'Sat,Sun *-*-* 12:30:00', checkedBy: 'upkeep', nextElapse: null, cron: '30 12 * * 0,6' } });
    const bad = await upkeep(['schedule', 'enable', '--interval', '*-*-* 24:00']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('error[E_SCHEDULE_INVALID]: "*-*-* 24:00" is not a calendar expression upkeep can check: 24 is not a hour');
    expect(bad.stderr).toContain('this machine has no systemd-analyze');
  });

  it('refuses a random delay that is not a time span', async () => {
    await scheduleSandbox();
    const result = await upkeep(['schedule', 'enable', '--randomized-delay', 'a while']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('error[E_USAGE]: --randomized-delay must be a time span');
  });

  it('without systemd, writes the units, fails with E_SYSTEMD_UNAVAILABLE and offers a cron line', async () => {
    await scheduleSandbox({ systemd: false });
    sandbox!.environment.HTTPS_PROXY = 'http://ada:secret@proxy.example:3128';
    const result = await upkeep(['schedule', 'enable', '--interval', 'Mon..Fri 04:30']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('error[E_SYSTEMD_UNAVAILABLE]: systemd does not run on this machine');
    expect(result.stderr).toContain('add this line with `crontab -e`');
    expect(result.stderr).toMatch(new RegExp(`\\n  30 4 \\* \\* 1-5 env PATH=\\S+ .* ${process.execPath} ${ENTRY} update run --json --continue-on-error >>\\S+/logs/scheduled\\.ndjson`));
    // The line is printed: the proxy password is not.
    expect(result.stderr).not.toContain('secret');
    expect(await exists(userUnits().timer)).toBe(true);
    expect(await exists(userUnits().service)).toBe(true);
    expect(await spawned()).toEqual([]);

    const json = await upkeep(['schedule', 'enable', '--json']);
    const { error } = json.json<{ error: { code: string; details: { cron: string; units: { timer: string } } } }>();
    expect(error.code).toBe('E_SYSTEMD_UNAVAILABLE');
    expect(error.details.cron).toMatch(/^0 0 \* \* 1 env /);
    expect(error.details.units.timer).toBe(userUnits().timer);
  });

  it('turns an unreachable user systemd into E_SYSTEMD_UNAVAILABLE with a way out', async () => {
    await scheduleSandbox({ systemctl: 'echo "Failed to connect to bus: No medium found" >&2\nexit 1' });
    const result = await upkeep(['schedule', 'enable']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("error[E_SYSTEMD_UNAVAILABLE]: systemctl --user daemon-reload cannot reach your user's systemd: Failed to connect to bus");
    expect(result.stderr).toContain('--system');
  });

  it('warns that user timers need lingering to run while the user is logged out', async () => {
    await scheduleSandbox();
    sandbox!.environment.USER = 'ada';
    const result = await upkeep(['schedule', 'enable']);
    expect(result.stderr).toContain('warning: your timers run only while you are logged in; `loginctl enable-linger ada`');
    await mkdir(join(sandbox!.root, 'linger'));
    await writeFile(join(sandbox!.root, 'linger', 'ada'), '');
    expect((await upkeep(['schedule', 'enable'])).stderr).toBe('');
  });

  it('schedules the system only as root, in the system folder, through systemctl without --user', async () => {
    await scheduleSandbox();
    const refused = await upkeep(['schedule', 'enable', '--system'], { uid: 1000 });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('error[E_NEEDS_ROOT]');
    const result = await upkeep(['schedule', 'enable', '--system', '--interval', 'daily'], { uid: 0 });
    expect(result.exitCode).toBe(0);
    expect(await spawned()).toEqual(['systemctl daemon-reload', 'systemctl enable --now upkeep-update.timer']);
    const folder = sandbox!.environment.UPKEEP_SYSTEMD_SYSTEM_DIR!;
    expect(await readFile(join(folder, 'upkeep-update.timer'), 'utf8')).toContain('OnCalendar=daily\n');
    expect(await exists(userUnits().timer)).toBe(false);
  });
});

describe('systemd-analyze verify', () => {
  /** A node reachable only through a path that needs quoting in ExecStart= (space, %, $). */
  async function awkwardNode(root: string, target = process.execPath): Promise<string> {
    const folder = join(root, 'odd dir 100% $HOME');
    await mkdir(folder, { recursive: true });
    const link = join(folder, 'node');
    await rm(link, { force: true });
    await symlink(target, link);
    return link;
  }

  async function verify(units: string[], user: boolean): Promise<{ code: number; stderr: string }> {
    const runtime = await mkdtemp(join(tmpdir(), 'upkeep-runtime-'));
    cleanups.push(runtime);
    await chmod(runtime, 0o700);
    try {
      const { stderr } = await execute(ANALYZE, [...(user ? ['--user'] : []), 'verify', ...units], { env: { ...process.env, XDG_RUNTIME_DIR: runtime } });
      return { code: 0, stderr };
    } catch (error) {
      const failure = error as { code: number; stderr: string };
      return { code: failure.code, stderr: failure.stderr };
    }
  }

  it('accepts the user and system units upkeep writes, ExecStart quoting included', async () => {
    await scheduleSandbox();
    const node = await awkwardNode(sandbox!.root);
    expect((await upkeep(['schedule', 'enable', '--interval', 'Mon..Fri 04:30'], { selfCommand: [node, ENTRY] })).exitCode).toBe(0);
    const service = await readFile(userUnits().service, 'utf8');
    expect(service).toContain(`ExecStart="${dirname(node).replace('%', '%%')}/node" ${ENTRY} update run`);
    const user = await verify([userUnits().timer, userUnits().service], true);
    expect(user).toEqual({ code: 0, stderr: '' });

    expect((await upkeep(['schedule', 'enable', '--system', '--check-only'], { uid: 0, selfCommand: [node, ENTRY] })).exitCode).toBe(0);
    const folder = sandbox!.environment.UPKEEP_SYSTEMD_SYSTEM_DIR!;
    const system = await verify([join(folder, 'upkeep-update.timer'), join(folder, 'upkeep-update.service')], false);
    expect(system).toEqual({ code: 0, stderr: '' });

    // The check is real: once the quoted program is gone, verify says so.
    await awkwardNode(sandbox!.root, join(sandbox!.root, 'no-such-node'));
    const broken = await verify([userUnits().timer, userUnits().service], true);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toContain('odd dir 100% $HOME/node is not executable');
  });
});

describe('upkeep schedule status, run-now, logs and disable', () => {
  it('reports a schedule that is not set up', async () => {
    await scheduleSandbox();
    const result = await upkeep(['schedule', 'status']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/schedule\s+not set up for the user \(`upkeep schedule enable`\)/);
    const json = await upkeep(['schedule', 'status', '--json']);
    expect(json.json()).toMatchObject({ installed: false, definition: null, lastRun: null, lastLogged: null });
    expect(await spawned()).toEqual([]);
    const runNow = await upkeep(['schedule', 'run-now']);
    expect(runNow.exitCode).toBe(2);
    expect(runNow.stderr).toContain('error[E_USAGE]: no scheduled update is set up for the user');
    expect(runNow.stderr).toContain('hint: `upkeep schedule enable` sets one up');
  });

  it("shows the timer's next and last run and the service's result, asking systemctl in UTC", async () => {
    await scheduleSandbox();
    await upkeep(['schedule', 'enable', '--interval', 'daily']);
    const result = await upkeep(['schedule', 'status', '--json']);
    expect(result.exitCode).toBe(0);
    expect((await spawned()).slice(2)).toEqual([
      'systemctl --user show upkeep-update.timer upkeep-update.service --property=Id,LoadState,ActiveState,UnitFileState,NextElapseUSecRealtime,LastTriggerUSec,Result,ExecMainStatus,ExecMainExitTimestamp',
      'TZ=UTC',
    ]);
    expect(result.json()).toMatchObject({
      scope: 'user',
      installed: true,
      definition: { interval: 'daily', calendar: 'daily', checkOnly: false },
      systemd: {
        running: true,
        timer: { activeState: 'active', unitFileState: 'enabled', nextRun: '2026-11-23T00:41:07.000Z', lastTrigger: '2026-11-16T00:12:40.000Z' },
        service: { result: 'exit-code', exitStatus: 3, lastExit: '2026-11-16T00:20:02.000Z' },
      },
    });
    const human = await upkeep(['schedule', 'status']);
    expect(human.stdout).toMatch(/schedule\s+daily \(\*-\*-\* 00:00:00\), plus up to 1h: upkeep update run --json --continue-on-error/);
    expect(human.stdout).toMatch(/timer\s+active, enabled/);
    expect(human.stdout).toMatch(/next run\s+2026-11-23 00:41 UTC/);
    expect(human.stdout).toMatch(/last run\s+2026-11-16 00:12 UTC/);
    expect(human.stdout).toMatch(/service\s+exit-code \(exit 3\)/);
  });

  it('starts the service in the background through systemctl where systemd runs', async () => {
    await scheduleSandbox();
    await upkeep(['schedule', 'enable']);
    const result = await upkeep(['schedule', 'run-now']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('started upkeep-update.service in the background');
    expect((await spawned()).at(-1)).toBe('systemctl --user start --no-block upkeep-update.service');
  });

  it('without systemd, run-now runs the same command here; logs and status read back how it went', async () => {
    const updateSandbox = await createUpdateSandbox([
      { name: 'alpha', settings: { updates: 2 } },
      { name: 'beta', settings: { fail: 'update' } },
      { name: 'gamma' },
    ]);
    sandbox = await prepare(updateSandbox, { systemd: false });
    // From source: the same command line as the built CLI, with tsx in front.
    const selfCommand = [process.execPath, TSX, MAIN];
    const enabled = await upkeep(['schedule', 'enable'], { selfCommand });
    expect(enabled.stderr).toContain('E_SYSTEMD_UNAVAILABLE');
    // Read by systemd (EnvironmentFile=) and by run-now alike.
    await writeFile(join(sandbox.upkeepHome, 'config', 'schedule.env'), '# settings for scheduled runs only\nUPKEEP_UPDATE_DISABLED=gamma\n');

    // A log past 10 MiB is rotated before the run appends to it.
    const log = join(sandbox.upkeepHome, 'state', 'logs', 'scheduled.ndjson');
    await mkdir(dirname(log), { recursive: true });
    await writeFile(log, OLD_RUNS);

    const result = await upkeep(['schedule', 'run-now'], { selfCommand });
    expect(result.stdout).toMatch(/ran upkeep update run --json --continue-on-error here \(systemd does not run\): \w+ \S+ \S+ UTC; failed: beta/);
    expect((await stat(`${log}.1`)).size).toBe(OLD_RUNS.length);
    expect(await readFile(log, 'utf8')).not.toContain('"runId":"old"');
    // Partial: alpha updated, beta failed.
    expect(result.exitCode).toBe(3);
    expect(await exists(join(updateSandbox.machine, 'alpha.applied'))).toBe(true);
    expect(await spawned()).toEqual([]);

    const logs = await upkeep(['schedule', 'logs', '--lines', '50']);
    expect(logs.exitCode).toBe(0);
    expect(logs.stdout).toMatch(/run \S+ estimating/);
    expect(logs.stdout).toMatch(/alpha: 2 updates pending/);
    expect(logs.stdout).toMatch(/beta: update failed in \S+ s: beta update broke/);
    expect(logs.stdout).toMatch(/summary: \w+; 1 succeeded, 1 failed \(beta\), 2 packages updated$/m);
    expect(logs.stdout).not.toContain('gamma');

    const raw = await upkeep(['schedule', 'logs', '--lines', '3', '--json']);
    const lines = raw.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    const events = lines.map((line) => JSON.parse(line) as { type: string });
    expect(events.at(-1)!.type).toBe('summary');

    const status = await upkeep(['schedule', 'status', '--json']);
    expect(status.json()).toMatchObject({
      installed: true,
      systemd: { running: false, timer: null },
      lastRun: { kind: 'run', failed: ['beta'] },
      lastLogged: { kind: 'run', failed: ['beta'] },
    });
    const human = await upkeep(['schedule', 'status']);
    expect(human.stdout).toMatch(/timer\s+systemd does not run here/);
    expect(human.stdout).toMatch(/last logged\s+\w+ \S+ \S+ UTC; failed: beta/);
  });

  it('logs --rotate rotates each log that has passed 10 MiB, and is quiet when none has', async () => {
    await scheduleSandbox();
    const folder = join(sandbox!.upkeepHome, 'state', 'logs');
    await mkdir(folder, { recursive: true });
    const events = join(folder, 'scheduled.ndjson');
    const errors = join(folder, 'scheduled.stderr.log');
    await writeFile(events, OLD_RUNS);
    await writeFile(`${events}.1`, 'older\n');
    await writeFile(errors, 'a warning\n');
    const rotated = await upkeep(['schedule', 'logs', '--rotate', '--json']);
    expect(rotated.exitCode).toBe(0);
    expect(rotated.json()).toEqual({ rotated: [events] });
    expect(await exists(events)).toBe(false);
    expect((await stat(`${events}.1`)).size).toBe(OLD_RUNS.length);
    expect(await readFile(`${events}.2`, 'utf8')).toBe('older\n');
    expect(await readFile(errors, 'utf8')).toBe('a warning\n');
    const again = await upkeep(['schedule', 'logs', '--rotate']);
    expect(again).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
  });

  it('logs says when nothing was logged yet, and refuses a bad --lines', async () => {
    await scheduleSandbox();
    const empty = await upkeep(['schedule', 'logs']);
    expect(empty.exitCode).toBe(0);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toContain('warning: no scheduled run has logged anything yet');
    const bad = await upkeep(['schedule', 'logs', '--lines', 'many']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('error[E_USAGE]: --lines must be a whole number');
  });

  it('renders pretty-printed check results and errors in the log as one line each', async () => {
    await scheduleSandbox();
    const log = join(sandbox!.upkeepHome, 'state', 'logs', 'scheduled.ndjson');
    await mkdir(dirname(log), { recursive: true });
    const check = { plugins: [{ name: 'apt', applicable: true, updates: [{}, {}] }, { name: 'npm', applicable: true, updates: [] }], estimate: { seconds: 3 } };
    const error = { error: { code: 'E_RUN_IN_PROGRESS', message: 'the update run r1 is still going (pid 42)' } };
    await writeFile(log, `${JSON.stringify(check, null, 2)}\n${JSON.stringify(error, null, 2)}\nnot json at all\n`);
    const result = await upkeep(['schedule', 'logs']);
    expect(result.stdout).toBe('check: updates pending: apt 2\nerror[E_RUN_IN_PROGRESS]: the update run r1 is still going (pid 42)\nnot json at all\n');
    const status = await upkeep(['schedule', 'status', '--json']);
    expect(status.json()).toMatchObject({ lastLogged: { kind: 'error', status: 'E_RUN_IN_PROGRESS' } });
  });

  it('disables: stops and disables the timer, removes the units, reloads; a second time there is nothing to do', async () => {
    await scheduleSandbox();
    await upkeep(['schedule', 'enable']);
    const result = await upkeep(['schedule', 'disable']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('scheduled updates disabled for the user; removed');
    expect((await spawned()).slice(2)).toEqual([
      'systemctl --user disable --now upkeep-update.timer',
      'systemctl --user is-active upkeep-update.service',
      'systemctl --user daemon-reload',
    ]);
    expect(await exists(userUnits().timer)).toBe(false);
    expect(await exists(userUnits().service)).toBe(false);
    const again = await upkeep(['schedule', 'disable', '--json']);
    expect(again.exitCode).toBe(0);
    expect(again.json()).toMatchObject({ removed: [] });
    expect(await spawned()).toHaveLength(5);
  });

  it('explains itself in --help', async () => {
    await scheduleSandbox();
    const help = await upkeep(['schedule', 'enable', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('--interval <when>');
    expect(help.stdout).toContain('--randomized-delay <span>');
    expect(help.stdout).toContain('--check-only');
    expect(help.stdout).toContain('--system');
    expect(help.stdout).toContain('systemd-analyze calendar');
    const overview = await upkeep(['schedule', '--help']);
    for (const command of ['enable', 'disable', 'status', 'run-now', 'logs']) expect(overview.stdout).toContain(command);
  });
});
