import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { wildcardMatch } from './known-hosts.ts';

/**
 * The part of OpenSSH's client configuration (ssh_config(5)) that says where
 * a host is and how to log in: Host blocks with HostName, User, Port and
 * IdentityFile, plus the known_hosts settings. Hosts are the names in `Host`
 * lines without wildcards; blocks with wildcards (`Host *`,
 * `Host *.example.com`) only supply defaults. As in ssh, the first value
 * obtained for a keyword wins, and the user's file comes before the
 * system's. `Match` blocks are skipped: their conditions (exec, canonical,
 * ...) need ssh itself to evaluate.
 */

export interface SshConfigBlock {
  /** Host patterns; empty for a Match block (which never applies). */
  patterns: string[];
  /** Keywords in lower case, with their arguments, in file order. */
  options: Array<{ keyword: string; values: string[] }>;
  file: string;
  line: number;
}

export interface SshConfig {
  blocks: SshConfigBlock[];
  /** The files read (the Includes too), in order. */
  files: string[];
}

export interface SshSettings {
  hostname?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  /** ProxyJump or ProxyCommand: upkeep connects directly, so these hosts get a warning. */
  proxy?: string;
  /** The blocks that matched, as `file:line`. */
  matched: string[];
}

export interface SshConfigFiles {
  user: string;
  system?: string;
}

const MAX_INCLUDE_DEPTH = 16;

/** Reads the user's and the system's files; a missing file is empty. */
export async function loadSshConfig(files: SshConfigFiles, home: string): Promise<SshConfig> {
  const config: SshConfig = { blocks: [], files: [] };
  for (const [file, base] of [
    [files.user, join(home, '.ssh')],
    [files.system, '/etc/ssh'],
  ] as const) {
    if (!file) continue;
    // Each file starts with an implicit `Host *`: its leading options apply everywhere.
    await readInto(config, file, base, home, { patterns: ['*'], options: [], file, line: 0 }, 0);
  }
  return config;
}

async function readInto(config: SshConfig, file: string, base: string, home: string, current: SshConfigBlock, depth: number): Promise<SshConfigBlock> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return current;
  }
  config.files.push(file);
  const parsed = parseSshConfig(text, file);
  let block = current;
  if (!config.blocks.includes(block)) config.blocks.push(block);
  for (const item of parsed) {
    if (item.kind === 'block') {
      block = item.block;
      config.blocks.push(block);
    } else if (item.kind === 'include') {
      if (depth >= MAX_INCLUDE_DEPTH) continue;
      for (const pattern of item.paths) {
        for (const included of await expandInclude(expandTilde(pattern, home), base)) {
          // An Include inside a Host block is read as part of it, as in ssh.
          block = await readInto(config, included, base, home, block, depth + 1);
        }
      }
    } else {
      block.options.push(item.option);
    }
  }
  return block;
}

type Parsed =
  | { kind: 'block'; block: SshConfigBlock }
  | { kind: 'include'; paths: string[] }
  | { kind: 'option'; option: { keyword: string; values: string[] } };

/** One file's lines, in order (Include is left for the caller to follow). */
export function parseSshConfig(text: string, file: string): Parsed[] {
  const items: Parsed[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!match) return;
    const keyword = match[1]!.toLowerCase();
    const values = splitArguments(match[2]!);
    if (keyword === 'host') items.push({ kind: 'block', block: { patterns: values, options: [], file, line: index + 1 } });
    else if (keyword === 'match') items.push({ kind: 'block', block: { patterns: [], options: [], file, line: index + 1 } });
    else if (keyword === 'include') items.push({ kind: 'include', paths: values });
    else items.push({ kind: 'option', option: { keyword, values } });
  });
  return items;
}

/** Space-separated arguments; double quotes keep spaces; a trailing `#` comment ends the line. */
function splitArguments(text: string): string[] {
  const values: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (const character of text) {
    if (character === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && /\s/.test(character)) {
      if (started) values.push(current);
      current = '';
      started = false;
    } else if (!quoted && character === '#' && !started) {
      break;
    } else {
      current += character;
      started = true;
    }
  }
  if (started) values.push(current);
  return values;
}

function expandTilde(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

/** A path of Include, relative to ~/.ssh (user file) or /etc/ssh; `*` and `?` in the last part. */
async function expandInclude(pattern: string, base: string): Promise<string[]> {
  const path = isAbsolute(pattern) ? pattern : join(base, pattern);
  const name = basename(path);
  if (!/[*?]/.test(name)) return [path];
  try {
    return (await readdir(dirname(path)))
      .filter((entry) => wildcardMatch(name, entry))
      .sort()
      .map((entry) => join(dirname(path), entry));
  } catch {
    return [];
  }
}

/** Whether a Host line's patterns select `name`: a negated pattern that matches excludes it. */
export function blockMatches(block: SshConfigBlock, name: string): boolean {
  let matched = false;
  for (const pattern of block.patterns) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(pattern.slice(1), name)) return false;
    } else if (wildcardMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The names in Host lines that are hosts, not patterns, with where they are. */
export function sshConfigHosts(config: SshConfig): Array<{ name: string; file: string; line: number }> {
  const seen = new Set<string>();
  const hosts: Array<{ name: string; file: string; line: number }> = [];
  for (const block of config.blocks) {
    for (const pattern of block.patterns) {
      if (/[*?!]/.test(pattern) || seen.has(pattern)) continue;
      seen.add(pattern);
      hosts.push({ name: pattern, file: block.file, line: block.line });
    }
  }
  return hosts;
}

export interface TokenValues {
  /** The local user (%u). */
  localUser: string;
  home: string;
}

/**
 * The settings for a host known as `name` (and, when another source gave
 * it one, `hostname`): every block matching either, first value wins.
 */
export function sshSettingsFor(config: SshConfig, names: readonly string[], tokens: TokenValues): SshSettings {
  const settings: SshSettings = { identityFiles: [], matched: [] };
  const identities: string[] = [];
  for (const block of config.blocks) {
    if (!names.some((name) => blockMatches(block, name))) continue;
    if (block.line > 0) settings.matched.push(`${block.file}:${block.line}`);
    for (const { keyword, values } of block.options) {
      const value = values[0];
      if (value === undefined) continue;
      switch (keyword) {
        case 'hostname':
          settings.hostname ??= value;
          break;
        case 'user':
          settings.user ??= value;
          break;
        case 'port': {
          const port = Number(value);
          if (settings.port === undefined && Number.isInteger(port) && port > 0 && port < 65_536) settings.port = port;
          break;
        }
        case 'identityfile':
          // IdentityFile accumulates (each is tried), unlike the other keywords.
          if (value.toLowerCase() !== 'none') identities.push(value);
          break;
        case 'proxyjump':
        case 'proxycommand':
          if (value.toLowerCase() !== 'none') settings.proxy ??= `${keyword === 'proxyjump' ? 'ProxyJump' : 'ProxyCommand'} ${values.join(' ')}`;
          break;
        default:
          break;
      }
    }
  }
  const name = names[0] ?? '';
  const hostname = settings.hostname === undefined ? name : expandTokens(settings.hostname, { ...tokens, name, hostname: name, user: settings.user ?? tokens.localUser, port: settings.port ?? 22 });
  if (settings.hostname !== undefined) settings.hostname = hostname;
  const user = settings.user ?? tokens.localUser;
  settings.identityFiles = identities.map((file) => expandTilde(expandTokens(file, { ...tokens, name, hostname, user, port: settings.port ?? 22 }), tokens.home));
  return settings;
}

/** Global (not per-host) settings for known_hosts. */
export function knownHostsSettings(config: SshConfig, tokens: TokenValues): { userFiles: string[] | null; hash: boolean } {
  let userFiles: string[] | null = null;
  let hash: boolean | null = null;
  for (const block of config.blocks) {
    // Only what applies to every host: a per-host known_hosts file is beyond this reader.
    if (!block.patterns.includes('*')) continue;
    for (const { keyword, values } of block.options) {
      if (keyword === 'userknownhostsfile' && userFiles === null && values.length > 0) {
        userFiles = values.filter((value) => value.toLowerCase() !== 'none').map((value) => expandTilde(value.replace(/%d/g, tokens.home).replace(/%u/g, tokens.localUser), tokens.home));
      }
      if (keyword === 'hashknownhosts' && hash === null && values[0]) hash = values[0].toLowerCase() === 'yes';
    }
  }
  return { userFiles, hash: hash ?? false };
}

/** ssh_config's %-tokens that make sense here: %h %n %p %r %u %d %%. */
function expandTokens(text: string, values: TokenValues & { name: string; hostname: string; user: string; port: number }): string {
  return text.replace(/%([%hnpurd])/g, (_match, token: string) => {
    switch (token) {
      case 'h':
        return values.hostname;
      case 'n':
        return values.name;
      case 'p':
        return String(values.port);
      case 'r':
        return values.user;
      case 'u':
        return values.localUser;
      case 'd':
        return values.home;
      default:
        return '%';
    }
  });
}
