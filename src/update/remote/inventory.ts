import { ExitCode, UpkeepError } from '../../core/errors.ts';

/**
 * Ansible inventories (INI and YAML), since that is where many fleets are
 * already described: hosts with their variables, groups with `:vars` and
 * `:children`, host ranges (`web[01:20].example.com`), and the implicit
 * groups `all` and `ungrouped`. Variables merge as in Ansible: `all`, then
 * groups from the shallowest to the deepest (siblings by name), then the
 * host's own. group_vars/ and host_vars/ folders are not read.
 */

export interface InventoryHost {
  name: string;
  /** The merged variables. */
  vars: Record<string, unknown>;
  /** Every group the host is in, directly or through children (`all` included). */
  groups: string[];
}

export interface InventoryGroup {
  name: string;
  /** Every host of the group and of its children. */
  hosts: string[];
}

export interface ParsedInventory {
  file: string;
  hosts: InventoryHost[];
  groups: InventoryGroup[];
}

interface RawGroup {
  hosts: Set<string>;
  children: Set<string>;
  vars: Record<string, unknown>;
}

class Builder {
  readonly groups = new Map<string, RawGroup>();
  readonly hostVars = new Map<string, Record<string, unknown>>();

  constructor(readonly file: string) {
    this.group('all');
    this.group('ungrouped');
  }

  group(name: string): RawGroup {
    let group = this.groups.get(name);
    if (!group) {
      group = { hosts: new Set(), children: new Set(), vars: {} };
      this.groups.set(name, group);
    }
    return group;
  }

  host(name: string, group: string, vars: Record<string, unknown>): void {
    this.hostVars.set(name, { ...this.hostVars.get(name), ...vars });
    this.group(group).hosts.add(name);
  }

  build(): ParsedInventory {
    const parents = new Map<string, Set<string>>();
    for (const [name, group] of this.groups) {
      for (const child of group.children) {
        if (!parents.has(child)) parents.set(child, new Set());
        parents.get(child)!.add(name);
      }
    }
    // Every group but `all` hangs under `all`; depth orders variable merging.
    const depth = new Map<string, number>();
    const depthOf = (name: string, seen: Set<string>): number => {
      if (name === 'all') return 0;
      const known = depth.get(name);
      if (known !== undefined) return known;
      if (seen.has(name)) return 1;
      seen.add(name);
      const above = [...(parents.get(name) ?? [])].filter((parent) => parent !== name);
      const value = above.length === 0 ? 1 : 1 + Math.max(...above.map((parent) => depthOf(parent, seen)));
      depth.set(name, value);
      return value;
    };
    const members = new Map<string, Set<string>>();
    const membersOf = (name: string, seen: Set<string>): Set<string> => {
      const known = members.get(name);
      if (known) return known;
      const result = new Set(this.groups.get(name)?.hosts ?? []);
      if (!seen.has(name)) {
        seen.add(name);
        for (const child of this.groups.get(name)?.children ?? []) for (const host of membersOf(child, seen)) result.add(host);
      }
      members.set(name, result);
      return result;
    };
    const allHosts = [...this.hostVars.keys()];
    for (const name of this.groups.keys()) membersOf(name, new Set());
    members.set('all', new Set(allHosts));
    const grouped = new Set<string>();
    for (const [name, hosts] of members) if (name !== 'all' && name !== 'ungrouped') for (const host of hosts) grouped.add(host);
    members.set('ungrouped', new Set(allHosts.filter((host) => !grouped.has(host))));

    const hosts: InventoryHost[] = allHosts.map((name) => {
      const groups = [...members].filter(([, hosts]) => hosts.has(name)).map(([group]) => group);
      const ordered = groups.toSorted((left, right) => depthOf(left, new Set()) - depthOf(right, new Set()) || left.localeCompare(right));
      const vars: Record<string, unknown> = {};
      for (const group of ordered) Object.assign(vars, this.groups.get(group)?.vars);
      Object.assign(vars, this.hostVars.get(name));
      return { name, vars, groups: ordered };
    });
    const groups: InventoryGroup[] = [...members]
      .filter(([name, hosts]) => hosts.size > 0 || (name !== 'ungrouped' && name !== 'all'))
      .map(([name, hosts]) => ({ name, hosts: [...hosts] }));
    return { file: this.file, hosts, groups };
  }
}

function invalid(file: string, where: string, message: string): UpkeepError {
  return new UpkeepError('E_HOSTS_INVALID', `${file}: ${where}: ${message}`, {
    hint: 'fix the inventory (Ansible INI or YAML format), or remove it from `inventory:` in hosts.yaml',
    exitCode: ExitCode.usage,
  });
}

/** `web[01:03].example.com` -> web01, web02, web03; `db-[a:c]` -> db-a, db-b, db-c; `[1:9:2]` steps. */
export function expandHostPattern(pattern: string): string[] {
  const match = /^(.*?)\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::(\d+))?\](.*)$/.exec(pattern);
  if (!match) return [pattern];
  const [, head, start, end, stepText, tail] = match as unknown as [string, string, string, string, string | undefined, string];
  const step = stepText === undefined ? 1 : Number(stepText);
  const names: string[] = [];
  if (/^\d+$/.test(start) && /^\d+$/.test(end)) {
    // A leading zero fixes the width (web[01:10] gives web01 ... web10).
    const width = start.startsWith('0') ? start.length : 0;
    for (let value = Number(start); value <= Number(end) && step > 0; value += step) names.push(`${head}${String(value).padStart(width, '0')}`);
  } else if (/^[a-zA-Z]$/.test(start) && /^[a-zA-Z]$/.test(end)) {
    for (let code = start.charCodeAt(0); code <= end.charCodeAt(0) && step > 0; code += step) names.push(`${head}${String.fromCharCode(code)}`);
  } else {
    return [pattern];
  }
  return names.flatMap((name) => expandHostPattern(`${name}${tail}`));
}

/** `key=value key2="a b"` pairs; values that look like numbers or booleans become them. */
function parseAssignments(text: string, file: string, line: number): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  const pattern = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  for (const match of text.matchAll(pattern)) vars[match[1]!] = scalar(match[2]!);
  const rest = text.replace(pattern, '').trim();
  if (rest !== '' && !rest.startsWith('#') && !rest.startsWith(';')) throw invalid(file, `line ${line}`, `cannot read "${rest}" (expected key=value)`);
  return vars;
}

function scalar(raw: string): unknown {
  if ((raw.startsWith('"') && raw.endsWith('"')) || (raw.startsWith("'") && raw.endsWith("'"))) return raw.slice(1, -1).replace(/\\(.)/g, '$1');
  if (/^-?\d+$/.test(raw)) return Number(raw);
  if (/^(true|false)$/i.test(raw)) return raw.toLowerCase() === 'true';
  return raw;
}

/** A host word of an INI line: `name`, `name:port` or a range. */
function hostWord(word: string): { names: string[]; port?: number } {
  const portMatch = /^([^[\]:]+|.*\])?:(\d+)$/.exec(word);
  if (portMatch && portMatch[1]) return { names: expandHostPattern(portMatch[1]), port: Number(portMatch[2]) };
  return { names: expandHostPattern(word) };
}

export function parseIniInventory(text: string, file: string): ParsedInventory {
  const builder = new Builder(file);
  let section: { group: string; kind: 'hosts' | 'vars' | 'children' } = { group: 'ungrouped', kind: 'hosts' };
  text.split('\n').forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]:]+)(?::(vars|children))?\]$/.exec(line);
    if (header) {
      section = { group: header[1]!, kind: (header[2] as 'vars' | 'children' | undefined) ?? 'hosts' };
      builder.group(section.group);
      return;
    }
    if (line.startsWith('[')) throw invalid(file, `line ${lineNumber}`, `"${line}" is not a section header ([group], [group:vars] or [group:children])`);
    if (section.kind === 'vars') {
      Object.assign(builder.group(section.group).vars, parseAssignments(line, file, lineNumber));
    } else if (section.kind === 'children') {
      const child = line.split(/\s+/)[0]!;
      builder.group(child);
      builder.group(section.group).children.add(child);
    } else {
      const [word, ...rest] = line.split(/\s+/);
      const { names, port } = hostWord(word!);
      const vars = parseAssignments(rest.join(' '), file, lineNumber);
      if (port !== undefined) vars.ansible_port ??= port;
      for (const name of names) builder.host(name, section.group, vars);
    }
  });
  return builder.build();
}

export function parseYamlInventory(document: unknown, file: string): ParsedInventory {
  const builder = new Builder(file);
  if (document === null || document === undefined) return builder.build();
  if (typeof document !== 'object' || Array.isArray(document)) throw invalid(file, '(root)', 'an inventory is a mapping of group names (usually just `all`)');
  const visit = (name: string, body: unknown, path: string): void => {
    builder.group(name);
    if (body === null || body === undefined) return;
    if (typeof body !== 'object' || Array.isArray(body)) throw invalid(file, path, 'a group is a mapping with hosts, vars and children');
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      if (key === 'hosts') {
        if (value === null || value === undefined) continue;
        if (typeof value !== 'object' || Array.isArray(value)) throw invalid(file, `${path}.hosts`, 'hosts is a mapping of host names to their variables');
        for (const [pattern, vars] of Object.entries(value as Record<string, unknown>)) {
          if (vars !== null && vars !== undefined && (typeof vars !== 'object' || Array.isArray(vars))) throw invalid(file, `${path}.hosts.${pattern}`, 'a host maps to its variables (or nothing)');
          for (const host of expandHostPattern(pattern)) builder.host(host, name, (vars ?? {}) as Record<string, unknown>);
        }
      } else if (key === 'vars') {
        if (value === null || value === undefined) continue;
        if (typeof value !== 'object' || Array.isArray(value)) throw invalid(file, `${path}.vars`, 'vars is a mapping');
        Object.assign(builder.group(name).vars, value);
      } else if (key === 'children') {
        if (value === null || value === undefined) continue;
        if (typeof value !== 'object' || Array.isArray(value)) throw invalid(file, `${path}.children`, 'children is a mapping of group names');
        for (const [child, childBody] of Object.entries(value as Record<string, unknown>)) {
          builder.group(name).children.add(child);
          visit(child, childBody, `${path}.children.${child}`);
        }
      } else {
        throw invalid(file, `${path}.${key}`, 'a group has only hosts, vars and children');
      }
    }
  };
  for (const [name, body] of Object.entries(document as Record<string, unknown>)) visit(name, body, name);
  return builder.build();
}

/** YAML when the name says so (.yml, .yaml, .json), INI otherwise, as Ansible's plugins decide. */
export async function parseInventory(text: string, file: string): Promise<ParsedInventory> {
  if (/\.(ya?ml|json)$/i.test(file)) {
    const { parse } = await import('../../core/yaml.ts');
    let document: unknown;
    try {
      document = parse(text);
    } catch (error) {
      throw invalid(file, 'YAML', (error as Error).message.split('\n')[0]!);
    }
    return parseYamlInventory(document, file);
  }
  return parseIniInventory(text, file);
}

/** The connection variables of an inventory host, old (`ansible_ssh_*`) and new names. */
export function connectionVars(vars: Record<string, unknown>): {
  hostname?: string;
  user?: string;
  port?: number;
  keyFile?: string;
  upkeepPath?: string;
  sudoPasswordEnv?: string;
} {
  const text = (...names: string[]): string | undefined => {
    for (const name of names) {
      const value = vars[name];
      if (typeof value === 'string' && value !== '') return value;
      if (typeof value === 'number') return String(value);
    }
    return undefined;
  };
  const port = Number(text('ansible_port', 'ansible_ssh_port'));
  const result: ReturnType<typeof connectionVars> = {};
  const hostname = text('ansible_host', 'ansible_ssh_host');
  const user = text('ansible_user', 'ansible_ssh_user');
  const keyFile = text('ansible_ssh_private_key_file', 'ansible_private_key_file');
  const upkeepPath = text('upkeep_path');
  const sudoPasswordEnv = text('upkeep_sudo_password_env');
  if (hostname) result.hostname = hostname;
  if (user) result.user = user;
  if (Number.isInteger(port) && port > 0 && port < 65_536) result.port = port;
  if (keyFile) result.keyFile = keyFile;
  if (upkeepPath) result.upkeepPath = upkeepPath;
  if (sudoPasswordEnv) result.sudoPasswordEnv = sudoPasswordEnv;
  return result;
}
