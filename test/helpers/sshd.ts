import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { writeMockManifest, type MockPlugin } from './update.ts';

/**
 * Real OpenSSH servers on loopback for e2e tests and benchmarks: Debian's
 * /usr/sbin/sshd with a temporary sshd_config (its own generated host key, a
 * generated user key in its authorized_keys, UsePAM no, StrictModes no, a
 * PidFile in the temp folder), listening on a random free port of 127.0.0.1.
 * It runs as whoever runs the tests (root here), and logs in as that user.
 */

export const SSHD = '/usr/sbin/sshd';

export function sshdAvailable(): boolean {
  return existsSync(SSHD) && spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
}

export interface KeyPair {
  privateKeyFile: string;
  /** `ssh-ed25519 AAAA... comment` */
  publicKey: string;
}

/** A new passphrase-less key made by ssh-keygen. */
export async function generateKey(path: string, type: 'ed25519' | 'rsa' | 'ecdsa' = 'ed25519'): Promise<KeyPair> {
  await mkdir(dirname(path), { recursive: true });
  const result = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'upkeep-test', '-f', path], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ssh-keygen failed: ${result.stderr}`);
  return { privateKeyFile: path, publicKey: (await readFile(`${path}.pub`, 'utf8')).trim() };
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface SshdOptions {
  /** Where its config, keys and pid file go. */
  folder: string;
  /** Public key lines allowed to log in. */
  authorizedKeys: string[];
  port?: number;
  hostKeyType?: 'ed25519' | 'rsa' | 'ecdsa';
}

export interface Sshd {
  port: number;
  /** The listening server's pid (null while stopped). */
  readonly pid: number | null;
  folder: string;
  /** `ssh-ed25519 AAAA...` of its host key. */
  hostPublicKey: string;
  /** The line known_hosts needs to trust it: `[127.0.0.1]:PORT type key`. */
  knownHostsLine: string;
  /** Starts it (again); resolves once it accepts connections. */
  start(): Promise<void>;
  /**
   * Kills the server and its per-connection sshd processes at once (SIGKILL),
   * as a crash or a cut cable would drop them: the commands they ran are left
   * running with their pipes broken.
   */
  kill(): Promise<void>;
  /** Replaces the host key with a new one (the next start presents it). */
  regenerateHostKey(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const folder = options.folder;
  await mkdir(folder, { recursive: true });
  // sshd refuses to start without its privilege separation folder (normally made by the service).
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = options.port ?? (await freePort());
  const type = options.hostKeyType ?? 'ed25519';
  const hostKeyFile = join(folder, `ssh_host_${type}_key`);
  let hostKey = await generateKey(hostKeyFile, type);
  await writeFile(join(folder, 'authorized_keys'), `${options.authorizedKeys.join('\n')}\n`);
  await chmod(join(folder, 'authorized_keys'), 0o600);
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKeyFile}`,
    `PidFile ${join(folder, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(folder, 'authorized_keys')}`,
    'UsePAM no',
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'PrintMotd no',
    'LogLevel ERROR',
    // Many connections at once from the bench and the parallel tests.
    'MaxStartups 100:30:200',
    'MaxSessions 50',
  ].join('\n');
  const configFile = join(folder, 'sshd_config');
  await writeFile(configFile, `${config}\n`);

  let server: ChildProcess | null = null;
  const log: string[] = [];
  const shortKey = (): string => hostKey.publicKey.split(' ').slice(0, 2).join(' ');

  const instance: Sshd = {
    port,
    folder,
    get pid() {
      return server?.pid ?? null;
    },
    get hostPublicKey() {
      return shortKey();
    },
    get knownHostsLine() {
      return `[127.0.0.1]:${port} ${shortKey()}`;
    },
    async start() {
      const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
      server = child;
      const deadline = Date.now() + 10_000;
      while (!(await accepts(port))) {
        if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${log.join('')}`);
        if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${log.join('')}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    async kill() {
      const pid = server?.pid;
      if (pid === undefined) return;
      const sessions = descendants(pid).filter((child) => commandName(child) === 'sshd');
      for (const target of [pid, ...sessions]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await waitForExit(server!);
      server = null;
      // The kernel closes the killed processes' sockets; wait until the port is free again.
      const deadline = Date.now() + 5000;
      while ((await accepts(port)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    },
    async regenerateHostKey() {
      spawnSync('rm', ['-f', hostKeyFile, `${hostKeyFile}.pub`]);
      hostKey = await generateKey(hostKeyFile, type);
    },
    async stop() {
      await instance.kill();
    },
  };
  await instance.start();
  return instance;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** The processes below `root` whose command line contains `text`. */
export function descendantsRunning(root: number, text: string): number[] {
  return descendants(root).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(text);
    } catch {
      return false;
    }
  });
}

function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Every process below `root` in the process tree. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentOf(Number(entry));
    if (parent === null) continue;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent)!.push(Number(entry));
  }
  const result: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    result.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return result;
}

export interface RemoteHostFixture {
  name: string;
  sshd: Sshd;
  folder: string;
  /** The wrapper script that is "upkeep" on this host (upkeep_path). */
  upkeepPath: string;
  /** The mock plugins' pretend machine and log (test/helpers/update.ts). */
  machine: string;
  log: string;
  upkeepHome: string;
}

const REPOSITORY = join(import.meta.dirname, '..', '..');

/**
 * A "host" for upkeep remote: an sshd of its own, and upkeep "installed"
 * there as this checkout's bin/upkeep.js behind a wrapper script that points
 * UPKEEP_HOME and the plugin folders at this host's folder, whose only
 * plugins are the given mock plugins.
 */
export async function createRemoteHost(options: {
  root: string;
  name: string;
  authorizedKeys: string[];
  plugins: MockPlugin[];
  /** Extra UPKEEP_* settings of the host's upkeep (e.g. UPKEEP_UPDATE_PARALLEL). */
  environment?: Record<string, string>;
}): Promise<RemoteHostFixture> {
  const folder = join(options.root, options.name);
  const plugins = join(folder, 'plugins');
  const machine = join(folder, 'machine');
  const log = join(folder, 'plugins.log');
  const upkeepHome = join(folder, 'upkeep-home');
  await Promise.all([plugins, machine, join(folder, 'no-system-plugins'), join(upkeepHome, 'config')].map((path) => mkdir(path, { recursive: true })));
  await writeFile(log, '');
  for (const plugin of options.plugins) await writeMockManifest(plugins, plugin, { machine, log });
  const quote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;
  const variables: Record<string, string> = {
    UPKEEP_HOME: upkeepHome,
    UPKEEP_BUILTIN_PLUGINS_DIR: plugins,
    UPKEEP_SYSTEM_PLUGINS_DIR: join(folder, 'no-system-plugins'),
    UPKEEP_SYSTEM_CONFIG: join(folder, 'etc-upkeep.yaml'),
    UPKEEP_UPDATE_RETRY_DELAY: '0',
    // The mock plugin is a node script: node must be on the (short) PATH of an ssh session.
    PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
    NO_COLOR: '1',
    ...options.environment,
  };
  const upkeepPath = join(folder, 'bin', 'upkeep');
  await mkdir(dirname(upkeepPath), { recursive: true });
  await writeFile(
    upkeepPath,
    [
      '#!/bin/sh',
      ...Object.entries(variables).map(([name, value]) => `${name}=${quote(value)}; export ${name}`),
      `exec ${quote(process.execPath)} ${quote(join(REPOSITORY, 'bin', 'upkeep.js'))} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(upkeepPath, 0o755);
  const sshd = await startSshd({ folder: join(folder, 'sshd'), authorizedKeys: options.authorizedKeys });
  return { name: options.name, sshd, folder, upkeepPath, machine, log, upkeepHome };
}
