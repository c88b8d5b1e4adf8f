import type { ExecResult } from '../../core/exec.ts';
import { UpkeepError } from '../../core/errors.ts';
import * as z from '../../core/zod.ts';
import { normalizeMutex } from '../schedule/mutex.ts';
import { ManifestSchema, pluginName, PROTOCOL_VERSION } from './manifest.ts';

/**
 * Plugin protocol v1 (docs/plugin-protocol.md): `<executable> <command>`,
 * one JSON envelope on stdout, an exit code that agrees with it, progress
 * lines on stderr. This module knows the commands, the schema of every
 * answer, and how one finished process becomes a PluginAnswer.
 *
 * Envelopes and data are loose objects: a plugin written for a later minor
 * revision may add fields, and upkeep ignores what it does not know.
 * z.toJSONSchema works with zod/mini schemas, so the JSON Schemas in the
 * docs come from the very schemas that check the answers.
 */

export const EXIT_CODES = { yes: 0, no: 1, error: 2, unknownCommand: 64, transient: 75 } as const;
/** Error codes that ask for a retry with backoff (seed 002 §14.2). */
export const TRANSIENT_ERROR_CODES = ['NETWORK_ERROR', 'TIMEOUT', 'TEMPORARY_FAILURE'] as const;
export const UNKNOWN_COMMAND = 'UNKNOWN_COMMAND';
/**
 * The codes of failures upkeep itself finds (see PluginFailure). A plugin may
 * not use them, so that a failed answer with one of them always means that
 * the plugin broke the protocol, could not start or was stopped. (TIMEOUT is
 * a plugin's code too; upkeep's own timeout is told apart by `timedOut`.)
 */
export const UPKEEP_FAILURE_CODES = ['PROTOCOL', 'SIGNAL', 'INTERRUPTED', 'EXEC'] as const;
export const STATUSES = ['success', 'error', 'not_applicable', 'not_supported'] as const;

const count = z.int().check(z.minimum(0));
const words = z.array(z.string());
const MUTEX_SHAPE = /^[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/;

export const ErrorSchema = z.looseObject({
  code: z.string().check(z.minLength(1)),
  message: z.string(),
  details: z.optional(z.string()),
});

export const EnvelopeSchema = z.looseObject({
  protocol: z.optional(z.literal(PROTOCOL_VERSION)),
  status: z.enum(STATUSES),
  data: z.nullable(z.looseObject({})),
  error: z.nullable(ErrorSchema),
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

export const PackageSchema = z.looseObject({
  name: z.string().check(z.minLength(1)),
  /** null when the update installs the package for the first time. */
  current_version: z.nullable(z.string()),
  new_version: z.string(),
  download_size_bytes: z.optional(count),
  installed_size_bytes: z.optional(count),
  security: z.optional(z.boolean()),
});
export type Package = z.infer<typeof PackageSchema>;

const IsApplicableData = z.looseObject({ applicable: z.boolean(), reason: z.optional(z.string()) });
const NotApplicableData = z.looseObject({ applicable: z.literal(false), reason: z.optional(z.string()) });
const EstimateData = z.looseObject({
  applicable: z.literal(true),
  packages_to_update: z.array(PackageSchema),
  total_download_size_bytes: z.optional(count),
  total_installed_size_bytes: z.optional(count),
  estimated_time_seconds: z.optional(z.number().check(z.minimum(0))),
  affects_runtimes: z.optional(words),
  affects_applications: z.optional(words),
  requires_reboot: z.optional(z.boolean()),
  security_updates: z.optional(z.boolean()),
});
const CanSeparateData = z.looseObject({ can_separate_download: z.boolean() });
const DownloadData = z.looseObject({ downloaded_bytes: z.optional(count), package_count: z.optional(count), message: z.optional(z.string()) });
const UpdateData = z.looseObject({
  packages_updated: z.optional(z.array(z.looseObject({ name: z.string().check(z.minLength(1)), from: z.optional(z.string()), to: z.optional(z.string()) }))),
  package_count: z.optional(count),
  downloaded_bytes: z.optional(count),
  requires_reboot: z.optional(z.boolean()),
  message: z.optional(z.string()),
});
const SelfUpdateData = z.looseObject({ from: z.optional(z.string()), to: z.optional(z.string()), message: z.optional(z.string()) });
const RequiresSudoData = z.looseObject({ requires_sudo: z.boolean() });
const SudoPathsData = z.looseObject({ paths: z.array(z.string().check(z.regex(/^\//, 'must be an absolute path'))) });
const VersionData = z.looseObject({ version: z.string().check(z.minLength(1)), protocol: z.literal(PROTOCOL_VERSION) });
const ValidateData = z.looseObject({ healthy: z.boolean(), problems: words });
const MutexesData = z.looseObject({
  mutexes: z.array(z.string().check(z.maxLength(64), z.regex(MUTEX_SHAPE, 'must be category:resource'))),
});
const RunsAfterData = z.looseObject({ plugins: z.array(pluginName) });

export const ProgressSchema = z.looseObject({
  type: z.literal('progress'),
  percent: z.number().check(z.minimum(0), z.maximum(100)),
  message: z.optional(z.string()),
  current: z.optional(count),
  total: z.optional(count),
  bytes_done: z.optional(count),
  bytes_total: z.optional(count),
});
/** A progress line without its `type`, and without keys upkeep does not know. */
export interface Progress {
  percent: number;
  message?: string;
  current?: number;
  total?: number;
  bytes_done?: number;
  bytes_total?: number;
}
const PROGRESS_KEYS = ['message', 'current', 'total', 'bytes_done', 'bytes_total'] as const;

/** The data schemas by name; several commands share one (the six mutex queries share `mutexes`). */
const DATA_SCHEMAS = {
  'is-applicable': IsApplicableData,
  'not-applicable': NotApplicableData,
  'estimate-update': EstimateData,
  'can-separate-download': CanSeparateData,
  download: DownloadData,
  update: UpdateData,
  'self-update': SelfUpdateData,
  'does-require-sudo': RequiresSudoData,
  'sudo-programs-paths': SudoPathsData,
  version: VersionData,
  validate: ValidateData,
  mutexes: MutexesData,
  'runs-after': RunsAfterData,
} as const;
type SchemaName = keyof typeof DATA_SCHEMAS;

/** What exit code 1 means for a command (seed 002 §4.1); null: exit 1 is not an answer of that command. */
type NegativeOutcome = 'no' | 'not-applicable' | 'not-supported' | 'failed' | null;
/** required: every plugin implements it; conditional: when `condition` (a manifest field) is true; optional: may answer exit 64. */
export type Requirement = 'required' | 'conditional' | 'optional';
/** Which manifest timeout bounds the command. */
export type TimeoutKey = 'isApplicable' | 'estimateUpdate' | 'download' | 'update' | 'other';

export interface CommandFacts {
  requirement: Requirement;
  condition?: 'can_separate_download' | 'requires_sudo' | 'supports_dynamic_mutexes';
  /** The schema of `data` on success, a key of jsonSchemas(). */
  schema: SchemaName;
  negative: NegativeOutcome;
  /** Changes the machine; never run by validate, recorded instead of run by a dry-run executor. */
  action: boolean;
  timeout: TimeoutKey;
  /** For a boolean query: the data field that carries the answer. */
  flag?: 'applicable' | 'can_separate_download' | 'requires_sudo' | 'healthy';
  summary: string;
}

const query = (schema: SchemaName, summary: string): CommandFacts => ({
  requirement: 'conditional',
  condition: 'supports_dynamic_mutexes',
  schema,
  negative: null,
  action: false,
  timeout: 'other',
  summary,
});

export const PLUGIN_COMMANDS = {
  'is-applicable': {
    requirement: 'required',
    schema: 'is-applicable',
    negative: 'not-applicable',
    action: false,
    timeout: 'isApplicable',
    flag: 'applicable',
    summary: 'whether the plugin applies to this machine',
  },
  'estimate-update': {
    requirement: 'required',
    schema: 'estimate-update',
    negative: 'not-applicable',
    action: false,
    timeout: 'estimateUpdate',
    summary: 'what an update would change, without changing anything',
  },
  'can-separate-download': {
    requirement: 'required',
    schema: 'can-separate-download',
    negative: 'no',
    action: false,
    timeout: 'other',
    flag: 'can_separate_download',
    summary: 'whether download can run before, and apart from, update',
  },
  download: {
    requirement: 'conditional',
    condition: 'can_separate_download',
    schema: 'download',
    negative: 'not-supported',
    action: true,
    timeout: 'download',
    summary: 'fetches what update will install, installing nothing',
  },
  update: {
    requirement: 'required',
    schema: 'update',
    negative: 'failed',
    action: true,
    timeout: 'update',
    summary: 'applies the updates; must be safe to run again',
  },
  'self-update': {
    requirement: 'optional',
    schema: 'self-update',
    negative: 'not-supported',
    action: true,
    timeout: 'update',
    summary: 'updates the plugin itself to its latest patch or minor release',
  },
  'self-upgrade': {
    requirement: 'optional',
    schema: 'self-update',
    negative: 'not-supported',
    action: true,
    timeout: 'update',
    summary: 'upgrades the plugin itself to a new major release',
  },
  'does-require-sudo': {
    requirement: 'required',
    schema: 'does-require-sudo',
    negative: 'no',
    action: false,
    timeout: 'other',
    flag: 'requires_sudo',
    summary: 'whether update needs root',
  },
  'sudo-programs-paths': {
    requirement: 'conditional',
    condition: 'requires_sudo',
    schema: 'sudo-programs-paths',
    negative: null,
    action: false,
    timeout: 'other',
    summary: 'the absolute paths of the programs the plugin runs with sudo (for `upkeep sudo-setup`)',
  },
  version: {
    requirement: 'required',
    schema: 'version',
    negative: null,
    action: false,
    timeout: 'other',
    summary: 'the plugin version and the protocol it speaks',
  },
  validate: {
    requirement: 'optional',
    schema: 'validate',
    negative: 'no',
    action: false,
    timeout: 'other',
    flag: 'healthy',
    summary: 'a self-check of the plugin and the tools it drives',
  },
  'estimate-update-mutexes': query('mutexes', 'mutexes the plugin holds while estimate-update runs'),
  'download-mutexes': query('mutexes', 'mutexes the plugin holds while download runs'),
  'update-mutexes': query('mutexes', 'mutexes the plugin holds while update runs'),
  'estimate-update-dependency': query('mutexes', 'mutexes that must be free (nobody holds them) while estimate-update runs'),
  'download-dependency': query('mutexes', 'mutexes that must be free while download runs'),
  'update-dependency': query('mutexes', 'mutexes that must be free while update runs'),
  'runs-after': query('runs-after', 'plugins that must finish a phase before this plugin starts it'),
} as const satisfies Record<string, CommandFacts>;

export type PluginCommand = keyof typeof PLUGIN_COMMANDS;
export const COMMAND_NAMES = Object.keys(PLUGIN_COMMANDS) as PluginCommand[];

export function isPluginCommand(command: string): command is PluginCommand {
  return Object.hasOwn(PLUGIN_COMMANDS, command);
}

export type CommandData<C extends PluginCommand> = z.infer<(typeof DATA_SCHEMAS)[(typeof PLUGIN_COMMANDS)[C]['schema']]>;

export interface PluginFailure {
  /**
   * The plugin's own code (NETWORK_ERROR, ...) or one of upkeep's: PROTOCOL
   * (the output broke the protocol), TIMEOUT, SIGNAL, INTERRUPTED, EXEC
   * (the executable could not start).
   */
  code: string;
  message: string;
  details?: string;
}

export type PluginAnswer<C extends PluginCommand = PluginCommand> =
  | { kind: 'success'; data: CommandData<C> }
  /** A boolean query's "no" (exit 1, status success); validate's "unhealthy". */
  | { kind: 'no'; data: CommandData<C> }
  | { kind: 'not-applicable'; reason: string }
  | { kind: 'not-supported' }
  /** Exit 64: the plugin does not implement the command. */
  | { kind: 'not-implemented' }
  | { kind: 'failed'; error: PluginFailure; transient: boolean; timedOut: boolean };
export type AnswerKind = PluginAnswer['kind'];

/** How much of a broken stdout a protocol failure quotes. */
const QUOTE_LENGTH = 200;
const NO_REASON = 'the plugin does not apply to this machine';

/**
 * Reads a finished plugin process as an answer to `command`. Never throws:
 * anything that breaks the protocol is `failed` with code PROTOCOL and a
 * message naming the problem. A command upkeep does not know (the probe of
 * `upkeep plugins validate`) can only be answered with exit 64.
 */
export function interpretOutput<C extends PluginCommand>(command: C, result: ExecResult): PluginAnswer<C>;
export function interpretOutput(command: string, result: ExecResult): PluginAnswer;
export function interpretOutput(command: string, result: ExecResult): PluginAnswer {
  const facts: CommandFacts | undefined = isPluginCommand(command) ? PLUGIN_COMMANDS[command] : undefined;
  const stderrTail = tail(result.stderr);
  const failed = (code: string, message: string, transient = false, timedOut = false): PluginAnswer => ({
    kind: 'failed',
    error: { code, message, ...(stderrTail ? { details: stderrTail } : {}) },
    transient,
    timedOut,
  });
  const protocolFailure = (message: string): PluginAnswer => failed('PROTOCOL', `${command}: ${message}`);

  if (result.timedOut) {
    return failed('TIMEOUT', `${command} did not finish in time (${Math.round(result.durationMs / 1000)} s) and was stopped`, true, true);
  }
  if (result.aborted) return failed('INTERRUPTED', `${command} was stopped by upkeep`);
  if (result.exitCode === null) return failed('SIGNAL', `${command} was killed by ${result.signal ?? 'a signal'}`);
  if (result.dryRun) {
    // A dry-run executor records actions instead of running them; they count as done.
    return facts?.action ? ({ kind: 'success', data: {} } as PluginAnswer) : protocolFailure('was not run (dry run)');
  }

  const read = parseEnvelope(result.stdout);
  if ('problem' in read) return protocolFailure(read.problem);
  const envelope = read.envelope;
  const exit = result.exitCode;
  const disagree = (): PluginAnswer => protocolFailure(`exit code ${exit} does not agree with status "${envelope.status}"`);

  if (envelope.status === 'error') {
    if (!envelope.error) return protocolFailure('status "error" without an error object');
    const error: PluginFailure = {
      code: envelope.error.code,
      message: envelope.error.message,
      ...(envelope.error.details !== undefined ? { details: envelope.error.details } : stderrTail ? { details: stderrTail } : {}),
    };
    const transient = (TRANSIENT_ERROR_CODES as readonly string[]).includes(error.code);
    if (exit === EXIT_CODES.unknownCommand) {
      return error.code === UNKNOWN_COMMAND ? { kind: 'not-implemented' } : protocolFailure(`exit code 64 needs error code ${UNKNOWN_COMMAND}, not ${error.code}`);
    }
    if (error.code === UNKNOWN_COMMAND) return protocolFailure(`error code ${UNKNOWN_COMMAND} needs exit code 64, not ${exit}`);
    if ((UPKEEP_FAILURE_CODES as readonly string[]).includes(error.code)) return protocolFailure(`error code ${error.code} is reserved for upkeep`);
    if (!facts) return protocolFailure(`an unknown command must be answered with exit code 64, not ${exit}`);
    if (exit === EXIT_CODES.transient) return { kind: 'failed', error, transient: true, timedOut: false };
    // Exit 1 with an error is a failed action; a query that fails exits 2.
    if (exit === EXIT_CODES.error || (exit === EXIT_CODES.no && facts.action)) {
      return { kind: 'failed', error, transient, timedOut: false };
    }
    return disagree();
  }
  if (!facts) return protocolFailure(`an unknown command must be answered with exit code 64 and status "error", not exit code ${exit} and status "${envelope.status}"`);

  if (envelope.status === 'not_applicable') {
    if (facts.negative !== 'not-applicable') return protocolFailure(`status "not_applicable" is not an answer to ${command}`);
    if (exit !== EXIT_CODES.no) return disagree();
    const data = NotApplicableData.safeParse(envelope.data ?? { applicable: false });
    if (!data.success) return protocolFailure(describeIssue('data', data.error.issues[0]));
    return { kind: 'not-applicable', reason: data.data.reason || NO_REASON };
  }
  if (envelope.status === 'not_supported') {
    if (facts.negative !== 'not-supported') return protocolFailure(`status "not_supported" is not an answer to ${command}`);
    return exit === EXIT_CODES.no ? { kind: 'not-supported' } : disagree();
  }

  // status success
  if (exit !== EXIT_CODES.yes && !(exit === EXIT_CODES.no && facts.negative === 'no')) return disagree();
  const parsed = DATA_SCHEMAS[facts.schema].safeParse(envelope.data ?? {});
  if (!parsed.success) return protocolFailure(describeIssue('data', parsed.error.issues[0]));
  const data = parsed.data as Record<string, unknown>;
  if (facts.flag) {
    const yes = data[facts.flag] === true;
    if (yes !== (exit === EXIT_CODES.yes)) return protocolFailure(`exit code ${exit} does not agree with data.${facts.flag} = ${String(data[facts.flag])}`);
  }
  if (facts.schema === 'mutexes') {
    const normalized: string[] = [];
    for (const name of data.mutexes as string[]) {
      try {
        normalized.push(normalizeMutex(name));
      } catch (error) {
        if (error instanceof UpkeepError) return protocolFailure(error.message);
        throw error;
      }
    }
    data.mutexes = [...new Set(normalized)];
  }
  return { kind: exit === EXIT_CODES.yes ? 'success' : 'no', data } as PluginAnswer;
}

/** stdout must be exactly one JSON envelope; whitespace around it is allowed. */
export function parseEnvelope(stdout: string): { envelope: Envelope } | { problem: string } {
  const text = stdout.trim();
  if (text === '') return { problem: 'printed nothing on stdout (one JSON envelope expected)' };
  const quote = JSON.stringify(text.length > QUOTE_LENGTH ? `${text.slice(0, QUOTE_LENGTH)}…` : text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: `stdout is not one JSON envelope: ${quote}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: `stdout is not a JSON object: ${quote}` };
  }
  const protocol = (value as { protocol?: unknown }).protocol;
  if (protocol !== undefined && protocol !== PROTOCOL_VERSION) {
    return { problem: `the envelope speaks protocol ${JSON.stringify(protocol)}; upkeep speaks protocol ${PROTOCOL_VERSION}` };
  }
  const parsed = EnvelopeSchema.safeParse(value);
  if (!parsed.success) return { problem: describeIssue('envelope', parsed.error.issues[0]) };
  return { envelope: parsed.data };
}

/** A progress line on stderr, or null for plain log text. */
export function parseProgressLine(line: string): Progress | null {
  const text = line.trim();
  if (!text.startsWith('{') || !text.endsWith('}')) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = ProgressSchema.safeParse(value);
  if (!parsed.success) return null;
  const progress: Progress = { percent: parsed.data.percent };
  for (const key of PROGRESS_KEYS) {
    if (parsed.data[key] !== undefined) Object.assign(progress, { [key]: parsed.data[key] });
  }
  return progress;
}

/**
 * The JSON Schema of the envelope, the progress line, the manifest and every
 * command's data (keyed as PLUGIN_COMMANDS[command].schema), as
 * docs/plugin-protocol.md shows them.
 */
export function jsonSchemas(): Record<string, object> {
  const schemas: Record<string, object> = {
    envelope: z.toJSONSchema(EnvelopeSchema),
    progress: z.toJSONSchema(ProgressSchema),
    // The input side: what an author writes, defaults included.
    manifest: z.toJSONSchema(ManifestSchema, { io: 'input' }),
  };
  for (const [name, schema] of Object.entries(DATA_SCHEMAS)) schemas[name] = z.toJSONSchema(schema);
  return schemas;
}

function describeIssue(root: string, issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return `${root} is invalid`;
  const path = [root, ...issue.path.map(String)].join('.');
  return `${path}: ${issue.message}`;
}

/** The last lines of stderr, which usually say why a plugin failed. */
function tail(stderr: string): string {
  return stderr
    .trim()
    .split('\n')
    .filter((line) => parseProgressLine(line) === null)
    .slice(-5)
    .join('\n');
}
