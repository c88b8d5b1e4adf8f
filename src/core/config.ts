import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as z from './zod.ts';

/** Install methods, spelled here too because core imports no domain (catalog/schema.ts checks they agree). */
export const METHOD_NAMES = ['apt', 'dnf', 'yum', 'pacman', 'apk', 'zypper', 'brew', 'snap', 'flatpak', 'binary', 'pipx', 'uv', 'pip', 'npm', 'cargo', 'go', 'script'] as const;
import { ExitCode, UpkeepError } from './errors.ts';
import type { Environment, Paths } from './paths.ts';

/**
 * Layered configuration (DESIGN rule 8): built-in defaults <
 * /etc/upkeep/config.yaml < ~/.config/upkeep/config.yaml < the project's
 * .upkeep.yaml (nearest from the working folder up) < UPKEEP_* variables <
 * flags. One schema validates the merged result; every leaf remembers where
 * its value came from, for `upkeep config show --origin`.
 */

const seconds = z.number().check(z.positive());
const url = (value: string) => z._default(z.url(), value);

export const ConfigSchema = z.strictObject({
  schemaVersion: z._default(z.literal(1), 1),
  audit: z.prefault(
    z.strictObject({
      /** Probes run at once; default: twice the cores (probes mostly wait). */
      concurrency: z.optional(z.int().check(z.minimum(1), z.maximum(64))),
      /** Seconds before a version probe's process group is killed. */
      probeTimeout: z._default(seconds.check(z.maximum(120)), 10),
      /** Folders searched after PATH. `~` is the home folder. */
      extraPaths: z._default(z.array(z.string()), [
        '~/.local/bin',
        '~/.cargo/bin',
        '~/go/bin',
        '~/.bun/bin',
        '~/.deno/bin',
        '~/.volta/bin',
        '~/.local/share/pnpm',
        '/usr/local/bin',
        '/usr/local/go/bin',
        '/opt/homebrew/bin',
        '/home/linuxbrew/.linuxbrew/bin',
        '/snap/bin',
      ]),
      /** Use caches only, never the network. */
      offline: z._default(z.boolean(), false),
      /** Seconds a fetched latest version is trusted before it is asked again. */
      cacheTtl: z._default(seconds, 6 * 3600),
      /** Count pre-releases as the latest version. */
      includePrereleases: z._default(z.boolean(), false),
    }),
    {},
  ),
  network: z.prefault(
    z.strictObject({
      /** Seconds for one HTTP request. */
      timeout: z._default(z.number().check(z.positive(), z.maximum(300)), 10),
      /** Retries of a transient failure (timeout, 5xx, reset). */
      retries: z._default(z.int().check(z.minimum(0), z.maximum(10)), 2),
      /** Requests in flight to one host. */
      perHostConcurrency: z._default(z.int().check(z.minimum(1), z.maximum(64)), 32),
    }),
    {},
  ),
  install: z.prefault(
    z.strictObject({
      /** Where the binary method puts executables. `~` is the home folder. */
      binDir: z._default(z.string(), '~/.local/bin'),
      /** ci, server or workstation; `auto` detects it (see `upkeep platform`). */
      environment: z._default(z.enum(['auto', 'ci', 'server', 'workstation']), 'auto'),
      /** Methods tried first, before a recipe's own order (e.g. [brew, binary]). */
      prefer: z._default(z.array(z.enum(METHOD_NAMES)), []),
      /** Methods never chosen. */
      avoid: z._default(z.array(z.enum(METHOD_NAMES)), []),
      /** Method order per language ecosystem, e.g. python: [uv, pipx, pip]. */
      ecosystems: z._default(z.partialRecord(z.enum(['python', 'node', 'rust', 'go', 'ruby', 'system']), z.array(z.enum(METHOD_NAMES))), {}),
      /** What a major-version upgrade does: accept, warn (ask; refuse in CI) or reject. */
      breakingChanges: z._default(z.enum(['accept', 'warn', 'reject']), 'warn'),
      /** Per-tool overrides: breakingChanges, method. */
      tools: z._default(
        z.record(
          z.string(),
          z.strictObject({
            breakingChanges: z.optional(z.enum(['accept', 'warn', 'reject'])),
            method: z.optional(z.enum(METHOD_NAMES)),
          }),
        ),
        {},
      ),
      /** Backups kept per tool. */
      keepBackups: z._default(z.int().check(z.minimum(1), z.maximum(100)), 5),
      /** Retries of a step that failed on a network error or a held lock. */
      retries: z._default(z.int().check(z.minimum(0), z.maximum(10)), 3),
      /** Seconds of the first retry's wait; each next one doubles. */
      retryDelay: z._default(z.number().check(z.minimum(0), z.maximum(60)), 2),
      /** Seconds one install step may run (package managers, builds) before it is killed. */
      stepTimeout: z._default(seconds.check(z.maximum(7200)), 900),
      /** Tools that may run at once in a bulk install. */
      concurrency: z._default(z.int().check(z.minimum(1), z.maximum(32)), 4),
      /** How reconcile treats duplicate installations: parallel keeps them, aggressive removes the others. */
      reconcile: z._default(z.enum(['parallel', 'aggressive']), 'parallel'),
      /** Extra tools reconcile never removes. */
      safelist: z._default(z.array(z.string()), []),
    }),
    {},
  ),
  /** `upkeep update`: the plugin run (docs/update.md). */
  update: z.prefault(
    z.strictObject({
      /** Plugins that may run at once (seed 002 §6 max_parallel_tasks). */
      parallel: z._default(z.int().check(z.minimum(1), z.maximum(32)), 4),
      /** Plugins that may download at once. */
      maxDownloads: z._default(z.int().check(z.minimum(1), z.maximum(8)), 2),
      /** No new plugin starts while the running plugins' process trees hold this much memory (MiB). */
      maxMemoryMb: z._default(z.int().check(z.minimum(64)), 4096),
      /** Scheduling priority of plugin processes, 0 (normal) to 19 (lowest). */
      nice: z._default(z.int().check(z.minimum(0), z.maximum(19)), 10),
      /** Go on with the other plugins when one fails. */
      continueOnError: z._default(z.boolean(), false),
      /** Retries of a plugin phase that failed transiently (network, timeout, temporary failure). */
      retries: z._default(z.int().check(z.minimum(0), z.maximum(10)), 2),
      /** Seconds of the first retry's wait; each next one doubles. */
      retryDelay: z._default(z.number().check(z.minimum(0), z.maximum(300)), 2),
      /** Plugins never run (`upkeep plugins disable NAME`). */
      disabled: z._default(z.array(z.string()), []),
      /** Per-plugin settings, passed as UPKEEP_<PLUGIN>_<KEY>; they override the manifest's. */
      settings: z._default(z.record(z.string(), z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))), {}),
    }),
    {},
  ),
  /** What happens when an update run ends (docs/notifications.md). */
  notify: z.prefault(
    z.strictObject({
      onSuccess: z._default(z.boolean(), false),
      onFailure: z._default(z.boolean(), true),
      /** After `update check` found updates (for scheduled checks). */
      onUpdatesAvailable: z._default(z.boolean(), false),
      /** A desktop notification (notify-send) where a desktop session is present. */
      desktop: z._default(z.boolean(), true),
      /** A URL that receives the run's summary as a POST. */
      webhook: z.optional(z.url()),
      /** json: upkeep's summary; ntfy: a text body with a title header; slack: {text}. */
      webhookFormat: z._default(z.enum(['json', 'ntfy', 'slack']), 'json'),
    }),
    {},
  ),
  /** `upkeep remote` (docs/remote.md). */
  remote: z.prefault(
    z.strictObject({
      /** Hosts updated at once. */
      parallel: z._default(z.int().check(z.minimum(1), z.maximum(64)), 4),
      /** Seconds to establish a connection. */
      connectTimeout: z._default(seconds.check(z.maximum(300)), 15),
      /** Reconnections after a dropped connection. */
      retries: z._default(z.int().check(z.minimum(0), z.maximum(20)), 3),
    }),
    {},
  ),
  /** Base URLs of upstream services; tests and mirrors point these elsewhere. */
  endpoints: z.prefault(
    z.strictObject({
      github: url('https://github.com'),
      githubApi: url('https://api.github.com'),
      gitlab: url('https://gitlab.com'),
      pypi: url('https://pypi.org'),
      crates: url('https://crates.io'),
      npm: url('https://registry.npmjs.org'),
      gnu: url('https://ftp.gnu.org/gnu'),
      debian: url('https://deb.debian.org/debian'),
      ubuntu: url('http://archive.ubuntu.com/ubuntu'),
    }),
    {},
  ),
});
export type Config = z.infer<typeof ConfigSchema>;

export type Origin =
  | { kind: 'default' }
  | { kind: 'file'; layer: 'system' | 'user' | 'project'; path: string }
  | { kind: 'env'; variable: string }
  | { kind: 'flag'; flag: string };

export interface LoadedConfig {
  config: Config;
  /** Origin of every leaf that did not come from the defaults, by dotted key. */
  origins: Map<string, Origin>;
  /** The files that were read, in order. */
  files: Array<{ layer: 'system' | 'user' | 'project'; path: string }>;
}

export interface ConfigSources {
  paths: Paths;
  environment: Environment;
  cwd: string;
  /** Values from command-line flags, by dotted key. */
  flags?: Record<string, unknown>;
}

type Tree = Record<string, unknown>;

export function configFilePaths(sources: ConfigSources): Array<{ layer: 'system' | 'user'; path: string }> {
  return [
    { layer: 'system', path: sources.environment.UPKEEP_SYSTEM_CONFIG || '/etc/upkeep/config.yaml' },
    { layer: 'user', path: join(sources.paths.config, 'config.yaml') },
  ];
}

export async function loadConfig(sources: ConfigSources): Promise<LoadedConfig> {
  const merged: Tree = {};
  const origins = new Map<string, Origin>();
  const files: LoadedConfig['files'] = [];

  const layers: Array<{ layer: 'system' | 'user' | 'project'; path: string }> = [...configFilePaths(sources)];
  const project = await findProjectConfig(sources.cwd);
  if (project) layers.push({ layer: 'project', path: project });

  for (const { layer, path } of layers) {
    const tree = await readConfigFile(path);
    if (tree === null) continue;
    files.push({ layer, path });
    checkFile(tree, path);
    mergeInto(merged, tree, '', origins, { kind: 'file', layer, path });
  }

  const fromEnvironment = environmentValues(sources.environment);
  for (const [key, { value, variable }] of fromEnvironment) {
    setPath(merged, key, value);
    origins.set(key, { kind: 'env', variable });
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined) continue;
    setPath(merged, key, value);
    origins.set(key, { kind: 'flag', flag: `--${key.split('.').pop()}` });
  }

  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.map(String).join('.');
    const origin = origins.get(key);
    throw new UpkeepError(
      'E_CONFIG_INVALID',
      `invalid configuration: ${key || '(root)'}: ${issue.message}${origin ? ` (from ${describeOrigin(origin)})` : ''}`,
      { hint: 'fix the value, or run `upkeep config show --origin` to see where each value comes from', exitCode: ExitCode.usage },
    );
  }
  return { config: parsed.data, origins, files };
}

/** Validates one file on its own, so that errors name that file. */
function checkFile(tree: Tree, path: string): void {
  const parsed = ConfigSchema.safeParse(tree);
  if (parsed.success) return;
  const issue = parsed.error.issues[0]!;
  throw new UpkeepError(
    'E_CONFIG_INVALID',
    `${path}: ${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`,
    { hint: 'fix or remove that key; `upkeep config validate` checks every file', exitCode: ExitCode.usage },
  );
}

async function readConfigFile(path: string): Promise<Tree | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new UpkeepError('E_CONFIG_PARSE', `cannot read ${path}: ${(error as Error).message}`, {
      hint: 'check its permissions',
      exitCode: ExitCode.usage,
    });
  }
  const { parse } = await import('./yaml.ts');
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    throw new UpkeepError('E_CONFIG_PARSE', `${path} is not valid YAML: ${(error as Error).message}`, {
      hint: 'fix the syntax at the line shown',
      exitCode: ExitCode.usage,
    });
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new UpkeepError('E_CONFIG_PARSE', `${path} must hold a mapping of keys to values`, {
      hint: 'see docs/config.md for the keys',
      exitCode: ExitCode.usage,
    });
  }
  return value as Tree;
}

async function findProjectConfig(cwd: string): Promise<string | null> {
  let folder = resolve(cwd);
  for (;;) {
    const candidate = join(folder, '.upkeep.yaml');
    try {
      await readFile(candidate);
      return candidate;
    } catch {
      // keep climbing
    }
    const parent = dirname(folder);
    if (parent === folder) return null;
    folder = parent;
  }
}

function mergeInto(target: Tree, source: Tree, prefix: string, origins: Map<string, Origin>, origin: Origin): void {
  for (const [key, value] of Object.entries(source)) {
    const dotted = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const existing = target[key];
      const child: Tree = existing && typeof existing === 'object' && !Array.isArray(existing) ? (existing as Tree) : {};
      target[key] = child;
      mergeInto(child, value as Tree, dotted, origins, origin);
    } else {
      target[key] = value;
      origins.set(dotted, origin);
    }
  }
}

function setPath(target: Tree, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (!next || typeof next !== 'object' || Array.isArray(next)) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts.at(-1)!] = value;
}

type ValueKind = 'number' | 'boolean' | 'string' | 'array';
interface SchemaDefinition {
  type: string;
  shape?: Record<string, { _zod: { def: SchemaDefinition } }>;
  innerType?: { _zod: { def: SchemaDefinition } };
}

/** Every leaf key of the schema, with the kind of value it takes. */
export function configKeys(): Array<{ key: string; kind: ValueKind }> {
  const keys: Array<{ key: string; kind: ValueKind }> = [];
  const visit = (definition: SchemaDefinition, prefix: string): void => {
    for (const [key, child] of Object.entries(definition.shape ?? {})) {
      const dotted = prefix ? `${prefix}.${key}` : key;
      const inner = unwrap(child._zod.def);
      if (inner.type === 'object') visit(inner, dotted);
      // Maps (install.tools) have no fixed keys to name a variable after.
      else if (inner.type === 'record') continue;
      else if (key !== 'schemaVersion') keys.push({ key: dotted, kind: kindOf(inner) });
    }
  };
  visit(ConfigSchema._zod.def as unknown as SchemaDefinition, '');
  return keys;
}

function unwrap(definition: SchemaDefinition): SchemaDefinition {
  let current = definition;
  while (current.innerType && ['default', 'optional', 'prefault', 'nullable'].includes(current.type)) {
    current = current.innerType._zod.def;
  }
  return current;
}

function kindOf(definition: SchemaDefinition): ValueKind {
  if (definition.type === 'number' || definition.type === 'int') return 'number';
  if (definition.type === 'boolean') return 'boolean';
  if (definition.type === 'array') return 'array';
  return 'string';
}

/** `audit.probeTimeout` is set by UPKEEP_AUDIT_PROBE_TIMEOUT. */
export function environmentVariableFor(key: string): string {
  return `UPKEEP_${key.replace(/([a-z])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase()}`;
}

function environmentValues(environment: Environment): Map<string, { value: unknown; variable: string }> {
  const values = new Map<string, { value: unknown; variable: string }>();
  for (const { key, kind } of configKeys()) {
    const variable = environmentVariableFor(key);
    const raw = environment[variable];
    if (raw === undefined || raw === '') continue;
    values.set(key, { value: coerce(raw, kind, variable), variable });
  }
  return values;
}

function coerce(raw: string, kind: ValueKind, variable: string): unknown {
  switch (kind) {
    case 'number': {
      const number = Number(raw);
      if (!Number.isFinite(number)) {
        throw new UpkeepError('E_CONFIG_INVALID', `${variable}=${raw} is not a number`, {
          hint: `set ${variable} to a number or unset it`,
          exitCode: ExitCode.usage,
        });
      }
      return number;
    }
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new UpkeepError('E_CONFIG_INVALID', `${variable}=${raw} is not a boolean`, {
        hint: `set ${variable} to 1 or 0`,
        exitCode: ExitCode.usage,
      });
    case 'array':
      return raw.split(raw.includes(',') ? ',' : ':').map((part) => part.trim()).filter(Boolean);
    default:
      return raw;
  }
}

export function describeOrigin(origin: Origin): string {
  switch (origin.kind) {
    case 'default':
      return 'default';
    case 'file':
      return `${origin.layer} file ${origin.path}`;
    case 'env':
      return `environment ${origin.variable}`;
    case 'flag':
      return `flag ${origin.flag}`;
  }
}

/** The value at a dotted key. */
export function valueAt(config: Config, key: string): unknown {
  let node: unknown = config;
  for (const part of key.split('.')) node = (node as Tree | undefined)?.[part];
  return node;
}
