import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { parse } from '../../core/yaml.ts';
import * as z from '../../core/zod.ts';
import { normalizeMutex } from '../schedule/mutex.ts';

/**
 * A plugin's manifest (seed 002 §3.3): the YAML file that tells upkeep what a
 * plugin is, where its executable lives and what it may hold while it runs.
 * The file is snake_case like the protocol; the parsed manifest is camelCase
 * like the rest of upkeep. docs/plugin-protocol.md is the reference.
 */

export const PROTOCOL_VERSION = 1;
export const PHASES = ['estimate', 'download', 'update'] as const;
export type Phase = (typeof PHASES)[number];
export type PluginLayer = 'builtin' | 'system' | 'user';

/** Plugin names become parts of environment variables and file names: keep them plain. */
export const PLUGIN_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,39}$/;
export const pluginName = z.string().check(z.regex(PLUGIN_NAME_PATTERN, 'must be 1 to 40 lower-case letters, digits or "-", starting with a letter or digit'));

/** Setting keys become the tail of UPKEEP_<PLUGIN>_<KEY>; snake_case keeps two keys from meeting in one variable. */
const settingKey = /^[a-z][a-z0-9_]*$/;

/** The longest phase upkeep accepts: a day. */
const MAX_TIMEOUT = 86_400;
const timeout = (fallback: number) => z._default(z.number().check(z.positive(), z.maximum(MAX_TIMEOUT)), fallback);
const names = z._default(z.array(z.string()), []);
const perPhase = z.prefault(z.strictObject({ estimate: names, download: names, update: names }), {});

export const ManifestSchema = z.strictObject({
  plugin: z.strictObject({
    name: pluginName,
    version: z.string().check(z.minLength(1)),
    description: z.string().check(z.minLength(1)),
    /** Relative to the manifest's folder, or absolute. */
    executable: z.string().check(z.minLength(1)),
    protocol: z.optional(z.literal(PROTOCOL_VERSION)),
    requires_sudo: z._default(z.boolean(), false),
    can_separate_download: z._default(z.boolean(), false),
    supports_self_update: z._default(z.boolean(), false),
    supports_dynamic_mutexes: z._default(z.boolean(), false),
    /** Mutexes held while each phase runs. */
    static_mutexes: perPhase,
    /** Mutexes that must be free while each phase runs. */
    static_dependencies: perPhase,
    runs_after: z._default(z.array(pluginName), []),
    /** Seconds per phase; `other` is for the small queries. */
    timeouts: z.prefault(
      z.strictObject({
        is_applicable: timeout(10),
        estimate_update: timeout(120),
        download: timeout(1800),
        update: timeout(3600),
        other: timeout(10),
      }),
      {},
    ),
    /** Documentation only: what an update by this plugin may touch. */
    potential_affects: z._default(z.array(z.string()), []),
    /** Defaults; config update.settings.<plugin>.<key> overrides them. */
    settings: z._default(z.record(z.string().check(z.regex(settingKey, 'must be snake_case (a-z, 0-9, _)')), z.union([z.string(), z.number(), z.boolean()])), {}),
  }),
});

export interface PluginTimeouts {
  isApplicable: number;
  estimateUpdate: number;
  download: number;
  update: number;
  other: number;
}

export interface PluginManifest {
  name: string;
  version: string;
  description: string;
  /** Absolute. */
  executable: string;
  protocol: typeof PROTOCOL_VERSION;
  requiresSudo: boolean;
  canSeparateDownload: boolean;
  supportsSelfUpdate: boolean;
  supportsDynamicMutexes: boolean;
  /** Normalized mutex names held while each phase runs. */
  mutexes: Record<Phase, string[]>;
  /** Normalized mutex names that must be free while each phase runs. */
  dependencies: Record<Phase, string[]>;
  runsAfter: string[];
  /** Seconds. */
  timeouts: PluginTimeouts;
  potentialAffects: string[];
  settings: Record<string, string | number | boolean>;
  source: { layer: PluginLayer; path: string };
}

const MANIFEST_HINT = 'fix that field; docs/plugin-protocol.md describes every manifest field';

function invalid(path: string, field: string, why: string, hint = MANIFEST_HINT): UpkeepError {
  return new UpkeepError('E_PLUGIN_INVALID', `${path}: ${field}: ${why}`, {
    hint,
    exitCode: ExitCode.usage,
    details: { path, field, problem: why },
  });
}

/** Parses and checks one manifest; E_PLUGIN_INVALID names the file, the field and why. */
export function parseManifest(text: string, path: string, layer: PluginLayer): PluginManifest {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    const firstLine = (error as Error).message.split('\n')[0] ?? '';
    throw invalid(path, '(yaml)', `is not valid YAML: ${firstLine}`, 'fix the syntax at the line shown');
  }
  return manifestFromDocument(document, path, layer);
}

/**
 * The manifest a bare executable would have with every default, for
 * `upkeep plugins validate PATH` given the executable itself. Its name is
 * the file name without extension, made to fit the name pattern.
 */
export function manifestFromExecutable(path: string): PluginManifest {
  const executable = resolve(path);
  const name =
    basename(executable, extname(executable))
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, 40) || 'plugin';
  return manifestFromDocument({ plugin: { name, version: '0.0.0', description: `the executable ${executable}`, executable } }, executable, 'user');
}

function manifestFromDocument(document: unknown, path: string, layer: PluginLayer): PluginManifest {
  // Checked before the schema, so that a newer plugin gets a message about versions rather than about a literal.
  const protocol = (document as { plugin?: { protocol?: unknown } } | null)?.plugin?.protocol;
  if (protocol !== undefined && protocol !== PROTOCOL_VERSION) {
    throw invalid(
      path,
      'plugin.protocol',
      `speaks protocol ${JSON.stringify(protocol)}; this upkeep speaks protocol ${PROTOCOL_VERSION}`,
      `upgrade upkeep, or use a release of the plugin made for protocol ${PROTOCOL_VERSION}`,
    );
  }
  const parsed = ManifestSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A bad record key's own message ("must be snake_case") is one level down.
    const why = issue.code === 'invalid_key' && issue.issues[0] ? `the key ${issue.issues[0].message}` : issue.message;
    throw invalid(path, issue.path.map(String).join('.') || '(root)', why);
  }
  const plugin = parsed.data.plugin;
  if (plugin.runs_after.includes(plugin.name)) {
    throw invalid(path, 'plugin.runs_after', `names the plugin itself (${plugin.name})`);
  }
  const normalize = (field: 'static_mutexes' | 'static_dependencies'): Record<Phase, string[]> => {
    const result: Record<Phase, string[]> = { estimate: [], download: [], update: [] };
    for (const phase of PHASES) {
      const normalized = plugin[field][phase].map((name, index) => {
        try {
          return normalizeMutex(name);
        } catch (error) {
          if (!(error instanceof UpkeepError)) throw error;
          throw invalid(path, `plugin.${field}.${phase}.${index}`, error.message, error.hint);
        }
      });
      result[phase] = [...new Set(normalized)];
    }
    return result;
  };
  return {
    name: plugin.name,
    version: plugin.version,
    description: plugin.description,
    executable: isAbsolute(plugin.executable) ? plugin.executable : resolve(dirname(resolve(path)), plugin.executable),
    protocol: PROTOCOL_VERSION,
    requiresSudo: plugin.requires_sudo,
    canSeparateDownload: plugin.can_separate_download,
    supportsSelfUpdate: plugin.supports_self_update,
    supportsDynamicMutexes: plugin.supports_dynamic_mutexes,
    mutexes: normalize('static_mutexes'),
    dependencies: normalize('static_dependencies'),
    runsAfter: [...new Set(plugin.runs_after)],
    timeouts: {
      isApplicable: plugin.timeouts.is_applicable,
      estimateUpdate: plugin.timeouts.estimate_update,
      download: plugin.timeouts.download,
      update: plugin.timeouts.update,
      other: plugin.timeouts.other,
    },
    potentialAffects: plugin.potential_affects,
    settings: plugin.settings,
    source: { layer, path },
  };
}
