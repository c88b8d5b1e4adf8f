import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import ssh2, { type Connection, type ParsedKey } from 'ssh2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, runUpkeep, writeStub, type Sandbox } from '../helpers/sandbox.ts';
import { generateKey } from '../helpers/sshd.ts';

/**
 * `upkeep remote` in-process against fake hosts: ssh2's own Server on a
 * random loopback port, with a generated host key and one authorised user
 * key, that runs each exec request with a real /bin/sh (so the wrapper
 * script upkeep sends is exercised as on a real host). "upkeep" on the fake
 * host is a scripted stub: it prints the events, documents and exit codes of
 * a scenario, and records its argv and environment. The fake server can drop
 * the connection after a number of output lines, to test reconnection.
 * A real sshd is in test/e2e/remote.e2e.test.ts.
 */

const { Server, utils } = ssh2;
const PASSWORD = 'pa$$ w0rd "quoted" \\ end';

interface Response {
  events?: object[];
  /** Printed at the end, pretty, as upkeep prints a check result or an error with --json. */
  document?: object;
  stderr?: string[];
  exitCode?: number;
  delayMs?: number;
}
type Scenario = Partial<Record<'run' | 'resume' | 'check' | 'stats', Response[]>>;

const STUB_UPKEEP = `#!/usr/bin/env node
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const dir = process.env.STUB_DIR;
const argv = process.argv.slice(2);
appendFileSync(join(dir, 'calls.ndjson'), JSON.stringify({ argv, env: process.env }) + '\\n');
const command = argv[1];
const scenario = JSON.parse(readFileSync(join(dir, 'scenario.json'), 'utf8'));
const responses = scenario[command] ?? [{ exitCode: 64, stderr: ['no scenario for ' + command] }];
const counter = join(dir, 'count-' + command);
const count = existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 0;
writeFileSync(counter, String(count + 1));
const response = responses[Math.min(count, responses.length - 1)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
for (const line of response.stderr ?? []) process.stderr.write(line + '\\n');
for (const event of response.events ?? []) {
  process.stdout.write(JSON.stringify(event) + '\\n');
  await sleep(response.delayMs ?? 0);
}
if (response.document) process.stdout.write(JSON.stringify(response.document, null, 2) + '\\n');
process.exitCode = response.exitCode ?? 0;
`;

interface FakeHost {
  port: number;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA...` */
  knownHostsLine: string;
  hostPublicKey: string;
  /** Every command line received, in order. */
  commands: string[];
  connections: number;
  folder: string;
  upkeepPath: string;
  calls(): Promise<Array<{ argv: string[]; env: Record<string, string> }>>;
  close(): Promise<void>;
}

interface FakeHostOptions {
  sandbox: Sandbox;
  name: string;
  scenario: Scenario;
  authorizedKey: ParsedKey;
  /** For the n-th exec (from 0): close the connection after this many stdout lines. */
  dropAfterLines?: Record<number, number>;
}

const hostsToClose: FakeHost[] = [];

async function startFakeHost(options: FakeHostOptions): Promise<FakeHost> {
  const folder = join(options.sandbox.root, options.name);
  const bin = join(folder, 'bin');
  await mkdir(bin, { recursive: true });
  const upkeepPath = join(bin, 'upkeep');
  await writeFile(upkeepPath, STUB_UPKEEP);
  await chmod(upkeepPath, 0o755);
  await writeFile(join(folder, 'scenario.json'), JSON.stringify(options.scenario));
  await writeFile(join(folder, 'calls.ndjson'), '');
  // sudo on the fake host: records how it was called and what came on stdin.
  await writeStub(bin, 'sudo', { script: `cat > "${join(folder, 'sudo-stdin')}"\necho "$@" > "${join(folder, 'sudo-args')}"\nexit 0` });
  const hostKey = await generateKey(join(folder, 'host-key', 'ssh_host_ed25519_key'));
  const hostPublicKey = hostKey.publicKey.split(' ').slice(0, 2).join(' ');
  const commands: string[] = [];
  let execs = 0;
  const state = { connections: 0 };
  const clients = new Set<Connection>();
  const server = new Server({ hostKeys: [await readFile(hostKey.privateKeyFile)] }, (client) => {
    state.connections += 1;
    clients.add(client);
    client.on('error', () => undefined);
    client.on('close', () => clients.delete(client));
    client.on('authentication', (context) => {
      const allowed = options.authorizedKey;
      if (context.method !== 'publickey' || context.key.algo !== allowed.type || !context.key.data.equals(allowed.getPublicSSH())) {
        context.reject(['publickey']);
        return;
      }
      if (context.signature && !allowed.verify(context.blob!, context.signature, context.hashAlgo)) {
        context.reject(['publickey']);
        return;
      }
      context.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (acceptExec, _reject, info) => {
          const index = execs;
          execs += 1;
          commands.push(info.command);
          const stream = acceptExec();
          // As sshd does: the login shell runs the command line.
          const child = spawn('/bin/sh', ['-c', info.command], {
            env: { PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`, STUB_DIR: folder, HOME: folder },
          });
          const dropAfter = options.dropAfterLines?.[index];
          let lines = 0;
          let dropped = false;
          child.stdout.on('data', (chunk: Buffer) => {
            if (dropped) return;
            stream.write(chunk);
            lines += chunk.toString().split('\n').length - 1;
            if (dropAfter !== undefined && lines >= dropAfter) {
              dropped = true;
              client.end();
            }
          });
          child.stderr.on('data', (chunk: Buffer) => {
            if (!dropped) stream.stderr.write(chunk);
          });
          child.stdin.on('error', () => undefined);
          stream.on('data', (chunk: Buffer) => child.stdin.write(chunk));
          stream.on('end', () => child.stdin.end());
          if (dropAfter === 0) {
            dropped = true;
            client.end();
          }
          child.on('close', (code) => {
            if (dropped) return;
            stream.exit(code ?? 1);
            stream.end();
          });
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const fake: FakeHost = {
    port,
    knownHostsLine: `[127.0.0.1]:${port} ${hostPublicKey}`,
    hostPublicKey,
    commands,
    get connections() {
      return state.connections;
    },
    folder,
    upkeepPath,
    calls: async () => (await readFile(join(folder, 'calls.ndjson'), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { argv: string[]; env: Record<string, string> }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of clients) client.end();
        server.close(() => resolve());
      }),
  };
  hostsToClose.push(fake);
  return fake;
}

// ---- events the stub prints ---------------------------------------------------------------

const T = '2026-01-01T00:00:00.000Z';
function runEvents(runId: string, plugins: string[]): object[] {
  return [
    { type: 'run', runId, status: 'estimating', time: T },
    ...plugins.map((plugin) => ({ type: 'estimate', plugin, applicable: true, updates: 1, downloadBytes: 0, securityUpdates: false, requiresReboot: false, estimates: {}, time: T })),
    { type: 'run', runId, status: 'updating', time: T },
    ...plugins.flatMap((plugin) => [
      { type: 'phase', plugin, phase: 'update', status: 'running', attempt: 1, time: T },
      { type: 'progress', plugin, phase: 'update', percent: 50, message: 'half', time: T },
      { type: 'phase', plugin, phase: 'update', status: 'completed', attempt: 1, time: T, seconds: 1 },
    ]),
    { type: 'run', runId, status: 'completed', time: T },
  ];
}

function summary(runId: string, succeeded: string[], failed: string[] = [], status = failed.length > 0 ? 'failed' : 'completed'): object {
  return {
    type: 'summary',
    report: {
      runId,
      kind: 'run',
      status,
      dryRun: false,
      startedAt: T,
      endedAt: T,
      seconds: 2,
      estimate: { seconds: 2, low: 1, high: 3 },
      plugins: [...succeeded, ...failed].map((name) => ({
        name,
        applicable: true,
        updates: [],
        downloadBytes: 0,
        securityUpdates: false,
        requiresReboot: false,
        estimates: {},
        phases: { update: failed.includes(name) ? { status: 'failed', attempts: 1, error: { code: 'BROKEN', message: `${name} broke` } } : { status: 'completed', attempts: 1 } },
      })),
      summary: { pluginsRun: succeeded.length + failed.length, succeeded, failed, notRun: [], downloadedBytes: 0, packagesUpdated: succeeded.length, requiresReboot: false },
    },
  };
}

const error = (code: string, message: string, hint = 'a hint from the host'): object => ({ error: { code, message, hint } });

// ---- the local side -----------------------------------------------------------------------

let sandbox: Sandbox;
let userKey: ParsedKey;
let userKeyFile: string;

/** Keys come from ssh-keygen: ssh2's own generator now and then drops a leading zero byte of an ED25519 key. */
async function newKey(path: string): Promise<{ file: string; publicKey: ParsedKey; publicLine: string }> {
  const pair = await generateKey(path);
  return { file: pair.privateKeyFile, publicKey: utils.parseKey(pair.publicKey) as ParsedKey, publicLine: pair.publicKey.split(' ').slice(0, 2).join(' ') };
}

beforeEach(async () => {
  sandbox = await createSandbox({ UPKEEP_REMOTE_CONNECT_TIMEOUT: '10' });
  const pair = await newKey(join(sandbox.home, '.ssh', 'id_ed25519'));
  userKeyFile = pair.file;
  userKey = pair.publicKey;
});

afterEach(async () => {
  for (const host of hostsToClose.splice(0)) await host.close();
  await sandbox.cleanup();
});

async function writeHostsFile(text: string): Promise<string> {
  const path = join(sandbox.upkeepHome, 'config', 'hosts.yaml');
  await writeFile(path, text);
  return path;
}

async function useHosts(hosts: Record<string, FakeHost>, extra = ''): Promise<void> {
  const entries = Object.entries(hosts).map(([name, host]) => `  ${name}: {hostname: 127.0.0.1, port: ${host.port}, user: tester, upkeep_path: ${host.upkeepPath}}`);
  await writeHostsFile(`hosts:\n${entries.join('\n')}\n${extra}`);
}

async function trust(...hosts: FakeHost[]): Promise<void> {
  await writeFile(join(sandbox.home, '.ssh', 'known_hosts'), hosts.map((host) => `${host.knownHostsLine}\n`).join(''));
}

interface Streamed {
  lines: Array<{ host: string; event: { type: string; [key: string]: unknown } }>;
  summary: Array<{
    host: string;
    status: string;
    reconnects: number;
    resumed: boolean;
    runId: string | null;
    remoteExitCode: number | null;
    report: { runId: string } | null;
    check: { plugins: Array<{ name: string }> } | null;
    unseen: { runId: string; plugins: string[]; failures: string[] } | null;
    error: { code: string; message: string; hint?: string } | null;
    warnings: string[];
  }>;
}

function parseStream(stdout: string): Streamed {
  const all = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  const last = all.at(-1) as { type: string; hosts: Streamed['summary'] };
  expect(last.type).toBe('summary');
  return { lines: all.slice(0, -1) as Streamed['lines'], summary: last.hosts };
}

function remote(args: string[], environment: Record<string, string> = {}) {
  return runUpkeep(['remote', ...args], { ...sandbox.environment, ...environment });
}

// ---- tests --------------------------------------------------------------------------------

describe('where hosts come from', () => {
  it('lists hosts and groups of hosts.yaml, ~/.ssh/config and INI and YAML inventories, each with its source', async () => {
    await writeFile(
      join(sandbox.home, '.ssh', 'config'),
      [
        'Host bastion-*',
        '  User ops',
        'Host db1 db2',
        '  HostName %h.internal.example',
        '  Port 2222',
        '  IdentityFile ~/.ssh/db_key',
        'Host web1',
        '  User fromssh',
        '  ProxyJump bastion-1',
        'Host *',
        '  User everyone',
        '',
      ].join('\n'),
    );
    await mkdir(join(sandbox.root, 'inventories'));
    await writeFile(
      join(sandbox.root, 'inventories', 'production.ini'),
      ['[webservers]', 'web[1:2] ansible_user=deploy', 'web3 ansible_host=10.0.0.3 ansible_port=2200', '', '[webservers:vars]', 'upkeep_path=/opt/upkeep/bin/upkeep', '', '[production:children]', 'webservers', ''].join('\n'),
    );
    await writeFile(
      join(sandbox.root, 'inventories', 'lab.yaml'),
      ['all:', '  children:', '    lab:', '      hosts:', '        pi:', '          ansible_host: 192.168.1.100', '          upkeep_sudo_password_env: PI_SUDO', '      vars:', '        ansible_user: pi', ''].join('\n'),
    );
    await writeHostsFile(
      [
        'hosts:',
        '  server1:',
        '    hostname: server1.example.com',
        '    user: admin',
        '    key_file: ~/.ssh/id_server1',
        '    upkeep_path: /usr/local/bin/upkeep',
        '  web1:',
        '    port: 2022',
        'groups:',
        '  everything: [server1, production, lab]',
        'inventory:',
        '  - ../../inventories/production.ini',
        `  - ${join(sandbox.root, 'inventories', 'lab.yaml')}`,
        '',
      ].join('\n'),
    );
    const result = await remote(['--list', '--json']);
    expect(result.exitCode, result.stderr).toBe(0);
    const listing = result.json<{ hosts: Array<Record<string, unknown>>; groups: Array<{ name: string; members: string[] }> }>();
    const byName = Object.fromEntries(listing.hosts.map((host) => [host.name, host]));
    expect(Object.keys(byName).sort()).toEqual(['db1', 'db2', 'pi', 'server1', 'web1', 'web2', 'web3']);
    expect(byName.server1).toMatchObject({ hostname: 'server1.example.com', user: 'admin', port: 22, keyFiles: [join(sandbox.home, '.ssh', 'id_server1')], upkeepPath: '/usr/local/bin/upkeep' });
    // hosts.yaml first, then the inventory, then ~/.ssh/config fills the gaps.
    expect(byName.web1).toMatchObject({ hostname: 'web1', user: 'deploy', port: 2022, upkeepPath: '/opt/upkeep/bin/upkeep', proxy: 'ProxyJump bastion-1' });
    expect(byName.web3).toMatchObject({ hostname: '10.0.0.3', port: 2200, user: 'everyone' });
    expect(byName.db1).toMatchObject({ hostname: 'db1.internal.example', port: 2222, user: 'everyone', keyFiles: [join(sandbox.home, '.ssh', 'db_key')], upkeepPath: 'upkeep' });
    expect(byName.pi).toMatchObject({ hostname: '192.168.1.100', user: 'pi', sudoPasswordEnv: 'PI_SUDO' });
    expect((byName.web1!.sources as Array<{ kind: string }>).map((source) => source.kind)).toEqual(['hosts-file', 'inventory', 'ssh-config']);
    expect(byName.db2!.sources).toEqual([{ kind: 'ssh-config', file: join(sandbox.home, '.ssh', 'config'), line: 3 }]);
    const groups = Object.fromEntries(listing.groups.map((group) => [group.name, [...group.members].sort()]));
    expect(groups.webservers).toEqual(['web1', 'web2', 'web3']);
    expect(groups.production).toEqual(['web1', 'web2', 'web3']);
    expect(groups.lab).toEqual(['pi']);
    expect(groups.everything).toEqual(['pi', 'server1', 'web1', 'web2', 'web3']);

    const human = await remote(['--list']);
    expect(human.stdout).toContain('admin@server1.example.com');
    expect(human.stdout).toContain('inventory ');
    expect(human.stdout).toMatch(/everything\s+server1, web1, web2, web3, pi/);
  });

  it('names the file and the key of an invalid hosts.yaml', async () => {
    const path = await writeHostsFile('hosts:\n  web1:\n    hostname: web1.example.com\n    port: twenty-two\n');
    const result = await remote(['web1']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('error[E_HOSTS_INVALID]');
    expect(result.stderr).toContain(`${path}: hosts.web1.port`);
    expect(result.stderr).toContain('hint:');

    await writeHostsFile('hosts:\n  web1:\n    address: web1.example.com\n');
    expect((await remote(['web1'])).stderr).toMatch(/E_HOSTS_INVALID.*hosts\.web1/);

    await writeHostsFile('hosts:\n  web1: {}\ngroups:\n  all: [web1, nosuch]\n');
    const group = await remote(['all']);
    expect(group.stderr).toContain('groups.all.1: no host or group is called nosuch');
  });

  it('refuses an unknown host name with the closest names, and asks for a name', async () => {
    await writeHostsFile('hosts:\n  webserver1: {}\n');
    const unknown = await remote(['webserver2']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('error[E_HOST_UNKNOWN]');
    expect(unknown.stderr).toContain('did you mean webserver1?');
    const none = await remote([]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('error[E_USAGE]');
  });
});

describe('running on hosts', () => {
  it('runs update run on every host and streams {host, event} lines, then the summary', async () => {
    const one = await startFakeHost({ sandbox, name: 'one', authorizedKey: userKey, scenario: { run: [{ events: [...runEvents('r-one', ['apt', 'npm']), summary('r-one', ['apt', 'npm'])] }] } });
    const two = await startFakeHost({ sandbox, name: 'two', authorizedKey: userKey, scenario: { run: [{ events: [...runEvents('r-two', ['brew']), summary('r-two', ['brew'])] }] } });
    await useHosts({ one, two }, 'groups:\n  both: [one, two]\n');
    await trust(one, two);
    const result = await remote(['both', '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    const { lines, summary: hosts } = parseStream(result.stdout);
    expect(hosts.map((host) => [host.host, host.status, host.report?.runId, host.reconnects])).toEqual([
      ['one', 'succeeded', 'r-one', 0],
      ['two', 'succeeded', 'r-two', 0],
    ]);
    for (const line of lines) expect(Object.keys(line).sort()).toEqual(['event', 'host']);
    // The hosts' own events come through unchanged, in order.
    const oneEvents = lines.filter((line) => line.host === 'one').map((line) => line.event);
    expect(oneEvents.filter((event) => event.type === 'phase')).toEqual(runEvents('r-one', ['apt', 'npm']).filter((event) => (event as { type: string }).type === 'phase'));
    expect(oneEvents.map((event) => event.type)).toEqual(expect.arrayContaining(['connection', 'command', 'run', 'estimate', 'progress', 'summary', 'result']));
    expect((await one.calls()).map((call) => call.argv)).toEqual([['update', 'run', '--json']]);
  });

  it('passes --check-only and --dry-run on as update check and update run --dry-run', async () => {
    const check = { plugins: [{ name: 'apt', applicable: true, reason: null, updates: [{ name: 'curl' }, { name: 'git' }], downloadBytes: 10, securityUpdates: false, requiresReboot: false, estimate: {} }], estimate: { seconds: 30, low: 20, high: 40 } };
    const host = await startFakeHost({
      sandbox,
      name: 'one',
      authorizedKey: userKey,
      scenario: { check: [{ document: check }], run: [{ events: [{ type: 'run', runId: 'dry', status: 'estimating', time: T }, { ...summary('dry', []), report: { ...(summary('dry', []) as { report: object }).report, dryRun: true } }] }] },
    });
    await useHosts({ one: host });
    await trust(host);
    const checked = await remote(['one', '--check-only', '--json']);
    expect(checked.exitCode, checked.stdout).toBe(0);
    expect(parseStream(checked.stdout).summary[0]!.check).toEqual(check);
    const human = await remote(['one', '--check-only']);
    expect(human.stdout).toMatch(/one\s+✓ ok\s+2\s+apt 2/);
    const dry = await remote(['one', '--dry-run', '--json']);
    expect(dry.exitCode, dry.stdout).toBe(0);
    expect((await host.calls()).map((call) => call.argv)).toEqual([
      ['update', 'check', '--json'],
      ['update', 'check', '--json'],
      ['update', 'run', '--json', '--dry-run'],
    ]);
  });

  it('goes on when one host fails (exit 3) and fails when all do (exit 1)', async () => {
    const good = await startFakeHost({ sandbox, name: 'good', authorizedKey: userKey, scenario: { run: [{ events: [...runEvents('r-good', ['apt']), summary('r-good', ['apt'])] }] } });
    const broken = await startFakeHost({ sandbox, name: 'broken', authorizedKey: userKey, scenario: { run: [{ document: error('E_NO_PLUGINS', 'no update plugin is enabled'), stderr: ['warning: something'], exitCode: 1 }] } });
    const partial = await startFakeHost({ sandbox, name: 'partial', authorizedKey: userKey, scenario: { run: [{ events: [summary('r-partial', ['apt'], ['npm'])], exitCode: 3 }] } });
    await useHosts({ good, broken, partial });
    await trust(good, broken, partial);
    const some = await remote(['good', 'broken', 'partial', '--json']);
    expect(some.exitCode).toBe(3);
    const hosts = parseStream(some.stdout).summary;
    expect(hosts.map((host) => [host.host, host.status])).toEqual([
      ['good', 'succeeded'],
      ['broken', 'failed'],
      ['partial', 'partial'],
    ]);
    expect(hosts[1]!.error).toMatchObject({ code: 'E_REMOTE_FAILED', message: 'broken: E_NO_PLUGINS: no update plugin is enabled', hint: 'on broken: a hint from the host' });
    expect(parseStream(some.stdout).lines).toContainEqual({ host: 'broken', event: expect.objectContaining({ type: 'log', stream: 'stderr', line: 'warning: something' }) });

    const human = await remote(['good', 'broken']);
    expect(human.exitCode).toBe(3);
    expect(human.stdout).toContain('✗ broken: error[E_REMOTE_FAILED]: broken: E_NO_PLUGINS');
    expect(human.stdout).toContain('2 hosts: 1 ok, 1 failed');
    expect(human.stderr).toContain('broken: | warning: something');

    const all = await remote(['broken', '--json']);
    expect(all.exitCode).toBe(1);
  });

  it('says how to install upkeep when it is not on the host', async () => {
    const host = await startFakeHost({ sandbox, name: 'bare', authorizedKey: userKey, scenario: {} });
    await writeHostsFile(`hosts:\n  bare: {hostname: 127.0.0.1, port: ${host.port}, user: tester, upkeep_path: /nonexistent/upkeep}\n`);
    await trust(host);
    const result = await remote(['bare', '--json']);
    expect(result.exitCode).toBe(1);
    const [bare] = parseStream(result.stdout).summary;
    expect(bare!.remoteExitCode).toBe(127);
    expect(bare!.error!.message).toContain('/nonexistent/upkeep was not found on the host');
    expect(bare!.error!.hint).toContain('upkeep_path');
  });

  it('hands the sudo password to sudo on the host through stdin only', async () => {
    const host = await startFakeHost({ sandbox, name: 'pi', authorizedKey: userKey, scenario: { run: [{ events: [...runEvents('r-pi', ['apt']), summary('r-pi', ['apt'])] }] } });
    await writeHostsFile(`hosts:\n  pi: {hostname: 127.0.0.1, port: ${host.port}, user: tester, upkeep_path: ${host.upkeepPath}, sudo_password_env: PI_SUDO_PASS}\n`);
    await trust(host);
    const result = await remote(['pi', '--json', '--verbose'], { PI_SUDO_PASS: PASSWORD });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(await readFile(join(host.folder, 'sudo-stdin'), 'utf8')).toBe(`${PASSWORD}\n`);
    expect((await readFile(join(host.folder, 'sudo-args'), 'utf8')).trim()).toBe('-S -p  -v');
    // Never in the command line, the host upkeep's argv or environment, the events or the output.
    expect(host.commands.join('\n')).not.toContain('w0rd');
    const [call] = await host.calls();
    expect(JSON.stringify(call)).not.toContain('w0rd');
    expect(result.stdout).not.toContain('w0rd');
    expect(result.stderr).not.toContain('w0rd');

    const unset = await remote(['pi', '--json']);
    expect(parseStream(unset.stdout).summary[0]!.warnings).toEqual([expect.stringContaining('PI_SUDO_PASS (its sudo_password_env) is not set')]);
  });
});

describe('host keys', () => {
  it('refuses an unknown host with its fingerprint, adds it with --accept-new, then knows it', async () => {
    const host = await startFakeHost({ sandbox, name: 'new', authorizedKey: userKey, scenario: { check: [{ document: { plugins: [], estimate: { seconds: 0, low: 0, high: 0 } } }] } });
    await useHosts({ fresh: host });
    // Plain entries here whatever /etc/ssh/ssh_config says (Debian's hashes them): the user's file comes first.
    await writeFile(join(sandbox.home, '.ssh', 'config'), 'Host *\n  HashKnownHosts no\n');
    const fingerprint = (utils.parseKey(host.hostPublicKey) as ParsedKey).getPublicSSH();
    const expected = `SHA256:${(await import('node:crypto')).createHash('sha256').update(fingerprint).digest('base64').replace(/=+$/, '')}`;
    const refused = await remote(['fresh', '--check-only']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toContain(`error[E_SSH_HOST_KEY]: fresh ([127.0.0.1]:${host.port}) is not a known host: its ED25519 key fingerprint is ${expected}`);
    expect(refused.stdout).toContain('--accept-new');
    expect(host.commands).toEqual([]);

    const accepted = await remote(['fresh', '--check-only', '--accept-new', '--json']);
    expect(accepted.exitCode, accepted.stdout).toBe(0);
    expect(parseStream(accepted.stdout).lines).toContainEqual({ host: 'fresh', event: expect.objectContaining({ type: 'host-key-added', fingerprint: expected }) });
    expect(await readFile(join(sandbox.home, '.ssh', 'known_hosts'), 'utf8')).toBe(`${host.knownHostsLine}\n`);
    const again = await remote(['fresh', '--check-only']);
    expect(again.exitCode, again.stdout).toBe(0);
  });

  it('hashes the added entry when ssh_config says HashKnownHosts yes, and reads hashed entries', async () => {
    const host = await startFakeHost({ sandbox, name: 'hashed', authorizedKey: userKey, scenario: { check: [{ document: { plugins: [], estimate: { seconds: 0, low: 0, high: 0 } } }] } });
    await useHosts({ hashed: host });
    await writeFile(join(sandbox.home, '.ssh', 'config'), 'Host *\n  HashKnownHosts yes\n');
    expect((await remote(['hashed', '--check-only', '--accept-new'])).exitCode).toBe(0);
    const line = (await readFile(join(sandbox.home, '.ssh', 'known_hosts'), 'utf8')).trim();
    const [hashedName, type, key] = line.split(' ');
    expect(hashedName).toMatch(/^\|1\|[^|]+\|[^|]+$/);
    expect(`${type} ${key}`).toBe(host.hostPublicKey);
    const [, , salt, hash] = hashedName!.split('|');
    expect(createHmac('sha1', Buffer.from(salt!, 'base64')).update(`[127.0.0.1]:${host.port}`).digest('base64')).toBe(hash);
    expect((await remote(['hashed', '--check-only'])).exitCode).toBe(0);
  });

  it('refuses a changed key, even with --accept-new, and a revoked key', async () => {
    const host = await startFakeHost({ sandbox, name: 'changed', authorizedKey: userKey, scenario: {} });
    await useHosts({ changed: host });
    const other = (await newKey(join(sandbox.root, 'other', 'id_ed25519'))).publicLine;
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(`[127.0.0.1]:${host.port}`).digest('base64')}`;
    const knownHosts = `# a comment\n${hashed} ${other}\n`;
    await writeFile(join(sandbox.home, '.ssh', 'known_hosts'), knownHosts);
    for (const flags of [[], ['--accept-new']]) {
      const result = await remote(['changed', '--check-only', ...flags]);
      expect(result.exitCode).toBe(1);
      expect(result.stdout).toContain('error[E_SSH_HOST_KEY]');
      expect(result.stdout).toContain('has CHANGED');
      expect(result.stdout).toContain(`known_hosts:2`);
      expect(result.stdout).toContain(`ssh-keygen -R '[127.0.0.1]:${host.port}'`);
    }
    expect(await readFile(join(sandbox.home, '.ssh', 'known_hosts'), 'utf8')).toBe(knownHosts);

    await writeFile(join(sandbox.home, '.ssh', 'known_hosts'), `${host.knownHostsLine}\n@revoked * ${host.hostPublicKey}\n`);
    const revoked = await remote(['changed', '--check-only', '--accept-new']);
    expect(revoked.exitCode).toBe(1);
    expect(revoked.stdout).toContain('REVOKED');
    expect(host.commands).toEqual([]);
  });
});

describe('authentication and connection failures', () => {
  it('reports the keys it offered when the host takes none of them', async () => {
    const stranger = (await newKey(join(sandbox.root, 'stranger', 'id_ed25519'))).publicKey;
    const host = await startFakeHost({ sandbox, name: 'locked', authorizedKey: stranger, scenario: {} });
    await useHosts({ locked: host });
    await trust(host);
    const result = await remote(['locked', '--json']);
    expect(result.exitCode).toBe(1);
    const [locked] = parseStream(result.stdout).summary;
    expect(locked!.error!.code).toBe('E_SSH_AUTH');
    expect(locked!.error!.message).toContain(`refused every key offered: ${userKeyFile}`);
    expect(locked!.error!.hint).toContain('authorized_keys');
    // Authentication failures are not retried: the same keys would be refused again.
    expect(host.connections).toBe(1);
  });

  it('gives up on a host that refuses connections after the configured retries', async () => {
    const host = await startFakeHost({ sandbox, name: 'gone', authorizedKey: userKey, scenario: {} });
    await useHosts({ gone: host });
    await host.close();
    const result = await remote(['gone', '--json'], { UPKEEP_REMOTE_RETRIES: '1' });
    expect(result.exitCode).toBe(1);
    const stream = parseStream(result.stdout);
    expect(stream.summary[0]!.error).toMatchObject({ code: 'E_SSH_CONNECT', message: expect.stringContaining('connection refused') });
    expect(stream.lines.filter((line) => line.event.type === 'connection' && line.event.status === 'connecting')).toHaveLength(2);
  });
});

describe('a dropped connection', () => {
  const events = runEvents('r-1', ['apt', 'npm']);

  it('waits while the run goes on on the host, then resumes it to the end', async () => {
    const host = await startFakeHost({
      sandbox,
      name: 'flaky',
      authorizedKey: userKey,
      dropAfterLines: { 0: 4 },
      scenario: {
        run: [{ events, delayMs: 20 }],
        resume: [{ document: error('E_RUN_IN_PROGRESS', 'the update run r-1 is still going (pid 42)'), exitCode: 1 }, { events: [...events.slice(4), summary('r-1', ['apt', 'npm'])] }],
      },
    });
    await useHosts({ flaky: host });
    await trust(host);
    const result = await remote(['flaky', '--json']);
    expect(result.exitCode, result.stdout).toBe(0);
    const { lines, summary: hosts } = parseStream(result.stdout);
    expect(hosts[0]).toMatchObject({ status: 'succeeded', reconnects: 1, resumed: true, runId: 'r-1', report: { runId: 'r-1' } });
    expect((await host.calls()).map((call) => call.argv[1])).toEqual(['run', 'resume', 'resume']);
    const local = lines.map((line) => line.event).filter((event) => ['connection', 'waiting', 'command'].includes(event.type)).map((event) => `${event.type}:${String(event.status ?? event.command ?? '')}`);
    expect(local).toEqual(['connection:connecting', 'connection:connected', 'command:run', 'connection:lost', 'connection:retrying', 'connection:connecting', 'connection:connected', 'command:resume', 'waiting:', 'command:resume']);
  });

  it('reads the outcome from update stats when the run ended while disconnected', async () => {
    const host = await startFakeHost({
      sandbox,
      name: 'flaky',
      authorizedKey: userKey,
      dropAfterLines: { 0: 2 },
      scenario: {
        run: [{ events }],
        resume: [{ document: error('E_NO_RUN', 'the last update run (r-1) failed; there is nothing to resume'), exitCode: 1 }],
        stats: [{ document: { phases: [], runs: [{ runId: 'r-1', startedAt: T, wallSeconds: 5, plugins: ['apt', 'npm'], failures: ['npm'] }, { runId: 'r-0', plugins: [], failures: [] }] } }],
      },
    });
    await useHosts({ flaky: host });
    await trust(host);
    const result = await remote(['flaky', '--json']);
    expect(result.exitCode).toBe(3);
    const [flaky] = parseStream(result.stdout).summary;
    expect(flaky).toMatchObject({ status: 'partial', reconnects: 1, unseen: { runId: 'r-1', plugins: ['apt', 'npm'], failures: ['npm'] } });
    expect(flaky!.warnings).toEqual([expect.stringContaining('finished while disconnected')]);
    expect((await host.calls()).map((call) => call.argv[1])).toEqual(['run', 'resume', 'stats']);
  });

  it('starts the run again when it had not begun before the drop', async () => {
    const host = await startFakeHost({
      sandbox,
      name: 'flaky',
      authorizedKey: userKey,
      dropAfterLines: { 0: 0 },
      scenario: {
        run: [{ events: [] }, { events: [...events, summary('r-2', ['apt', 'npm'])] }],
        resume: [{ document: error('E_NO_RUN', 'the last update run (r-0) completed; there is nothing to resume'), exitCode: 1 }],
      },
    });
    await useHosts({ flaky: host });
    await trust(host);
    const result = await remote(['flaky', '--json']);
    expect(result.exitCode, result.stdout).toBe(0);
    expect(parseStream(result.stdout).summary[0]).toMatchObject({ status: 'succeeded', reconnects: 1, report: { runId: 'r-2' } });
    expect((await host.calls()).map((call) => call.argv[1])).toEqual(expect.arrayContaining(['resume', 'run']));
  });

  it('resumes the run when the host\'s upkeep is killed in the middle of it while the connection lives, up to the retries', async () => {
    const host = await startFakeHost({
      sandbox,
      name: 'killed',
      authorizedKey: userKey,
      scenario: {
        // Killed (exit 137, as a shell reports SIGKILL) after the first plugin started.
        run: [{ events: events.slice(0, 5), exitCode: 137, stderr: ['Killed'] }],
        resume: [{ events: [...events.slice(4), summary('r-1', ['apt', 'npm'])] }],
      },
    });
    await useHosts({ killed: host });
    await trust(host);
    const result = await remote(['killed', '--json']);
    expect(result.exitCode, result.stdout).toBe(0);
    const { lines, summary: hosts } = parseStream(result.stdout);
    expect(hosts[0]).toMatchObject({ status: 'succeeded', reconnects: 0, resumed: true, runId: 'r-1', report: { runId: 'r-1' } });
    expect((await host.calls()).map((call) => call.argv[1])).toEqual(['run', 'resume']);
    expect(lines.map((line) => line.event).filter((event) => event.type === 'log').map((event) => event.line)).toContain('upkeep on the host exited with 137 in the middle of run r-1; resuming it');

    // A host whose upkeep dies every time is given up on after remote.retries resumes.
    const doomed = await startFakeHost({
      sandbox,
      name: 'doomed',
      authorizedKey: userKey,
      scenario: { run: [{ events: events.slice(0, 5), exitCode: 137 }], resume: [{ events: events.slice(4, 6), exitCode: 137 }] },
    });
    await useHosts({ doomed });
    await trust(doomed);
    const given = await remote(['doomed', '--json'], { UPKEEP_REMOTE_RETRIES: '2' });
    expect(given.exitCode).toBe(1);
    expect(parseStream(given.stdout).summary[0]!.error).toMatchObject({ code: 'E_REMOTE_FAILED', message: expect.stringContaining('exited with 137 without a result') });
    expect((await doomed.calls()).map((call) => call.argv[1])).toEqual(['run', 'resume', 'resume']);
  });

  it('gives up after the configured reconnections, saying how to continue on the host', async () => {
    const host = await startFakeHost({
      sandbox,
      name: 'flaky',
      authorizedKey: userKey,
      dropAfterLines: { 0: 2, 1: 0, 2: 0, 3: 0 },
      scenario: { run: [{ events, delayMs: 10 }], resume: [{ events, delayMs: 10 }] },
    });
    await useHosts({ flaky: host });
    await trust(host);
    const result = await remote(['flaky', '--json'], { UPKEEP_REMOTE_RETRIES: '2' });
    expect(result.exitCode).toBe(1);
    const [flaky] = parseStream(result.stdout).summary;
    expect(flaky!.error).toMatchObject({ code: 'E_SSH_CONNECT', message: expect.stringContaining('2 reconnections did not bring it back'), hint: expect.stringContaining('update resume') });
    expect(flaky!.reconnects).toBe(2);
  });
});
