import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRemoteHost, descendantsRunning, generateKey, startSshd, type KeyPair, type RemoteHostFixture, type Sshd } from '../helpers/sshd.ts';
import { readPluginLog } from '../helpers/update.ts';

/**
 * upkeep remote against real OpenSSH servers (Debian's sshd) on loopback:
 * each "host" is an sshd of its own on a random port with generated host
 * keys, logging in with a generated user key; upkeep on the host is this
 * checkout's bin/upkeep.js (built) behind a wrapper that gives it mock update
 * plugins. The local upkeep runs from the sources through tsx. Covered: a
 * parallel check and run, sshd killed in the middle of a run and started
 * again (the run resumes and every plugin applies exactly once), agent
 * authentication with a real ssh-agent, a changed host key refused, an
 * unknown host refused and then accepted with --accept-new.
 * Run with UPKEEP_E2E=1.
 */

const root = resolve(import.meta.dirname, '../..');
let folder: string;
let home: string;
let userKey: KeyPair;
const hosts: RemoteHostFixture[] = [];
const servers: Sshd[] = [];
const agents: ChildProcess[] = [];

interface Line {
  host?: string;
  event?: { type: string; [key: string]: unknown };
  type?: string;
  hosts?: Array<{ host: string; status: string; reconnects: number; resumed: boolean; runId: string | null; unseen: { runId: string; plugins: string[]; failures: string[] } | null; error: { code: string; message: string; hint?: string } | null; report: { runId: string; status: string; summary: { succeeded: string[] } } | null; check: { plugins: Array<{ name: string; updates: unknown[] }> } | null }>;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  lines: Line[];
  summary: NonNullable<Line['hosts']>;
}

function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HOME: home, PATH: '/usr/bin:/bin', UPKEEP_HOME: join(folder, 'local'), NO_COLOR: '1', UPKEEP_REMOTE_RETRIES: '6', ...extra };
}

/** The local upkeep, from the sources. */
function upkeep(args: string[], extra: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), ...args], { env: environment(extra), cwd: root });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Run>((resolvePromise) => {
    child.on('close', (status) => {
      const lines = args.includes('--json') ? stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Line) : [];
      resolvePromise({ status, stdout, stderr, lines, summary: lines.at(-1)?.hosts ?? [] });
    });
  });
  return { child, done };
}

async function writeHosts(): Promise<void> {
  const entries = hosts.map((host) => `  ${host.name}: {hostname: 127.0.0.1, port: ${host.sshd.port}, user: root, key_file: ${userKey.privateKeyFile}, upkeep_path: ${host.upkeepPath}}`);
  await mkdir(join(folder, 'local', 'config'), { recursive: true });
  await writeFile(join(folder, 'local', 'config', 'hosts.yaml'), `hosts:\n${entries.join('\n')}\ngroups:\n  pair: [one, two]\n`);
}

async function trust(...names: string[]): Promise<void> {
  const lines = hosts.filter((host) => names.includes(host.name)).map((host) => host.sshd.knownHostsLine);
  await writeFile(join(home, '.ssh', 'known_hosts'), `${lines.join('\n')}\n`);
}

function host(name: string): RemoteHostFixture {
  return hosts.find((candidate) => candidate.name === name)!;
}

function appliedCounts(entries: Awaited<ReturnType<typeof readPluginLog>>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const entry of entries) if (entry.event === 'applied') counts[entry.plugin] = (counts[entry.plugin] ?? 0) + 1;
  return counts;
}

beforeAll(async () => {
  // The hosts run the built CLI; build it if this checkout has not been built yet.
  if (!existsSync(join(root, 'dist', 'cli.js'))) spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
  folder = await mkdtemp(join(tmpdir(), 'upkeep-e2e-remote-'));
  home = join(folder, 'home');
  userKey = await generateKey(join(folder, 'keys', 'id_ed25519'));
  await mkdir(join(home, '.ssh'), { recursive: true });
  const quick = [1, 2, 3].map((index) => ({ name: `quick${index}`, settings: { seconds: 0.2 } }));
  for (const name of ['one', 'two']) hosts.push(await createRemoteHost({ root: folder, name, authorizedKeys: [userKey.publicKey], plugins: quick }));
  // Slow enough to be killed in the middle of, one plugin at a time.
  const slow = [1, 2, 3].map((index) => ({ name: `slow${index}`, settings: { update_seconds: 2 } }));
  hosts.push(await createRemoteHost({ root: folder, name: 'flaky', authorizedKeys: [userKey.publicKey], plugins: slow, environment: { UPKEEP_UPDATE_PARALLEL: '1' } }));
  for (const name of ['rekeyed', 'stranger']) hosts.push(await createRemoteHost({ root: folder, name, authorizedKeys: [userKey.publicKey], plugins: quick }));
  servers.push(...hosts.map((entry) => entry.sshd));
  await writeHosts();
}, 120_000);

afterAll(async () => {
  for (const agent of agents) agent.kill('SIGKILL');
  for (const server of servers) await server.stop();
  await rm(folder, { recursive: true, force: true });
});

describe('upkeep remote over real sshd', () => {
  // Each test starts from the same known_hosts, so that any one of them can run alone.
  beforeEach(() => trust('one', 'two', 'flaky', 'rekeyed'));

  it('checks two hosts in parallel and changes nothing', async () => {
    const run = await upkeep(['remote', 'pair', '--check-only', '--parallel', '2', '--json']).done;
    expect(run.status, run.stderr).toBe(0);
    expect(run.summary.map((result) => [result.host, result.status])).toEqual([
      ['one', 'succeeded'],
      ['two', 'succeeded'],
    ]);
    for (const result of run.summary) {
      expect(result.check!.plugins.map((plugin) => [plugin.name, plugin.updates.length])).toEqual([
        ['quick1', 1],
        ['quick2', 1],
        ['quick3', 1],
      ]);
    }
    // Both hosts were connected before either finished: they ran side by side.
    const firstResult = run.lines.findIndex((line) => line.event?.type === 'result');
    for (const name of ['one', 'two']) {
      expect(run.lines.findIndex((line) => line.host === name && line.event?.type === 'connection' && line.event.status === 'connected')).toBeLessThan(firstResult);
    }
    for (const name of ['one', 'two']) expect(appliedCounts(await readPluginLog(host(name).log))).toEqual({});
  });

  it('runs the update on both hosts, streaming each host\'s events as {host, event}', async () => {
    const run = await upkeep(['remote', 'one', 'two', '--json']).done;
    expect(run.status, run.stderr).toBe(0);
    expect(run.summary.map((result) => [result.host, result.status, result.report?.status])).toEqual([
      ['one', 'succeeded', 'completed'],
      ['two', 'succeeded', 'completed'],
    ]);
    for (const name of ['one', 'two']) {
      expect(appliedCounts(await readPluginLog(host(name).log))).toEqual({ quick1: 1, quick2: 1, quick3: 1 });
      const phases = run.lines.filter((line) => line.host === name && line.event?.type === 'phase' && line.event.phase === 'update' && line.event.status === 'completed');
      expect(phases.map((line) => line.event!.plugin).sort()).toEqual(['quick1', 'quick2', 'quick3']);
    }
    // Every line but the summary is {host, event}.
    for (const line of run.lines.slice(0, -1)) expect(Object.keys(line).sort()).toEqual(['event', 'host']);
    expect(run.lines.at(-1)!.type).toBe('summary');
  });

  it('keeps the run going on the host when sshd is killed in the middle of it, and reports how it ended', async () => {
    const flaky = host('flaky');
    const started = upkeep(['remote', 'flaky', '--json']);
    await untilUpdating(flaky, started.child);
    await flaky.sshd.kill();
    await flaky.sshd.start();
    const run = await started.done;
    expect(run.status, run.stderr).toBe(0);
    const [result] = run.summary;
    expect(result).toMatchObject({ host: 'flaky', status: 'succeeded', resumed: true });
    expect(result!.reconnects).toBeGreaterThanOrEqual(1);
    const events = run.lines.filter((line) => line.host === 'flaky').map((line) => line.event!);
    expect(events.some((event) => event.type === 'connection' && event.status === 'lost')).toBe(true);
    expect(events.some((event) => event.type === 'command' && event.command === 'resume')).toBe(true);
    // The host's run outlived the connection: the one that began is the one that ended.
    const runIds = new Set(events.filter((event) => event.type === 'run').map((event) => event.runId));
    expect([...runIds]).toEqual([result!.runId]);
    expect(result!.unseen ?? result!.report).toBeTruthy();
    expect(appliedCounts(await readPluginLog(flaky.log))).toEqual({ slow1: 1, slow2: 1, slow3: 1 });
  }, 120_000);

  it('resumes the run with update resume when the host\'s upkeep died with the connection, and applies every plugin once', async () => {
    const flaky = host('flaky');
    const started = await startUpdatingAfresh(flaky);
    // A crash (or a reboot) of the host's upkeep together with the connection.
    const upkeepProcesses = descendantsRunning(flaky.sshd.pid!, join('bin', 'upkeep.js'));
    expect(upkeepProcesses.length).toBeGreaterThan(0);
    for (const pid of upkeepProcesses) process.kill(pid, 'SIGKILL');
    await flaky.sshd.kill();
    await flaky.sshd.start();
    const run = await started.done;
    expect(run.status, `${JSON.stringify(run.summary)}\n${run.stderr}`).toBe(0);
    const [result] = run.summary;
    expect(result).toMatchObject({ host: 'flaky', status: 'succeeded', resumed: true });
    const events = run.lines.filter((line) => line.host === 'flaky').map((line) => line.event!);
    expect(events.some((event) => event.type === 'command' && event.command === 'resume')).toBe(true);
    // Resumed, not started again: one run id from the first event to the summary.
    const runIds = new Set(events.filter((event) => event.type === 'run').map((event) => event.runId));
    expect([...runIds]).toEqual([result!.report!.runId]);
    expect(result!.report!.summary.succeeded.sort()).toEqual(['slow1', 'slow2', 'slow3']);
    expect(appliedCounts(await readPluginLog(flaky.log))).toEqual({ slow1: 1, slow2: 1, slow3: 1 });
  }, 120_000);

  it('passes Ctrl-C on to the host, whose run stops resumable', async () => {
    const flaky = host('flaky');
    const started = await startUpdatingAfresh(flaky);
    started.child.kill('SIGINT');
    const run = await started.done;
    expect(run.status).toBe(1);
    const [result] = run.summary;
    expect(result).toMatchObject({ host: 'flaky', status: 'interrupted', report: { status: 'interrupted' } });
    // The plugin that was running finished; the others did not start.
    expect(Object.values(appliedCounts(await readPluginLog(flaky.log)))).toEqual([1]);
    // On the host, update resume continues the run with what is left.
    const resumed = spawnSync(flaky.upkeepPath, ['update', 'resume', '--json'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(appliedCounts(await readPluginLog(flaky.log))).toEqual({ slow1: 1, slow2: 1, slow3: 1 });
  }, 120_000);

  it('logs in with a key held by a real ssh-agent', async () => {
    const socket = join(folder, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    agents.push(agent);
    while (!existsSync(socket)) await new Promise((resolvePromise) => setTimeout(resolvePromise, 25));
    const added = spawnSync('ssh-add', [userKey.privateKeyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket }, encoding: 'utf8' });
    expect(added.status, added.stderr).toBe(0);
    // hosts.yaml without key_file, and no key in ~/.ssh: only the agent can log in.
    const hostsFile = join(folder, 'local', 'config', 'hosts.yaml');
    const original = await readFile(hostsFile, 'utf8');
    await writeFile(hostsFile, original.replace(/ key_file: [^,]+,/g, ''));
    try {
      const withoutAgent = await upkeep(['remote', 'one', '--check-only', '--json']).done;
      expect(withoutAgent.status).toBe(1);
      expect(withoutAgent.summary[0]!.error!.code).toBe('E_SSH_AUTH');
      const withAgent = await upkeep(['remote', 'one', '--check-only', '--json'], { SSH_AUTH_SOCK: socket }).done;
      expect(withAgent.status, withAgent.stderr).toBe(0);
    } finally {
      await writeFile(hostsFile, original);
    }
  });

  it('refuses a host whose key changed, even with --accept-new', async () => {
    const rekeyed = host('rekeyed');
    const before = await upkeep(['remote', 'rekeyed', '--check-only', '--json']).done;
    expect(before.status, before.stderr).toBe(0);
    await rekeyed.sshd.kill();
    await rekeyed.sshd.regenerateHostKey();
    await rekeyed.sshd.start();
    const knownHosts = await readFile(join(home, '.ssh', 'known_hosts'), 'utf8');
    for (const flags of [[], ['--accept-new']]) {
      const run = await upkeep(['remote', 'rekeyed', '--check-only', '--json', ...flags]).done;
      expect(run.status).toBe(1);
      const error = run.summary[0]!.error!;
      expect(error.code).toBe('E_SSH_HOST_KEY');
      expect(error.message).toContain('CHANGED');
      expect(error.message).toContain(fingerprintOf(join(rekeyed.sshd.folder, 'ssh_host_ed25519_key.pub')));
      expect(error.hint).toContain('ssh-keygen -R');
    }
    expect(await readFile(join(home, '.ssh', 'known_hosts'), 'utf8')).toBe(knownHosts);
    expect(appliedCounts(await readPluginLog(rekeyed.log))).toEqual({});
  });

  it('refuses an unknown host with its fingerprint, and trusts it on first use with --accept-new', async () => {
    const stranger = host('stranger');
    const name = `[127.0.0.1]:${stranger.sshd.port}`;
    const knownHostsFile = join(home, '.ssh', 'known_hosts');
    const refused = await upkeep(['remote', 'stranger', '--check-only']).done;
    expect(refused.status).toBe(1);
    expect(refused.stdout).toContain('error[E_SSH_HOST_KEY]');
    expect(refused.stdout).toContain(fingerprintOf(join(stranger.sshd.folder, 'ssh_host_ed25519_key.pub')));
    expect(refused.stdout).toContain('--accept-new');
    expect(spawnSync('ssh-keygen', ['-F', name, '-f', knownHostsFile]).status).not.toBe(0);

    const accepted = await upkeep(['remote', 'stranger', '--check-only', '--accept-new', '--json']).done;
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.lines.some((line) => line.event?.type === 'host-key-added')).toBe(true);
    // OpenSSH itself now finds the key (hashed or not, as ssh_config asks).
    const found = spawnSync('ssh-keygen', ['-F', name, '-f', knownHostsFile], { encoding: 'utf8' });
    expect(found.status).toBe(0);
    expect(found.stdout).toContain(stranger.sshd.hostPublicKey.split(' ')[1]);

    const again = await upkeep(['remote', 'stranger', '--check-only', '--json']).done;
    expect(again.status, again.stderr).toBe(0);
    expect(again.lines.some((line) => line.event?.type === 'host-key-added')).toBe(false);
  });

  it('fails one host without stopping the other (exit 3)', async () => {
    const stopped = await startSshd({ folder: join(folder, 'down'), authorizedKeys: [userKey.publicKey] });
    servers.push(stopped);
    const port = stopped.port;
    await stopped.stop();
    const hostsFile = join(folder, 'local', 'config', 'hosts.yaml');
    const original = await readFile(hostsFile, 'utf8');
    await writeFile(hostsFile, original.replace('groups:', `  down: {hostname: 127.0.0.1, port: ${port}, user: root, key_file: ${userKey.privateKeyFile}}\ngroups:`));
    try {
      const run = await upkeep(['remote', 'one', 'down', '--check-only', '--json'], { UPKEEP_REMOTE_RETRIES: '1' }).done;
      expect(run.status).toBe(3);
      expect(run.summary.map((result) => [result.host, result.status, result.error?.code ?? null])).toEqual([
        ['one', 'succeeded', null],
        ['down', 'failed', 'E_SSH_CONNECT'],
      ]);
    } finally {
      await writeFile(hostsFile, original);
    }
  });
});

/** A fresh pretend machine on the host, `upkeep remote` on it, returned once its first plugin updates. */
async function startUpdatingAfresh(fixture: RemoteHostFixture): Promise<ReturnType<typeof upkeep>> {
  await rm(fixture.machine, { recursive: true, force: true });
  await mkdir(fixture.machine);
  await writeFile(fixture.log, '');
  const started = upkeep(['remote', fixture.name, '--json']);
  await untilUpdating(fixture, started.child);
  return started;
}

/** Until the first plugin is updating on the host (or upkeep remote ended early). */
async function untilUpdating(fixture: RemoteHostFixture, child: ChildProcess): Promise<void> {
  for (;;) {
    const entries = await readPluginLog(fixture.log);
    if (entries.some((entry) => entry.command === 'update' && entry.event === 'start')) return;
    if (child.exitCode !== null) return;
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 50));
  }
}

function fingerprintOf(publicKeyFile: string): string {
  // `256 SHA256:... comment (ED25519)`
  return spawnSync('ssh-keygen', ['-l', '-f', publicKeyFile], { encoding: 'utf8' }).stdout.split(' ')[1]!;
}

