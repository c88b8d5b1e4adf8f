import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import type { Environment } from '../../core/paths.ts';
import * as z from '../../core/zod.ts';
import { connectionVars, parseInventory, type ParsedInventory } from './inventory.ts';
import { loadSshConfig, sshConfigHosts, sshSettingsFor, type SshConfig, type SshConfigFiles, type TokenValues } from './ssh-config.ts';

/**
 * The hosts `upkeep remote` can reach, from three places (docs/remote.md):
 * upkeep's own ~/.config/upkeep/hosts.yaml (seed 002 §8.2), the user's
 * ~/.ssh/config, and Ansible inventories listed in hosts.yaml. A host named
 * in several gets each field from the first that sets it, in that order;
 * ssh_config's wildcard blocks fill in what is still missing, as ssh would.
 */

const EnvironmentName = z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits, _)'));

const HostSchema = z.strictObject({
  hostname: z.optional(z.string().check(z.minLength(1))),
  user: z.optional(z.string().check(z.minLength(1))),
  port: z.optional(z.int().check(z.minimum(1), z.maximum(65_535))),
  /** A private key; `~` is the home folder. */
  key_file: z.optional(z.string().check(z.minLength(1))),
  /** upkeep on the host; `upkeep` (found on the remote PATH) when absent. */
  upkeep_path: z.optional(z.string().check(z.minLength(1))),
  /** The local environment variable holding the host's sudo password. */
  sudo_password_env: z.optional(EnvironmentName),
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
const Name = z.string().check(z.regex(NAME, 'a host or group name (letters, digits, . _ - @)'));

export const HostsFileSchema = z.strictObject({
  schemaVersion: z.optional(z.literal(1)),
  hosts: z._default(z.record(Name, z.nullable(HostSchema)), {}),
  groups: z._default(z.record(Name, z.array(Name)), {}),
  /** Ansible inventory files (INI or YAML); relative paths are relative to hosts.yaml. */
  inventory: z._default(z.array(z.string().check(z.minLength(1))), []),
});
export type HostsFile = z.infer<typeof HostsFileSchema>;

export type HostSource =
  | { kind: 'hosts-file'; file: string }
  | { kind: 'ssh-config'; file: string; line: number }
  | { kind: 'inventory'; file: string };

export interface RemoteHost {
  name: string;
  hostname: string;
  user: string;
  port: number;
  /** Key files named for the host; empty means ssh's defaults (~/.ssh/id_ed25519, id_ecdsa, id_rsa). */
  keyFiles: string[];
  upkeepPath: string;
  sudoPasswordEnv: string | null;
  /** ProxyJump/ProxyCommand from ssh_config, which upkeep does not follow. */
  proxy: string | null;
  sources: HostSource[];
}

export interface HostGroup {
  name: string;
  /** Host names, groups expanded. */
  members: string[];
  sources: HostSource[];
}

export interface HostCatalog {
  hosts: Map<string, RemoteHost>;
  groups: Map<string, HostGroup>;
  /** The files that were read. */
  files: string[];
  sshConfig: SshConfig;
}

export interface HostCatalogOptions {
  hostsFile: string;
  sshConfig: SshConfigFiles;
  home: string;
  environment: Environment;
}

export function localUserName(environment: Environment): string {
  return environment.USER || environment.LOGNAME || userInfo().username;
}

function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

/** Reads and validates hosts.yaml; null when there is none. */
export async function readHostsFile(path: string): Promise<HostsFile | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new UpkeepError('E_HOSTS_INVALID', `cannot read ${path}: ${(error as Error).message}`, { hint: 'check its permissions', exitCode: ExitCode.usage });
  }
  const { parse } = await import('../../core/yaml.ts');
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new UpkeepError('E_HOSTS_INVALID', `${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`, {
      hint: 'fix the syntax at the line shown (docs/remote.md has an example)',
      exitCode: ExitCode.usage,
    });
  }
  const parsed = HostsFileSchema.safeParse(document ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.map(String).join('.') || '(root)';
    throw new UpkeepError('E_HOSTS_INVALID', `${path}: ${key}: ${issue.message}`, {
      hint: 'hosts take hostname, user, port, key_file, upkeep_path and sudo_password_env; groups are lists of names (docs/remote.md)',
      exitCode: ExitCode.usage,
      details: { file: path, key },
    });
  }
  return parsed.data;
}

interface HostFields {
  hostname?: string;
  user?: string;
  port?: number;
  keyFiles: string[];
  upkeepPath?: string;
  sudoPasswordEnv?: string;
  sources: HostSource[];
}

/** Every host and group of the three sources. */
export async function loadHostCatalog(options: HostCatalogOptions): Promise<HostCatalog> {
  const { home, environment } = options;
  const files: string[] = [];
  const hostsFile = await readHostsFile(options.hostsFile);
  if (hostsFile) files.push(options.hostsFile);
  const sshConfig = await loadSshConfig(options.sshConfig, home);
  files.push(...sshConfig.files);

  const partials = new Map<string, HostFields>();
  const partial = (name: string): HostFields => {
    let entry = partials.get(name);
    if (!entry) {
      entry = { keyFiles: [], sources: [] };
      partials.set(name, entry);
    }
    return entry;
  };
  const groups = new Map<string, HostGroup>();

  // 1. hosts.yaml: it wins, so it is read first and later sources only fill gaps.
  const fileSource: HostSource = { kind: 'hosts-file', file: options.hostsFile };
  for (const [name, definition] of Object.entries(hostsFile?.hosts ?? {})) {
    const entry = partial(name);
    entry.sources.push(fileSource);
    if (definition?.hostname) entry.hostname = definition.hostname;
    if (definition?.user) entry.user = definition.user;
    if (definition?.port) entry.port = definition.port;
    if (definition?.key_file) entry.keyFiles.push(expandHome(definition.key_file, home));
    if (definition?.upkeep_path) entry.upkeepPath = definition.upkeep_path;
    if (definition?.sudo_password_env) entry.sudoPasswordEnv = definition.sudo_password_env;
  }

  // 2. Ansible inventories listed in hosts.yaml.
  const inventories: ParsedInventory[] = [];
  for (const [index, listed] of (hostsFile?.inventory ?? []).entries()) {
    const path = resolve(dirname(options.hostsFile), expandHome(listed, home));
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new UpkeepError('E_HOSTS_INVALID', `${options.hostsFile}: inventory.${index}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
        hint: 'fix the path (relative paths start at the folder of hosts.yaml) or remove it from the list',
        exitCode: ExitCode.usage,
        details: { file: options.hostsFile, key: `inventory.${index}` },
      });
    }
    files.push(path);
    inventories.push(await parseInventory(text, path));
  }
  for (const inventory of inventories) {
    const source: HostSource = { kind: 'inventory', file: inventory.file };
    for (const host of inventory.hosts) {
      const entry = partial(host.name);
      entry.sources.push(source);
      const vars = connectionVars(host.vars);
      entry.hostname ??= vars.hostname;
      entry.user ??= vars.user;
      entry.port ??= vars.port;
      if (vars.keyFile && entry.keyFiles.length === 0) entry.keyFiles.push(expandHome(vars.keyFile, home));
      entry.upkeepPath ??= vars.upkeepPath;
      entry.sudoPasswordEnv ??= vars.sudoPasswordEnv;
    }
    for (const group of inventory.groups) {
      const existing = groups.get(group.name);
      if (existing) {
        existing.members = [...new Set([...existing.members, ...group.hosts])];
        existing.sources.push(source);
      } else {
        groups.set(group.name, { name: group.name, members: [...group.hosts], sources: [source] });
      }
    }
  }

  // 3. ~/.ssh/config: its named hosts join the list; every host gets its settings as fallbacks.
  for (const host of sshConfigHosts(sshConfig)) {
    partial(host.name).sources.push({ kind: 'ssh-config', file: host.file, line: host.line });
  }
  const tokens: TokenValues = { localUser: localUserName(environment), home };
  const hosts = new Map<string, RemoteHost>();
  for (const [name, entry] of partials) {
    const settings = sshSettingsFor(sshConfig, entry.hostname && entry.hostname !== name ? [name, entry.hostname] : [name], tokens);
    hosts.set(name, {
      name,
      hostname: entry.hostname ?? settings.hostname ?? name,
      user: entry.user ?? settings.user ?? tokens.localUser,
      port: entry.port ?? settings.port ?? 22,
      keyFiles: entry.keyFiles.length > 0 ? entry.keyFiles : settings.identityFiles,
      upkeepPath: entry.upkeepPath ?? 'upkeep',
      sudoPasswordEnv: entry.sudoPasswordEnv ?? null,
      proxy: settings.proxy ?? null,
      sources: entry.sources,
    });
  }

  // Groups of hosts.yaml last: their members may be hosts or groups from any source.
  for (const [name, members] of Object.entries(hostsFile?.groups ?? {})) {
    const expanded = new Set<string>();
    members.forEach((member, index) => {
      if (hosts.has(member)) expanded.add(member);
      else if (groups.has(member) || hostsFile?.groups[member]) for (const host of expandGroup(member, hostsFile!, groups, hosts, new Set([name]))) expanded.add(host);
      else {
        throw new UpkeepError('E_HOSTS_INVALID', `${options.hostsFile}: groups.${name}.${index}: no host or group is called ${member}`, {
          hint: 'define it under hosts:, in ~/.ssh/config or in an inventory, or remove it from the group',
          exitCode: ExitCode.usage,
          details: { file: options.hostsFile, key: `groups.${name}.${index}` },
        });
      }
    });
    const existing = groups.get(name);
    groups.set(name, {
      name,
      members: [...new Set([...(existing?.members ?? []), ...expanded])],
      sources: [...(existing?.sources ?? []), fileSource],
    });
  }
  return { hosts, groups, files, sshConfig };
}

function expandGroup(name: string, hostsFile: HostsFile, groups: Map<string, HostGroup>, hosts: Map<string, RemoteHost>, seen: Set<string>): string[] {
  if (seen.has(name)) return [];
  seen.add(name);
  const result = new Set(groups.get(name)?.members ?? []);
  for (const member of hostsFile.groups[name] ?? []) {
    if (hosts.has(member)) result.add(member);
    else for (const host of expandGroup(member, hostsFile, groups, hosts, seen)) result.add(host);
  }
  return [...result];
}

/**
 * The hosts named on the command line, in order and without repeats: a
 * host name first, then a group. An unknown name is a usage error with the
 * closest names.
 */
export function selectHosts(catalog: HostCatalog, names: readonly string[]): RemoteHost[] {
  const chosen = new Map<string, RemoteHost>();
  const unknown: string[] = [];
  for (const name of names) {
    const host = catalog.hosts.get(name);
    if (host) {
      chosen.set(name, host);
      continue;
    }
    const group = catalog.groups.get(name);
    if (group) {
      for (const member of group.members) {
        const memberHost = catalog.hosts.get(member);
        if (memberHost) chosen.set(member, memberHost);
      }
      continue;
    }
    unknown.push(name);
  }
  if (unknown.length > 0) {
    const everything = [...catalog.hosts.keys(), ...catalog.groups.keys()];
    const suggestions = unknown.flatMap((name) => closest(name, everything));
    throw new UpkeepError('E_HOST_UNKNOWN', `no host or group is called ${unknown.join(', ')}`, {
      hint:
        (suggestions.length > 0 ? `did you mean ${[...new Set(suggestions)].join(', ')}? ` : '') +
        '`upkeep remote --list` shows every host and group (from hosts.yaml, ~/.ssh/config and inventories)',
      exitCode: ExitCode.usage,
    });
  }
  return [...chosen.values()];
}

function closest(name: string, candidates: readonly string[]): string[] {
  const scored = candidates
    .map((candidate) => ({ candidate, distance: editDistance(name.toLowerCase(), candidate.toLowerCase()) }))
    .filter(({ distance, candidate }) => distance <= Math.max(1, Math.floor(candidate.length / 3)))
    .sort((left, right) => left.distance - right.distance);
  return scored.slice(0, 3).map(({ candidate }) => candidate);
}

function editDistance(left: string, right: string): number {
  let previous = Array.from({ length: right.length + 1 }, (_, index) => index);
  for (let row = 1; row <= left.length; row += 1) {
    const current = [row];
    for (let column = 1; column <= right.length; column += 1) {
      current[column] = Math.min(previous[column]! + 1, current[column - 1]! + 1, previous[column - 1]! + (left[row - 1] === right[column - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[right.length]!;
}

/** Where a host or group came from, for `--list`. */
export function describeSource(source: HostSource, home: string): string {
  const path = source.file.startsWith(`${home}/`) ? `~${source.file.slice(home.length)}` : source.file;
  if (source.kind === 'ssh-config') return `${path}:${source.line}`;
  if (source.kind === 'inventory') return `inventory ${path}`;
  return path;
}

/** Absolute key file paths (relative ones are relative to ~/.ssh, as in ssh). */
export function absoluteKeyFile(path: string, home: string): string {
  const expanded = expandHome(path, home);
  return isAbsolute(expanded) ? expanded : join(home, '.ssh', expanded);
}
