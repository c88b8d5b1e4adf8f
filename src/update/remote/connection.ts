import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Ssh2Module from 'ssh2';
import type { AnyAuthMethod, Client, ClientChannel, ConnectConfig } from 'ssh2';
import { UpkeepError } from '../../core/errors.ts';
import { LineSplitter } from '../../core/exec.ts';
import { absoluteKeyFile, type RemoteHost } from './hosts.ts';
import {
  appendKnownHost,
  checkHostKey,
  fingerprint,
  formatKnownHostsLine,
  keyTypeLabel,
  keyTypeOf,
  knownHostName,
  loadKnownHosts,
  preferredHostKeyAlgorithms,
  type HostKeyVerdict,
} from './known-hosts.ts';

/**
 * One SSH connection to one host, through the ssh2 library (docs/remote.md
 * says why not the ssh binary): host keys checked against known_hosts by our
 * own callback, agent and key authentication, and commands run on an exec
 * channel with their output cut into lines as it arrives, the way
 * core/exec.ts runs local ones.
 */

type Ssh2 = typeof Ssh2Module;
let ssh2: Promise<Ssh2> | undefined;

/**
 * ssh2 ships optional native helpers (.node files) that a bundle cannot
 * carry, so the CLI bundle leaves it out and it is loaded from node_modules
 * when a connection is first made; the specifier sits in a variable so that
 * esbuild does not follow it. Loading it lazily also keeps it off the
 * start-up of every other command.
 */
export function loadSsh2(): Promise<Ssh2> {
  const specifier = 'ssh2';
  ssh2 ??= (import(specifier) as Promise<Ssh2 & { default?: Ssh2 }>).then((module) => module.default ?? module);
  return ssh2;
}

export interface KnownHostsPolicy {
  /** Read in order: the user's files, then the system's. */
  files: string[];
  /** Where a key accepted with --accept-new is appended. */
  userFile: string;
  /** Hash the names of appended entries (HashKnownHosts yes). */
  hash: boolean;
  acceptNew: boolean;
}

export interface ConnectOptions {
  host: RemoteHost;
  home: string;
  knownHosts: KnownHostsPolicy;
  /** SSH_AUTH_SOCK; agent authentication is tried first when set. */
  agentSocket: string | undefined;
  connectTimeoutMs: number;
  /** How often to probe an idle connection; three missed answers end it. */
  keepaliveIntervalMs?: number;
}

export interface HostKeyAdded {
  file: string;
  name: string;
  keyType: string;
  fingerprint: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed unless keepInputOpen. Never logged. */
  input?: string;
  /** Leave stdin open after `input`, for sendInput. */
  keepInputOpen?: boolean;
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Bytes of stdout kept (the lines are all passed to onLine anyway). */
  maxOutput?: number;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The connection went away before the command's exit status arrived. */
  dropped: boolean;
  durationMs: number;
}

/** The key files ssh tries when none is configured, in its order. */
export const DEFAULT_KEY_FILES = ['id_rsa', 'id_ecdsa', 'id_ed25519'];

export function describeAddress(host: RemoteHost): string {
  return `${host.user}@${host.hostname}${host.port === 22 ? '' : `:${host.port}`}`;
}

/** A retryable connection failure (refused, unreachable, timed out, dropped). */
export function connectError(host: RemoteHost, message: string, cause?: unknown): UpkeepError {
  return new UpkeepError('E_SSH_CONNECT', `${host.name} (${describeAddress(host)}): ${message}`, {
    hint: 'check that the host is up, sshd listens on that port and nothing blocks it (try `ssh -p PORT USER@HOST`)',
    cause,
    details: { host: host.name, retryable: true },
  });
}

export class SshConnection {
  private channel: ClientChannel | null = null;
  private closed = false;
  private readonly closeListeners = new Set<() => void>();

  private constructor(
    readonly host: RemoteHost,
    private readonly client: Client,
    /** Set when --accept-new added the host's key to known_hosts. */
    readonly added: HostKeyAdded | null,
  ) {
    const onGone = (): void => {
      this.closed = true;
      for (const listener of this.closeListeners) listener();
    };
    client.on('close', onGone);
    client.on('end', onGone);
    // After the handshake an error also ends the connection; 'close' follows.
    client.on('error', () => undefined);
  }

  static async open(options: ConnectOptions): Promise<SshConnection> {
    const { Client: ClientClass, utils } = await loadSsh2();
    const { host, knownHosts } = options;
    const name = knownHostName(host.hostname, host.port);
    const entries = await loadKnownHosts(knownHosts.files);
    let verdict: HostKeyVerdict | null = null;
    let presented: Buffer | null = null;
    let added: HostKeyAdded | null = null;
    let addFailure: unknown = null;

    const hostVerifier = (key: Buffer, verify: (valid: boolean) => void): void => {
      presented = key;
      verdict = checkHostKey(entries, name, key);
      if (verdict.status === 'known') return verify(true);
      if (verdict.status !== 'unknown' || !knownHosts.acceptNew) return verify(false);
      const line = formatKnownHostsLine(name, key, knownHosts.hash);
      appendKnownHost(knownHosts.userFile, line).then(
        () => {
          added = { file: knownHosts.userFile, name, keyType: keyTypeOf(key), fingerprint: fingerprint(key) };
          verify(true);
        },
        (error: unknown) => {
          addFailure = error;
          verify(false);
        },
      );
    };

    const { methods, tried, skipped } = await authenticationMethods(options, utils);
    const queue = [...methods];
    const authHandler = (_left: unknown, _partial: unknown, next: (method: AnyAuthMethod | false) => void): void => {
      const method = queue.shift();
      next(method ?? false);
    };

    const client = new ClientClass();
    const config: ConnectConfig = {
      host: host.hostname,
      port: host.port,
      username: host.user,
      readyTimeout: options.connectTimeoutMs,
      keepaliveInterval: options.keepaliveIntervalMs ?? 5000,
      keepaliveCountMax: 3,
      hostVerifier: hostVerifier as ConnectConfig['hostVerifier'],
      algorithms: { serverHostKey: preferredHostKeyAlgorithms(entries, name) as never },
      authHandler: authHandler as unknown as ConnectConfig['authHandler'],
    };
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', reject);
        client.connect(config);
      });
    } catch (error) {
      client.end();
      if (addFailure) throw addFailure;
      const seen = verdict as HostKeyVerdict | null;
      if (seen && seen.status !== 'known' && presented) throw hostKeyError(host, name, seen, presented, knownHosts);
      const level = (error as { level?: string }).level;
      if (level === 'client-authentication') throw authError(host, tried, skipped, options.agentSocket);
      throw connectError(host, describeConnectFailure(error), error);
    }
    return new SshConnection(host, client, added);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs one command line (already quoted for the remote shell). */
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const started = performance.now();
    const maxOutput = options.maxOutput ?? 16 * 1024 * 1024;
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.closed) {
        resolve({ exitCode: null, signal: null, stdout: '', stderr: '', dropped: true, durationMs: 0 });
        return;
      }
      this.client.exec(command, (error, channel) => {
        if (error) {
          if (this.closed) resolve({ exitCode: null, signal: null, stdout: '', stderr: '', dropped: true, durationMs: performance.now() - started });
          else reject(new UpkeepError('E_REMOTE_FAILED', `${this.host.name}: the server refused to run a command: ${error.message}`, { hint: 'check that the account may run commands over ssh (no ForceCommand, no restricted shell)' }));
          return;
        }
        this.channel = channel;
        let exitCode: number | null = null;
        let signal: string | null = null;
        let exited = false;
        let settled = false;
        const stdout: Buffer[] = [];
        let stdoutSize = 0;
        const stderr: Buffer[] = [];
        const onLine = options.onLine;
        const stdoutLines = new LineSplitter((line) => onLine?.('stdout', line), 1024 * 1024);
        const stderrLines = new LineSplitter((line) => onLine?.('stderr', line), 1024 * 1024);
        const finish = (dropped: boolean): void => {
          if (settled) return;
          settled = true;
          this.closeListeners.delete(onGone);
          this.channel = null;
          stdoutLines.end();
          stderrLines.end();
          resolve({
            exitCode,
            signal,
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: Buffer.concat(stderr).toString('utf8'),
            dropped,
            durationMs: performance.now() - started,
          });
        };
        const onGone = (): void => finish(!exited);
        this.closeListeners.add(onGone);
        channel.on('data', (chunk: Buffer) => {
          if (stdoutSize < maxOutput) {
            stdout.push(chunk);
            stdoutSize += chunk.length;
          }
          stdoutLines.push(chunk);
        });
        channel.stderr.on('data', (chunk: Buffer) => {
          if (stderr.length < 1024) stderr.push(chunk);
          stderrLines.push(chunk);
        });
        channel.on('exit', (code: number | null, signalName?: string) => {
          exited = true;
          exitCode = typeof code === 'number' ? code : null;
          signal = signalName ?? null;
        });
        channel.on('close', () => finish(!exited));
        if (options.keepInputOpen) {
          if (options.input) channel.write(options.input);
        } else if (options.input !== undefined) {
          channel.end(options.input);
        }
      });
    });
  }

  /** Writes to the running command's stdin (opened with keepInputOpen); false when none runs. */
  sendInput(text: string): boolean {
    if (!this.channel || this.closed) return false;
    try {
      this.channel.write(text);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    this.closed = true;
    this.client.end();
  }
}

async function authenticationMethods(
  options: ConnectOptions,
  utils: Ssh2['utils'],
): Promise<{ methods: AnyAuthMethod[]; tried: string[]; skipped: string[] }> {
  const { host, home } = options;
  const methods: AnyAuthMethod[] = [];
  const tried: string[] = [];
  const skipped: string[] = [];
  if (options.agentSocket) {
    methods.push({ type: 'agent', username: host.user, agent: options.agentSocket });
    tried.push('the keys of ssh-agent (SSH_AUTH_SOCK)');
  }
  const explicit = host.keyFiles.length > 0;
  const files = explicit ? host.keyFiles.map((file) => absoluteKeyFile(file, home)) : DEFAULT_KEY_FILES.map((file) => join(home, '.ssh', file));
  for (const file of files) {
    let text: Buffer;
    try {
      text = await readFile(file);
    } catch {
      if (explicit) skipped.push(`${file} (cannot be read)`);
      continue;
    }
    const parsed = utils.parseKey(text);
    if (parsed instanceof Error) {
      // No prompt here (hosts run in parallel, often unattended): an encrypted key works through ssh-agent.
      skipped.push(/encrypted|passphrase/i.test(parsed.message) ? `${file} (encrypted: load it with ssh-add)` : `${file} (${parsed.message})`);
      continue;
    }
    methods.push({ type: 'publickey', username: host.user, key: text });
    tried.push(file);
  }
  return { methods, tried, skipped };
}

function authError(host: RemoteHost, tried: string[], skipped: string[], agentSocket: string | undefined): UpkeepError {
  const address = describeAddress(host);
  const skippedText = skipped.length > 0 ? `; skipped ${skipped.join(', ')}` : '';
  if (tried.length === 0) {
    return new UpkeepError('E_SSH_AUTH', `${host.name} (${address}): no key to offer: ${agentSocket ? 'ssh-agent holds none the server took' : 'SSH_AUTH_SOCK is not set'} and no usable key file${skippedText}`, {
      hint: 'start ssh-agent and `ssh-add` your key, or set key_file for the host in hosts.yaml (or IdentityFile in ~/.ssh/config)',
      details: { host: host.name },
    });
  }
  return new UpkeepError('E_SSH_AUTH', `${host.name} (${address}) refused every key offered: ${tried.join(', ')}${skippedText}`, {
    hint: `add your public key to ~${host.user === 'root' ? 'root' : host.user}/.ssh/authorized_keys on the host (\`ssh-copy-id -p ${host.port} ${host.user}@${host.hostname}\`), or check user and key_file`,
    details: { host: host.name },
  });
}

function hostKeyError(host: RemoteHost, name: string, verdict: HostKeyVerdict, key: Buffer, policy: KnownHostsPolicy): UpkeepError {
  const keyType = keyTypeOf(key);
  const print = fingerprint(key);
  const label = keyTypeLabel(keyType);
  const details = { host: host.name, knownHostsName: name, keyType, fingerprint: print };
  if (verdict.status === 'changed' || verdict.status === 'revoked') {
    const where = `${verdict.entry.file}:${verdict.entry.line}`;
    return new UpkeepError(
      'E_SSH_HOST_KEY',
      verdict.status === 'revoked'
        ? `${host.name} (${name}) presented a REVOKED ${label} host key ${print} (${where}); refusing to connect`
        : `the ${label} host key of ${host.name} (${name}) has CHANGED: it is now ${print}, known_hosts (${where}) has another; someone may be intercepting the connection, or the host was reinstalled. Refusing to connect`,
      {
        hint:
          verdict.status === 'revoked'
            ? 'a revoked key is never accepted; ask the host administrator'
            : `if the change is expected, confirm the new fingerprint with the host's administrator, remove the old key with \`ssh-keygen -R '${name}'\`, then connect again with --accept-new`,
        details: { ...details, knownHostsFile: verdict.entry.file, line: verdict.entry.line },
      },
    );
  }
  const others = verdict.status === 'unknown' && verdict.otherTypes.length > 0 ? ` (keys of other types are known: ${verdict.otherTypes.map(keyTypeLabel).join(', ')})` : '';
  return new UpkeepError('E_SSH_HOST_KEY', `${host.name} (${name}) is not a known host: its ${label} key fingerprint is ${print}${others}`, {
    hint: `compare the fingerprint with the host's own (\`ssh-keygen -lf /etc/ssh/ssh_host_${keyType === 'ssh-ed25519' ? 'ed25519' : keyType === 'ssh-rsa' ? 'rsa' : 'ecdsa'}_key.pub\` there), then run again with --accept-new to add it to ${policy.userFile}`,
    details,
  });
}

function describeConnectFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const level = (error as { level?: string }).level;
  if (code === 'ECONNREFUSED') return 'connection refused (is sshd running on that port?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the host name does not resolve';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'the host is unreachable';
  if (code === 'ECONNRESET') return 'the connection was reset';
  if (level === 'client-timeout' || code === 'ETIMEDOUT') return 'timed out while connecting';
  return (error as Error).message ?? String(error);
}

/** A word for a POSIX shell: as is when it is plainly safe, else single-quoted. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The program path, with a leading `~/` left for the remote shell to expand. */
export function quoteProgram(path: string): string {
  if (path.startsWith('~/')) return `~/${shellQuote(path.slice(2))}`;
  return shellQuote(path);
}
